"""The learning-rate schedule: GluonCV's per-iteration shape (one of MXNet's own scheduler classes), or the lr
changed once per epoch as timm does (``--lr-per-epoch``: the schedule the published ReXNet weights were trained
with, see :func:`epoch_lrs`)."""
import functools
import math

import mxnet as mx
import numpy as np

from .errors import TrainingError
from .flags import LR_MODES

__all__ = ['make_lr_scheduler', 'epoch_lrs', 'per_epoch_scheduler', 'LRProbe', 'make_schedule']


def make_lr_scheduler(mode, base_lr, iters_per_epoch, num_epochs, warmup_epochs=0, warmup_lr=0.0, decay_epochs=(),
                      decay=0.1, power=2, final_lr=0.0):
    """GluonCV's per-iteration schedule (linear warmup, then step/poly/cosine/linear/constant), as one of MXNet's
    own scheduler classes, so that dist_* servers can unpickle the optimizer (they cannot import this package:
    their loop runs inside ``import mxnet``). It maps the 0-based iteration t to the lr; the optimizer must be
    created with ``begin_num_update=-1`` so its first update is t = 0 (MXNet numbers updates from 1).

    Fixed against GluonCV: the warmup starts at ``warmup_lr`` (GluonCV always starts at 0), and the first update
    uses it. Warmup: ``warmup_lr + (lr - warmup_lr) * t / W``. After it, with T = t - W and N = the last
    iteration: cosine ``(1 + cos(pi T / N)) / 2``, poly ``(1 - T / N) ** 2``, linear ``1 - T / N`` (towards
    ``final_lr``), step ``decay ** #(decay epochs reached)`` with the decay epochs counted from the warmup's end.
    """
    if mode not in LR_MODES:
        raise TrainingError('--lr-mode must be one of %s, got %r' % (', '.join(LR_MODES), mode))
    if warmup_lr > base_lr:
        raise TrainingError('--warmup-lr %g is above --lr %g' % (warmup_lr, base_lr))
    sched = mx.lr_scheduler
    ipe = int(iters_per_epoch)
    warm = int(warmup_epochs * ipe)
    total = int(num_epochs * ipe)
    common = dict(warmup_steps=warm, warmup_begin_lr=float(warmup_lr))
    if mode in ('cosine', 'poly', 'linear'):
        last = max(total - 1, warm + 1)       # the lr reaches final_lr at the last iteration
        if mode == 'cosine':
            s = sched.CosineScheduler(last, base_lr=float(base_lr), final_lr=float(final_lr), **common)
        else:
            s = sched.PolyScheduler(last, base_lr=float(base_lr), pwr=power if mode == 'poly' else 1,
                                    final_lr=float(final_lr), **common)
        s(last)   # a fresh scheduler asked past its end would return base_lr: start it at its final value
        return s
    if mode == 'step':
        # MultiFactorScheduler decays when t > step: decay epoch e (after the warmup) at t = W + e*ipe.
        points = sorted(warm + int(e * ipe) - 1 for e in decay_epochs if warm + int(e * ipe) - 1 < total)
        early = [p for p in points if p < 1]
        late = [p for p in points if p >= 1]
        if len(set(points)) != len(points):
            raise TrainingError('--lr-decay-epoch has repeated epochs: %s' % list(decay_epochs))
        base = float(base_lr)
        if early:
            if warm <= 1:
                base *= decay ** len(early)   # decays from t <= 1 (a warmup, if any, is t = 0 at warmup_lr)
            elif len(early) <= warm - 1 and (not late or late[0] > len(early)):
                late = list(range(1, len(early) + 1)) + late   # all passed at t = W; the warmup masks them before
            else:
                raise TrainingError('--lr-decay-epoch %s cannot be scheduled with --warmup-epochs %d'
                                    % (list(decay_epochs), warmup_epochs))
        if late:
            return sched.MultiFactorScheduler(late, factor=float(decay), base_lr=base, **common)
        return sched.FactorScheduler(step=1 << 40, factor=1.0, base_lr=base, **common)
    return sched.FactorScheduler(step=1 << 40, factor=1.0, base_lr=float(base_lr), **common)   # constant


class LRProbe:
    """The lr of iteration t, from a private copy of a scheduler (stateful ones must be asked in order)."""

    def __init__(self, scheduler):
        import copy
        self._s = copy.deepcopy(scheduler)

    def lr_at(self, t):
        return float(self._s(int(t)))


