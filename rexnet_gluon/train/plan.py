"""The data plan of a run: its loaders (RecordIO or ImageFolder, sharded over the workers), the class count, the
samples counted and the batches per epoch and iterations per epoch of the LR schedule."""
import os

from . import data as D
from .errors import TrainingError

__all__ = ['DataPlan']


class DataPlan:
    """The training and validation data of a run, from the options: :meth:`build`, then ``train_data`` (its
    ``epoch(e)`` yields the batches), ``val_data`` (None without validation), ``classes`` and ``class_names``
    (the class folders; None for RecordIO), ``per_worker_batch``,
    ``global_batch``, ``batches_per_epoch``, ``iters_per_epoch``; :meth:`log_summary` logs them; :meth:`close`
    stops the loader workers."""

    def __init__(self, opt, runtime, ctx):
        self.opt, self.runtime, self.ctx = opt, runtime, ctx
        self.train_data = self.val_data = None

    def build(self, log):
        """Count the samples, create the loaders, size the epoch (a loader made before an error is still stopped
        by :meth:`close`)."""
        opt, rt = self.opt, self.runtime
        self.per_worker_batch = opt.batch_size * len(self.ctx)
        self.global_batch = self.per_worker_batch * rt.num_workers
        self.aug = D.AugmentConfig(opt.input_size, opt.crop_ratio, opt.mean, opt.std, opt.min_random_area,
                                   opt.color_jitter, opt.pca_noise, opt.randaugment, opt.reprob, opt.remode,
                                   opt.recount, opt.train_interpolation)
        validate = opt.val_interval > 0
        parts = dict(num_parts=rt.num_workers, part_index=rt.rank)
        try:
            if opt.use_rec:
                for path, flag in ((opt.rec_train, '--rec-train'), (opt.rec_val, '--rec-val')):
                    if (flag == '--rec-train' or validate) and not os.path.isfile(path):
                        raise TrainingError('%s %s does not exist (default: {data-dir}/rec/%s)'
                                            % (flag, path, os.path.basename(path)))
                counted, where = D.count_rec_samples(opt.rec_train, opt.rec_train_idx)
                classes, self.class_names = opt.classes or 1000, None   # a .rec holds label numbers only
                if self.aug.needs_python_pipeline:
                    self.train_data = D.TrainLoader(D.RecordSource(opt.rec_train, opt.rec_train_idx), self.aug,
                                                    self.per_worker_batch, opt.seed, opt.num_workers, **parts)
                else:
                    self.train_data = D.RecordIterTrainLoader(opt.rec_train, opt.rec_train_idx, self.aug,
                                                              self.per_worker_batch, opt.seed, opt.num_workers,
                                                              num_samples=counted, **parts)
                if validate:
                    self.val_data = D.RecordIterValLoader(opt.rec_val, opt.rec_val_idx, self.aug,
                                                          self.per_worker_batch, opt.num_workers)
            else:
                train_dir, val_dir = os.path.join(opt.data_dir, 'train'), os.path.join(opt.data_dir, 'val')
                if not os.path.isdir(train_dir):
                    raise TrainingError('--data-dir %s has no train/ folder. Expected the ImageFolder layout '
                                        '{data-dir}/train/<class>/<image>.jpg and {data-dir}/val/<class>/..., or '
                                        'RecordIO files with --use-rec.' % opt.data_dir)
                if validate and not os.path.isdir(val_dir):
                    raise TrainingError('--data-dir %s has no val/ folder (or pass --val-interval 0 to train '
                                        'without validation)' % opt.data_dir)
                source = D.FolderSource(train_dir)
                counted, where = len(source), train_dir
                classes, self.class_names = opt.classes or source.num_classes, list(source.synsets)
                if classes < source.num_classes:
                    raise TrainingError('--classes %d but %s has %d class folders'
                                        % (classes, train_dir, source.num_classes))
                self.train_data = D.TrainLoader(source, self.aug, self.per_worker_batch, opt.seed, opt.num_workers,
                                                **parts)
                if validate:
                    self.val_data = D.ValLoader(D.FolderSource(val_dir, source.synsets), self.aug,
                                                self.per_worker_batch, opt.num_workers)
        except D.DataError as err:
            raise TrainingError(str(err)) from err
        self.classes = classes
        self.counted_samples, self.counted_where = counted, where
        if opt.num_training_samples:
            if opt.num_training_samples != counted:
                log.warning('--num-training-samples %d overrides the %d samples counted in %s (LR schedule only)',
                            opt.num_training_samples, counted, where)
            self.num_samples = opt.num_training_samples
            iters = (self.num_samples // rt.num_workers) // self.per_worker_batch
        else:
            self.num_samples = counted
            iters = len(self.train_data)
        self.batches_per_epoch = len(self.train_data)
        if opt.max_batches_per_epoch:
            iters = min(iters, opt.max_batches_per_epoch)
            self.batches_per_epoch = min(self.batches_per_epoch, opt.max_batches_per_epoch)
        if iters < 1:
            raise TrainingError('%d training samples make no full batch of %d per worker'
                                % (self.num_samples, self.per_worker_batch))
        self.iters_per_epoch = iters

    def log_summary(self, log):
        """The 'Data: ...' log line."""
        opt = self.opt
        log.info('Data: %s, %d training samples (counted in %s)%s, %d per worker, %d batches/epoch, %d iterations/'
                 'epoch in the LR schedule; augmentation %s', self.train_data.kind, self.counted_samples,
                 self.counted_where, '' if not opt.num_training_samples else
                 ', --num-training-samples %d' % opt.num_training_samples,
                 self.counted_samples // self.runtime.num_workers,
                 self.batches_per_epoch, self.iters_per_epoch, self.aug.describe())

    def close(self):
        """Stop the DataLoader worker processes."""
        for loader in (self.train_data, self.val_data):
            inner = getattr(loader, 'loader', None)
            if inner is not None and getattr(inner, '_worker_pool', None) is not None:
                inner._worker_pool.terminate()
                inner._worker_pool = None
