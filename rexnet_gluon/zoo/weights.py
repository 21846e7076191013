"""Weights files given by the user (``pretrained='file'``) and the one loader every entry point uses.

Gluon .params load as they are (``save_parameters`` or ``export`` keys), PyTorch files are converted. A checkpoint
loads completely or not at all: a missing, unexpected or misshapen tensor is an error naming it and both shapes.
The only re-initialisation is the explicit one: a new classifier (fine-tuning, or ImageNet's 1000-class head into a
network built with ``classes != 1000``). Training checkpoints carry a JSON beside them (same stem) with the class
names and the evaluation preprocessing; :func:`checkpoint_meta` reads it. The cache of published weights is
:mod:`.cache`.
"""
import json
import os
import re

import numpy as np

from .registry import get_model_info

__all__ = ['local_params', 'read_params', 'checkpoint_classes', 'checkpoint_meta', 'classifier_keys', 'load_arrays']


def local_params(info, path):
    """A local checkpoint given as ``pretrained='file'``: Gluon .params load as they are, PyTorch files convert."""
    if not os.path.isfile(path):
        raise FileNotFoundError('pretrained=%r: no such file. Pass True for the published weights or the path of '
                                'a .pth/.safetensors/.params file.' % path)
    if path.endswith('.params'):
        return path, None
    from ..convert.mapping import convert_checkpoint
    return None, convert_checkpoint(path, model=info.name)[0]


def read_params(path):
    """A Gluon .params file as ``{structural name: numpy array}`` (``arg:``/``aux:`` prefixes of ``export``
    dropped); an unreadable or truncated file is a ValueError that names it."""
    import mxnet as mx
    if not os.path.isfile(path):
        raise FileNotFoundError('%s: no such weights file' % path)
    try:
        loaded = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise ValueError('%s is not a readable MXNet .params file (truncated or another format?): %s'
                         % (path, str(err).strip().splitlines()[0])) from None
    if not isinstance(loaded, dict):
        raise ValueError('%s holds an unnamed list of arrays, not the named parameters of a network' % path)
    return {k.split(':', 1)[-1]: v.asnumpy() for k, v in loaded.items()}


def checkpoint_meta(path):
    """What a training checkpoint's JSON (``STEM.json`` beside ``STEM.params``) says about using it:
    ``class_names`` and ``preprocess`` (only the keys present); {} without a readable JSON."""
    if not path:
        return {}
    sidecar = os.path.splitext(path)[0] + '.json'
    try:
        with open(sidecar) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(meta, dict):
        return {}
    return {k: meta[k] for k in ('class_names', 'preprocess') if meta.get(k)}


def checkpoint_classes(path, name=None):
    """The class count of the classifier in a local checkpoint: Gluon .params (``save_parameters`` or ``export``
    keys), or a PyTorch file of zoo model ``name``. Build with ``classes=checkpoint_classes(...)`` to load a
    fine-tuned or custom-trained head as it is."""
    if path.endswith('.params'):
        shapes = {k: v.shape for k, v in read_params(path).items()}
    else:
        shapes = {k: v.shape for k, v in local_params(get_model_info(name), path)[1].items()}
    keys = classifier_keys(shapes)
    weight = [k for k in keys if k.endswith('.weight')]
    if not weight:
        raise ValueError('%s holds no classifier weights (output.N.weight): it is not a ReXNet checkpoint' % path)
    return int(shapes[weight[0]][0])


def classifier_keys(names):
    """The names of the final classifier's tensors among ``names``: the ``output`` layer with the highest index
    (lite's head has a 1x1 conv at output.0 before its classifier at output.4; GluonCV's ResNets have
    ``output.weight``)."""
    layers = {k.rsplit('.', 1)[0] for k in names if re.match(r'output(\.\d+)?\.weight$', k)}
    if not layers:
        return set()
    last = max(layers, key=lambda layer: int(layer.split('.')[1]) if '.' in layer else -1)
    return {k for k in names if k.rsplit('.', 1)[0] == last}


def load_arrays(net, arrays, ctx, classes=None, new_classifier=False, source='the weights'):
    """Load ``arrays`` ({structural name: array}) into ``net`` on ``ctx``, all of them or none.

    ``new_classifier``: the final classifier keeps its fresh initialisation (fine-tuning). Without it, the
    classifier is re-initialised only for ImageNet's 1000-class head into a network of ``classes != 1000``.
    Returns the names left at their initialisation."""
    import mxnet as mx
    import warnings
    params = net._collect_params_with_prefix()
    head = classifier_keys(params)
    missing = [k for k in params if k not in arrays]
    unexpected = [k for k in arrays if k not in params]
    if missing or unexpected:
        raise ValueError('%s do not fit %s: %s%s%s' % (
            source, type(net).__name__, 'missing %s' % missing[:5] if missing else '',
            '; ' if missing and unexpected else '',
            'tensors the network does not have: %s' % unexpected[:5] if unexpected else '') +
            ('. Is this a checkpoint of another model (V1 vs lite, another width)?'))
    values = {}
    for k, p in params.items():
        if new_classifier and k in head:
            continue
        value = _fitted(k, np.asarray(arrays[k]), tuple(p.shape), classes, k in head)
        if value is not None:
            values[k] = value
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')   # parameters initialised before are kept, then overwritten below
        net.initialize(mx.init.Xavier(), ctx=ctx)
    for k, value in values.items():
        params[k].set_data(mx.nd.array(value, dtype=params[k].dtype))
    return sorted(set(params) - set(values))


def _fitted(key, value, shape, classes, in_classifier):
    """``value`` shaped for the network's parameter; None only for the one implicit-but-asked re-initialisation:
    ImageNet's 1000-class classifier into a network built with ``classes != 1000``. Anything else that does not
    fit is an error naming the tensor and both shapes: a trained head is never dropped."""
    if tuple(value.shape) == shape:
        return value
    if value.ndim < len(shape) and tuple(value.shape) + (1,) * (len(shape) - value.ndim) == shape:
        return value.reshape(shape)   # a Dense classifier (C, F), as older fine-tunes saved it -> the 1x1 conv
    if in_classifier and classes is not None and classes != 1000 and value.shape[:1] == (1000,):
        return None                   # ImageNet's classifier into a new class count: a fresh classifier
    raise ValueError('pretrained %s has shape %s but the network has %s%s' % (
        key, tuple(value.shape), shape, ': build the network with classes=%d to load this head' % value.shape[0]
        if in_classifier and value.ndim >= 1 else ''))
