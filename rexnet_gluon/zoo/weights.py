"""Pretrained weights on disk: the ``$MXNET_HOME/models`` cache (``{name}-{sha1[:8]}.params``, GluonCV's
convention), conversion of fetched or local PyTorch checkpoints, and loading a file into a network.

A cached file is trusted only if its content still has its name's hash; a damaged one is removed and fetched again.
"""
import glob
import hashlib
import logging
import os
import re

from .registry import get_model_info

__all__ = ['pretrained_file', 'local_params', 'checkpoint_classes', 'load_arrays', 'DOWNLOAD_RETRIES',
           'DOWNLOAD_BACKOFF']

log = logging.getLogger(__name__)

DOWNLOAD_RETRIES = 5      # per URL
DOWNLOAD_BACKOFF = 1.0    # seconds, doubled after each failed attempt


def _models_root(root):
    # GluonCV's rule: $MXNET_HOME overrides root entirely.
    if os.environ.get('MXNET_HOME'):
        return os.path.join(os.environ['MXNET_HOME'], 'models')
    return os.path.expanduser(root)


def _sha1(path):
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _cached(name, folder, tag=None):
    """A ``{name}-{sha1[:8]}.params`` in folder whose content matches its tag; damaged files are removed."""
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), glob.escape(name) + '-*.params'))):
        m = re.match(re.escape(name) + r'-([0-9a-f]{8})\.params$', os.path.basename(path))
        if not m or (tag and m.group(1) != tag):
            continue
        if _sha1(path).startswith(m.group(1)):
            return path
        log.warning('removing %s: its content no longer matches its hash (damaged or partly written)', path)
        os.remove(path)
    return None


def pretrained_file(name, root=os.path.join('~', '.mxnet', 'models'), tag=None, progress=True):
    """Path of the converted pretrained ``.params`` for ``name``: from the cache, else fetched and converted."""
    from .download import DownloadError, fetch_first, file_lock
    from ..convert.mapping import convert_checkpoint, save_params
    info = get_model_info(name)
    folder = _models_root(root)
    os.makedirs(folder, exist_ok=True)
    hit = _cached(info.name, folder, tag)
    if hit:
        return hit
    if tag:
        raise ValueError('no cached %s-%s.params in %s; pretrained=True fetches the published weights'
                         % (info.name, tag, folder))
    with file_lock(os.path.join(folder, info.name)):
        hit = _cached(info.name, folder)   # another process may have finished while we waited
        if hit:
            return hit
        downloads = os.path.join(folder, 'downloads')
        try:
            source, _ = fetch_first(info.sources, downloads, progress=progress, retries=DOWNLOAD_RETRIES,
                                    backoff=DOWNLOAD_BACKOFF)
        except DownloadError as err:
            raise DownloadError(
                'could not fetch pretrained weights for %s.\n%s\nOffline or behind a firewall? Download one of '
                'those files by hand, then either pass pretrained="/path/to/file" to get_model, or run\n'
                '  python convert/pt2mx.py --checkpoint FILE --output %s/%s.params --model %s'
                % (info.name, err, folder, info.name, info.name)) from None
        arrays = convert_checkpoint(source, model=info.name)[0]   # checks the architecture and finiteness
        # The file name holds the content's hash, known only once written: save (atomically) under a
        # staging name, then rename. A leftover staging file is never read and is overwritten next time.
        staging = os.path.join(folder, '.%s.staging.params' % info.name)
        save_params(arrays, staging)
        final = os.path.join(folder, '%s-%s.params' % (info.name, _sha1(staging)[:8]))
        os.replace(staging, final)
        os.remove(source)   # the converted file is what we keep
        return final


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
        value = arrays[k]
        if tuple(value.shape) != tuple(p.shape):
            if k.startswith('output.') and classes != 1000:
                continue   # a new classifier for fine-tuning keeps its fresh initialisation
            raise ValueError('pretrained %s has shape %s but the network has %s' % (k, value.shape, p.shape))
        p.set_data(mx.nd.array(value, dtype=p.dtype))
