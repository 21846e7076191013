"""The reduced-precision formats: ``int8`` (oneDNN post-training quantization) and ``bf16`` (AMP), each
checked by its top-1 agreement with fp32 on held-out images."""
import time
import warnings
from collections import Counter

import numpy as np

from .data import CALIB_SEED, generated_images, held_out, mean_cosine, top1_agreement
from .graphs import graph_nodes, load_exported, prepared, run_batches
from .staging import ExportError, ExportReport, Staging, native_log_captured, output_files

__all__ = ['INT8_FP32_OPS', 'export_int8', 'export_bf16', ]

INT8_FP32_OPS = ('elemwise_mul',)   # kept in fp32 by the INT8 export: the Swish products (see export_int8)


def _int8_graph_stats(symbol_json):
    nodes = graph_nodes(symbol_json)
    ops = Counter(n['op'] for n in nodes)
    int8 = sum(c for op, c in ops.items() if op.startswith('_contrib_quantized'))
    int8 += sum(1 for n in nodes if n['op'] == '_sg_mkldnn_conv' and
                str(n.get('attrs', {}).get('quantized', '')).lower() == 'true')
    conv = ops.get('_sg_mkldnn_conv', 0)
    return ops, int8, conv


def export_int8(net, prefix, size=224, preprocess=None, calib_data=None, num_calib=64, num_eval=200, batch=16,
                quantize_mode='full', exclude_operators=INT8_FP32_OPS, min_agreement=0.99, keep_failed=False,
                eval_data=None):
    """oneDNN INT8 graph by post-training quantization (naive min/max calibration), CPU only.

    ``calib_data``: preprocessed calibration images (N, 3, size, size) as numpy; default: ``num_calib``
    generated images (seed ``CALIB_SEED``). The check is the top-1 agreement of the exported INT8 graph with
    the fp32 net on ``num_eval`` held-out images, ``eval_data`` (preprocessed, numpy; never the calibration
    images) or generated ones (seed ``EVAL_SEED``): at least ``min_agreement``.
    What works in MXNet 1.9.1 for ReXNet: ``quantized_dtype='int8'`` ('auto' calibrates, then fails at
    inference with "data type do not match ... Expected: unsigned char v.s. given char"), with
    ``quantize_mode`` 'full' or 'smart' (the same graph here, except that 'smart' leaves the final Flatten
    in fp32). The SE/Swish sigmoids stay fp32 (oneDNN quantizes only ReLU activations); convolutions are fused
    with their BN (and ReLU6 clip where there is no SE) into ``_sg_mkldnn_conv``; the shortcut additions and
    the global pools run as quantized ops. ``exclude_operators``: op names of that fused graph to keep in fp32;
    by default the Swish products (``elemwise_mul``): quantizing them costs most of the error (a ReXNet-1.0x
    trained on tests/datasets.py shapes, 1000 held-out images: top-1 agreement 94.9 % and logit cosine 0.975
    with them quantized, 99.3-99.5 % and 0.9987 without; per-channel weight scales and more calibration images
    changed nothing).
    """
    import mxnet as mx
    from mxnet.contrib.quantization import quantize_net
    t0 = time.time()
    rep = ExportReport('int8', prefix)
    pp = preprocess or net.preprocess
    if calib_data is None:
        calib = generated_images(num_calib, size, pp, CALIB_SEED)
    else:
        calib = np.asarray(calib_data, np.float32)[:num_calib]
    if len(calib) == 0:
        raise ExportError('no calibration images')
    cb = min(batch, len(calib))
    calib = calib[:len(calib) // cb * cb]   # whole batches only: the calibration module has a fixed shape
    if calib_data is None:
        rep.lines.append('calibrate %d generated images (smooth random, seed %d; no --calib-dir), naive min/max, '
                         'quantize_mode %r' % (len(calib), CALIB_SEED, quantize_mode))
    else:
        rep.lines.append('calibrate %d images from the calibration set, naive min/max, quantize_mode %r'
                         % (len(calib), quantize_mode))
    held, held_desc = held_out(eval_data, num_eval, size, pp)
    finals = output_files('int8', prefix)
    with Staging(prefix) as st:
        prepared(net, size)
        ref = run_batches(net, held, batch)
        loader = mx.gluon.data.DataLoader(
            mx.gluon.data.ArrayDataset(mx.nd.array(calib), mx.nd.zeros(len(calib))), batch_size=cb,
            last_batch='discard')
        try:
            with native_log_captured(), warnings.catch_warnings():
                warnings.filterwarnings('ignore', message='WARNING: This will be deprecated after MXNet 2.0')
                qnet = quantize_net(net, quantized_dtype='int8', quantize_mode=quantize_mode, calib_mode='naive',
                                    calib_data=loader, num_calib_examples=len(calib), ctx=mx.cpu(),
                                    exclude_operators=list(exclude_operators or ()))
                qnet.hybridize()
                in_memory = run_batches(qnet, held[:batch], batch)
                qnet.export(st.staged_prefix)
        except Exception as err:   # MXNet errors carry a C++ backtrace; keep the message
            raise ExportError('INT8 quantization failed: %s' % str(err).strip().splitlines()[-1]) from err
        with native_log_captured():
            loaded = load_exported(st.staged_prefix)
            out = run_batches(loaded, held, batch)
        reload_diff = float(np.abs(out[:batch] - in_memory).max())
        agree = top1_agreement(out, ref)
        ops, n_int8, n_conv = _int8_graph_stats(st.staged_prefix + '-symbol.json')
        rep.figures.update(top1_agreement=agree, cosine=mean_cosine(out, ref),
                           max_abs_diff=float(np.abs(out - ref).max()), logit_scale=float(np.abs(ref).max()),
                           held_out=len(held), calib=len(calib), reload_max_abs_diff=reload_diff,
                           int8_ops=n_int8, finite=bool(np.isfinite(out).all()))
        rep.lines.append('graph     %d INT8 ops (%d oneDNN fused convolutions), %d quantize / %d dequantize nodes%s'
                         % (n_int8, n_conv, ops.get('_contrib_quantize_v2', 0), ops.get('_contrib_dequantize', 0),
                            '; kept in fp32: ' + ', '.join(exclude_operators) if exclude_operators else ''))
        rep.lines.append('reload    exported INT8 graph vs the quantized net in memory: max|diff| %.3g' % reload_diff)
        rep.lines.append('accuracy  top-1 agreement with fp32 on %d %s: %.1f %% '
                         '(%d/%d); mean logit cosine %.4f; max|diff| %.3g at logit scale %.1f'
                         % (len(held), held_desc, 100 * agree, int(round(agree * len(held))), len(held),
                            rep.figures['cosine'], rep.figures['max_abs_diff'], rep.figures['logit_scale']))
        rep.check('INT8 graph holds quantized ops', n_int8 > 0)
        rep.check('INT8 outputs finite', rep.figures['finite'])
        rep.check('top-1 agreement %.1f %% >= %.1f %%' % (100 * agree, 100 * min_agreement), agree >= min_agreement)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep


def export_bf16(net, prefix, size=224, preprocess=None, num_eval=200, batch=16, min_agreement=0.9,
                keep_failed=False, eval_data=None):
    """bfloat16 graph from ``amp.convert_hybrid_block`` (CPU), weights stored in bfloat16.

    Exported with ``remove_amp_cast=False``: ``HybridBlock.export`` strips AMP casts by default and would
    silently write an fp32 graph. Checks: finite outputs and top-1 agreement >= ``min_agreement`` with fp32
    on held-out images (``eval_data``, else generated); the maximum relative logit difference
    (max|diff| / max|fp32 logit|) is reported.
    """
    import mxnet as mx
    from mxnet.contrib import amp
    t0 = time.time()
    rep = ExportReport('bf16', prefix)
    held, held_desc = held_out(eval_data, num_eval, size, preprocess or net.preprocess)
    finals = output_files('bf16', prefix)
    with Staging(prefix) as st:
        prepared(net, size)
        ref = run_batches(net, held, batch)
        try:
            bnet = amp.convert_hybrid_block(net, target_dtype='bfloat16', ctx=mx.cpu(), cast_optional_params=True)
            in_memory = run_batches(bnet, held[:batch], batch)
            bnet.export(st.staged_prefix, remove_amp_cast=False)
        except Exception as err:
            raise ExportError('bfloat16 conversion failed: %s' % str(err).strip().splitlines()[-1]) from err
        out = run_batches(load_exported(st.staged_prefix), held, batch)
        reload_diff = float(np.abs(out[:batch] - in_memory).max())
        casts = sum(1 for n in graph_nodes(st.staged_prefix + '-symbol.json')
                    if n['op'] in ('amp_cast', 'amp_multicast'))
        scale = float(np.abs(ref).max())
        diff = float(np.abs(out - ref).max())
        agree = top1_agreement(out, ref)
        rep.figures.update(top1_agreement=agree, max_rel_diff=diff / max(scale, 1e-30), max_abs_diff=diff,
                           logit_scale=scale, cosine=mean_cosine(out, ref), held_out=len(held),
                           reload_max_abs_diff=reload_diff, amp_casts=casts, finite=bool(np.isfinite(out).all()))
        rep.lines.append('graph     %d amp_cast nodes; weights stored as bfloat16 where the op allows' % casts)
        rep.lines.append('reload    exported graph vs the converted net in memory: max|diff| %.3g' % reload_diff)
        rep.lines.append('accuracy  on %d %s: max relative logit diff %.2e (max|diff| %.3g '
                         'at logit scale %.1f), mean cosine %.5f, top-1 agreement %.1f %%'
                         % (len(held), held_desc, rep.figures['max_rel_diff'], diff, scale, rep.figures['cosine'],
                            100 * agree))
        rep.check('graph computes in bfloat16 (amp_cast nodes kept)', casts > 0)
        rep.check('bfloat16 outputs finite', rep.figures['finite'])
        rep.check('top-1 agreement %.1f %% >= %.1f %%' % (100 * agree, 100 * min_agreement), agree >= min_agreement)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep
