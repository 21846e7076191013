"""The pretrained-weights cache: ``{name}-{sha1[:8]}.params`` under ``$MXNET_HOME/models`` (else ``root``), as
GluonCV keeps its own, filled from the published PyTorch files.

What is verified, and when:
- before a cached file is used: its content still has its name's SHA-1, and it holds every parameter of the model
  with the right shape (a file that fails is removed, under the lock, and fetched again);
- before a file enters the cache: it is read back and compared with what was written (``convert.save_params``), so
  a full disk cannot leave a truncated file that looks complete;
- each download: the SHA-256 published in the file name (timm's releases); a source that publishes none gets the
  SHA-256 of its first good file recorded (``downloads/FILE.sha256``) and checked on later downloads;
- each downloaded file converts (architecture and finite values checked); one that does not is removed and the
  next source is tried. The final error names every source and what went wrong with it.

Everything that inspects, repairs or removes files runs under the model's lock, so processes sharing a cache never
trip over each other; a valid file is used without the lock, so a read-only cache works.
"""
import contextlib
import glob
import logging
import os
import re

from ..utils.fileio import file_digest
from .registry import get_model_info

__all__ = ['pretrained_file', 'models_root', 'CacheError', 'DOWNLOAD_RETRIES', 'DOWNLOAD_BACKOFF']

log = logging.getLogger(__name__)

DOWNLOAD_RETRIES = 5      # per URL
DOWNLOAD_BACKOFF = 1.0    # seconds, doubled after each failed attempt
DEFAULT_ROOT = os.path.join('~', '.mxnet', 'models')


class CacheError(OSError):
    """The cache folder cannot be written (read-only, full): says where, and how to use another folder."""


def models_root(root=DEFAULT_ROOT):
    """GluonCV's rule, exactly: a set ``$MXNET_HOME`` (even empty) replaces ``root`` by ``$MXNET_HOME/models``;
    ``~`` is expanded either way."""
    if 'MXNET_HOME' in os.environ:
        root = os.path.join(os.environ['MXNET_HOME'], 'models')
    return os.path.expanduser(root)


def _candidates(name, folder, tag=None):
    """(path, tag) of every ``{name}-{8 hex}.params`` in folder."""
    found = []
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), glob.escape(name) + '-*.params'))):
        m = re.match(re.escape(name) + r'-([0-9a-f]{8})\.params$', os.path.basename(path))
        if m and (not tag or m.group(1) == tag):
            found.append((path, m.group(1)))
    return found


def _problem(path, sha8, name):
    """Why the cached file cannot be trusted, or None. Read errors (a file removed meanwhile) count as problems."""
    import mxnet as mx
    from ..convert.mapping import param_table, spec_from_name
    try:
        if not file_digest(path).startswith(sha8):
            return 'its content no longer matches its hash'
        shapes = {k: tuple(v.shape) for k, v in mx.nd.load(path).items()}
    except (OSError, mx.base.MXNetError) as err:
        return 'it cannot be read (%s)' % str(err).strip().splitlines()[0]
    want = {p.gluon: tuple(p.shape) for p in param_table(spec_from_name(name))}
    if shapes != want:
        return 'it does not hold the parameters of %s' % name
    return None


def _lookup(name, folder, tag=None, repair=False):
    """A trusted cached file, else None; with ``repair`` (only under the lock) untrusted files are removed."""
    for path, sha8 in _candidates(name, folder, tag):
        why = _problem(path, sha8, name)
        if why is None:
            return path
        if repair:
            log.warning('removing %s: %s (damaged or partly written); fetching it again', path, why)
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
    return None


def _unwritable(folder, err):
    return CacheError('the pretrained-weights cache %s cannot be written (%s). Give a writable folder with '
                      'get_model(..., root=DIR) or the environment variable MXNET_HOME (weights go to '
                      '$MXNET_HOME/models), or free space there.' % (folder, err))


def pretrained_file(name, root=DEFAULT_ROOT, tag=None, progress=True):
    """Path of the converted pretrained ``.params`` for ``name``: from the cache, else fetched and converted."""
    from .download import file_lock
    info = get_model_info(name)
    folder = models_root(root)
    hit = _lookup(info.name, folder, tag)        # no lock needed to read a good file (a read-only cache works)
    if hit:
        return hit
    if tag:
        raise ValueError('no cached %s-%s.params in %s; pretrained=True fetches the published weights'
                         % (info.name, tag, folder))
    lock = contextlib.ExitStack()
    try:
        os.makedirs(folder, exist_ok=True)
        lock.enter_context(file_lock(os.path.join(folder, info.name)))
    except OSError as err:   # a read-only folder: the lock file cannot be made
        lock.close()
        raise _unwritable(folder, err) from None
    with lock:
        hit = _lookup(info.name, folder, repair=True)   # another process may have finished while we waited
        if hit:
            return hit
        downloads = os.path.join(folder, 'downloads')
        _remove_stale_parts(downloads, info)
        return _fetch_and_cache(info, folder, downloads, progress)


def _remove_stale_parts(downloads, info):
    """Partial downloads of this model's files left by a killed process: no download of them runs while we hold
    the model's lock, so every one is stale."""
    for cand in info.sources:
        for part in glob.glob(os.path.join(glob.escape(downloads), '.%s.*.part' % glob.escape(cand['filename']))):
            log.warning('removing %s: a download that was interrupted', part)
            try:
                os.remove(part)
            except FileNotFoundError:
                pass


def _fetch_and_cache(info, folder, downloads, progress):
    from .download import DownloadError
    failures = []
    for cand in info.sources:
        try:
            return _from_source(info, cand, folder, downloads, progress)
        except (DownloadError, _Unusable) as err:
            failures.append('%s -> %s' % (cand['url'], ' '.join(str(err).split())))
    raise DownloadError(
        'could not fetch pretrained weights for %s; every source failed:\n%s\nOffline or behind a firewall? '
        'Download one of those files by hand, then either pass pretrained="/path/to/file" to get_model, or run\n'
        '  python convert/pt2mx.py --checkpoint FILE --output %s/%s.params --model %s'
        % (info.name, '\n'.join(failures), folder, info.name, info.name))


class _Unusable(Exception):
    """A downloaded file that is not a checkpoint of this model (or a recorded hash that no longer holds)."""


def _from_source(info, cand, folder, downloads, progress):
    from ..convert.checkpoint_io import CheckpointError
    from ..convert.mapping import ConversionError, convert_checkpoint
    from .download import fetch_one, sha256_file
    record = os.path.join(downloads, cand['filename'] + '.sha256')
    want = cand.get('sha256') or _read_record(record)
    try:
        path = fetch_one(dict(cand, sha256=want), downloads, progress, DOWNLOAD_RETRIES, DOWNLOAD_BACKOFF)
    except OSError as err:   # the download could not be written (disk full, read-only)
        raise _unwritable(downloads, err) from None
    try:
        arrays = convert_checkpoint(path, model=info.name)[0]   # checks the architecture and finiteness
    except (ConversionError, CheckpointError) as err:
        os.remove(path)
        raise _Unusable('downloaded, but not a usable %s checkpoint, so removed (%s)' % (info.name, err)) from None
    if not cand.get('sha256'):
        _write_record(record, sha256_file(path))
    final = _store(arrays, info, folder)
    os.remove(path)   # the converted file is what we keep
    return final


def _store(arrays, info, folder):
    """Save under a staging name (verified on write), then rename to the name that carries its SHA-1."""
    from ..convert.mapping import save_params
    staging = os.path.join(folder, '.%s.staging.params' % info.name)
    try:
        save_params(arrays, staging)
    except OSError as err:
        raise _unwritable(folder, err) from None
    final = os.path.join(folder, '%s-%s.params' % (info.name, file_digest(staging)[:8]))
    os.replace(staging, final)
    return final


def _read_record(path):
    try:
        with open(path) as f:
            value = f.read().strip()
    except OSError:
        return None
    return value if re.fullmatch(r'[0-9a-f]{64}', value) else None


def _write_record(path, digest):
    from ..utils.fileio import atomic_write_text
    atomic_write_text(path, digest + '\n')
