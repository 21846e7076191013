"""Atomic file writing: every file this project writes appears whole or not at all."""
import contextlib
import os
import tempfile

__all__ = ['atomic_path']


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
