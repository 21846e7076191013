"""The learning-rate schedule: GluonCV's per-iteration shape, as one of MXNet's own scheduler classes."""
import mxnet as mx

from .errors import TrainingError
from .flags import LR_MODES

__all__ = ['make_lr_scheduler', 'LRProbe', 'make_schedule']


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


def make_schedule(opt, iters_per_epoch):
    return make_lr_scheduler(opt.lr_mode, opt.lr, iters_per_epoch, opt.num_epochs, opt.warmup_epochs, opt.warmup_lr,
                             [e - opt.warmup_epochs for e in opt.lr_decay_epochs], opt.lr_decay)
