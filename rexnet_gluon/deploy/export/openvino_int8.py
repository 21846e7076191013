"""The ``openvino-int8`` format: NNCF post-training quantization of the fp32 OpenVINO IR of the ``openvino``
format (``PREFIX.xml`` + ``PREFIX.bin`` with FakeQuantize nodes, which OpenVINO's CPU plugin runs as INT8
kernels), published only when its top-1 agreement with the fp32 IR reaches ``min_agreement``."""
import importlib.util
import logging
import sys
import time

import numpy as np

from .data import CALIB_SEED, generated_images, held_out, mean_cosine, top1_agreement
from .graphs import run_batches
from .openvino_format import CHECK_PRECISION, INSTALL_HINT, import_openvino, run_ir, staged_ir
from .staging import ExportError, ExportReport, Staging, output_files

__all__ = ['PRESETS', 'import_nncf', 'quantize_ir', 'int8_op_counts', 'export_openvino_int8', ]

PRESETS = ('performance', 'mixed')


def import_nncf():
    """The ``nncf`` module, or :class:`ExportError` saying how to install it.

    NNCF 2.14.1 (the newest that installs beside numpy 1.23.5) imports ``openvino.runtime``, a module OpenVINO
    2026.0 removed; the names it uses (Model, Node, Type, Output, Core, opset13...) are OpenVINO's top-level
    ones, so ``openvino.runtime`` is aliased to ``openvino`` in this process when it is missing."""
    ov = import_openvino()
    if importlib.util.find_spec('openvino.runtime') is None:
        import openvino.opset13
        sys.modules['openvino.runtime'] = ov
        sys.modules['openvino.runtime.opset13'] = openvino.opset13
        ov.runtime = ov
    try:
        import nncf
    except ImportError as err:
        raise ExportError('--format openvino-int8 needs NNCF (%s); install it with: %s' % (err, INSTALL_HINT)) from err
    logging.getLogger('nncf').setLevel(logging.WARNING)   # its INFO lines repeat what the report says
    return nncf


def quantize_ir(model, calib, preset='performance', fast_bias_correction=True, ignored_types=()):
    """NNCF post-training quantization of the in-memory OpenVINO ``model`` over every calibration image (one per
    step); ``ignored_types``: OpenVINO op types left in fp32.

    Activation ranges are the min and max over all calibration images (as MXNet's naive calibration), not
    NNCF's default, the mean of the per-image extremes, which clips the rare large activations of this net: on
    the trained stand-in (4 classes, 64 px; 64 calibration, 1000 held-out images) top-1 agreement with the
    fp32 IR 95.9 % (cosine 0.967) by default, 99.6 % (0.9992) with MINMAX. Also measured there, all with the
    default ranges: preset mixed 95.0 %, no fast bias correction 96.0 %, Multiply (SE gates) left in fp32
    96.0 % (99.4 % with MINMAX), Add left in fp32 95.8 %."""
    nncf = import_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    if preset not in PRESETS:
        raise ValueError('preset must be one of %s, not %r' % (PRESETS, preset))
    scope = nncf.IgnoredScope(types=list(ignored_types), validate=False) if ignored_types else None
    ranges = AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    try:
        return nncf.quantize(model, nncf.Dataset([calib[i:i + 1] for i in range(len(calib))]),
                             preset=getattr(nncf.QuantizationPreset, preset.upper()), subset_size=len(calib),
                             fast_bias_correction=fast_bias_correction, ignored_scope=scope,
                             advanced_parameters=ranges)
    except Exception as err:   # noqa: BLE001 - NNCF raises many types; the message is what helps
        raise ExportError('NNCF quantization failed: %s: %s' % (type(err).__name__, err)) from err


def int8_op_counts(saved, compiled):
    """(FakeQuantize nodes of the saved IR, convolutions the compiled model runs in i8/u8, all its convolutions)."""
    fq = sum(1 for op in saved.get_ops() if op.get_type_name() == 'FakeQuantize')
    convs = [op for op in compiled.get_runtime_model().get_ops()
             if op.get_rt_info()['layerType'].astype(str) == 'Convolution']
    int8 = sum(1 for op in convs if op.get_rt_info()['runtimePrecision'].astype(str) in ('i8', 'u8'))
    return fq, int8, len(convs)


def _calibration(calib_data, num_calib, size, pp, rep, preset, ignored_types):
    if calib_data is None:
        calib, source = generated_images(num_calib, size, pp, CALIB_SEED), \
            'generated images (smooth random, seed %d; no --calib-dir)' % CALIB_SEED
    else:
        calib, source = np.asarray(calib_data, np.float32)[:num_calib], 'images from the calibration set'
    if len(calib) == 0:
        raise ExportError('no calibration images')
    rep.lines.append('calibrate %d %s; NNCF, activation ranges min/max over all images, preset %s%s' % (
        len(calib), source, preset, '; kept in fp32: ' + ', '.join(ignored_types) if ignored_types else ''))
    return calib


