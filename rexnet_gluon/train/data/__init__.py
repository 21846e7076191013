"""Training and validation data for ImageNet-style classification: RecordIO and ImageFolder.

Two training pipelines, as in GluonCV's ``train_imagenet.py``:

- ``--use-rec``: MXNet's C++ ``ImageRecordIter`` (fast threaded decode; GluonCV's augmentation), sharded with
  ``num_parts``/``part_index``;
- the Python pipeline (:class:`ImageDataset` in a Gluon ``DataLoader``) over an ImageFolder **or** a ``.rec`` file
  (used for RecordIO when RandAugment / random erasing are asked for, which the C++ iterator cannot do).

Everything random is a function of ``(seed, epoch, sample index)``: the epoch's order, every sample's augmentation
(each sample gets its own numpy Generator, so the result does not depend on the number of DataLoader workers or on
which worker runs it), and the shard a worker reads. That is what makes ``--resume`` reproduce an uninterrupted run.

Modules: ``sources`` (RecordIO files, image folders, sample counts, DataError), ``transforms`` (AugmentConfig, the
training and validation transforms), ``augment`` (RandAugment, random erasing), ``loaders`` (data set, epoch order
and shards, the four loaders, derive_seed).

May import: nothing else of rexnet_gluon (numpy, OpenCV, Pillow, mxnet).
"""
from .loaders import (EpochBatchSampler, ImageDataset, RecordIterTrainLoader, RecordIterValLoader, TrainLoader,
                      ValLoader, derive_seed, shard_order)
from .sources import (IMAGE_EXTS, DataError, FolderSource, RecordFile, RecordSource, count_folder_samples,
                      count_rec_samples)
from .transforms import AugmentConfig, TrainTransform, ValTransform

__all__ = ['IMAGE_EXTS', 'RecordFile', 'FolderSource', 'RecordSource', 'count_rec_samples', 'count_folder_samples',
           'TrainTransform', 'ValTransform', 'ImageDataset', 'EpochBatchSampler', 'shard_order', 'derive_seed',
           'TrainLoader', 'RecordIterTrainLoader', 'ValLoader', 'RecordIterValLoader', 'AugmentConfig',
           'DataError']
