"""Weights files given by the user (``pretrained='file'``): Gluon .params as they are, PyTorch files converted; the
class count of a checkpoint; loading arrays into a network. The cache of published weights is :mod:`.cache`.
"""
import os
import re

import numpy as np

from .registry import get_model_info

__all__ = ['local_params', 'checkpoint_classes', 'load_arrays']


def local_params(info, path):
    """A local checkpoint given as ``pretrained='file'``: Gluon .params load as they are, PyTorch files convert."""
    if not os.path.isfile(path):
        raise FileNotFoundError('pretrained=%r: no such file. Pass True for the published weights or the path of '
                                'a .pth/.safetensors/.params file.' % path)
    if path.endswith('.params'):
        return path, None
    from ..convert.mapping import convert_checkpoint
    return None, convert_checkpoint(path, model=info.name)[0]


def checkpoint_classes(path, name=None):
    """The class count of the classifier in a local checkpoint: Gluon .params (``save_parameters`` or ``export``
    keys), or a PyTorch file of zoo model ``name``. Build with ``classes=checkpoint_classes(...)`` to load a
    fine-tuned or custom-trained head as it is."""
    import mxnet as mx
    if path.endswith('.params'):
        shapes = {k.split(':', 1)[-1]: v.shape for k, v in mx.nd.load(path).items()}
    else:
        shapes = {k: v.shape for k, v in local_params(get_model_info(name), path)[1].items()}
    # the last output.N.weight: lite's head has a hidden 1x1 conv (output.0) before the classifier (output.4)
    heads = {int(m.group(1)): shape for k, shape in shapes.items()
             for m in [re.match(r'output\.(\d+)\.weight$', k)] if m}
    if not heads:
        raise ValueError('%s holds no classifier weights (output.N.weight): it is not a ReXNet checkpoint' % path)
    return int(heads[max(heads)][0])


def load_arrays(net, params_file, arrays, classes, ctx):
    import mxnet as mx
    if arrays is None:
        arrays = {k: v.asnumpy() for k, v in mx.nd.load(params_file).items()}
    params = net._collect_params_with_prefix()
    missing = [k for k in params if k not in arrays]
    if missing:
        raise ValueError('the pretrained weights lack %s: they are not weights for this network' % missing[:5])
    net.initialize(mx.init.Xavier(), ctx=ctx)
    for k, p in params.items():
        value = _fitted(k, np.asarray(arrays[k]), tuple(p.shape), classes)
        if value is not None:
            p.set_data(mx.nd.array(value, dtype=p.dtype))


def _fitted(key, value, shape, classes):
    """``value`` shaped for the network's parameter; None only for the one explicit re-initialisation: ImageNet's
    1000-class classifier into a network built with ``classes != 1000`` (fine-tuning from the published weights).
    Anything else that does not fit is an error naming the tensor and both shapes: a trained head is never dropped."""
    if tuple(value.shape) == shape:
        return value
    if value.ndim < len(shape) and tuple(value.shape) + (1,) * (len(shape) - value.ndim) == shape:
        return value.reshape(shape)   # a Dense classifier (C, F), as older fine-tunes saved it -> the 1x1 conv
    if key.startswith('output.') and classes != 1000 and value.shape[:1] == (1000,):
        return None                   # a new classifier for fine-tuning keeps its fresh initialisation
    raise ValueError('pretrained %s has shape %s but the network has %s%s' % (
        key, tuple(value.shape), shape, ': build the network with classes=%d to load this head' % value.shape[0]
        if key.startswith('output.') and value.ndim >= 1 else ''))
