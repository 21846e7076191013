"""``nag_torch`` (rexnet_gluon/train/optimizer.py) is PyTorch's ``SGD(momentum, nesterov=True, weight_decay)``, the
optimizer of the published ReXNet weights, step for step; MXNet's ``nag`` is not (it adds the weight decay to the
momentum from the already updated weight), which is why nag_torch exists. Every test here compares with
torch.optim.SGD, so each fails if nag_torch falls back to nag's rule. The dist_sync run (a server unpickles it) is
in test_train.py.
"""
import copy
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from rexnet_gluon.train.flags import parse_args
from rexnet_gluon.train.optimizer import NAME, NAGTorch

from helpers import REPO

torch = pytest.importorskip('torch')

SHAPES = [(3,), (4, 5), (2, 3, 2)]
LR, MOMENTUM, WD = 0.1, 0.9, 0.01


def rel(a, b):
    """Largest |a - b| over the largest |b|, over lists of arrays."""
    return max(float(np.abs(np.asarray(x, np.float64) - y).max() / np.abs(y).max()) for x, y in zip(a, b))


def draws(seed, steps=20, scale=3.0):
    rng = np.random.RandomState(seed)
    return [rng.randn(*s) for s in SHAPES], [[scale * rng.randn(*s) for s in SHAPES] for _ in range(steps)]


def torch_sgd(w0, grads, lr_at=lambda t: LR, momentum=MOMENTUM, wd=WD, lr_mult=None, wd_mult=None, rescale=1.0,
              clip=None, dtype=None):
    """torch.optim.SGD(nesterov=True) from w0 through grads: tensor i has lr lr_at(t) * lr_mult[i] at step t (from
    1) and weight decay wd * wd_mult[i]; its gradient is clamp(rescale * grad, -clip, clip)."""
    dtype = dtype or torch.float64
    ps = [torch.tensor(w, dtype=dtype, requires_grad=True) for w in w0]
    lr_mult, wd_mult = lr_mult or {}, wd_mult or {}
    groups = [dict(params=[p], mult=lr_mult.get(i, 1.0), weight_decay=wd * wd_mult.get(i, 1.0))
              for i, p in enumerate(ps)]
    sgd = torch.optim.SGD(groups, lr=LR, momentum=momentum, nesterov=momentum > 0)
    for t, gs in enumerate(grads, 1):
        for group in sgd.param_groups:
            group['lr'] = lr_at(t) * group['mult']
        for p, g in zip(ps, gs):
            g = torch.tensor(g, dtype=dtype) * rescale
            p.grad = g.clamp(-clip, clip) if clip else g
        sgd.step()
    return [p.detach().numpy() for p in ps]


def mx_steps(name, w0, grads, dtype='float64', lr_mult=None, wd_mult=None, **kwargs):
    """MXNet's optimizer ``name`` through its kvstore/Trainer updater: (final weights, the updater)."""
    opt = mx.optimizer.create(name, **kwargs)
    opt.set_lr_mult(lr_mult or {})
    opt.set_wd_mult(wd_mult or {})
    updater = mx.optimizer.get_updater(opt)
    ws = [mx.nd.array(w, dtype=dtype) for w in w0]
    for gs in grads:
        for i, (w, g) in enumerate(zip(ws, gs)):
            updater(i, mx.nd.array(g, dtype=dtype), w)
    return [w.asnumpy() for w in ws], updater


