"""Training and validation data for ImageNet-style classification: RecordIO and ImageFolder.

Two training pipelines, as in GluonCV's ``train_imagenet.py``:

- ``--use-rec``: MXNet's C++ ``ImageRecordIter`` (fast threaded decode; GluonCV's augmentation), sharded with
  ``num_parts``/``part_index``;
- the Python pipeline (:class:`ImageDataset` in a Gluon ``DataLoader``) over an ImageFolder **or** a ``.rec`` file
  (used for RecordIO when RandAugment / random erasing are asked for, which the C++ iterator cannot do).

Everything random is a function of ``(seed, epoch, sample index)``: the epoch's order, every sample's augmentation
(each sample gets its own numpy Generator, so the result does not depend on the number of DataLoader workers or on
which worker runs it), and the shard a worker reads. That is what makes ``--resume`` reproduce an uninterrupted run.
"""
import math
import os
import struct

import numpy as np

__all__ = ['IMAGE_EXTS', 'RecordFile', 'FolderSource', 'RecordSource', 'count_rec_samples', 'count_folder_samples',
           'TrainTransform', 'ValTransform', 'ImageDataset', 'EpochBatchSampler', 'shard_order', 'derive_seed',
           'TrainLoader', 'RecordIterTrainLoader', 'ValLoader', 'RecordIterValLoader', 'AugmentConfig',
           'DataError']

# What Gluon's ImageFolderDataset (and so GluonCV's ImageNet dataset) reads.
IMAGE_EXTS = ('.jpg', '.jpeg', '.png')
# PCA lighting noise of AlexNet / GluonCV (RandomLighting), RGB, 0..255 scale.
_EIGVAL = np.array([55.46, 4.794, 1.148], dtype=np.float32)
_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                    [-0.5808, -0.0045, -0.8140],
                    [-0.5836, -0.6948, 0.4203]], dtype=np.float32)
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_REC_MAGIC = 0xced7230a


class DataError(ValueError):
    """A data set that cannot be read as asked (missing folders, empty, corrupt RecordIO, ...)."""


def derive_seed(*parts):
    """A 31-bit seed from integers (e.g. seed, epoch): stable across processes and runs."""
    return int(np.random.SeedSequence([int(p) & 0xffffffff for p in parts]).generate_state(1)[0] & 0x7fffffff)


# ----------------------------------------------------------------------------------------------------- sources
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


# -------------------------------------------------------------------------------------------------- transforms
class AugmentConfig:
    """What the training transform does (GluonCV's defaults; RandAugment and erasing are the ReXNet recipe's)."""

    def __init__(self, input_size=224, crop_ratio=0.875, mean=(123.68, 116.779, 103.939),
                 std=(58.393, 57.12, 57.375), min_random_area=0.08, color_jitter=0.4, pca_noise=0.1,
                 randaugment=None, reprob=0.0, remode='pixel', recount=1):
        self.input_size = int(input_size)
        self.crop_ratio = float(crop_ratio)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.min_random_area = float(min_random_area)
        self.color_jitter = float(color_jitter)
        self.pca_noise = float(pca_noise)
        self.randaugment = randaugment or None
        self.reprob = float(reprob)
        self.remode = remode
        self.recount = int(recount)

    @property
    def resize(self):
        """Validation: resize the shorter side to this, then center-crop input_size (GluonCV: ceil(in / ratio))."""
        return int(math.ceil(self.input_size / self.crop_ratio))

    @property
    def needs_python_pipeline(self):
        return bool(self.randaugment) or self.reprob > 0

    def describe(self):
        parts = ['RandomResizedCrop(%d, area %.2f-1)' % (self.input_size, self.min_random_area), 'flip']
        if self.randaugment:
            parts.append('RandAugment(%s)' % self.randaugment)
        else:
            if self.color_jitter:
                parts.append('ColorJitter(%.2f)' % self.color_jitter)
            if self.pca_noise:
                parts.append('Lighting(%.2f)' % self.pca_noise)
        parts.append('Normalize')
        if self.reprob > 0:
            parts.append('RandomErasing(%.2f, %s)' % (self.reprob, self.remode))
        return ' -> '.join(parts)


def _decode(raw, where):
    import cv2
    img = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError('cannot decode the image %s' % where)
    return np.ascontiguousarray(img[:, :, ::-1])   # BGR -> RGB


def _resize(img, w, h):
    import cv2
    return cv2.resize(img, (int(w), int(h)), interpolation=cv2.INTER_LINEAR)


def random_resized_crop(img, size, rng, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.)):
    """Inception crop (area and log-aspect uniform, 10 tries, else the center crop), resized to size x size."""
    h, w = img.shape[:2]
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = rng.uniform(scale[0], scale[1]) * area
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x0 = int(rng.integers(0, w - cw + 1))
            y0 = int(rng.integers(0, h - ch + 1))
            return _resize(img[y0:y0 + ch, x0:x0 + cw], size, size)
    # fallback: central crop with the aspect clamped to the range
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return _resize(img[y0:y0 + ch, x0:x0 + cw], size, size)


def _color_jitter(img, strength, rng):
    """Brightness, contrast, saturation (each factor 1 +- U(strength)) in random order, on float RGB 0..255."""
    for op in rng.permutation(3):
        alpha = 1.0 + rng.uniform(-strength, strength)
        if op == 0:
            img = img * alpha
        elif op == 1:
            gray_mean = float((img @ _GRAY).mean())
            img = img * alpha + gray_mean * (1.0 - alpha)
        else:
            gray = (img @ _GRAY)[:, :, None]
            img = img * alpha + gray * (1.0 - alpha)
        img = np.clip(img, 0, 255)
    return img


def _lighting(img, alphastd, rng):
    alpha = rng.normal(0, alphastd, size=3).astype(np.float32)
    rgb = (_EIGVEC * alpha) @ _EIGVAL
    return np.clip(img + rgb, 0, 255)


def _seeded_call(block, x, rng):
    """Run a rexnet_gluon.augment block with the sample's own Generator (its randomness lives in ``_rng``,
    re-seeded when the block finds itself in a new process: we set both, so the draw depends on the sample only)."""
    if hasattr(block, '_rng'):
        block._rng = rng
        block._pid = os.getpid()
    return block(x)


class TrainTransform:
    """GluonCV's training transform (RandomResizedCrop, flip, colour jitter 0.4, PCA lighting 0.1, ToTensor,
    Normalize), with optional RandAugment (on the uint8 crop; it replaces jitter and lighting, as in timm) and
    random erasing (on the normalized tensor). Input: HWC uint8 RGB; output: CHW float32."""

    random = True

    def __init__(self, cfg):
        self.cfg = cfg
        self.mean = np.array(cfg.mean, dtype=np.float32)
        self.std = np.array(cfg.std, dtype=np.float32)
        self.randaugment = self.erasing = None
        if cfg.randaugment:
            from .augment import RandAugment
            self.randaugment = RandAugment.from_string(cfg.randaugment)
        if cfg.reprob > 0:
            from .augment import RandomErasing
            self.erasing = RandomErasing(probability=cfg.reprob, mode=cfg.remode, max_count=cfg.recount)

    def __call__(self, img, rng):
        cfg = self.cfg
        img = random_resized_crop(img, cfg.input_size, rng, scale=(cfg.min_random_area, 1.0))
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = np.ascontiguousarray(img)
        if self.randaugment is not None:
            img = np.asarray(_seeded_call(self.randaugment, img, rng))
        img = img.astype(np.float32)
        if self.randaugment is None:
            if cfg.color_jitter > 0:
                img = _color_jitter(img, cfg.color_jitter, rng)
            if cfg.pca_noise > 0:
                img = _lighting(img, cfg.pca_noise, rng)
        x = ((img - self.mean) / self.std).transpose(2, 0, 1)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.erasing is not None:
            x = np.asarray(_seeded_call(self.erasing, x, rng), dtype=np.float32)
        return x


class ValTransform:
    """Resize the shorter side to ceil(input / crop_ratio), center-crop input, normalize (GluonCV's val)."""

    random = False

    def __init__(self, cfg):
        self.cfg = cfg
        self.mean = np.array(cfg.mean, dtype=np.float32)
        self.std = np.array(cfg.std, dtype=np.float32)

    def __call__(self, img, rng=None):
        size, resize = self.cfg.input_size, self.cfg.resize
        h, w = img.shape[:2]
        if h > w:
            nw, nh = resize, int(resize * h / w)
        else:
            nw, nh = int(resize * w / h), resize
        img = _resize(img, nw, nh)
        y0, x0 = int(round((nh - size) / 2.)), int(round((nw - size) / 2.))
        img = img[y0:y0 + size, x0:x0 + size].astype(np.float32)
        return np.ascontiguousarray(((img - self.mean) / self.std).transpose(2, 0, 1), dtype=np.float32)


# ----------------------------------------------------------------------------------------- dataset and sampler
class ImageDataset:
    """A Gluon Dataset of (CHW float32 image, float32 label). Indexed by ``i`` or ``(i, epoch)``; a random
    transform draws from ``default_rng([seed, epoch, 0, i])``, so each sample's augmentation is reproducible."""

    def __init__(self, source, transform, seed=0):
        self.source = source
        self.transform = transform
        self.seed = int(seed)

    def __len__(self):
        return len(self.source)

    def __getitem__(self, key):
        idx, epoch = key if isinstance(key, tuple) else (key, 0)
        raw, label, where = self.source.read(idx)
        img = _decode(raw, where)
        rng = np.random.default_rng([self.seed, epoch, 0, idx]) if self.transform.random else None
        return self.transform(img, rng), np.float32(label)


def shard_order(length, seed, epoch, shuffle=True, num_parts=1, part_index=0):
    """This worker's sample order for an epoch: one permutation for all workers (from seed and epoch), padded by
    wrapping to a multiple of num_parts, then every num_parts-th sample from part_index (disjoint, equal sizes)."""
    if not 0 <= part_index < num_parts:
        raise ValueError('part_index %d is not in [0, %d)' % (part_index, num_parts))
    order = np.random.default_rng([int(seed), int(epoch), 1]).permutation(length) if shuffle else np.arange(length)
    if num_parts > 1:
        total = int(math.ceil(length / num_parts)) * num_parts
        order = np.concatenate([order, order[:total - length]])[part_index::num_parts]
    return order


class EpochBatchSampler:
    """Batches of ``(index, epoch)`` keys for :class:`ImageDataset`; call ``set_epoch`` before each epoch."""

    def __init__(self, length, batch_size, seed, shuffle=True, num_parts=1, part_index=0, last_batch='discard'):
        self.length, self.batch_size, self.seed = length, int(batch_size), int(seed)
        self.shuffle, self.num_parts, self.part_index = shuffle, int(num_parts), int(part_index)
        self.last_batch = last_batch
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def _shard_len(self):
        return int(math.ceil(self.length / self.num_parts)) if self.num_parts > 1 else self.length

    def __len__(self):
        n = self._shard_len()
        return n // self.batch_size if self.last_batch == 'discard' else int(math.ceil(n / self.batch_size))

    def __iter__(self):
        order = shard_order(self.length, self.seed, self.epoch, self.shuffle, self.num_parts, self.part_index)
        for b in range(len(self)):
            yield [(int(i), self.epoch) for i in order[b * self.batch_size:(b + 1) * self.batch_size]]


def _make_dataloader(dataset, batch_sampler, num_workers):
    from mxnet.gluon.data import DataLoader
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=int(max(0, num_workers)))


class TrainLoader:
    """The Python training pipeline: ``for data, label in loader.epoch(e)`` (NDArrays on the CPU)."""

    kind = 'python'

    def __init__(self, source, cfg, batch_size, seed, num_workers=4, num_parts=1, part_index=0):
        self.source = source
        self.dataset = ImageDataset(source, TrainTransform(cfg), seed)
        self.sampler = EpochBatchSampler(len(source), batch_size, seed, True, num_parts, part_index, 'discard')
        if len(self.sampler) == 0:
            raise DataError('%d training samples (%d per worker) are fewer than one batch of %d'
                            % (len(source), self.sampler._shard_len(), batch_size))
        self.loader = _make_dataloader(self.dataset, self.sampler, num_workers)

    def __len__(self):
        return len(self.sampler)

    def epoch(self, epoch):
        self.sampler.set_epoch(epoch)
        for data, label in self.loader:
            yield data, label


