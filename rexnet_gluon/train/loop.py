"""The epoch loop: train an epoch (mixup, label smoothing, distillation, AMP, NaN stop, progress bar and log
lines), validate, save, repeat."""
import math
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd

from . import data as D
from .errors import NonFiniteError, TrainingError
from .metrics import evaluate
from .models import param_fingerprint

__all__ = ['EpochLoop', 'smooth', 'mixup_target']


def _kill_self():
    """--kill-at-step (tests): die as a crash or the OOM killer would, with no cleanup and no chance to save."""
    import os
    import signal
    mx.nd.waitall()
    os.kill(os.getpid(), signal.SIGKILL)


def smooth(label, classes, eta=0.1):
    """Label smoothing: one-hot targets with 1 - eta spread evenly over the classes."""
    return label.one_hot(classes, on_value=1 - eta + eta / classes, off_value=eta / classes)


def mixup_target(label, classes, lam, eta=0.0):
    """Mixup targets: the (smoothed) one-hot labels mixed with the reversed batch's, weights lam and 1 - lam."""
    y1 = label.one_hot(classes, on_value=1 - eta + eta / classes, off_value=eta / classes)
    y2 = label[::-1].one_hot(classes, on_value=1 - eta + eta / classes, off_value=eta / classes)
    return lam * y1 + (1 - lam) * y2