CASES = {
    'plain': {},
    'lr-wd-mult': dict(lr_mult={0: 0.1, 2: 3.0}, wd_mult={1: 0.0}),     # --no-wd is wd_mult 0
    'clip': dict(clip_gradient=2.0),
    'rescale': dict(rescale_grad=1 / 8.),
    'scheduler': dict(lr_scheduler=mx.lr_scheduler.FactorScheduler(step=5, factor=0.5, base_lr=LR)),
    'no-momentum': dict(momentum=0.0),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_float64_equals_torch_and_nag_does_not(case):
    kw = copy.deepcopy(CASES[case])
    w0, grads = draws(1)
    sched = kw.get('lr_scheduler')
    lr_at = (lambda t, s=copy.deepcopy(sched): s(t)) if sched else (lambda t: LR)
    ref = torch_sgd(w0, grads, lr_at, momentum=kw.get('momentum', MOMENTUM), lr_mult=kw.get('lr_mult'),
                    wd_mult=kw.get('wd_mult'), rescale=kw.get('rescale_grad', 1.0), clip=kw.get('clip_gradient'))
    args = dict(dict(momentum=MOMENTUM, wd=WD), **kw)
    if not sched:
        args['learning_rate'] = LR
    ours, updater = mx_steps(NAME, w0, grads, **copy.deepcopy(args))
    assert all(w.dtype == np.float64 for w in ours)
    assert rel(ours, ref) < 1e-12, 'nag_torch vs torch.optim.SGD: %.3g relative' % rel(ours, ref)   # 1e-16..3e-16
    assert updater.optimizer.num_update == 20
    if args['momentum']:
        nag = mx_steps('nag', w0, grads, **copy.deepcopy(args))[0]
        assert rel(nag, ref) > 1e-7, 'MXNet nag equals torch here (%.3g): nag_torch has no reason to exist' % rel(
            nag, ref)      # measured 3.4e-3 .. 1e-2 at a constant lr; 0.6 with the lr halved every 5 steps


# ------------------------------------------------------------------------------- through gluon.Trainer, a small net
def _nets(seed, ctx):
    """The same float64 two-layer net in MXNet (on ctx) and in PyTorch; biases without weight decay (--no-wd), the
    first weight at lr_mult 0.5."""
    rng = np.random.RandomState(seed)
    arrays = [rng.randn(6, 4) * 0.5, rng.randn(6) * 0.1, rng.randn(3, 6) * 0.5, rng.randn(3) * 0.1]
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(6, in_units=4, activation='tanh'), gluon.nn.Dense(3, in_units=6))
    net.initialize(ctx=ctx)
    net.cast('float64')
    params = [net[0].weight, net[0].bias, net[1].weight, net[1].bias]
    for p, a in zip(params, arrays):
        p.set_data(mx.nd.array(a, dtype='float64'))
    net[0].bias.wd_mult = net[1].bias.wd_mult = 0.0
    net[0].weight.lr_mult = 0.5
    ref = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
    with torch.no_grad():
        for p, a in zip(ref.parameters(), arrays):
            p.copy_(torch.tensor(a))
    groups = [dict(params=[p], lr=LR * (0.5 if i == 0 else 1.0), weight_decay=0.0 if i % 2 else WD)
              for i, p in enumerate(ref.parameters())]
    return net, params, ref, torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM, nesterov=True)


def _batches(seed, steps, batch=8):
    rng = np.random.RandomState(seed)
    return [(rng.randn(batch, 4), rng.randint(0, 3, batch)) for _ in range(steps)]


def _mx_train(net, trainer, batches, ctx):
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for x, y in batches:
        xs = gluon.utils.split_and_load(mx.nd.array(x, dtype='float64'), ctx)
        ys = gluon.utils.split_and_load(mx.nd.array(y, dtype='float64'), ctx)
        with autograd.record():
            losses = [loss_fn(net(a), b) for a, b in zip(xs, ys)]
        autograd.backward(losses)
        trainer.step(len(x))


def _torch_train(ref, sgd, batches):
    for x, y in batches:
        sgd.zero_grad()
        torch.nn.functional.cross_entropy(ref(torch.tensor(x)), torch.tensor(y), reduction='mean').backward()
        sgd.step()
    return [p.detach().numpy() for p in ref.parameters()]


def _trainer(params, ctx):
    return gluon.Trainer(params, NAME, {'learning_rate': LR, 'momentum': MOMENTUM, 'wd': WD},
                         kvstore='device' if len(ctx) > 1 else None)


CONTEXTS = pytest.mark.parametrize('ndev', [1, 2], ids=['one-device', 'two-devices'])


@CONTEXTS
def test_gluon_trainer_equals_torch(ndev):
    """gluon.Trainer(params, 'nag_torch'): per-parameter lr_mult / wd_mult, rescale_grad = 1 / batch; on two CPU
    contexts the update runs in the kvstore."""
    ctx = [mx.cpu(i) for i in range(ndev)]
    net, params, ref, sgd = _nets(0, ctx)
    batches = _batches(1, 5)
    trainer = _trainer(params, ctx)
    _mx_train(net, trainer, batches, ctx)
    expected = _torch_train(ref, sgd, batches)
    for c in ctx:
        got = [p.data(c).asnumpy() for p in params]
        assert rel(got, expected) < 1e-10, rel(got, expected)                 # measured 2.6e-16
    assert isinstance(trainer._optimizer, NAGTorch)


@CONTEXTS
def test_states_round_trip_continues_bit_exact(ndev, tmp_path):
    """save_states after 3 steps, a fresh net and Trainer load_states, 3 more steps: the same bits as 6 steps
    without a stop (what --resume relies on), and those equal torch."""
    ctx = [mx.cpu(i) for i in range(ndev)]
    batches = _batches(2, 6)
    net, params, ref, sgd = _nets(3, ctx)
    trainer = _trainer(params, ctx)
    _mx_train(net, trainer, batches, ctx)
    full = [p.data().asnumpy() for p in params]
    assert rel(full, _torch_train(ref, sgd, batches)) < 1e-10

    net, params, _, _ = _nets(3, ctx)
    trainer = _trainer(params, ctx)
    _mx_train(net, trainer, batches[:3], ctx)
    net.save_parameters(str(tmp_path / 'half.params'))
    trainer.save_states(str(tmp_path / 'half.states'))
    net, params, _, _ = _nets(99, ctx)                                         # other weights, then loaded
    net.load_parameters(str(tmp_path / 'half.params'), ctx=ctx)
    trainer = _trainer(params, ctx)
    trainer.load_states(str(tmp_path / 'half.states'))
    assert isinstance(trainer._optimizer, NAGTorch) and trainer._optimizer.num_update == 3
    _mx_train(net, trainer, batches[3:], ctx)
    for a, p in zip(full, params):
        for c in ctx:
            np.testing.assert_array_equal(p.data(c).asnumpy(), a)


