"""Model zoo: ``get_model('rexnet_1.0x', pretrained=True)`` in GluonCV's style, and the weights behind it.

- ``registry``: the zoo as data (names, builders, published accuracies, weight sources, preprocessing) and the
  other names users type (``canonical_name``: ``rexnet``, timm's ``rexnet_100``, ``rexnetv1_1.0``, ...).
- ``cache``: the ``$MXNET_HOME/models`` cache of published weights: fetched, converted, verified, repaired.
- ``weights``: local weights files (``pretrained='file'``), class counts, loading arrays into a network.
- ``download``: HTTP downloads with retries, hashes, locks and Google Drive's confirm step.
- ``model_zoo``: ``get_model`` / ``get_rexnet`` and one function per name (``rexnet_1_0x``, ...).
- ``cli``: ``python -m rexnet_gluon models``.

May import: the network, ``convert``, ``utils``.
"""
from .registry import (ALIASES, IMAGENET_MEAN, IMAGENET_STD, MODELS, ModelInfo, canonical_name,  # noqa: F401
                       get_model_info, get_model_list, model_table_markdown)
from .cache import CacheError, models_root, pretrained_file  # noqa: F401
from .weights import checkpoint_classes  # noqa: F401
from .model_zoo import *  # noqa: F401,F403  (get_model, get_rexnet, rexnet_1_0x, ...)
from .model_zoo import __all__ as _zoo_functions

__all__ = ['get_model', 'get_model_list', 'get_model_info', 'canonical_name', 'ALIASES', 'get_rexnet',
           'pretrained_file', 'checkpoint_classes',
           'CacheError', 'models_root', 'ModelInfo', 'MODELS', 'IMAGENET_MEAN', 'IMAGENET_STD', 'model_table_markdown'] + \
    [n for n in _zoo_functions if n not in ('get_model', 'get_rexnet')]
