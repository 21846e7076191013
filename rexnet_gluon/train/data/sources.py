"""Where samples come from: MXNet RecordIO files read in pure Python (records from the ``.idx`` or a header scan),
ImageFolder trees, and counting the samples of either."""
import os
import struct

import numpy as np

__all__ = ['IMAGE_EXTS', 'DataError', 'RecordFile', 'FolderSource', 'RecordSource', 'count_rec_samples',
           'count_folder_samples']

# What Gluon's ImageFolderDataset (and so GluonCV's ImageNet dataset) reads.
IMAGE_EXTS = ('.jpg', '.jpeg', '.png')
_REC_MAGIC = 0xced7230a


class DataError(ValueError):
    """A data set that cannot be read as asked (missing folders, empty, corrupt RecordIO, ...)."""


class RecordFile:
    """A read-only MXNet RecordIO file in pure Python: record offsets from the ``.idx`` (or a header scan), reads
    at any offset. Opened lazily per process, so it is safe in forked DataLoader workers."""

    def __init__(self, path, idx_path=None):
        self.path = os.path.expanduser(path)
        if not os.path.isfile(self.path):
            raise DataError('RecordIO file %s does not exist' % self.path)
        idx_path = os.path.expanduser(idx_path) if idx_path else None
        if idx_path and os.path.isfile(idx_path):
            self.offsets = _read_idx(idx_path)
            self.counted_from = idx_path
        else:
            self.offsets = _scan_rec(self.path)
            self.counted_from = self.path
        self._file = None
        self._pid = None

    def __len__(self):
        return len(self.offsets)

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_file'] = None
        return state

    def read(self, i):
        if self._file is None or self._pid != os.getpid():
            self._file = open(self.path, 'rb')
            self._pid = os.getpid()
        f, pos, parts = self._file, self.offsets[i], []
        while True:
            f.seek(pos)
            head = f.read(8)
            if len(head) < 8:
                raise DataError('%s: truncated record at byte %d' % (self.path, pos))
            magic, lrec = struct.unpack('<II', head)
            if magic != _REC_MAGIC:
                raise DataError('%s: no RecordIO record at byte %d (wrong .idx or corrupt file)' % (self.path, pos))
            cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            parts.append(f.read(length))
            pos += 8 + ((length + 3) & ~3)
            if cflag in (0, 3):
                break
        # The writer splits a record where its payload holds the magic number, and drops the magic: put it back.
        return struct.pack('<I', _REC_MAGIC).join(parts)


def _read_idx(path):
    offsets = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                offsets.append(int(line.split('\t')[1]))
    return offsets


def _scan_rec(path):
    """Offsets of the records of a .rec, reading only the 8-byte headers (fast even for ImageNet's 140 GB)."""
    offsets = []
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        pos = 0
        while pos < size:
            f.seek(pos)
            head = f.read(8)
            if len(head) < 8:
                raise DataError('%s is truncated at byte %d' % (path, pos))
            magic, lrec = struct.unpack('<II', head)
            if magic != _REC_MAGIC:
                raise DataError('%s is not an MXNet RecordIO file (bad magic at byte %d)' % (path, pos))
            cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            if cflag in (0, 1):
                offsets.append(pos)
            pos += 8 + ((length + 3) & ~3)
    return offsets


def count_rec_samples(rec, idx=None):
    """(number of records, where it was counted): the .idx lines if the file exists, else a scan of the .rec."""
    if idx and os.path.isfile(os.path.expanduser(idx)):
        return len(_read_idx(os.path.expanduser(idx))), os.path.expanduser(idx)
    return len(_scan_rec(os.path.expanduser(rec))), os.path.expanduser(rec)


class FolderSource:
    """``root/<class>/<image>`` (Gluon ImageFolderDataset's rules: sorted class folders, .jpg/.jpeg/.png)."""

    def __init__(self, root, synsets=None):
        self.root = os.path.expanduser(root)
        if not os.path.isdir(self.root):
            raise DataError('image folder %s does not exist' % self.root)
        found = sorted(d for d in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, d)))
        if synsets is not None and found != list(synsets):
            extra, missing = sorted(set(found) - set(synsets)), sorted(set(synsets) - set(found))
            raise DataError('%s has other class folders than the training set: missing %s, extra %s'
                            % (self.root, missing[:10], extra[:10]))
        self.synsets = found
        self.items = []
        for label, name in enumerate(found):
            folder = os.path.join(self.root, name)
            for fname in sorted(os.listdir(folder)):
                if os.path.splitext(fname)[1].lower() in IMAGE_EXTS:
                    self.items.append((os.path.join(folder, fname), label))
        if not self.items:
            raise DataError('%s holds no images (expected %s/<class>/<image>%s)'
                            % (self.root, self.root, '|'.join(IMAGE_EXTS)))

    def __len__(self):
        return len(self.items)

    @property
    def num_classes(self):
        return len(self.synsets)

    def read(self, i):
        path, label = self.items[i]
        with open(path, 'rb') as f:
            return f.read(), label, path


class RecordSource:
    """Images packed in a .rec (im2rec / ``mx.recordio.pack``): the label is the header's (first) label."""

    def __init__(self, rec, idx=None):
        self.file = RecordFile(rec, idx)
        self.num_classes = None

    def __len__(self):
        return len(self.file)

    def read(self, i):
        from mxnet import recordio
        header, payload = recordio.unpack(self.file.read(i))
        label = header.label
        if not np.isscalar(label):
            label = np.asarray(label).reshape(-1)[0]
        return payload, float(label), '%s record %d' % (self.file.path, i)


def count_folder_samples(root):
    return len(FolderSource(root))
