"""The network's ONNX export kept between runs for the ``openvino`` and ``onnxruntime`` engines, so ``predict`` and
``load_predictor`` export a network once, not at every start.

Files: ``$MXNET_HOME/models/engines/{key}-{sha1[:8]}.onnx`` under GluonCV's root rule
(:func:`rexnet_gluon.zoo.models_root`). ``key`` digests everything the file is made from: the network's class and
schedule, its parameters (names, shapes and values, BatchNorm statistics included), the input size, the source of
the network and of the export code, and the mxnet / onnx versions. The second part is the file's own SHA-1: a file
whose content no longer has it, or that its runtime cannot open, is removed and made again. Files are written
under a temporary name and renamed, so a reader never sees half a file; two processes making the same file at once
each publish a whole one. A cache folder that cannot be written costs only the reuse. The engines' parity check
against the network still runs on every load. ``REXNET_ENGINE_CACHE=0`` turns the cache off.
"""
import glob
import hashlib
import logging
import os
import re
import shutil
import tempfile

import numpy as np

from ..utils.fileio import atomic_write, file_digest

__all__ = ['ENGINE_CACHE_ENV', 'engine_folder', 'network_key', 'cached_onnx', ]

log = logging.getLogger(__name__)

ENGINE_CACHE_ENV = 'REXNET_ENGINE_CACHE'
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the sources an export is made from: the network, and the export code
_SOURCES = ('spec.py', 'model.py', 'norm.py', os.path.join('deploy', 'export'))


def engine_folder(root=None):
    """``$MXNET_HOME/models/engines`` (GluonCV's rule), or ``root/engines``."""
    from ..zoo import models_root
    return os.path.join(models_root(root) if root else models_root(), 'engines')


def _code_digest():
    h = hashlib.sha1()
    for src in _SOURCES:
        path = os.path.join(_PACKAGE, src)
        files = sorted(glob.glob(os.path.join(path, '*.py'))) if os.path.isdir(path) else [path]
        for f in files:
            h.update(os.path.relpath(f, _PACKAGE).encode())
            with open(f, 'rb') as fh:
                h.update(fh.read())
    return h.hexdigest()


def network_key(net, size):
    """A 24-hex digest of what the network's ONNX export at ``size`` px is made from (see the module doc)."""
    import mxnet as mx
    import onnx
    h = hashlib.sha1()
    for part in (type(net).__name__, repr(getattr(net, 'spec', None)), int(size), _code_digest(), mx.__version__,
                 onnx.__version__):
        h.update(repr(part).encode() + b'\0')
    for name, param in sorted(net._collect_params_with_prefix().items()):
        value = np.ascontiguousarray(param.list_data()[0].asnumpy())
        h.update(('%s %s %s\0' % (name, value.shape, value.dtype)).encode())
        h.update(value.tobytes())
    return h.hexdigest()[:24]


def _remove(path, why):
    log.warning('engine cache: removing %s (%s); it is made again', path, why)
    try:
        os.remove(path)
    except OSError:   # gone already (another process repaired it), or a read-only cache: made afresh either way
        pass


def _cached(folder, key, open_with):
    """(opened, path) of a good cached file of ``key``, else None; bad ones are removed."""
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), key + '-*.onnx'))):
        m = re.match(re.escape(key) + r'-([0-9a-f]{8})\.onnx$', os.path.basename(path))
        if not m:
            continue
        try:
            if file_digest(path)[:8] != m.group(1):
                _remove(path, "its content no longer has its name's SHA-1")
                continue
            return open_with(path), path
        except Exception as err:   # noqa: BLE001 - unreadable, or its runtime cannot open it: made again
            _remove(path, '%s: %s' % (type(err).__name__, str(err).strip()[-200:]))
    return None


def _publish(staged, folder, key):
    """Copy the staged file into the cache as ``{key}-{sha1[:8]}.onnx`` (temporary name, then rename)."""
    path = os.path.join(folder, '%s-%s.onnx' % (key, file_digest(staged)[:8]))
    atomic_write(path, lambda tmp: shutil.copyfile(staged, tmp))
    return path


def cached_onnx(net, size, open_with, root=None):
    """(``open_with(path)``, path, whether it came from the cache) for the network's ONNX export at ``size`` px:
    the cached file when there is a good one, else a new export (:func:`~.export.onnx_format.staged_onnx`,
    opset fallback included), stored in the cache when the folder can be written. ``path`` is gone after the call
    when the file could not be cached (``open_with`` must load what it needs)."""
    from .export.onnx_format import staged_onnx
    from .export.staging import Staging
    use = os.environ.get(ENGINE_CACHE_ENV, '1') != '0'
    folder, key = (engine_folder(root), network_key(net, size)) if use else (None, None)
    hit = _cached(folder, key, open_with) if use and os.path.isdir(folder) else None
    if hit:
        return hit[0], hit[1], True
    with tempfile.TemporaryDirectory(prefix='rexnet_engine.') as tmp:
        with Staging(os.path.join(tmp, 'model')) as st:
            onx = staged_onnx(net, st, st.staged_prefix + '.onnx', size, open_with=open_with)
            if not use:
                return onx.opened, onx.path, False
            try:
                os.makedirs(folder, exist_ok=True)
                return onx.opened, _publish(onx.path, folder, key), False
            except OSError as err:
                log.warning('engine cache: cannot write %s (%s); the export is not kept', folder, err)
                return onx.opened, onx.path, False
