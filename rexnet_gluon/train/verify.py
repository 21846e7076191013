"""Verification (``scripts/verify_pretrained.py``): top-1/top-5 error of a (pretrained) model on validation data,
or its throughput on synthetic data."""
import argparse
import os
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import gluon

from . import data as D
from .errors import TrainingError
from .flags import floats, json_arg, resolve_names
from .metrics import evaluate
from .models import create_model, is_rexnet
from .runtime import make_contexts

__all__ = ['build_verify_parser', 'verify_main']


def build_verify_parser():
    p = argparse.ArgumentParser(description='Evaluate a (pretrained) model on ImageNet-style validation data: '
                                'top-1/top-5 error and throughput (GluonCV verify_pretrained.py).')
    p.add_argument('--data-dir', type=str, default='~/.mxnet/datasets/imagenet',
                   help='ImageFolder root with val/<class>/ (ignored with --rec-dir/--rec-val)')
    p.add_argument('--rec-dir', type=str, default='', help='folder with val.rec (+ val.idx)')
    p.add_argument('--rec-val', type=str, default='', help='validation .rec (instead of --rec-dir)')
    p.add_argument('--rec-val-idx', type=str, default='', help='its .idx')
    p.add_argument('--batch-size', type=int, default=32, help='per device')
    p.add_argument('--num-gpus', type=int, default=0)
    p.add_argument('--gpus', type=str, default=None)
    p.add_argument('--cpus', type=int, default=0)
    p.add_argument('-j', '--num-data-workers', dest='num_workers', default=4, type=int)
    p.add_argument('--model', type=str, required=True, help='zoo name (rexnet_1.0x, ...), alias (rexnet, '
                   'rexnet_100, rexnetv1_1.0, ...) or GluonCV zoo name')
    p.add_argument('--params-file', type=str, default='', help='weights to evaluate (default: published weights)')
    p.add_argument('--input-size', type=int, default=None,
                   help="default: the checkpoint's (its JSON), else the zoo model's, else 224")
    p.add_argument('--crop-ratio', type=float, default=None,
                   help="resize to ceil(input / ratio), center crop; default: the checkpoint's, else the zoo "
                   "model's crop_pct, else 0.875")
    p.add_argument('--interpolation', choices=('bilinear', 'bicubic'), default=None,
                   help="of the resize; default: the checkpoint's, else the zoo model's, else bilinear")
    p.add_argument('--num-batches', type=int, default=100, help='batches timed by --benchmark')
    p.add_argument('--max-batches', type=int, default=None, help='evaluate on the first N batches only')
    p.add_argument('--benchmark', action='store_true', help='time synthetic data instead of evaluating')
    p.add_argument('--dtype', type=str, default='float32')
    p.add_argument('--use_se', action='store_true')
    p.add_argument('--classes', type=int, default=None, help='default: from the params file, else 1000')
    p.add_argument('--model-kwargs', type=str, default=None)
    p.add_argument('--rgb-mean', type=str, default='123.68,116.779,103.939')
    p.add_argument('--rgb-std', type=str, default='58.393,57.12,57.375')
    p.add_argument('--mode', type=str, default='hybrid', help='hybrid (default) or imperative')
    p.add_argument('--runtime', default='mxnet', choices=('mxnet', 'auto', 'openvino', 'onnxruntime', 'fast'),
                   help='the engine that computes the logits. Default mxnet: the plain network itself, the one an '
                   'accuracy check should measure. openvino, onnxruntime, fast (CPU, float32, one device) are built '
                   'from the network and first checked against it on generated images (an error if they differ); '
                   'auto takes the fastest that passes (rexnet_gluon.deploy.runtimes)')
    return p


def verify_main(argv=None, choose_engine=None):
    """``scripts/verify_pretrained.py``; prints running and final top-1/top-5 error, throughput, parameter count.

    ``choose_engine``: :func:`rexnet_gluon.deploy.runtimes.choose_engine`, passed in by the script (training does
    not import deployment: they are peers); needed for ``--runtime`` other than mxnet."""
    p = build_verify_parser()
    opt = p.parse_args(sys.argv[1:] if argv is None else list(argv))
    for line in resolve_names(opt).renamed:   # an alias (rexnet, rexnet_100, ...) becomes the zoo name
        print(line)
    try:
        return _verify(opt, choose_engine)
    except TrainingError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2


def _preprocessing(opt):
    """(input size, crop ratio, interpolation): each flag, else the checkpoint's JSON (what its validation used),
    else the zoo model's evaluation preprocessing, else GluonCV's 224 / 0.875 / bilinear. Printed."""
    from ..zoo import get_model_info
    from ..zoo.weights import checkpoint_meta
    sources = [('flags', dict(input_size=opt.input_size, crop_pct=opt.crop_ratio, interpolation=opt.interpolation))]
    meta = checkpoint_meta(opt.params_file).get('preprocess')
    if meta:
        sources.append(("the checkpoint's JSON", meta))
    if is_rexnet(opt.model):
        sources.append(('the %s zoo entry' % opt.model, get_model_info(opt.model).preprocess))
    sources.append(('GluonCV defaults', dict(input_size=224, crop_pct=0.875, interpolation='bilinear')))
    chosen, used = [], []
    for key in ('input_size', 'crop_pct', 'interpolation'):
        where, value = next((w, d[key]) for w, d in sources if d.get(key) is not None)
        chosen.append(value)
        used.append('%s %s from %s' % (key, value, where))
    if chosen[2] not in ('bilinear', 'bicubic'):
        raise TrainingError('interpolation %r: verify resizes with bilinear or bicubic (give --interpolation)'
                            % chosen[2])
    print('Evaluation preprocessing: %s' % '; '.join(used))
    return int(chosen[0]), float(chosen[1]), chosen[2]


