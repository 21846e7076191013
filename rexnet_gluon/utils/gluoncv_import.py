"""Import GluonCV beside torch >= 2.

GluonCV 0.10.x raises RuntimeError on import when torch >= 2 is installed (its check only catches ImportError).
We import it with torch hidden, so GluonCV sees "no PyTorch" and loads its MXNet side, then put torch back: a
process can use both. Registering the ReXNet names is :mod:`rexnet_gluon.gluoncv`'s job, not this module's.
"""
import contextlib
import importlib
import sys

__all__ = ['import_gluoncv', 'torch_hidden']


@contextlib.contextmanager
def torch_hidden():
    saved = {k: v for k, v in sys.modules.items() if k == 'torch' or k.startswith('torch.')}
    sys.modules['torch'] = None    # `import torch` now raises ImportError, which GluonCV tolerates
    try:
        yield
    finally:
        del sys.modules['torch']
        sys.modules.update(saved)


def import_gluoncv():
    """``import gluoncv`` that works with torch >= 2 installed (the module, already imported or not)."""
    gcv = sys.modules.get('gluoncv')
    if gcv is None:
        with torch_hidden():
            gcv = importlib.import_module('gluoncv')
    return gcv
