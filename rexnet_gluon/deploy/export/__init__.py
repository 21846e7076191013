"""Deployment exports of a ReXNet, each one verified before it is published.

    python scripts/export.py --model rexnet_1.0x --params rexnet_1.0x.params --format onnx
    python -m rexnet_gluon export --model rexnet_1.0x --format symbol,onnx,openvino,int8,bf16,fast --output out/rexnet

Formats (files for ``--output PREFIX``):

- ``symbol``: ``PREFIX-symbol.json`` + ``PREFIX-0000.params`` (``net.export``); reloaded with
  ``SymbolBlock.imports``, outputs must be identical.
- ``onnx``: ``PREFIX.onnx`` (``mx.onnx.export_model`` from the exported symbol, batch axis dynamic);
  ``onnx.checker`` full check, then ONNX Runtime at batch 1 and 3 against MXNet.
- ``openvino``: ``PREFIX.xml`` + ``PREFIX.bin``, OpenVINO IR with fp32 weights (``ov.convert_model`` of the onnx
  export, ``ov.save_model(..., compress_to_fp16=False)``), batch axis dynamic or static (``batch=N``); read back
  with a fresh ``ov.Core``, compiled for CPU in f32, checked against MXNet at batch 1 and 3 (static: N) within
  the onnx rule.
- ``openvino-int8``: ``PREFIX.xml`` + ``PREFIX.bin``, the openvino IR quantized by NNCF (post-training, min/max
  statistics, FakeQuantize nodes run as INT8 by the CPU plugin); top-1 agreement with the fp32 IR on held-out
  images.
- ``int8``: ``PREFIX-symbol.json`` + ``PREFIX-0000.params`` of the oneDNN INT8 graph
  (``quantize_net(quantized_dtype='int8', calib_mode='naive')``, CPU only); top-1 agreement with fp32
  on a held-out generated set.
- ``bf16``: ``PREFIX-symbol.json`` + ``PREFIX-0000.params`` of the bfloat16 graph
  (``amp.convert_hybrid_block``); relative logit difference and top-1 agreement with fp32.
- ``fast``: ``PREFIX-symbol.json`` + ``PREFIX-0000.params`` of the fast fp32 graph (``fast.prepare``: BN folded,
  oneDNN-fused, one image per call); equal to the network within the parity rule on held-out images.

Every format is written into a hidden staging folder next to the output, verified from there, and only then
renamed into place, so an interrupted or failed export leaves nothing under the output prefix; files of a
failed check are kept only with ``keep_failed`` (``--keep-failed``).

Modules: ``staging`` (report, errors, staging folder and publish), ``data`` (generated and folder images,
agreement measures), ``graphs`` (running and reloading MXNet graphs), ``mxnet_formats`` (symbol, fast),
``onnx_format`` (onnx), ``openvino_format`` (openvino), ``openvino_int8`` (openvino-int8), ``lowp`` (int8, bf16),
``cli`` (the ``export`` command).

May import: the rest of ``deploy`` (images, errors, predict's model loading, fast), ``convert`` (the parity rule).
"""
from .data import CALIB_SEED, EVAL_SEED, calibration_images, generated_images, preprocess_for_size
from .lowp import INT8_FP32_OPS, export_bf16, export_int8
from .mxnet_formats import export_fast, export_symbol
from .onnx_format import FALLBACK_OPSET, export_onnx, pinned_onnx_opset
from .openvino_format import export_openvino
from .openvino_int8 import export_openvino_int8
from .staging import ExportError, ExportReport, output_files

__all__ = ['FORMATS', 'ExportReport', 'ExportError', 'generated_images', 'calibration_images', 'export_symbol',
           'export_onnx', 'export_openvino', 'export_openvino_int8', 'export_int8', 'export_bf16', 'export_fast', 'export_model',
           'pinned_onnx_opset', 'output_files', 'preprocess_for_size', 'CALIB_SEED', 'EVAL_SEED', 'INT8_FP32_OPS',
           'FALLBACK_OPSET', ]

FORMATS = ('symbol', 'onnx', 'openvino', 'int8', 'bf16', 'fast', 'openvino-int8')


def export_model(net, fmt, prefix, size=None, **kwargs):
    """Dispatch to ``export_<fmt>``; ``size`` defaults to the net's evaluation input size."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError('unknown format %r; choose from %s' % (fmt, ', '.join(FORMATS)))
    size = size or net.preprocess['input_size']
    fn = {'symbol': export_symbol, 'onnx': export_onnx, 'openvino': export_openvino,
          'openvino-int8': export_openvino_int8, 'int8': export_int8,
          'bf16': export_bf16, 'fast': export_fast}[fmt]
    return fn(net, prefix, size=size, **kwargs)
