"""Atomic file writing: every file this project writes appears whole or not at all."""
import contextlib
import hashlib
import os
import tempfile

__all__ = ['atomic_path', 'atomic_write', 'atomic_write_text', 'file_digest']


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix='.tmp'):
    """Yield a temporary path next to ``path``; on success it is renamed to ``path`` with the usual
    permissions (mkstemp makes 0600), on any failure (Ctrl-C included) it is removed."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)   # same folder, so the rename is atomic
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, write):
    """``write(tmp_path)``, then fsync and rename over ``path``: a reader never sees a half-written file."""
    with atomic_path(path) as tmp:
        write(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())


def atomic_write_text(path, text):
    """:func:`atomic_write` of a text."""
    def write(tmp):
        with open(tmp, 'w') as f:
            f.write(text)
    atomic_write(path, write)


def file_digest(path, algorithm='sha1'):
    """The hex digest of a file's content (read in 1 MiB blocks)."""
    h = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()