class RecordIterTrainLoader:
    """GluonCV's ``--use-rec`` training iterator (mx.io.ImageRecordIter), created per epoch with seeds derived from
    (seed, epoch) and this worker's part; it stops after the same number of batches on every worker."""

    kind = 'recordio'

    def __init__(self, rec, idx, cfg, batch_size, seed, num_workers=4, num_parts=1, part_index=0, num_samples=None):
        self.rec, self.idx, self.cfg = os.path.expanduser(rec), idx and os.path.expanduser(idx), cfg
        if not os.path.isfile(self.rec):
            raise DataError('--rec-train %s does not exist' % self.rec)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.threads = max(1, int(num_workers))
        self.num_parts, self.part_index = int(num_parts), int(part_index)
        if num_samples is None:
            num_samples = count_rec_samples(self.rec, self.idx)[0]
        self.num_batches = (num_samples // self.num_parts) // self.batch_size
        if self.num_batches == 0:
            raise DataError('%d training records (%d per worker) are fewer than one batch of %d'
                            % (num_samples, num_samples // self.num_parts, batch_size))

    def __len__(self):
        return self.num_batches

    def _iter(self, epoch):
        import mxnet as mx
        cfg = self.cfg
        kwargs = dict(path_imgrec=self.rec, preprocess_threads=self.threads, shuffle=True,
                      batch_size=self.batch_size, data_shape=(3, cfg.input_size, cfg.input_size),
                      mean_r=cfg.mean[0], mean_g=cfg.mean[1], mean_b=cfg.mean[2],
                      std_r=cfg.std[0], std_g=cfg.std[1], std_b=cfg.std[2],
                      rand_mirror=True, random_resized_crop=True, max_aspect_ratio=4. / 3.,
                      min_aspect_ratio=3. / 4., max_random_area=1, min_random_area=cfg.min_random_area,
                      brightness=cfg.color_jitter, saturation=cfg.color_jitter, contrast=cfg.color_jitter,
                      pca_noise=cfg.pca_noise, num_parts=self.num_parts, part_index=self.part_index,
                      seed=derive_seed(self.seed, epoch, 2), seed_aug=derive_seed(self.seed, epoch, 3),
                      verbose=False)
        if self.idx and os.path.isfile(self.idx):
            kwargs['path_imgidx'] = self.idx
        return mx.io.ImageRecordIter(**kwargs)

    def epoch(self, epoch):
        it = self._iter(epoch)
        try:
            for n, batch in enumerate(it):
                if n >= self.num_batches:
                    break
                yield batch.data[0], batch.label[0]
        finally:
            del it


class ValLoader:
    """All validation samples once, in order, in batches (the last one may be smaller)."""

    kind = 'python'

    def __init__(self, source, cfg, batch_size, num_workers=4):
        self.source = source
        self.dataset = ImageDataset(source, ValTransform(cfg))
        self.sampler = EpochBatchSampler(len(source), batch_size, 0, shuffle=False, last_batch='keep')
        self.loader = _make_dataloader(self.dataset, self.sampler, num_workers)

    def __len__(self):
        return len(self.sampler)

    @property
    def num_samples(self):
        return len(self.source)

    def __iter__(self):
        for data, label in self.loader:
            yield data, label


class RecordIterValLoader:
    """GluonCV's ``--use-rec`` validation iterator; padding of the last batch is dropped."""

    kind = 'recordio'

    def __init__(self, rec, idx, cfg, batch_size, num_workers=4):
        self.rec, self.idx, self.cfg = os.path.expanduser(rec), idx and os.path.expanduser(idx), cfg
        if not os.path.isfile(self.rec):
            raise DataError('--rec-val %s does not exist' % self.rec)
        self.batch_size, self.threads = int(batch_size), max(1, int(num_workers))
        self.num_samples = count_rec_samples(self.rec, self.idx)[0]

    def __len__(self):
        return int(math.ceil(self.num_samples / self.batch_size))

    def __iter__(self):
        import mxnet as mx
        cfg = self.cfg
        kwargs = dict(path_imgrec=self.rec, preprocess_threads=self.threads, shuffle=False,
                      batch_size=self.batch_size, resize=cfg.resize, data_shape=(3, cfg.input_size, cfg.input_size),
                      mean_r=cfg.mean[0], mean_g=cfg.mean[1], mean_b=cfg.mean[2],
                      std_r=cfg.std[0], std_g=cfg.std[1], std_b=cfg.std[2], round_batch=True, verbose=False)
        if self.idx and os.path.isfile(self.idx):
            kwargs['path_imgidx'] = self.idx
        it = mx.io.ImageRecordIter(**kwargs)
        left = self.num_samples
        try:
            for batch in it:
                # round_batch=True wraps the last batch around and reports the wrapped count in `pad`
                # (round_batch=False reports pad 0 and leaves garbage there).
                n = min(self.batch_size - (batch.pad or 0), left)
                if n <= 0:
                    break
                data, label = batch.data[0], batch.label[0]
                if n < self.batch_size:
                    data, label = data[:n], label[:n]
                left -= n
                yield data, label
        finally:
            del it
