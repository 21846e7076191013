"""``rexnet_gluon.load_predictor``: a ReXNet with its preprocessing and class names behind the fastest engine that
reproduces it (:mod:`rexnet_gluon.deploy.runtimes`)."""
import os

import numpy as np

from .errors import UsageError
from .images import ImageLoadError, load_image, preprocess_image

__all__ = ['Predictor', 'load_predictor', 'load_model', 'class_names', 'check_context', 'softmax']


def class_names(net, num_classes):
    """Names for the classes: ``net.classes_long``, else ``net.classes``, else 'class N'."""
    for attr in ('classes_long', 'classes'):
        names = getattr(net, attr, None)
        if names is not None and len(names) == num_classes:
            return list(names)
    return ['class %d' % i for i in range(num_classes)]


def softmax(logits):
    """Row-wise softmax in float64, returned as float32 (logits of any size do not overflow)."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def check_context(ctx):
    """``ctx`` (default ``mx.cpu()``), or a UsageError when it names a GPU MXNet does not see (MXNet's own error
    for that, raised later at the first array, reads 'Operator _zeros is not implemented for GPU')."""
    import mxnet as mx
    ctx = ctx or mx.cpu()
    if ctx.device_type == 'gpu':
        n = mx.context.num_gpus()
        if ctx.device_id >= n:
            raise UsageError('%s: MXNet sees %d GPU%s on this machine (is this a CUDA build of MXNet?)'
                             % (ctx, n, '' if n == 1 else 's'))
    return ctx


def load_model(name, params=None, ctx=None):
    """The zoo net with published (``params=None``) or local weights (any class count: a fine-tuned head loads
    as it is, with the class names and preprocessing of its JSON); errors become UsageError."""
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


class Predictor:
    """``predictor(inputs)`` -> class probabilities (N, classes) float32: the softmax of the logits of
    ``runtime``'s engine, ``batch_size`` images per engine call.

    ``inputs``: an image path, a list of paths, a PIL image or a list of them (all read with the model's
    preprocessing, :mod:`rexnet_gluon.deploy.images`), or a preprocessed float32 (N, 3, H, W) / (3, H, W) array.
    Attributes: ``runtime`` (the engine's name), ``engine``, ``preprocess``, ``classes`` (names), ``num_classes``,
    ``choice`` (why this engine: one line per runtime tried), ``notes`` (the engine's own remarks)."""

    def __init__(self, engine, preprocess, classes, batch_size=32, choice=()):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError('batch_size must be a positive integer, got %r' % (batch_size,))
        self.engine = engine
        self.preprocess = dict(preprocess or {})
        self.classes = list(classes)
        self.batch_size = batch_size
        self.choice = list(choice)

    runtime = property(lambda self: self.engine.name)
    num_classes = property(lambda self: len(self.classes))
    notes = property(lambda self: self.engine.notes)

    def load(self, image):
        """One path or PIL image as a (1, 3, H, W) float32 array; :class:`ImageLoadError` naming a bad file."""
        if not self.preprocess:
            raise ValueError('this predictor has no preprocessing (its network had no .preprocess); pass '
                             'preprocessed arrays')
        if isinstance(image, (str, os.PathLike)):
            return load_image(os.fspath(image), self.preprocess, as_numpy=True)
        if hasattr(image, 'getbands'):   # a PIL image
            try:
                return preprocess_image(image, self.preprocess)
            except OSError as err:       # a lazily opened file that fails to decode
                raise ImageLoadError('image: cannot decode the image (%s)' % err) from None
        raise TypeError('not an image path or PIL image: %r' % (type(image).__name__,))

    def batch(self, inputs):
        """``inputs`` (see the class) as one float32 (N, 3, H, W) numpy array."""
        if isinstance(inputs, (str, os.PathLike)) or hasattr(inputs, 'getbands'):
            inputs = [inputs]
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise ValueError('no images given')
            return np.concatenate([self.load(item) for item in inputs], axis=0)
        x = np.asarray(inputs.asnumpy() if hasattr(inputs, 'asnumpy') else inputs, dtype=np.float32)
        x = x[None] if x.ndim == 3 else x
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError('arrays must be (N, 3, H, W) or (3, H, W); got shape %s' % (x.shape,))
        return x

    def logits(self, inputs):
        x = self.batch(inputs)
        return np.concatenate([self.engine(x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)])

    def __call__(self, inputs):
        return softmax(self.logits(inputs))

    def __repr__(self):
        return 'Predictor(runtime=%r, classes=%d, input %s)' % (self.runtime, self.num_classes,
                                                               self.preprocess.get('crop'))


def _network(model, params, ctx):
    """(net, name) of a zoo name/alias with ``params``, or of a built ReXNet."""
    if isinstance(model, str):
        from ..zoo import get_model_info
        try:
            name = get_model_info(model).name
        except ValueError as err:
            raise UsageError(str(err)) from None
        return load_model(name, params, ctx), name
    if params is not None:
        raise UsageError('params is for a zoo name; load the weights into the network you pass instead')
    if getattr(model, 'preprocess', None) is None:
        raise UsageError('the network has no .preprocess (build it with rexnet_gluon.get_model, or set '
                         'net.preprocess = rexnet_gluon.zoo.get_model_info(NAME).preprocess)')
    return model, type(model).__name__


def load_predictor(model, params=None, runtime='auto', ctx=None, batch_size=32):
    """A :class:`Predictor` of ``model`` (a zoo name or alias with the published weights, or local ``params``; or a
    built ReXNet with ``.preprocess``) on the fastest engine that reproduces the network.

    ``runtime``: ``'auto'`` (on a CPU context: the first of openvino, onnxruntime, fast, mxnet that is installed and
    passes its parity check against the plain network, skipped ones logged at INFO with the reason; on a GPU
    context: mxnet), or one of those names (an error if it is missing or fails its check). The check runs the
    network and the engine on 3 generated images; building openvino / onnxruntime costs one ONNX export, a few
    seconds, the first time these weights are seen; the export is kept in ``$MXNET_HOME/models/engines``
    (:mod:`~rexnet_gluon.deploy.engine_cache`; ``REXNET_ENGINE_CACHE=0`` turns that off).
    """
    from .runtimes import RUNTIMES, choose_engine
    if runtime != 'auto' and runtime not in RUNTIMES:
        raise UsageError('unknown runtime %r; choose from auto, %s' % (runtime, ', '.join(RUNTIMES)))
    ctx = check_context(ctx)
    net, _ = _network(model, params, ctx)
    pp = net.preprocess
    engine, choice = choose_engine(runtime, net, int(pp['crop']), pp, ctx)
    return Predictor(engine, pp, class_names(net, net.num_classes), batch_size, choice)