class EpochLoop:
    """The epochs from ``start_epoch`` to --num-epochs of a set-up run: its data plan, learner and outputs."""

    def __init__(self, opt, ctx, runtime, plan, learner, outputs, start_epoch, log):
        self.opt, self.ctx, self.runtime, self.log = opt, ctx, runtime, log
        self.plan, self.learner, self.outputs, self.start_epoch = plan, learner, outputs, start_epoch

    def fit(self):
        """Every epoch: train, validate (--val-interval, the last), add the metrics row, save, rewrite the metrics."""
        opt, log, plan, learner = self.opt, self.log, self.plan, self.learner
        tic = time.time()
        if self.start_epoch >= opt.num_epochs:
            log.info('Nothing to do: epoch %d is past --num-epochs %d', self.start_epoch, opt.num_epochs)
            return
        for epoch in range(self.start_epoch, opt.num_epochs):
            row = self.train_epoch(epoch)
            last = epoch == opt.num_epochs - 1
            if opt.val_interval and ((epoch + 1) % opt.val_interval == 0 or last):
                res = evaluate(learner.net, plan.val_data, self.ctx, opt.dtype, opt.max_val_batches)
                row.update(val_top1=res['top1'], val_top5=res['top5'], val_err_top1=res['err_top1'],
                           val_err_top5=res['err_top5'])
                log.info('[Epoch %d] validation: err-top1=%f err-top5=%f', epoch, res['err_top1'], res['err_top5'])
            self.outputs.metrics.rows.append(row)
            self.outputs.save_epoch(epoch, row, last)
            self.outputs.metrics.write()
            if opt.interrupt_after_epoch == epoch:
                raise KeyboardInterrupt
        log.info('Training time for %d epochs: %f sec.', opt.num_epochs - self.start_epoch, time.time() - tic)
        log.info('Parameter fingerprint: %s (trained parameters; equal on every worker of a synchronous run)',
                 param_fingerprint(learner.net))

    def train_epoch(self, epoch):
        """One epoch of training; returns its metrics row (validation columns empty)."""
        opt, ctx, log, plan, learner = self.opt, self.ctx, self.log, self.plan, self.learner
        mx.random.seed(D.derive_seed(opt.seed, epoch, 5))     # dropout etc.: a function of (seed, epoch)
        mix_rng = np.random.default_rng([opt.seed, epoch, 4])
        eta = 0.1 if opt.label_smoothing else 0.0
        loss_sum = correct = seen = 0.0
        tic = btic = time.time()
        bar = None
        if self.runtime.is_root and not opt.no_progress:
            from tqdm import tqdm
            bar = tqdm(total=plan.batches_per_epoch, desc='Epoch %d/%d' % (epoch, opt.num_epochs), unit='batch',
                       file=sys.stderr, dynamic_ncols=True, mininterval=0.5, leave=True)
        nb = 0
        lr = learner.lr_probe.lr_at(learner.num_update)
        lr_start = lr
        try:
            for i, (data, label) in enumerate(plan.train_data.epoch(epoch)):
                if i >= plan.batches_per_epoch:
                    break
                lr = learner.lr_probe.lr_at(learner.num_update)
                data = data.astype('float32', copy=False)
                label = label.astype('float32', copy=False)
                hard = label
                if opt.mixup:
                    lam = float(mix_rng.beta(opt.mixup_alpha, opt.mixup_alpha))
                    if epoch >= opt.num_epochs - opt.mixup_off_epoch:
                        lam = 1.0
                    data = lam * data + (1 - lam) * data[::-1]
                    target = mixup_target(label, plan.classes, lam, eta)
                elif opt.label_smoothing:
                    target = smooth(label, plan.classes, eta)
                else:
                    target = label
                datas = gluon.utils.split_and_load(data, ctx, even_split=True)
                targets = gluon.utils.split_and_load(target, ctx, even_split=True)
                hards = gluon.utils.split_and_load(hard, ctx, even_split=True)
                soft = None
                if learner.teacher is not None:
                    soft = [nd.softmax(learner.teacher(x.astype(opt.dtype, copy=False)).astype('float32')
                                       / opt.temperature) for x in datas]
                with autograd.record():
                    outs = [learner.net(x.astype(opt.dtype, copy=False)) for x in datas]
                    if soft is not None:
                        losses = [learner.loss_fn(o.astype('float32', copy=False), y.astype('float32', copy=False), p)
                                  for o, y, p in zip(outs, targets, soft)]
                    else:
                        losses = [learner.loss_fn(o, y.astype(opt.dtype, copy=False)) for o, y in zip(outs, targets)]
                    if opt.inject_nan_at_step is not None and learner.num_update == opt.inject_nan_at_step:
                        losses = [l * float('nan') for l in losses]
                    if learner.amp is not None:
                        with learner.amp.scale_loss(losses, learner.trainer) as scaled:
                            autograd.backward(scaled)
                if learner.amp is None:
                    autograd.backward(losses)
                batch_loss = sum(float(l.sum().asscalar()) for l in losses)
                n = data.shape[0]
                if not math.isfinite(batch_loss):
                    raise NonFiniteError('the training loss became %s at epoch %d, batch %d (update %d, lr %g)'
                                         % (batch_loss, epoch, i, learner.num_update, lr))
                learner.trainer.step(learner.step_batch)
                learner.num_update += 1
                if opt.kill_at_step is not None and learner.num_update == opt.kill_at_step:
                    _kill_self()
                correct += sum(float((o.argmax(axis=1).astype('float32') == h).sum().asscalar())
                               for o, h in zip(outs, hards))
                loss_sum += batch_loss
                seen += n
                nb += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str('loss=%.4f acc=%.3f lr=%.4g %.0f img/s' % (
                        loss_sum / seen, correct / seen, lr, seen / max(1e-9, time.time() - tic)), refresh=False)
                if opt.log_interval and (i + 1) % opt.log_interval == 0:
                    log.info('Epoch[%d] Batch [%d]\tSpeed: %f samples/sec\taccuracy=%f\tlr=%f\tloss=%f',
                             epoch, i, n * opt.log_interval / max(1e-9, time.time() - btic), correct / seen, lr,
                             loss_sum / seen)
                    btic = time.time()
        finally:
            if bar is not None:
                bar.close()
        if seen == 0:
            raise TrainingError('epoch %d produced no training batch' % epoch)
        elapsed = time.time() - tic
        speed = seen * self.runtime.num_workers / elapsed
        log.info('[Epoch %d] training: accuracy=%f loss=%f', epoch, correct / seen, loss_sum / seen)
        log.info('[Epoch %d] speed: %d samples/sec\ttime cost: %f', epoch, speed, elapsed)
        return dict(epoch=epoch, lr=lr, lr_start=lr_start, train_loss=loss_sum / seen, train_acc=correct / seen,
                    val_top1=None, val_top5=None, val_err_top1=None, val_err_top5=None, samples_per_sec=speed,
                    epoch_time=elapsed, batches=nb, num_update=learner.num_update)
