"""What a run leaves behind: the output folders, the resolved hyper-parameters (logged, and kept in the metrics
JSON), the per-epoch metrics log and the checkpoints of each epoch."""
import os
import time

from .checkpoints import CHECKPOINT_FORMAT, checkpoint_stem, save_checkpoint, saving_enabled
from .errors import NonFiniteError
from .flags import args_dict
from .metrics import MetricsLog
from .models import nonfinite_param

__all__ = ['Outputs']


class Outputs:
    """Creates the output folders and the :class:`~.metrics.MetricsLog` (only rank 0 writes) and logs the
    hyper-parameters; :meth:`save_epoch` writes an epoch's checkpoints. ``last_checkpoint``: the last .params
    written; ``best_err``: the best validation top-1 error so far."""

    def __init__(self, opt, prefix, runtime, ctx, plan, learner, resume, log):
        self.opt, self.prefix, self.runtime, self.ctx, self.log = opt, prefix, runtime, ctx, log
        self.plan, self.learner = plan, learner
        self.best_err, self.last_checkpoint = resume.best_err, None
        root = self.runtime.is_root
        if saving_enabled(opt) and root:
            os.makedirs(opt.save_dir, exist_ok=True)
        base = opt.metrics_file
        if base is None and opt.save_dir and root:
            base = os.path.join(opt.save_dir, 'metrics')
        if base and (base.endswith('.csv') or base.endswith('.json')):
            base = os.path.splitext(base)[0]
        plot = opt.plot
        if plot == '':
            plot = os.path.join(opt.save_dir or '.', 'training_curves.png')
        for path in (base, plot):
            if path and root:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.hparams = self.resolved_hparams()
        info = dict(title='%s: %s' % (self.prefix, opt.model), model=opt.model, hyperparameters=self.hparams,
                    args=args_dict(opt))
        self.metrics = MetricsLog(base if root else None, plot if root else None, resume.history, info)
        log.info('Resolved hyper-parameters: %s', ', '.join('%s=%s' % kv for kv in self.hparams.items()))

    def resolved_hparams(self):
        """The settings this run really uses (recipe, scaled lr, devices, batches...), for the log and the JSON."""
        opt, rt, plan, learner = self.opt, self.runtime, self.plan, self.learner
        h = dict(model=opt.model, classes=plan.classes, recipe=opt.recipe or 'none',
                 contexts='[%s]' % ','.join(str(c) for c in self.ctx), kvstore=rt.describe(),
                 batch='%d per device x %d devices x %d workers = %d global' % (
                     opt.batch_size, len(self.ctx), rt.num_workers, plan.global_batch),
                 optimizer=opt.optimizer, lr='%g%s' % (opt.lr, learner.lr_note), momentum=opt.momentum, wd=opt.wd,
                 no_wd=bool(opt.no_wd), lr_mode=opt.lr_mode, warmup_epochs=opt.warmup_epochs,
                 warmup_lr=opt.warmup_lr, num_epochs=opt.num_epochs, iters_per_epoch=plan.iters_per_epoch,
                 label_smoothing=0.1 if opt.label_smoothing else 'off',
                 mixup=('alpha %g, off in the last %d epochs' % (opt.mixup_alpha, opt.mixup_off_epoch))
                 if opt.mixup else 'off',
                 distillation=('%s, T=%g, hard_weight=%g' % (opt.teacher, opt.temperature, opt.hard_weight))
                 if learner.distillation else 'off',
                 dropout=opt.dropout if opt.dropout is not None else 'model default',
                 randaugment=opt.randaugment or 'off', reprob=opt.reprob, remode=opt.remode,
                 dtype=opt.dtype, amp=learner.amp_dtype or 'off', mode=opt.mode or 'imperative', seed=opt.seed,
                 input_size=opt.input_size)
        if opt.min_lr:
            h['min_lr'] = opt.min_lr
        if opt.lr_per_epoch:
            h['lr_steps'] = 'per epoch, decay counted from %s%s' % (
                'epoch 0' if opt.decay_from_start else 'the warm-up\'s end',
                ', cycles of %d epochs x %g' % (opt.lr_period, opt.cycle_decay) if opt.lr_period else '')
        if opt.train_interpolation != 'bilinear':
            h['train_interpolation'] = opt.train_interpolation
        if opt.lr_mode == 'step':
            h['lr_decay'] = opt.lr_decay
            h['lr_decay_epochs'] = ','.join(str(e) for e in opt.lr_decay_epochs)
        if learner.model_notes:
            h['model_notes'] = '; '.join(learner.model_notes)
        return h

    def save_epoch(self, epoch, row, last):
        """Rank 0 writes the best (validation improved) and the periodic (--save-frequency, last epoch) checkpoint;
        NaN/inf weights stop the run instead."""
        opt, learner = self.opt, self.learner
        improved = row.get('val_err_top1') is not None and row['val_err_top1'] < self.best_err
        if improved:
            self.best_err = row['val_err_top1']
        periodic = (epoch + 1) % opt.save_frequency == 0 or last if opt.save_frequency else False
        if not (saving_enabled(opt) and self.runtime.is_root and (improved or periodic)):
            return
        bad = nonfinite_param(learner.net, self.ctx[0])
        if bad:
            raise NonFiniteError('parameter %s holds NaN/inf after epoch %d' % (bad, epoch))
        meta = dict(format=CHECKPOINT_FORMAT, prefix=self.prefix, model=self.opt.model, epoch=epoch,
                    next_epoch=epoch + 1, num_update=learner.num_update, seed=opt.seed, metrics=row,
                    history=self.metrics.rows, best_val_err_top1=self.best_err, classes=self.plan.classes,
                    class_names=self.plan.class_names, preprocess=self.plan.aug.eval_preprocess,
                    args=args_dict(opt), time=time.strftime('%Y-%m-%dT%H:%M:%S'))
        if improved:
            stem = checkpoint_stem(opt.save_dir, self.prefix, opt.model, epoch, self.best_err)
            save_checkpoint(learner.net, learner.trainer, stem, dict(meta, kind='best'), learner.save_states)
            self.last_checkpoint = stem + '.params'
        if periodic:
            stem = checkpoint_stem(opt.save_dir, self.prefix, opt.model, epoch)
            save_checkpoint(learner.net, learner.trainer, stem, dict(meta, kind='periodic'), learner.save_states)
            self.last_checkpoint = stem + '.params'
        self.log.info('[Epoch %d] checkpoint %s', epoch, self.last_checkpoint)
