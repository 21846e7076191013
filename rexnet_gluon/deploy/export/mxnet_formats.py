"""The MXNet fp32 formats: ``symbol`` (``net.export``) and ``fast`` (the graph of ``deploy.fast.prepare``)."""
import time
from collections import Counter

import numpy as np

from .data import EVAL_SEED, generated_images, top1_agreement
from .graphs import graph_nodes, load_exported, prepared, run_batches
from .staging import ExportError, ExportReport, Staging, output_files

__all__ = ['export_symbol', 'export_fast', 'FAST_TOLERANCE']

# The fast graph against the plain network: two fp32 computations of the same logits, each rounding differently
# (BN folded, channels padded, other kernels). Measured over every zoo model with random weights
# (scripts/measure_fast_rounding.py, results/fast_rounding.md): up to 1.25x the parity rule (rexnet_lite_1.0x),
# each graph ~0.5-0.9x the rule from the float64 logits. Twice the rule passes every correct export and still fails
# a wrong weight (tests/deploy/test_export.py::test_corrupted_mxnet_export_fails_its_check_and_publishes_nothing).
FAST_TOLERANCE = 2.0


def export_symbol(net, prefix, size=224, batch=8, preprocess=None, keep_failed=False):
    """``net.export`` to ``prefix``; reloaded with ``SymbolBlock.imports``, the outputs must be identical."""
    t0 = time.time()
    rep = ExportReport('symbol', prefix)
    x = generated_images(batch, size, preprocess or net.preprocess, EVAL_SEED)
    finals = output_files('symbol', prefix)
    with Staging(prefix) as st:
        prepared(net, size)
        ref = run_batches(net, x, batch)
        net.export(st.staged_prefix)
        diff = float(np.abs(run_batches(load_exported(st.staged_prefix), x, batch) - ref).max())
        rep.figures.update(max_abs_diff=diff, logit_scale=float(np.abs(ref).max()), images=len(x))
        rep.lines.append('reload    SymbolBlock.imports vs the Gluon net on %d images: max|diff| %s, logits up to '
                         '%.1f' % (len(x), '0 (identical)' if diff == 0 else '%.3g' % diff, np.abs(ref).max()))
        rep.check('reloaded symbol reproduces the net exactly', diff == 0.0)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep


def export_fast(net, prefix, size=224, preprocess=None, num_eval=16, keep_failed=False):
    """The fast fp32 inference graph of :func:`rexnet_gluon.deploy.fast.prepare` (BN folded, oneDNN-fused), exported
    already partitioned: ``SymbolBlock.imports`` runs it as it is, on any MKLDNN build of MXNet (the pip wheels).

    The graph takes **one image per call**, (1, 3, size, size) (its SE gate is a BatchNorm whose scale is the
    image's gate); loop over a batch. Check: reloaded, on ``num_eval`` held-out generated images, the logits
    equal the plain network's within :data:`FAST_TOLERANCE` times the parity rule
    (:func:`rexnet_gluon.convert.parity.allowed_diff`), with the same top-1. For its speed set :data:`rexnet_gluon.deploy.fast.RECOMMENDED_ENV` where it runs.
    """
    from .. import fast
    from ...convert.parity import allowed_diff
    t0 = time.time()
    rep = ExportReport('fast', prefix)
    held = generated_images(num_eval, size, preprocess or net.preprocess, EVAL_SEED)
    finals = output_files('fast', prefix)
    with Staging(prefix) as st:
        prepared(net, size)
        ref = run_batches(net, held, num_eval)
        try:
            fnet = fast.prepare(net, example=(1, 3, size, size))
            fnet.export(st.staged_prefix)
        except Exception as err:
            raise ExportError('fast graph failed: %s' % str(err).strip().splitlines()[-1]) from err
        ops = Counter(n['op'] for n in graph_nodes(st.staged_prefix + '-symbol.json'))
        out = run_batches(load_exported(st.staged_prefix), held, 1)
        diff = float(np.abs(out - ref).max())
        scale = float(np.abs(ref).max())
        tol = FAST_TOLERANCE * allowed_diff(scale)
        agree = top1_agreement(out, ref)
        rep.figures.update(max_abs_diff=diff, logit_scale=scale, tolerance=tol, top1_agreement=agree,
                           held_out=len(held), fused_convs=ops.get('_sg_mkldnn_conv', 0))
        rep.lines.append('graph     %d oneDNN fused convolutions, %d ops in all; input (1, 3, %d, %d): one image per '
                         'call' % (ops.get('_sg_mkldnn_conv', 0), sum(ops.values()), size, size))
        rep.lines.append('reload    vs the plain network on %d held-out generated images: max|diff| %.2e at logit '
                         'scale %.1f (allowed %.1e), top-1 agreement %.0f %%' % (len(held), diff, scale, tol,
                                                                                 100 * agree))
        rep.check('reloaded fast graph equals the network within %g x the parity rule' % FAST_TOLERANCE,
                  diff <= tol)
        rep.check('same top-1 on every image', agree == 1.0)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep
