"""The ``onnx`` format: mx2onnx with a dynamic batch axis, the opset pinned when the default fails, checked
with ``onnx.checker`` and ONNX Runtime. Its conversion (:func:`staged_onnx`) and its check against MXNet
(:func:`check_against_mxnet`) are shared with the ``openvino`` format, which starts from the same ONNX file."""
import contextlib
import time
from collections import namedtuple

import numpy as np

from .data import EVAL_SEED, generated_images
from .graphs import prepared, run_batches
from .onnx_rewrite import direct_channel_pads
from .staging import ExportError, ExportReport, Staging, output_files

__all__ = ['FALLBACK_OPSET', 'pinned_onnx_opset', 'StagedOnnx', 'staged_onnx', 'report_onnx', 'check_against_mxnet',
           'export_onnx', ]

FALLBACK_OPSET = 13   # the newest opset mx2onnx has translations for


@contextlib.contextmanager
def pinned_onnx_opset(opset):
    """Make mx2onnx stamp and check ``opset`` instead of onnx's newest (restored afterwards).

    mx2onnx translates ops up to opset 13 but labels the model with ``onnx.defs.onnx_opset_version()``
    (19 for onnx 1.14) and checks its graph against that; ops whose schema changed after 13 then fail.
    """
    import onnx
    import onnx.checker
    import onnx.defs
    saved_version = onnx.defs.onnx_opset_version
    saved_imports = onnx.checker.DEFAULT_CONTEXT.opset_imports
    onnx.defs.onnx_opset_version = lambda: opset
    onnx.checker.DEFAULT_CONTEXT.opset_imports = {'': opset}
    try:
        yield
    finally:
        onnx.defs.onnx_opset_version = saved_version
        onnx.checker.DEFAULT_CONTEXT.opset_imports = saved_imports


def _onnx_convert(sym_prefix, onnx_path, size):
    """mx2onnx with a dynamic batch axis; initializers dropped from the graph inputs (ONNX IR >= 4 allows it,
    and ONNX Runtime can then fold them as constants instead of warning once per weight); the shortcut's pads
    as one ``Pad`` each (:func:`~.onnx_rewrite.direct_channel_pads`). Returns (model, chains rewritten)."""
    import mxnet as mx
    import onnx
    mx.onnx.export_model(sym_prefix + '-symbol.json', sym_prefix + '-0000.params', in_shapes=[(1, 3, size, size)],
                         in_types=[np.float32], onnx_file_path=onnx_path, dynamic=True,
                         dynamic_input_shapes=[(None, 3, size, size)])
    model = onnx.load(onnx_path)
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    rewritten = direct_channel_pads(model)
    onnx.save(model, onnx_path)
    onnx.checker.check_model(onnx_path, full_check=True)
    return onnx.load(onnx_path), rewritten


def _ort_session(path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])


StagedOnnx = namedtuple('StagedOnnx', 'path model opened opset errors sym_prefix rewritten')


def staged_onnx(net, st, onnx_path, size, opset=None, open_with=None):
    """The network as ONNX at ``onnx_path`` (a file in the staging folder ``st``): exported as an MXNet symbol
    (``st.staged_prefix + '.mxnet'``), then converted by mx2onnx at onnx's default opset, retried with the opset
    pinned to :data:`FALLBACK_OPSET` if that fails (or only at ``opset`` if given). ``open_with(onnx_path)``, the
    runtime that will run the file, is part of each attempt, so an opset the runtime cannot read falls back too.

    Returns a :class:`StagedOnnx` (path, the onnx model, what ``open_with`` returned, the opset used, the error of
    each failed attempt, the symbol prefix, the shortcut chains rewritten); raises :class:`ExportError` if every attempt failed.
    """
    import onnx
    prepared(net, size)
    sym_prefix = st.staged_prefix + '.mxnet'
    net.export(sym_prefix)
    default = onnx.defs.onnx_opset_version()
    errors = []
    for attempt in ([opset] if opset else [None, FALLBACK_OPSET]):
        try:
            with (pinned_onnx_opset(attempt) if attempt else contextlib.nullcontext()):
                model, rewritten = _onnx_convert(sym_prefix, onnx_path, size)
            opened = open_with(onnx_path) if open_with else None
            return StagedOnnx(onnx_path, model, opened, model.opset_import[0].version, errors, sym_prefix,
                              rewritten)
        except Exception as err:   # noqa: BLE001 - reported, then the next opset is tried
            errors.append('opset %s: %s: %s' % (attempt or default, type(err).__name__,
                                                str(err).strip().splitlines()[-1] if str(err).strip() else ''))
    raise ExportError('ONNX export failed: ' + '; '.join(errors))


def report_onnx(rep, onx, opset=None):
    """The opset (and why) and the operators of a :func:`staged_onnx` file, in the report."""
    if onx.errors:
        rep.notes.append('the default opset failed (%s); exported with the opset pinned to %d'
                         % (onx.errors[0], onx.opset))
    rep.lines.append('opset     %d (%s)' % (onx.opset, 'requested' if opset else
                                             'onnx default, no workaround needed' if not onx.errors else
                                             'pinned: mx2onnx translates up to opset 13'))
    rep.lines.append('ops       ' + ', '.join(sorted({n.op_type for n in onx.model.graph.node})))
    if onx.rewritten:
        rep.lines.append('rewrite   %d shortcut pads (reshape, unsqueeze, pad, reshape) as one Pad of the channel '
                         'axis each' % onx.rewritten)
    rep.figures['shortcut_pads_rewritten'] = onx.rewritten


def check_against_mxnet(rep, net, x, sym_prefix, runtime, run, batches, atol, key):
    """Check ``run(images) -> logits`` (the exported file in its runtime) against MXNet's logits of the network
    at each batch size of ``batches`` (the first images of ``x``), within ``max|diff| <= atol * max(1,
    max|logit|)``; the float64 logits of the exported symbol at ``sym_prefix`` are reported for reference.
    Writes figures ``batch<b>`` (``<key>_vs_fp64`` among them), lines and checks; returns the worst max|diff|."""
    import mxnet as mx
    fp64 = mx.gluon.SymbolBlock.imports(sym_prefix + '-symbol.json', ['data'], sym_prefix + '-0000.params',
                                        ctx=mx.cpu())
    fp64.cast('float64')
    worst = 0.0
    for b in batches:
        xb = x[:b]
        ref = run_batches(net, xb, b)
        got = run(xb)
        exact = fp64(mx.nd.array(xb, dtype='float64')).asnumpy()
        diff = float(np.abs(got - ref).max())
        scale = float(np.abs(ref).max())
        tol = atol * max(1.0, scale)
        rep.figures['batch%d' % b] = {'max_abs_diff': diff, 'logit_scale': scale, 'tolerance': tol,
                                      key + '_vs_fp64': float(np.abs(got - exact).max()),
                                      'mxnet_vs_fp64': float(np.abs(ref - exact).max()), 'shape': list(got.shape)}
        rep.lines.append('runtime   batch %d: %s vs MXNet max|diff| %.2e = %.1e x logit scale %.1f (allowed %.0e x '
                         'max(1, scale) = %.1e); distance to the float64 logits: %s %.1e, MXNet fp32 %.1e'
                         % (b, runtime, diff, diff / max(scale, 1e-30), scale, atol, tol, runtime,
                            np.abs(got - exact).max(), np.abs(ref - exact).max()))
        rep.check('%s output shape at batch %d' % (runtime, b), got.shape == ref.shape)
        rep.check('%s matches MXNet at batch %d' % (runtime, b), diff <= tol)
        worst = max(worst, diff)
    return worst


def export_onnx(net, prefix, size=224, preprocess=None, opset=None, atol=1e-5, keep_failed=False):
    """``PREFIX.onnx`` with a dynamic batch axis, checked with ``onnx.checker`` and ONNX Runtime.

    The model is exported at onnx's default opset unless that fails, in which case the opset is pinned to
    13 with :func:`pinned_onnx_opset` (or at ``opset`` if given). ONNX Runtime must match MXNet at batch 1
    and 3 within ``atol`` per unit of logit scale, i.e. ``max|diff| <= atol * max(1, max|logit|)``: both
    are float32 and differ from the exact (float64) logits by rounding that grows with the logits' size.
    The float64 MXNet logits are reported for reference.
    """
    t0 = time.time()
    rep = ExportReport('onnx', prefix)
    x = generated_images(3, size, preprocess or net.preprocess, EVAL_SEED)
    finals = output_files('onnx', prefix)
    with Staging(prefix) as st:
        onx = staged_onnx(net, st, st.staged(finals[0]), size, opset, open_with=_ort_session)
        report_onnx(rep, onx, opset)
        rep.check('onnx.checker (full check)', True)
        session = onx.opened
        input_name = session.get_inputs()[0].name
        worst = check_against_mxnet(rep, net, x, onx.sym_prefix, 'ONNX Runtime',
                                    lambda xb: session.run(None, {input_name: xb})[0], (1, 3), atol, 'ort')
        rep.figures.update(opset=onx.opset, max_abs_diff=worst)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep
