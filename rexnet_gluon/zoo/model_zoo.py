"""``get_model('rexnet_1.0x', pretrained=True)`` in GluonCV's style, and one function per zoo name."""
import re

from .registry import MODELS, get_model_info
from .cache import DEFAULT_ROOT, pretrained_file
from .weights import checkpoint_meta, load_arrays, local_params, read_params

__all__ = ['get_model', 'get_rexnet', 'pretrained_arrays', 'apply_checkpoint_meta']


def get_rexnet(name, pretrained=False, ctx=None, root=DEFAULT_ROOT, classes=1000,
               **kwargs):
    """Build ``name`` (GluonCV convention: ``pretrained``, ``ctx`` context or list, ``root``, ``classes``).

    ``pretrained``: False; True (published weights); an 8-hex tag of a cached file; or a local
    .pth/.safetensors/.params path. The weights load completely or raise an error naming the tensor that does
    not fit, with one exception asked for by ``classes != 1000``: ImageNet's 1000-class classifier is not loaded
    (a fresh one, for fine-tuning). A training checkpoint's JSON (beside its .params) gives the network its class
    names and evaluation preprocessing.
    """
    import mxnet as mx
    info = get_model_info(name)
    ctx = ctx or mx.cpu()
    net = info.build(classes=classes, **kwargs)
    net.preprocess = info.preprocess
    if not pretrained:
        return net
    arrays, meta, source = pretrained_arrays(info, pretrained, root)
    load_arrays(net, arrays, ctx, classes, source=source)
    if classes == 1000:
        attr = _imagenet_attr()
        net.synset, net.classes, net.classes_long = attr.synset, attr.classes, attr.classes_long
    apply_checkpoint_meta(net, meta)
    return net


def pretrained_arrays(info, pretrained, root=DEFAULT_ROOT):
    """``(arrays, meta, source)`` of ``pretrained`` for zoo model ``info``: True (the published weights), an 8-hex
    tag of a cached file, or a local .params/.pth/.safetensors (with its checkpoint JSON's ``meta``)."""
    if isinstance(pretrained, str) and not re.match(r'^[0-9a-f]{8}$', pretrained):
        params_file, arrays = local_params(info, pretrained)
        if arrays is None:
            arrays = read_params(params_file)
        return arrays, checkpoint_meta(params_file), pretrained
    params_file = pretrained_file(info.name, root, pretrained if isinstance(pretrained, str) else None)
    return read_params(params_file), {}, 'the published weights of %s (%s)' % (info.name, params_file)


def apply_checkpoint_meta(net, meta):
    """A training checkpoint's class names and evaluation preprocessing (its JSON) onto the loaded network; the
    ImageNet long names stay when the checkpoint's names are ImageNet's synsets."""
    names = meta.get('class_names')
    if names and len(names) == net.num_classes and list(names) != list(getattr(net, 'synset', []) or []):
        net.classes, net.classes_long = list(names), None
    if meta.get('preprocess'):
        net.preprocess = dict(net.preprocess, **meta['preprocess'])
    return net


def _imagenet_attr():
    from ..utils.gluoncv_import import import_gluoncv
    import_gluoncv()
    from gluoncv.data.imagenet.classification import ImageNet1kAttr
    return ImageNet1kAttr()


def get_model(name, **kwargs):
    """``rexnet_gluon.get_model('rexnet_1.0x', pretrained=True, ctx=mx.cpu())``; names: get_model_list()."""
    return get_rexnet(name, **kwargs)


def _zoo_function(model_name):
    def build(**kwargs):
        return get_rexnet(model_name, **kwargs)
    build.__name__ = model_name.replace('.', '_')
    build.__doc__ = 'ReXNet %s (see rexnet_gluon.zoo.get_rexnet for the arguments).' % model_name
    return build


# One tiny function per zoo name, GluonCV style: rexnet_gluon.zoo.rexnet_1_0x(pretrained=True).
for _name in MODELS:
    globals()[_name.replace('.', '_')] = _zoo_function(_name)
    __all__.append(_name.replace('.', '_'))
