"""The ``onnx`` format: mx2onnx with a dynamic batch axis, the opset pinned when the default fails, checked
with ``onnx.checker`` and ONNX Runtime."""
import contextlib
import time

import numpy as np

from .data import EVAL_SEED, generated_images
from .graphs import prepared, run_batches
from .staging import ExportError, ExportReport, Staging, output_files

__all__ = ['FALLBACK_OPSET', 'pinned_onnx_opset', 'export_onnx', ]

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
    and ONNX Runtime can then fold them as constants instead of warning once per weight)."""
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
    onnx.save(model, onnx_path)
    onnx.checker.check_model(onnx_path, full_check=True)
    return onnx.load(onnx_path)


def _ort_session(path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])


def export_onnx(net, prefix, size=224, preprocess=None, opset=None, atol=1e-5, keep_failed=False):
    """``PREFIX.onnx`` with a dynamic batch axis, checked with ``onnx.checker`` and ONNX Runtime.

    The model is exported at onnx's default opset unless that fails, in which case the opset is pinned to
    13 with :func:`pinned_onnx_opset` (or at ``opset`` if given). ONNX Runtime must match MXNet at batch 1
    and 3 within ``atol`` per unit of logit scale, i.e. ``max|diff| <= atol * max(1, max|logit|)``: both
    are float32 and differ from the exact (float64) logits by rounding that grows with the logits' size.
    The float64 MXNet logits are reported for reference.
    """
    import mxnet as mx
    import onnx
    t0 = time.time()
    rep = ExportReport('onnx', prefix)
    pp = preprocess or net.preprocess
    x = generated_images(3, size, pp, EVAL_SEED)
    finals = output_files('onnx', prefix)
    with Staging(prefix) as st:
        prepared(net, size)
        sym_prefix = st.staged_prefix + '.mxnet'
        net.export(sym_prefix)
        onnx_path = st.staged(finals[0])
        default = onnx.defs.onnx_opset_version()
        attempts = [opset] if opset else [None, FALLBACK_OPSET]
        errors = []
        for attempt in attempts:
            try:
                with (pinned_onnx_opset(attempt) if attempt else contextlib.nullcontext()):
                    model = _onnx_convert(sym_prefix, onnx_path, size)
                session = _ort_session(onnx_path)
                break
            except Exception as err:   # noqa: BLE001 - reported, then the next opset is tried
                errors.append('opset %s: %s: %s' % (attempt or default, type(err).__name__,
                                                    str(err).strip().splitlines()[-1] if str(err).strip() else ''))
        else:
            raise ExportError('ONNX export failed: ' + '; '.join(errors))
        used = model.opset_import[0].version
        if errors:
            rep.notes.append('the default opset failed (%s); exported with the opset pinned to %d'
                             % (errors[0], used))
        rep.lines.append('opset     %d (%s)' % (used, 'requested' if opset else
                                                 'onnx default, no workaround needed' if not errors else
                                                 'pinned: mx2onnx translates up to opset 13'))
        rep.lines.append('ops       ' + ', '.join(sorted({n.op_type for n in model.graph.node})))
        rep.check('onnx.checker (full check)', True)
        input_name = session.get_inputs()[0].name
        fp64 = mx.gluon.SymbolBlock.imports(sym_prefix + '-symbol.json', ['data'], sym_prefix + '-0000.params',
                                            ctx=mx.cpu())
        fp64.cast('float64')
        worst = 0.0
        for b in (1, 3):
            xb = x[:b]
            ref = run_batches(net, xb, b)
            got = session.run(None, {input_name: xb})[0]
            exact = fp64(mx.nd.array(xb, dtype='float64')).asnumpy()
            diff = float(np.abs(got - ref).max())
            scale = float(np.abs(ref).max())
            tol = atol * max(1.0, scale)
            rep.figures['batch%d' % b] = dict(max_abs_diff=diff, logit_scale=scale, tolerance=tol,
                                               ort_vs_fp64=float(np.abs(got - exact).max()),
                                               mxnet_vs_fp64=float(np.abs(ref - exact).max()),
                                               shape=list(got.shape))
            rep.lines.append('runtime   batch %d: ONNX Runtime vs MXNet max|diff| %.2e = %.1e x logit scale %.1f '
                             '(allowed %.0e x max(1, scale) = %.1e); distance to the float64 logits: ONNX Runtime '
                             '%.1e, MXNet fp32 %.1e'
                             % (b, diff, diff / max(scale, 1e-30), scale, atol, tol, np.abs(got - exact).max(),
                                np.abs(ref - exact).max()))
            rep.check('ONNX Runtime output shape at batch %d' % b, got.shape == ref.shape)
            rep.check('ONNX Runtime matches MXNet at batch %d' % b, diff <= tol)
            worst = max(worst, diff)
        rep.figures.update(opset=used, max_abs_diff=worst)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep
