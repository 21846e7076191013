"""--recipe rexnet is the schedule that trained the published weights: timm's July-2020 CosineLRScheduler, per epoch.

The reference below is that class's formula written out (timm at commit e2cc4813, timm/scheduler/cosine_lr.py and
scheduler.py, as shared/docs/training-recipe.md records it), not our code: warm-up ``warmup_lr_init + t * (base -
warmup_lr_init) / warmup_t`` for t < warmup_t; else (warmup_prefix=False, t_mul=1) cycle i = t // t_initial,
t_curr = t - i * t_initial, gamma = decay_rate ** i, and with cycle_limit=0 every cycle is
``lr_min * gamma + 0.5 * (base * gamma - lr_min * gamma) * (1 + cos(pi * t_curr / t_initial))``. The lr of epoch t is
that value (``step(epoch + 1)`` after each epoch; epoch 0 runs at ``warmup_lr_init``).
"""
import math
import pickle

import numpy as np
import pytest

from rexnet_gluon.train.data.transforms import AugmentConfig, crop_interpolation
from rexnet_gluon.train.errors import TrainingError
from rexnet_gluon.train.flags import parse_args
from rexnet_gluon.train.schedule import LRProbe, make_schedule

MODEL = ['--model', 'rexnet_1.0x']


def timm2020_lr(t, base=0.5, t_initial=400, lr_min=1e-5, warmup_t=3, warmup_lr_init=1e-4, decay_rate=0.1):
    if t < warmup_t:
        return warmup_lr_init + t * (base - warmup_lr_init) / warmup_t
    i = t // t_initial
    t_curr = t - t_initial * i
    gamma = decay_rate ** i
    lr_min, lr_max = lr_min * gamma, base * gamma
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_curr / t_initial))


@pytest.mark.parametrize('recipe,epochs', [('rexnet-timm2020', 410), ('rexnet', 400)])
@pytest.mark.parametrize('iters_per_epoch', [1, 7])
def test_every_iteration_of_every_epoch_equals_timm_2020(recipe, epochs, iters_per_epoch):
    opt = parse_args(MODEL + ['--recipe', recipe, '--lr', '0.5'])
    assert opt.num_epochs == epochs
    probe = LRProbe(make_schedule(opt, iters_per_epoch))
    ours = np.array([[probe.lr_at(e * iters_per_epoch + j) for j in range(iters_per_epoch)] for e in range(epochs)])
    want = np.array([timm2020_lr(e) for e in range(epochs)])[:, None]
    assert np.abs(ours - want).max() <= 1e-12
    assert ours[0, 0] == 1e-4 and abs(ours[1, 0] - 0.16673333) < 1e-8 and abs(ours[3, 0] - 0.49993061) < 1e-8
    if epochs == 410:
        assert 0.0499 < ours[400, 0] <= 0.05 and ours[409, 0] > 0.0499      # the 2020 cooldown quirk
    else:
        assert abs(ours[399, 0] - 1.77104e-5) < 1e-9       # the last epoch; lr_min would come at epoch 400


def test_recipe_resolves_to_the_published_settings():
    opt = parse_args(MODEL + ['--recipe', 'rexnet'])
    got = {k: getattr(opt, k) for k in ('optimizer', 'momentum', 'wd', 'no_wd', 'lr_mode', 'warmup_epochs',
                                        'warmup_lr', 'min_lr', 'lr_per_epoch', 'decay_from_start', 'num_epochs',
                                        'lr_period', 'label_smoothing', 'dropout', 'randaugment', 'reprob',
                                        'remode', 'train_interpolation', 'lr_scale', 'mixup')}
    assert got == dict(optimizer='nag_torch', momentum=0.9, wd=1e-5, no_wd=True, lr_mode='cosine', warmup_epochs=3,
                       warmup_lr=1e-4, min_lr=1e-5, lr_per_epoch=True, decay_from_start=True, num_epochs=400,
                       lr_period=0, label_smoothing=True, dropout=0.2, randaugment='rand-m9-mstd0.5', reprob=0.2,
                       remode='pixel', train_interpolation='random', lr_scale=(0.5, 512), mixup=False)
    quirk = parse_args(MODEL + ['--recipe', 'rexnet-timm2020'])
    assert (quirk.num_epochs, quirk.lr_period, quirk.cycle_decay) == (410, 400, 0.1)


def test_per_epoch_schedule_survives_pickling_for_dist_servers():
    opt = parse_args(MODEL + ['--recipe', 'rexnet', '--lr', '0.5'])
    sched = make_schedule(opt, 5)
    again = pickle.loads(pickle.dumps(sched))       # what a dist_* server does with the optimizer
    assert [again(t) for t in range(0, 2000, 37)] == [sched(t) for t in range(0, 2000, 37)]


def test_gluoncv_per_iteration_schedule_stays_the_default():
    opt = parse_args(MODEL + ['--lr-mode', 'cosine', '--warmup-epochs', '1', '--num-epochs', '3'])
    assert not opt.lr_per_epoch and opt.train_interpolation == 'bilinear'
    probe = LRProbe(make_schedule(opt, 4))
    lrs = [probe.lr_at(t) for t in range(12)]
    assert len(set(lrs[4:8])) == 4                  # a new lr every iteration
    with pytest.raises(TrainingError, match='--lr-per-epoch'):
        make_schedule(parse_args(MODEL + ['--decay-from-start']), 4)


def test_random_train_interpolation():
    rng = np.random.default_rng(0)
    picks = [crop_interpolation('random', rng) for _ in range(400)]
    assert 150 < sum(picks) < 250                   # bicubic about half the time
    state = np.random.default_rng(1)
    before = state.bit_generator.state
    assert crop_interpolation('bilinear', state) is False and crop_interpolation('bicubic', state) is True
    assert state.bit_generator.state == before      # no draw: a bilinear run's random stream is unchanged
    assert AugmentConfig(interpolation='random').needs_python_pipeline
    assert not AugmentConfig().needs_python_pipeline
    with pytest.raises(ValueError, match='interpolation'):
        AugmentConfig(interpolation='lanczos')
