"""Batches: the image data set, the epoch's sample order and its shard per worker, and the four loaders (Python
pipeline or MXNet's C++ ImageRecordIter, for training and for validation)."""
import math
import os

import numpy as np

from .sources import DataError, count_rec_samples
from .transforms import TrainTransform, ValTransform, decode

__all__ = ['derive_seed', 'ImageDataset', 'shard_order', 'EpochBatchSampler', 'TrainLoader', 'RecordIterTrainLoader',
           'ValLoader', 'RecordIterValLoader']


def derive_seed(*parts):
    """A 31-bit seed from integers (e.g. seed, epoch): stable across processes and runs."""
    return int(np.random.SeedSequence([int(p) & 0xffffffff for p in parts]).generate_state(1)[0] & 0x7fffffff)


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
        img = decode(raw, where)
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
                      std_r=cfg.std[0], std_g=cfg.std[1], std_b=cfg.std[2], round_batch=True, verbose=False,
                      inter_method=2 if cfg.eval_interpolation == 'bicubic' else 1)   # OpenCV's codes
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