def epoch_lrs(mode, base_lr, num_epochs, warmup_epochs=0, warmup_lr=0.0, decay_epochs=(), decay=0.1, power=2,
              min_lr=0.0, decay_from_start=False, period=None, cycle_decay=0.1):
    """The lr of each epoch 0 .. num_epochs - 1 when it changes once per epoch (timm's ``t_in_epochs``).

    Warm-up: ``warmup_lr + e * (base_lr - warmup_lr) / W`` for e < W. Then, with t = e counted from epoch 0
    (``decay_from_start``: timm's ``warmup_prefix=False``) or from the warm-up's end (GluonCV), over N = ``period``
    epochs (default: to the last epoch): cosine ``min_lr + (base_lr - min_lr)(1 + cos(pi t / N)) / 2``, linear and
    poly ``min_lr + (base_lr - min_lr)(1 - t / N) ** p``, step ``decay ** #(decay epochs reached)``, constant.
    Epochs past the period start a new cycle with base_lr and min_lr scaled by ``cycle_decay`` per cycle: timm's
    2020 ``CosineLRScheduler`` with ``cycle_limit=0``, which ran the 10 cooldown epochs 400-409 at ~0.05.
    """
    offset = 0 if decay_from_start else warmup_epochs
    span = (period or num_epochs) - offset
    out = []
    for e in range(num_epochs):
        if e < warmup_epochs:
            out.append(warmup_lr + e * (base_lr - warmup_lr) / warmup_epochs)
            continue
        cycle, t = divmod(e - offset, span)
        hi, lo = base_lr * cycle_decay ** cycle, min_lr * cycle_decay ** cycle
        if mode == 'cosine':
            lr = lo + (hi - lo) * (1 + math.cos(math.pi * t / span)) / 2
        elif mode in ('poly', 'linear'):
            lr = lo + (hi - lo) * (1 - t / span) ** (power if mode == 'poly' else 1)
        elif mode == 'step':
            lr = base_lr * decay ** sum(e - offset >= d for d in decay_epochs)
        elif mode == 'constant':
            lr = base_lr
        else:
            raise TrainingError('--lr-mode must be one of %s, got %r' % (', '.join(LR_MODES), mode))
        out.append(lr)
    return out


def per_epoch_scheduler(lrs, iters_per_epoch):
    """The lr of iteration t is ``lrs[t // iters_per_epoch]`` (the last one past the end).

    Built as ``functools.partial(np.interp, xp=..., fp=...)`` over two knots per epoch: a callable that dist_*
    servers unpickle with numpy alone (they cannot import this package, see :func:`make_lr_scheduler`), exact at
    every integer t (between the two knots of an epoch the slope is 0)."""
    ipe = int(iters_per_epoch)
    if ipe == 1:
        xp, fp = np.arange(len(lrs), dtype=np.float64), np.asarray(lrs, dtype=np.float64)
    else:
        starts = np.arange(len(lrs), dtype=np.float64) * ipe
        xp = np.stack([starts, starts + ipe - 1], axis=1).reshape(-1)
        fp = np.repeat(np.asarray(lrs, dtype=np.float64), 2)
    return functools.partial(np.interp, xp=xp, fp=fp)


def make_schedule(opt, iters_per_epoch):
    decay_epochs = [e - (0 if opt.decay_from_start else opt.warmup_epochs) for e in opt.lr_decay_epochs]
    if opt.lr_per_epoch:
        lrs = epoch_lrs(opt.lr_mode, opt.lr, opt.num_epochs, opt.warmup_epochs, opt.warmup_lr, decay_epochs,
                        opt.lr_decay, min_lr=opt.min_lr, decay_from_start=opt.decay_from_start,
                        period=opt.lr_period or None, cycle_decay=opt.cycle_decay)
        return per_epoch_scheduler(lrs, iters_per_epoch)
    if opt.decay_from_start or opt.lr_period:
        raise TrainingError('--decay-from-start and --lr-period are options of the per-epoch schedule: add '
                            '--lr-per-epoch')
    return make_lr_scheduler(opt.lr_mode, opt.lr, iters_per_epoch, opt.num_epochs, opt.warmup_epochs, opt.warmup_lr,
                             decay_epochs, opt.lr_decay, final_lr=opt.min_lr)
