"""The ReXNet names in GluonCV's model zoo.

GluonCV is imported beside torch >= 2 by :mod:`rexnet_gluon.utils.gluoncv_import`. ``import rexnet_gluon``
installs a tiny import hook so that a later plain ``import gluoncv`` gets the same treatment and finds the ReXNet
names in its zoo.
"""
import importlib.abc
import sys

from ..utils.gluoncv_import import import_gluoncv as _import_gluoncv, torch_hidden

__all__ = ['import_gluoncv', 'register_gluoncv', 'install_import_hook']


def import_gluoncv():
    """``import gluoncv`` that works with torch >= 2 installed, with the ReXNet names registered."""
    gcv = _import_gluoncv()
    register_gluoncv()
    return gcv


def register_gluoncv():
    """Add every rexnet_gluon zoo name to GluonCV's model zoo (idempotent). Returns the names added."""
    mz = sys.modules.get('gluoncv.model_zoo.model_zoo')
    if mz is None:
        import_gluoncv()   # registers on the way
        return []
    from .. import zoo
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