def _run_all(compiled, x, batch):
    return np.concatenate([run_ir(compiled, x[i:i + batch]) for i in range(0, len(x), batch)])


def _report_accuracy(rep, out, fp32, mx_ref, held_desc):
    agree, agree_mx = top1_agreement(out, fp32), top1_agreement(out, mx_ref)
    rep.figures.update(top1_agreement=agree, top1_agreement_mxnet=agree_mx, cosine=mean_cosine(out, fp32),
                       max_abs_diff=float(np.abs(out - fp32).max()), logit_scale=float(np.abs(fp32).max()),
                       fp32_ir_vs_mxnet=float(np.abs(fp32 - mx_ref).max()), held_out=len(out),
                       finite=bool(np.isfinite(out).all()))
    rep.lines.append('accuracy  top-1 agreement with the fp32 IR on %d %s: %.1f %% (%d/%d), with MXNet %.1f %%; '
                     'mean logit cosine %.4f; max|diff| %.3g at logit scale %.1f (fp32 IR vs MXNet: %.2g)'
                     % (len(out), held_desc, 100 * agree, int(round(agree * len(out))), len(out), 100 * agree_mx,
                        rep.figures['cosine'], rep.figures['max_abs_diff'], rep.figures['logit_scale'],
                        rep.figures['fp32_ir_vs_mxnet']))
    return agree


def export_openvino_int8(net, prefix, size=224, preprocess=None, calib_data=None, num_calib=64, num_eval=200,
                         batch=16, min_agreement=0.99, keep_failed=False, eval_data=None, preset='performance',
                         fast_bias_correction=True, ignored_types=()):
    """``PREFIX.xml`` + ``PREFIX.bin``: the ``openvino`` format's fp32 IR (dynamic batch) quantized by NNCF.

    ``calib_data``: preprocessed calibration images as numpy, else ``num_calib`` generated ones (seed
    ``CALIB_SEED``). The staged INT8 IR is read back by a fresh ``ov.Core``, compiled for CPU (f32 for the ops
    left in float) and run on ``num_eval`` held-out images (``eval_data``, never the calibration images, else
    generated ones): its top-1 agreement with the fp32 IR must reach ``min_agreement``; the agreement with
    MXNet, the mean logit cosine, the FakeQuantize nodes and the convolutions run in INT8 are reported.
    """
    ov = import_openvino()
    import_nncf()
    t0 = time.time()
    rep = ExportReport('openvino-int8', prefix)
    pp = preprocess or net.preprocess
    calib = _calibration(calib_data, num_calib, size, pp, rep, preset, ignored_types)
    held, held_desc = held_out(eval_data, num_eval, size, pp)
    finals = output_files('openvino-int8', prefix)
    with Staging(prefix) as st:
        model = staged_ir(net, st, rep, size).opened
        mx_ref = run_batches(net, held, batch)
        core = ov.Core()
        fp32 = _run_all(core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': CHECK_PRECISION}), held,
                        batch)
        qmodel = quantize_ir(model, calib, preset, fast_bias_correction, ignored_types)
        ov.save_model(qmodel, st.staged(finals[0]), compress_to_fp16=False)
        saved = ov.Core().read_model(st.staged(finals[0]), st.staged(finals[1]))   # as a deployment reads it
        compiled = ov.Core().compile_model(saved, 'CPU', {'INFERENCE_PRECISION_HINT': CHECK_PRECISION})
        out = _run_all(compiled, held, batch)
        fq, n_int8, n_conv = int8_op_counts(saved, compiled)
        rep.figures.update(fake_quantize=fq, int8_convolutions=n_int8, convolutions=n_conv, calib=len(calib),
                           preset=preset, fast_bias_correction=fast_bias_correction, ignored_types=list(ignored_types))
        rep.lines.append('graph     %d FakeQuantize nodes; the CPU plugin runs %d of %d convolutions in INT8'
                         % (fq, n_int8, n_conv))
        agree = _report_accuracy(rep, out, fp32, mx_ref, held_desc)
        rep.check('INT8 IR runs quantized convolutions', n_int8 > 0)
        rep.check('INT8 outputs finite', rep.figures['finite'])
        rep.check('top-1 agreement %.1f %% >= %.1f %%' % (100 * agree, 100 * min_agreement), agree >= min_agreement)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep
