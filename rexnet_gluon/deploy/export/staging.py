"""What an export reports (ExportReport, ExportError), the files a format writes, and how they are written: a
hidden staging folder published by rename, and MXNet's native log held back unless something fails."""
import contextlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import List

__all__ = ['ExportError', 'ExportReport', 'output_files', 'Staging', 'native_log_captured', ]


class ExportError(RuntimeError):
    """An export that could not be produced (not a failed check: those are in the report)."""


@dataclass
class ExportReport:
    """What an export wrote and measured. ``ok`` is False when any check failed."""
    format: str
    prefix: str
    files: List[str] = field(default_factory=list)       # published paths (empty if nothing was published)
    figures: dict = field(default_factory=dict)          # measured numbers, machine-readable
    lines: List[str] = field(default_factory=list)       # human-readable measurements
    checks: List[tuple] = field(default_factory=list)    # (description, passed)
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self):
        return all(passed for _, passed in self.checks)

    def check(self, description, passed):
        self.checks.append((description, bool(passed)))
        return bool(passed)

    def summary(self):
        out = ['[%s] %s  (%.1f s)' % (self.format, 'PASS' if self.ok else 'FAIL', self.seconds)]
        if self.files:
            out.append('  wrote     ' + ', '.join('%s (%s)' % (f, _size(f)) for f in self.files))
        else:
            out.append('  wrote     nothing (a check failed; --keep-failed publishes the files anyway)')
        out += ['  ' + line for line in self.lines]
        out += ['  check     %s: %s' % (desc, 'ok' if passed else 'FAILED') for desc, passed in self.checks]
        out += ['  note      ' + note for note in self.notes]
        return '\n'.join(out)


def _size(path):
    n = os.path.getsize(path)
    for unit in ('B', 'KB', 'MB', 'GB'):
        if n < 1024 or unit == 'GB':
            return ('%d %s' if unit == 'B' else '%.1f %s') % (n, unit)
        n /= 1024.0


def output_files(fmt, prefix):
    """The files a format writes for ``prefix``."""
    if fmt == 'onnx':
        return [prefix + '.onnx']
    if fmt in ('openvino', 'openvino-int8'):
        return [prefix + '.xml', prefix + '.bin']
    return [prefix + '-symbol.json', prefix + '-0000.params']


class Staging:
    """A hidden folder beside the output prefix. Files are written there under their final names and moved
    into place by :meth:`publish`; whatever happens, the folder is removed on exit."""

    def __init__(self, prefix):
        self.prefix = os.path.abspath(prefix)
        self.folder, self.base = os.path.split(self.prefix)
        if not self.base:
            raise ExportError('output prefix %r names a folder; give a file prefix such as out/rexnet' % prefix)
        os.makedirs(self.folder, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix='.%s.' % self.base, suffix='.partial', dir=self.folder)
        self.staged_prefix = os.path.join(self.dir, self.base)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def staged(self, final_path):
        return os.path.join(self.dir, os.path.basename(final_path))

    def publish(self, finals):
        """Move staged files to their final paths. Existing files are replaced; if a move fails, the files
        already moved are taken back and the replaced ones restored."""
        backups, done = [], []
        try:
            for final in finals:
                if os.path.exists(final):
                    backup = os.path.join(self.dir, '.old.' + os.path.basename(final))
                    os.replace(final, backup)
                    backups.append((backup, final))
                os.replace(self.staged(final), final)
                done.append(final)
        except BaseException:
            for final in done:
                with contextlib.suppress(OSError):
                    os.remove(final)
            for backup, final in backups:
                with contextlib.suppress(OSError):
                    os.replace(backup, final)
            raise
        return list(finals)


@contextlib.contextmanager
def native_log_captured():
    """Send what MXNet's C++ side writes to stderr (dozens of lines during quantization) to a buffer; it is
    shown only if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    buf = tempfile.TemporaryFile()
    os.dup2(buf.fileno(), 2)
    try:
        yield buf
    except BaseException:
        sys.stderr.flush()
        os.dup2(saved, 2)
        buf.seek(0)
        text = buf.read().decode('utf-8', 'replace')
        if text.strip():
            sys.stderr.write(text[-8000:])
        raise
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        buf.close()
