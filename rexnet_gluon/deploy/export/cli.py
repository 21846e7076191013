"""``python -m rexnet_gluon export`` and ``scripts/export.py``: the arguments, and the run over the formats
(the command protocol of ``rexnet_gluon.__main__``)."""
import argparse
import os
import re

from ..errors import UsageError
from ..images import ImageLoadError
from . import FORMATS, export_model
from .data import calibration_images, preprocess_for_size
from .lowp import INT8_FP32_OPS
from .openvino_format import import_openvino
from .openvino_int8 import PRESETS, import_nncf
from .staging import ExportError

__all__ = ['HANDLED_ERRORS', 'UsageError', 'add_arguments', 'run', ]

HANDLED_ERRORS = (ImageLoadError,)


def _formats(text):
    out = []
    for part in re.split(r'[,\s]+', text.strip().lower()):
        if not part:
            continue
        if part not in FORMATS:
            raise argparse.ArgumentTypeError('unknown format %r; choose from %s' % (part, ', '.join(FORMATS)))
        out.append(part)
    if not out:
        raise argparse.ArgumentTypeError('give at least one format: %s' % ', '.join(FORMATS))
    return out


def _fraction(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError('%s is not a fraction in [0, 1]' % text)
    return value


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError('%s is not a positive integer' % text)
    return value


def add_arguments(p):
    p.add_argument('--model', required=True, metavar='NAME', help='zoo name, e.g. rexnet_1.0x, or an alias '
                   '(rexnet, rexnet_100, rexnetv1_1.0, ...)')
    weights = p.add_mutually_exclusive_group()
    weights.add_argument('--pretrained', action='store_true',
                         help='the published weights, fetched and converted once, then cached (the default)')
    weights.add_argument('--params', metavar='FILE',
                         help='local weights: a converted Gluon .params or a PyTorch .pth / .safetensors')
    p.add_argument('--format', required=True, type=_formats, action='append', metavar='FMT',
                   help='%s; repeat it or separate with commas for several' % ' | '.join(FORMATS))
    p.add_argument('--output', metavar='PREFIX',
                   help='output prefix (default: the model name). With several formats, int8 and bf16 add '
                        '-int8 / -bf16 / -fast to it (openvino-int8 too: PREFIX-int8.xml; their files would '
                        'collide otherwise; symbol, onnx and openvino write PREFIX-symbol.json/-0000.params, PREFIX.onnx, PREFIX.xml/.bin); alone, '
                        'a format uses PREFIX as given')
    p.add_argument('--input-size', type=_positive, metavar='N',
                   help='square input size to export and verify at (default: the model\'s, e.g. 224)')
    p.add_argument('--calib-dir', metavar='DIR',
                   help='int8, openvino-int8: calibration images (read with the model\'s preprocessing); default: '
                        'generated')
    p.add_argument('--num-calib', type=_positive, default=64, metavar='N',
                   help='int8, openvino-int8: number of calibration images (default 64)')
    p.add_argument('--eval-dir', metavar='DIR',
                   help='int8/openvino-int8/bf16: held-out images for the top-1 agreement check (never used for calibration); '
                        'default: generated')
    p.add_argument('--num-eval', type=_positive, default=200, metavar='N',
                   help='int8/openvino-int8/bf16/fast: number of held-out images for the agreement check (default 200)')
    p.add_argument('--batch', type=_positive, default=16, metavar='B',
                   help='batch size for calibration and verification runs (default 16)')
    p.add_argument('--quantize-mode', choices=('full', 'smart'), default='full',
                   help='int8: quantize every supported op (full, default) or let MXNet choose (smart)')
    p.add_argument('--int8-exclude-ops', type=lambda t: [o for o in re.split(r'[,\s]+', t) if o and o != 'none'],
                   default=list(INT8_FP32_OPS), metavar='OPS',
                   help='int8: comma-separated ops of the oneDNN graph to keep in fp32 (default %s: the Swish '
                        'products; "none" quantizes everything)' % ','.join(INT8_FP32_OPS))
    p.add_argument('--int8-min-agreement', type=_fraction, default=0.99, metavar='F',
                   help='int8, openvino-int8: required top-1 agreement with fp32 (default 0.99)')
    p.add_argument('--bf16-min-agreement', type=_fraction, default=0.9, metavar='F',
                   help='bf16: required top-1 agreement with fp32 (default 0.9)')
    p.add_argument('--opset', type=int, metavar='N',
                   help='onnx: pin this opset (default: onnx\'s newest, falling back to 13 if that fails)')
    p.add_argument('--onnx-tol', type=float, default=1e-5, metavar='T',
                   help='onnx: allowed max|ORT - MXNet| per unit of logit scale (default 1e-5)')
    p.add_argument('--ov-batch', type=_positive, metavar='N',
                   help='openvino: a static batch of N images (default: the batch axis stays dynamic)')
    p.add_argument('--ov-int8-preset', choices=PRESETS, default='performance',
                   help='openvino-int8: NNCF preset, symmetric (performance, default) or asymmetric (mixed) '
                        'activations')
    p.add_argument('--keep-failed', action='store_true',
                   help='publish the files of a format even if its check failed (the exit status is still 1)')
    return p


def _prefixes(formats, output, model):
    base = output or model
    if len(formats) == 1 and output:
        return {formats[0]: base}
    return {f: base + {'int8': '-int8', 'bf16': '-bf16', 'fast': '-fast', 'openvino-int8': '-int8'}.get(f, '') for f in formats}


def _format_kwargs(fmt, args, pp, calib, held):
    """The keyword arguments of ``export_<fmt>`` from the command line."""
    kw = dict(preprocess=pp, keep_failed=args.keep_failed)
    if fmt == 'symbol':
        kw.update(batch=args.batch)
    elif fmt == 'onnx':
        kw.update(opset=args.opset, atol=args.onnx_tol)
    elif fmt == 'int8':
        kw.update(calib_data=calib, num_calib=args.num_calib, num_eval=args.num_eval, batch=args.batch,
                  quantize_mode=args.quantize_mode, min_agreement=args.int8_min_agreement,
                  exclude_operators=args.int8_exclude_ops, eval_data=held)
    elif fmt == 'openvino':
        kw.update(batch=args.ov_batch)
    elif fmt == 'openvino-int8':
        kw.update(calib_data=calib, num_calib=args.num_calib, num_eval=args.num_eval, batch=args.batch,
                  min_agreement=args.int8_min_agreement, eval_data=held, preset=args.ov_int8_preset)
    elif fmt == 'bf16':
        kw.update(num_eval=args.num_eval, batch=args.batch, min_agreement=args.bf16_min_agreement,
                  eval_data=held)
    else:
        kw.update(num_eval=args.num_eval)
    return kw


def run(args):
    """Run the export command; returns 0 if every check passed, 1 otherwise."""
    from ..predict import check_model_name, load_model, model_preprocess
    formats = list(dict.fromkeys(f for group in args.format for f in group))
    info = check_model_name(args.model)
    if args.params is not None and not os.path.isfile(args.params):
        raise UsageError('--params %s: no such file' % args.params)
    base = model_preprocess(info, args.params)
    size = args.input_size or base['input_size']
    pp = preprocess_for_size(base, size)
    calib = None
    if {'int8', 'openvino-int8'} & set(formats) and args.calib_dir:
        calib = calibration_images(args.calib_dir, pp, args.num_calib)
    elif args.calib_dir:
        raise UsageError('--calib-dir is only used by --format int8 and openvino-int8')
    held = None
    if args.eval_dir and {'int8', 'openvino-int8', 'bf16'} & set(formats):
        held = calibration_images(args.eval_dir, pp, args.num_eval, flag='--eval-dir')
        if args.calib_dir and os.path.realpath(args.eval_dir) == os.path.realpath(args.calib_dir):
            raise UsageError('--eval-dir and --calib-dir are the same folder: the agreement check needs images '
                             'the calibration did not see')
    elif args.eval_dir:
        raise UsageError('--eval-dir is only used by --format int8, openvino-int8 and bf16')
    if args.ov_batch is not None and 'openvino' not in formats:
        raise UsageError('--ov-batch is only used by --format openvino')
    if {'openvino', 'openvino-int8'} & set(formats):
        try:
            import_openvino()
            if 'openvino-int8' in formats:
                import_nncf()
        except ExportError as err:
            raise UsageError(str(err)) from None
    import mxnet as mx
    net = load_model(info.name, args.params, mx.cpu())
    prefixes = _prefixes(formats, args.output, info.name)
    print('%s (%s), input 1x3x%dx%d' % (info.name, args.params or 'published weights', size, size))
    status = 0
    for fmt in formats:
        try:
            rep = export_model(net, fmt, prefixes[fmt], size=size, **_format_kwargs(fmt, args, pp, calib, held))
        except (ExportError, OSError) as err:
            print('\n[%s] ERROR  %s\n  wrote     nothing' % (fmt, err))
            status = 1
            continue
        print('\n' + rep.summary())
        if not rep.ok:
            status = 1
    print('\n%s' % ('all checks passed' if status == 0 else 'some checks FAILED'))
    return status