def _engine_forward(opt, net, ctx, size, choose_engine):
    """``net`` itself, or a function NDArray -> logits NDArray running ``opt.runtime``'s engine (checked first)."""
    if opt.runtime == 'mxnet':
        return net
    if choose_engine is None:
        raise TrainingError('--runtime %s: run scripts/verify_pretrained.py (it provides the engines)' % opt.runtime)
    if len(ctx) != 1 or ctx[0].device_type != 'cpu' or opt.dtype != 'float32':
        raise TrainingError('--runtime %s runs on one CPU context in float32; use --runtime mxnet' % opt.runtime)
    # The engines' parity check draws generated images normalised like the evaluation data.
    pp = dict(mean=[v / 255.0 for v in floats(opt.rgb_mean, '--rgb-mean')],
              std=[v / 255.0 for v in floats(opt.rgb_std, '--rgb-std')])
    try:
        engine, choice = choose_engine(opt.runtime, net, size, pp, ctx[0])
    except Exception as err:   # the engines' errors (missing package, failed parity check) are written for users
        raise TrainingError('--runtime %s: %s' % (opt.runtime, err)) from None
    print('Runtime %s (%s): %s' % (engine.name, opt.runtime, ' | '.join(choice + engine.notes)))
    return lambda x: mx.nd.array(engine(x.asnumpy()))


def _verify(opt, choose_engine=None):
    ctx = make_contexts(opt)
    if opt.dtype not in ('float32', 'float16'):
        raise TrainingError('--dtype must be float32 or float16, got %s' % opt.dtype)
    if opt.dtype == 'float16' and ctx[0].device_type == 'cpu':
        raise TrainingError('--dtype float16 needs a GPU (no float16 GEMM on the CPU)')
    kwargs = json_arg(opt.model_kwargs, '--model-kwargs')
    if opt.model.lower().startswith('resnext'):
        kwargs['use_se'] = opt.use_se
    if opt.params_file and not os.path.isfile(opt.params_file):
        raise TrainingError('--params-file %s does not exist' % opt.params_file)
    size, crop_ratio, interpolation = _preprocessing(opt)
    if is_rexnet(opt.model):
        kwargs.setdefault('input_size', size)
    classes = opt.classes
    if opt.params_file.endswith('.params') and not classes:
        from ..zoo import checkpoint_classes
        try:
            classes = checkpoint_classes(opt.params_file)
        except ValueError:   # no classifier weights: loading the file reports what is wrong
            pass
    classes = classes or 1000
    try:
        net = create_model(opt.model, classes, ctx, opt.params_file or True, kwargs)
    except TrainingError:
        raise
    except Exception as err:
        raise TrainingError('cannot load %s of %s (%s: %s)%s' % (
            opt.params_file or 'the published weights', opt.model, type(err).__name__, err,
            '' if opt.params_file else '; give --params-file FILE'))
    if opt.dtype != 'float32':
        net.cast(opt.dtype)
    if opt.mode == 'hybrid':
        net.hybridize(static_alloc=True, static_shape=True)
    num_params = sum(int(np.prod(v.shape)) for v in net.collect_params().values())
    forward = _engine_forward(opt, net, ctx, size, choose_engine)
    bs = opt.batch_size * len(ctx)
    if opt.benchmark:
        x = mx.nd.random.uniform(shape=(bs, 3, size, size))
        datas = gluon.utils.split_and_load(x, ctx)
        for _ in range(3):
            [forward(d.astype(opt.dtype)).wait_to_read() for d in datas]
        tic = time.time()
        for _ in range(opt.num_batches):
            outs = [forward(d.astype(opt.dtype)) for d in datas]
        for o in outs:
            o.wait_to_read()
        speed = bs * opt.num_batches / (time.time() - tic)
        print('%s: benchmark of %d batches of %d at %dx%d: %.1f images/sec' % (
            opt.model, opt.num_batches, bs, size, size, speed))
        print('Parameters: %d' % num_params)
        return 0
    cfg = D.AugmentConfig(size, crop_ratio, floats(opt.rgb_mean, '--rgb-mean'), floats(opt.rgb_std, '--rgb-std'),
                          eval_interpolation=interpolation)
    rec = opt.rec_val or (os.path.join(os.path.expanduser(opt.rec_dir), 'val.rec') if opt.rec_dir else '')
    try:
        if rec:
            idx = opt.rec_val_idx or os.path.splitext(rec)[0] + '.idx'
            loader = D.RecordIterValLoader(rec, idx, cfg, bs, opt.num_workers)
        else:
            val_dir = os.path.join(os.path.expanduser(opt.data_dir), 'val')
            loader = D.ValLoader(D.FolderSource(val_dir), cfg, bs, opt.num_workers)
    except D.DataError as err:
        raise TrainingError(str(err))
    total = len(loader) if not opt.max_batches else min(len(loader), opt.max_batches)

    def on_batch(i, top1, top5, n):
        print('[%d/%d] err-top1=%f err-top5=%f' % (i + 1, total, 1 - top1, 1 - top5))

    tic = time.time()
    res = evaluate(forward, loader, ctx, opt.dtype, opt.max_batches, on_batch)
    elapsed = time.time() - tic
    print('%s: err-top1=%f err-top5=%f on %d images (top-1 %.2f%%, top-5 %.2f%%)'
          % (opt.model, res['err_top1'], res['err_top5'], res['samples'], 100 * res['top1'], 100 * res['top5']))
    print('Throughput: %.1f images/sec (data loading included)' % (res['samples'] / elapsed))
    print('Parameters: %d' % num_params)
    return 0
