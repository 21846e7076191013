"""``get_model('rexnet_1.0x', pretrained=True)`` in GluonCV's style, and one function per zoo name."""
import re

from .registry import MODELS, get_model_info
from .cache import DEFAULT_ROOT, pretrained_file
from .weights import load_arrays, local_params

__all__ = ['get_model', 'get_rexnet']


def get_rexnet(name, pretrained=False, ctx=None, root=DEFAULT_ROOT, classes=1000,
               **kwargs):
    """Build ``name`` (GluonCV convention: ``pretrained``, ``ctx`` context or list, ``root``, ``classes``).

    ``pretrained``: False; True (published weights); an 8-hex tag of a cached file; or a local
    .pth/.safetensors/.params path. With ``classes != 1000`` the pretrained body is loaded and a fresh
    classifier is initialised for fine-tuning.
    """
    import mxnet as mx
    info = get_model_info(name)
    ctx = ctx or mx.cpu()
    net = info.build(classes=classes, **kwargs)
    net.preprocess = info.preprocess
    if not pretrained:
        return net
    arrays = None
    if isinstance(pretrained, str) and not re.match(r'^[0-9a-f]{8}$', pretrained):
        params_file, arrays = local_params(info, pretrained)
    else:
        params_file = pretrained_file(info.name, root, pretrained if isinstance(pretrained, str) else None)
    load_arrays(net, params_file, arrays, classes, ctx)
    if classes == 1000:
        attr = _imagenet_attr()
        net.synset, net.classes, net.classes_long = attr.synset, attr.classes, attr.classes_long
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