def test_float16_multi_precision_on_cpu():
    """float16 weights, multi_precision: a float32 master copy and momentum follow PyTorch's rule in float32; the
    float16 weight is the master copy rounded."""
    w0, grads = draws(4)
    w16 = [w.astype(np.float16) for w in w0]
    g16 = [[g.astype(np.float16) for g in gs] for gs in grads]
    try:
        ours, updater = mx_steps(NAME, w16, g16, dtype='float16', learning_rate=LR, momentum=MOMENTUM, wd=WD,
                                 rescale_grad=0.25, multi_precision=True)
    except mx.base.MXNetError as err:   # not the case with MXNet 1.9.1's CPU build
        pytest.skip('float16 optimizer updates are not supported on this CPU build: %s' % err)
    ref = torch_sgd([w.astype(np.float32) for w in w16], [[g.astype(np.float32) for g in gs] for gs in g16],
                    rescale=0.25, dtype=torch.float32)
    masters = [updater.states[i][0].asnumpy() for i in range(len(SHAPES))]
    assert all(m.dtype == np.float32 for m in masters)
    assert all(updater.states[i][1].dtype == np.float32 for i in range(len(SHAPES)))     # momentum in float32
    assert rel(masters, ref) < 1e-6, rel(masters, ref)                     # float32 rounding: measured ~1e-7
    for w, m in zip(ours, masters):
        assert w.dtype == np.float16
        np.testing.assert_array_equal(w, m.astype(np.float16))


# ------------------------------------------------------------------------------------------ names and defaults
def test_recipe_rexnet_defaults_to_nag_torch_and_flags_override():
    base = ['--model', 'rexnet_1.0x']
    for recipe in ('rexnet', 'rexnet-timm2020'):
        assert parse_args(base + ['--recipe', recipe]).optimizer == NAME
    assert parse_args(base + ['--recipe', 'rexnet', '--optimizer', 'nag']).optimizer == 'nag'
    assert parse_args(base).optimizer == 'nag'                                 # GluonCV's default stays
    assert parse_args(base + ['--optimizer', NAME]).optimizer == NAME
    assert type(mx.optimizer.create(NAME)) is NAGTorch and type(mx.optimizer.create('nagtorch')) is NAGTorch


def test_import_rexnet_gluon_registers_it():
    """A fresh process: `import rexnet_gluon` alone makes gluon.Trainer(..., 'nag_torch') work (GluonCV scripts
    under `python -m rexnet_gluon.gluoncv` too). Two steps on three numbers, lr 0.1, momentum 0.9, wd 0.01."""
    code = ('import rexnet_gluon, mxnet as mx\n'
            'from mxnet import autograd, gluon\n'
            'w = gluon.Parameter("w", shape=(3,), dtype="float64")\n'
            'w.initialize()\n'
            'for name in ("nag_torch", "nag"):\n'
            '    w.set_data(mx.nd.array([1.0, -2.0, 0.5], dtype="float64"))\n'
            '    t = gluon.Trainer([w], name, {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01}, kvstore=None)\n'
            '    for g in ([0.3, 0.1, -0.2], [0.2, -0.4, 0.1]):\n'
            '        with autograd.record():\n'
            '            loss = (w.data() * mx.nd.array(g, dtype="float64")).sum()\n'   # its gradient is g
            '        loss.backward()\n'
            '        t.step(1)\n'
            '    print(name, type(t._optimizer).__module__, repr(w.data().asnumpy().tolist()))\n')
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = {line.split()[0]: line.split(None, 2)[1:] for line in res.stdout.splitlines()}
    assert out[NAME][0] == 'rexnet_gluon.train.optimizer'
    ours, nag = (np.array(json.loads(out[k][1])) for k in (NAME, "nag"))
    ref = torch_sgd([np.array([1.0, -2.0, 0.5])], [[np.array([0.3, 0.1, -0.2])], [np.array([0.2, -0.4, 0.1])]])[0]
    assert rel([ours], [ref]) < 1e-15
    assert np.abs(nag - ref).max() > 1e-6                                  # measured 4.8e-5
