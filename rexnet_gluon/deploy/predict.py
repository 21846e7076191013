"""Classify image files with a ReXNet: ``python -m rexnet_gluon predict IMAGE... --model rexnet_1.0x``.

Images are read with the model's evaluation preprocessing (:mod:`rexnet_gluon.deploy.images`).
"""
import os

import numpy as np

from .errors import UsageError
from .images import ImageLoadError, load_image, load_images

__all__ = ['predict', 'class_names', 'format_predictions', 'add_arguments', 'run', 'load_model', 'model_preprocess']


def class_names(net, num_classes):
    """Names for the classes: ``net.classes_long``, else ``net.classes``, else 'class N'."""
    for attr in ('classes_long', 'classes'):
        names = getattr(net, attr, None)
        if names is not None and len(names) == num_classes:
            return list(names)
    return ['class %d' % i for i in range(num_classes)]


def _net_context(net):
    import mxnet as mx
    for p in net.collect_params().values():
        try:
            return p.list_ctx()[0]
        except RuntimeError:   # not initialised
            continue
    return mx.cpu()


def _as_batch(net, images):
    import mxnet as mx
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError('predict() needs at least one image')
        parts = []
        for item in images:
            if isinstance(item, (str, os.PathLike)):
                preprocess = getattr(net, 'preprocess', None)
                if preprocess is None:
                    raise ValueError('the network has no .preprocess; pass preprocessed arrays, or build it '
                                     'with rexnet_gluon.get_model()')
                item = load_image(os.fspath(item), preprocess, as_numpy=True)
            item = item.asnumpy() if isinstance(item, mx.nd.NDArray) else np.asarray(item, dtype=np.float32)
            parts.append(item[None] if item.ndim == 3 else item)
        images = np.concatenate(parts, axis=0)
    ctx = _net_context(net)
    if isinstance(images, mx.nd.NDArray):
        images = images.as_in_context(ctx).astype('float32', copy=False)
        if images.ndim == 3:
            images = images.expand_dims(0)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError('images must be (N, 3, H, W) or (3, H, W); got shape %s' % (images.shape,))
        return images
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError('images must be (N, 3, H, W) or (3, H, W); got shape %s' % (images.shape,))
    return mx.nd.array(images, ctx=ctx, dtype='float32')


def predict(net, images, topk=5):
    """Top-k predictions per image: a list (one per image) of ``[(class_index, name, probability)]``.

    ``images``: an (N, 3, H, W) or (3, H, W) NDArray/numpy array already preprocessed, a list of those,
    or image paths (preprocessed with ``net.preprocess``). Probabilities are the softmax of the logits.
    """
    import mxnet as mx
    if not isinstance(topk, int) or topk < 1:
        raise ValueError('topk must be a positive integer, got %r' % (topk,))
    logits = net(_as_batch(net, images))
    probs = mx.nd.softmax(logits.astype('float32'), axis=-1).asnumpy()
    names = class_names(net, probs.shape[1])
    k = min(topk, probs.shape[1])
    out = []
    for row in probs:
        order = np.argsort(-row, kind='stable')[:k]
        out.append([(int(i), names[i], float(row[i])) for i in order])
    return out


def format_predictions(path, preds):
    """A small table under the file name: rank, probability (%), class index, class name."""
    lines = [str(path), '  %4s  %8s  %5s  %s' % ('rank', 'prob', 'index', 'class')]
    for rank, (index, name, prob) in enumerate(preds, 1):
        lines.append('  %4d  %7.2f%%  %5d  %s' % (rank, 100.0 * prob, index, name))
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------
# Command line


def add_arguments(p):
    """Arguments of ``python -m rexnet_gluon predict``."""
    p.add_argument('images', nargs='+', metavar='IMAGE', help='image files (JPEG, PNG, ... anything Pillow reads)')
    p.add_argument('--model', required=True, metavar='NAME',
                   help='zoo name, e.g. rexnet_1.0x, rexnet_lite_1.0x, rexnetr_2.0x, or an alias: rexnet, timm\'s '
                        'rexnet_100, the official file stem rexnetv1_1.0, ... (any case)')
    weights = p.add_mutually_exclusive_group()
    weights.add_argument('--pretrained', action='store_true',
                         help='the published weights, fetched and converted once, then cached (the default)')
    weights.add_argument('--params', metavar='FILE',
                         help='local weights instead: a converted Gluon .params, or a PyTorch .pth / .safetensors '
                              'checkpoint (converted on the fly)')
    p.add_argument('--topk', type=int, default=5, metavar='K', help='how many classes to show per image (default 5)')
    p.add_argument('--gpu', type=int, metavar='N', help='run on GPU N (default: CPU)')
    return p


HANDLED_ERRORS = (ImageLoadError,)   # also printed as ``error: ...`` with exit status 2


def _context(gpu):
    import mxnet as mx
    if gpu is None:
        return mx.cpu()
    if gpu < 0:
        raise UsageError('--gpu must be >= 0')
    n = mx.context.num_gpus()
    if gpu >= n:
        raise UsageError('--gpu %d: MXNet sees %d GPU%s on this machine (is this a CUDA build of MXNet?)'
                         % (gpu, n, '' if n == 1 else 's'))
    return mx.gpu(gpu)


def load_model(name, params=None, ctx=None):
    """The zoo net with published (``params=None``) or local weights (any class count: a fine-tuned head loads
    as it is); errors become UsageError."""
    from ..zoo import checkpoint_classes, get_model
    if params is not None and not os.path.isfile(params):
        raise UsageError('--params %s: no such file' % params)
    try:
        classes = checkpoint_classes(params, name) if params is not None else 1000
        return get_model(name, pretrained=params if params is not None else True, ctx=ctx, classes=classes)
    except Exception as err:   # the zoo's errors are written for users: show them without a traceback
        msg = str(err) or type(err).__name__
        if isinstance(err, ImportError):
            msg = 'cannot fetch the published weights (%s); pass --params FILE with a local checkpoint' % msg
        raise UsageError(msg) from None


def model_preprocess(info, params=None):
    """The evaluation preprocessing of zoo model ``info`` with local weights ``params``: a training checkpoint's
    (its JSON: the size and transform its validation used), else the zoo entry's."""
    from ..zoo.weights import checkpoint_meta
    return dict(info.preprocess, **checkpoint_meta(params).get('preprocess', {}))


def check_model_name(name):
    from ..zoo import get_model_info
    try:
        return get_model_info(name)
    except ValueError as err:
        raise UsageError(str(err)) from None


def run(args):
    """Run the ``predict`` subcommand; returns the exit status."""
    if args.topk < 1:
        raise UsageError('--topk must be >= 1')
    info = check_model_name(args.model)
    preprocess = model_preprocess(info, args.params)
    batch = load_images(args.images, preprocess)            # fails fast, before the model is built
    ctx = _context(args.gpu)
    net = load_model(info.name, args.params, ctx)
    net.hybridize()
    results = predict(net, batch, topk=args.topk)
    source = args.params if args.params else 'published weights'
    print('%s (%s), input %dx%d, top-%d of %d classes\n'
          % (info.name, source, preprocess['crop'], preprocess['crop'], len(results[0]), net.num_classes))
    print('\n\n'.join(format_predictions(path, preds) for path, preds in zip(args.images, results)))
    return 0
