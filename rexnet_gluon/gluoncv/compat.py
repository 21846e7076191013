"""The ReXNet names in GluonCV's model zoo.

GluonCV is imported beside torch >= 2 by :mod:`rexnet_gluon.utils.gluoncv_import`. ``import rexnet_gluon``
installs a tiny import hook so that a later plain ``import gluoncv`` gets the same treatment and finds the ReXNet
names in its zoo.

The zoo's canonical names are added to GluonCV's registry (``gluoncv.model_zoo.model_zoo._models``); the aliases
(``rexnet``, timm's ``rexnet_100.nav_in1k``, ``rexnetv1_1.0``, ...) are not stored there, so GluonCV's
``get_model_list()`` grows by the 11 canonical names only. Instead the registry becomes a dict that resolves an
alias on lookup (GluonCV's ``get_model`` does ``name.lower()``, ``name in _models``, ``_models[name]``).
"""
import importlib.abc
import sys

from ..utils.gluoncv_import import import_gluoncv as _import_gluoncv, torch_hidden
from ..zoo.registry import canonical_name

__all__ = ['import_gluoncv', 'register_gluoncv', 'install_import_hook', 'ModelsWithAliases']


def import_gluoncv():
    """``import gluoncv`` that works with torch >= 2 installed, with the ReXNet names registered."""
    gcv = _import_gluoncv()
    register_gluoncv()
    return gcv


class ModelsWithAliases(dict):
    """GluonCV's registry ({name: constructor}) that also finds rexnet_gluon's aliases: ``'rexnet_100' in d`` and
    ``d['rexnet_100']`` give the entry of ``rexnet_1.0x``. Only what is stored is listed (keys(), iteration, len), so
    GluonCV's get_model_list() and its unknown-name message list the canonical names only; GluonCV's own names
    always win (an alias is looked up only for a key that is not stored)."""

    def _alias(self, key):
        if not isinstance(key, str) or dict.__contains__(self, key):
            return None
        try:
            name = canonical_name(key)
        except ValueError:
            return None
        return name if dict.__contains__(self, name) else None

    def __contains__(self, key):
        return dict.__contains__(self, key) or self._alias(key) is not None

    def __missing__(self, key):   # dict.__getitem__ calls it for a key that is not stored
        name = self._alias(key)
        if name is None:
            raise KeyError(key)
        return dict.__getitem__(self, name)

    def get(self, key, default=None):
        return self[key] if key in self else default


def register_gluoncv():
    """Add every rexnet_gluon zoo name to GluonCV's model zoo, and make it find their aliases (idempotent).
    Returns the names added."""
    mz = sys.modules.get('gluoncv.model_zoo.model_zoo')
    if mz is None:
        import_gluoncv()   # registers on the way
        return []
    from .. import zoo
    if not isinstance(mz._models, ModelsWithAliases):
        mz._models = ModelsWithAliases(mz._models)   # get_model() reads the module global at each call
    added = []
    for name in zoo.get_model_list():
        if name not in mz._models:
            mz._models[name] = getattr(zoo, name.replace('.', '_'))   # the zoo's own per-name function
            added.append(name)
    return added


class _GluonCVHook(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Wraps the loading of the top-level ``gluoncv`` package: torch hidden, names registered."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'gluoncv':
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                self._real = spec.loader
                spec.loader = self
                return spec
        return None

    def create_module(self, spec):
        return self._real.create_module(spec)

    def exec_module(self, module):
        with torch_hidden():
            self._real.exec_module(module)
        register_gluoncv()


def install_import_hook():
    if not any(isinstance(f, _GluonCVHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _GluonCVHook())
    if 'gluoncv.model_zoo.model_zoo' in sys.modules:
        register_gluoncv()
