"""Training parity with PyTorch, step by step (``python scripts/train_parity.py``; needs torch and timm).

The PyTorch reference (timm's RexNet; our lite reference for ReXNet-lite) and rexnet-gluon start from the same
weights (random, with non-trivial BatchNorm statistics, converted by the converter; ``last_gamma`` zeroes the same
gammas in both) and see the same batches. Each step runs the parts of the ReXNet recipe that need no shared random
stream: train-mode BatchNorm, label smoothing 0.1, SGD with Nesterov momentum and weight decay (none on BatchNorm
parameters and biases), a linear warm-up then cosine learning rate. Dropout and drop-path are 0. After each step
the loss, every parameter and every BatchNorm running mean/variance are compared; a step passes when each relative
difference (max |diff| / max |reference|, per tensor) is within the tolerance.

With several contexts the batch is split over the devices as MXNet does; the reference runs the same chunks through
one set of weights, each chunk with its own BatchNorm buffers (per-device BatchNorm, the DataParallel semantics
without SyncBatchNorm), and device k's statistics are compared with chunk k's.
"""
import math
from collections import namedtuple

import numpy as np

__all__ = ['ParityConfig', 'StepResult', 'run_parity', 'passes', 'tolerance', 'TOLERANCE', 'FLOAT32_FACTOR']

TOLERANCE = {'float64': 1e-6, 'float32': 1e-4}
# Relative to the tensor's scale, but at least this: a zero-initialised gamma (last_gamma) is ~1e-4 after a step,
# and float32 rounding of its gradient is not a relative error of that size (see the README's parity section).
SCALE_FLOOR = 1e-2

ParityConfig = namedtuple('ParityConfig', 'model steps dtype input_size batch classes contexts lr warmup_steps '
                                          'warmup_lr momentum wd smoothing optimizer bn_running_var last_gamma seed '
                                          'swish_op tol')
# lr: the recipe's 0.5 per 512 images scaled to the batch (lr 0.1 on a batch of 8 makes the loss of a random net
# explode, and float32 rounding then grows with it); warm-up from the recipe's 1e-4; the recipe's wd 1e-5.
ParityConfig.__new__.__defaults__ = ('rexnet_1.0x', 20, 'float64', 64, 8, 10, 1, 0.5 * 8 / 512, 3, 1e-4, 0.9, 1e-5,
                                     0.1, None, 'unbiased', True, 0, 'activation', None)
StepResult = namedtuple('StepResult', 'step lr loss_ref loss_diff param_diff param_name mean_diff var_diff stat_name '
                                      'own local local_own sensitivity')
StepResult.__new__.__defaults__ = (None, None, None, None)
FLOAT32_FACTOR = 10   # float32 passes within this many times PyTorch float32's own distance to float64
# float32's rounding of the activations, relative (rexnet-gluon's float32 loss is ~4e-7 off float64's): the size of
# the perturbation that measures how sensitive a step is (see run_parity)
PERTURBATION = 1e-6
SENSITIVITY_SAMPLES = 4   # draws of the perturbation, taken only for a step that is not within its own bound
FLOAT32_RULE = (' (float32: each step taken from the same state, or %d x the larger of PyTorch float32\'s own distance '
                'from that state and PyTorch float64\'s move under the perturbation; columns: loss / param / mean / '
                'var; the first columns are the trajectories, reported)')


def lr_at(cfg, step):
    """Linear warm-up from ``warmup_lr`` over ``warmup_steps``, then cosine from ``lr`` to 0 at the last step."""
    if step < cfg.warmup_steps:
        return cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * step / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / span))


class _TorchSide:
    """The PyTorch reference in one dtype: the model, its SGD, and each device chunk's BatchNorm buffers."""

    def __init__(self, ref, cfg, no_wd, dtype):
        import copy
        import torch
        self.cfg, self.dtype = cfg, dtype
        self.model = copy.deepcopy(ref).to(getattr(torch, dtype)).train()
        self.params = dict(self.model.named_parameters())
        start = {n: b.detach().clone() for n, b in self.model.named_buffers()
                 if not n.endswith('num_batches_tracked')}
        self.buffers = {k: dict(start) for k in range(cfg.contexts)}
        decay = [p for n, p in self.model.named_parameters() if n not in no_wd]
        rest = [p for n, p in self.model.named_parameters() if n in no_wd]
        self.opt = torch.optim.SGD([dict(params=decay, weight_decay=cfg.wd), dict(params=rest, weight_decay=0.0)],
                                   lr=cfg.lr, momentum=cfg.momentum, nesterov=True)

    def step(self, x, y, chunks, lr):
        """One step over the device chunks (each with its own BatchNorm buffers); returns the mean loss."""
        import torch
        for group in self.opt.param_groups:
            group['lr'] = lr
        self.opt.zero_grad()
        total = 0.0
        lossf = torch.nn.CrossEntropyLoss(reduction='sum', label_smoothing=self.cfg.smoothing)
        for k, idx in enumerate(chunks):
            self._swap(k)
            out = self.model(torch.from_numpy(x[idx].astype(self.dtype)))
            loss = lossf(out, torch.from_numpy(y[idx]).long()) / len(x)
            loss.backward()
            total += float(loss.detach())
            self._swap(k, save=True)
        self.opt.step()
        return total

    def load(self, tensors, momenta):
        """Start the next step from another run's state: ``tensors`` as :meth:`tensors` returns them, ``momenta``
        {reference name: momentum buffer} (empty before the first step, when no buffer exists yet)."""
        import torch
        dtype = getattr(torch, self.dtype)
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(torch.from_numpy(tensors[(n, None)].reshape(p.shape)).to(dtype))
                if n in momenta:
                    self.opt.state[p]['momentum_buffer'] = torch.from_numpy(
                        momenta[n].reshape(p.shape)).to(dtype).clone()
        for k, bufs in self.buffers.items():
            self.buffers[k] = {n: torch.from_numpy(tensors[(n, k)].reshape(b.shape)).to(b.dtype)
                               for n, b in bufs.items()}

    def _swap(self, k, save=False):
        bufs = {n: b for n, b in self.model.named_buffers() if not n.endswith('num_batches_tracked')}
        if save:
            self.buffers[k] = {n: b.detach().clone() for n, b in bufs.items()}
        else:
            for n, b in bufs.items():
                b.data.copy_(self.buffers[k][n])

    def tensors(self):
        """{(reference name, device or None): float64 numpy array} of the parameters and each device's buffers."""
        out = {(n, None): p.detach().double().numpy() for n, p in self.params.items()}
        for k, bufs in self.buffers.items():
            out.update({(n, k): b.double().numpy() for n, b in bufs.items()})
        return out


class _Pair:
    """The PyTorch references (the run's dtype, and float64 as the exact one) and the Gluon network with the same
    weights, their optimizers, and the name table."""

    def __init__(self, cfg):
        import torch
        from ..convert.mapping import convert_state_dict, param_table, spec_from_name
        from ..convert.torch_reference import randomize_, reference_model, state_dict_in_layout
        self.cfg = cfg
        spec = spec_from_name(cfg.model)
        layout = 'official_lite' if spec.lite else 'timm'
        torch.manual_seed(cfg.seed)
        ref = randomize_(reference_model(spec, cfg.classes), seed=cfg.seed).double()
        _no_dropout(ref)
        self.rows = [(p.gluon, p.official if spec.lite else p.timm) for p in param_table(spec, cfg.classes)]
        gluon_zero = self._last_gamma_names(spec) if cfg.last_gamma else set()
        with torch.no_grad():
            sd = ref.state_dict()
            for g, t in self.rows:
                if g in gluon_zero:
                    sd[t].zero_()
        no_wd = {t for g, t in self.rows if g.rsplit('.', 1)[-1] in ('gamma', 'beta', 'bias')}
        self.sides = {d: _TorchSide(ref, cfg, no_wd, d) for d in dict.fromkeys([cfg.dtype, 'float64'])}
        self._ref, self._no_wd = ref, no_wd
        arrays = convert_state_dict(state_dict_in_layout(ref, spec, cfg.classes, layout), model=cfg.model,
                                    classes=cfg.classes, dtype=cfg.dtype)[0]
        self.net = self._gluon_net(spec, arrays)
        self._gluon_trainer()

    def local_sides(self):
        """Below float64: PyTorch in float64 and in the run's dtype, to be started from the Gluon state at each step
        (:meth:`_TorchSide.load`); in float64 none (the trajectories themselves agree)."""
        if self.cfg.dtype == 'float64':
            return {}
        return {d: _TorchSide(self._ref, self.cfg, self._no_wd, d) for d in ('float64', self.cfg.dtype)}

    def _last_gamma_names(self, spec):
        import mxnet as mx
        from ..model import ReXNet
        probe = ReXNet(spec, self.cfg.classes, last_gamma=True)
        probe.initialize(mx.init.Xavier())
        return {k for k, p in probe._collect_params_with_prefix().items()
                if k.endswith('gamma') and not p.data().asnumpy().any()}

    def _gluon_net(self, spec, arrays):
        import mxnet as mx
        from ..model import ReXNet
        from .models import apply_no_wd
        cfg = self.cfg
        self.ctx = [mx.cpu(i) for i in range(cfg.contexts)]
        net = ReXNet(spec, cfg.classes, dropout=0.0, last_gamma=cfg.last_gamma, bn_running_var=cfg.bn_running_var,
                     swish_op=cfg.swish_op)
        net.initialize(ctx=self.ctx)
        net.cast(cfg.dtype)
        params = net._collect_params_with_prefix()
        for name, value in arrays.items():
            params[name].set_data(mx.nd.array(value, dtype=cfg.dtype))
        apply_no_wd(net)
        net.hybridize(static_alloc=True, static_shape=True)
        return net

    def _gluon_trainer(self):
        from mxnet import gluon
        cfg = self.cfg
        from . import optimizer  # noqa: F401  (registers nag_torch)
        name = cfg.optimizer or 'nag_torch'
        self.trainer = gluon.Trainer(self.net.collect_params(), name,
                                     dict(learning_rate=cfg.lr, momentum=cfg.momentum, wd=cfg.wd),
                                     kvstore='device' if cfg.contexts > 1 else None)
        if cfg.contexts > 1:
            from .learner import start_kvstore
            start_kvstore(self.trainer)     # as the training loop does: each device keeps its own statistics
        self.optimizer_name = name

    def gluon_tensors(self):
        """The Gluon side in the reference's names, as :meth:`_TorchSide.tensors`."""
        out = {}
        params = self.net._collect_params_with_prefix()
        for g, t in self.rows:
            p = params[g]
            if g.endswith(('running_mean', 'running_var')):
                for k, c in enumerate(self.ctx):
                    out[(t, k)] = p.data(c).asnumpy().astype(np.float64)
            else:
                out[(t, None)] = p.data(self.ctx[0]).asnumpy().astype(np.float64)
        return out

    def gluon_momenta(self):
        """{reference name: float64 momentum buffer} of the Gluon optimizer (nag_torch keeps PyTorch's buffer)."""
        states = _updater_states(self.trainer) if self.trainer._kv_initialized else {}
        params = self.net._collect_params_with_prefix()
        out = {}
        for g, t in self.rows:
            index = self.trainer._param2idx.get(params[g].name)
            state = states.get(index)
            if state is not None:
                out[t] = state.asnumpy().astype(np.float64)
        return out


def _updater_states(trainer):
    """{parameter index: optimizer state} of a Gluon Trainer, wherever it keeps them (on the kvstore when it updates
    there, else the first device's updater)."""
    if trainer._update_on_kvstore:
        return trainer._kvstore._updater.states
    return trainer._updaters[0].states


def _no_dropout(ref):
    import torch
    for m in ref.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if hasattr(m, 'drop_rate'):
            m.drop_rate = 0.0


def _smoothed(labels, classes, eps):
    out = np.full((len(labels), classes), eps / classes)
    out[np.arange(len(labels)), labels] += 1.0 - eps
    return out


def _gluon_step(pair, x, y, chunks, lr):
    """One training step of the Gluon network, as the training loop does it; returns the mean loss."""
    import mxnet as mx
    cfg, ctx = pair.cfg, pair.ctx
    target = _smoothed(y, cfg.classes, cfg.smoothing)
    lossg = mx.gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)
    pair.trainer.set_learning_rate(lr)
    losses = []
    with mx.autograd.record():
        for c, idx in zip(ctx, chunks):
            out = pair.net(mx.nd.array(x[idx], ctx=c, dtype=cfg.dtype))
            losses.append(lossg(out, mx.nd.array(target[idx], ctx=c, dtype=cfg.dtype)))
    mx.autograd.backward(losses)
    pair.trainer.step(len(x))
    if pair.net._bn_stats is not None:
        pair.net._bn_stats.flush()
    mx.nd.waitall()
    return float(sum(l.sum().asscalar() for l in losses)) / len(x)


def _distance(got, ref, rows):
    """(max relative parameter diff, its name, running mean diff, running var diff, the worst statistic's name):
    per tensor max |diff| / max(max |reference|, SCALE_FLOOR), the largest over the tensors (and devices)."""
    kinds = {t: g.rsplit('.', 1)[-1] for g, t in rows}
    pd, pname, md, vd, sname, worst = 0.0, '', 0.0, 0.0, '', -1.0
    for key, b in ref.items():
        d = float(np.abs(got[key].reshape(b.shape) - b).max() / max(np.abs(b).max(), SCALE_FLOOR))
        name, device = key
        kind = kinds.get(name)
        if kind in ('running_mean', 'running_var'):
            md, vd = (max(md, d), vd) if kind == 'running_mean' else (md, max(vd, d))
            if d > worst:
                worst, sname = d, '%s (device %d)' % (name, device)
        elif kind is not None and d > pd:
            pd, pname = d, name
    return pd, pname, md, vd, sname


def run_parity(cfg, on_step=None):
    """Run ``cfg.steps`` steps of both; returns (the list of :class:`StepResult`, the Gluon optimizer's name).

    Distances are to the float64 PyTorch run. In float32 each result also carries ``own``: PyTorch float32's own
    distance to float64 along the same trajectory; and ``local`` / ``local_own``: the same distances for one step
    that PyTorch (float64, and float32) starts from the Gluon network's state before that step (weights, momentum
    buffers, BatchNorm statistics). float32 trajectories part at the rate float32 rounding is amplified by the
    training (a ReLU6 input crossing 0 or 6 in one run and not the other moves a gradient by O(1 / pixels)), so a
    float32 step is judged from the same state: within ``FLOAT32_FACTOR`` times PyTorch float32's own distance, or
    the tolerance. ``on_step(result)`` is called after each step."""
    pair = _Pair(cfg)
    rs = np.random.RandomState(cfg.seed + 1)
    chunks = np.array_split(np.arange(cfg.batch), cfg.contexts)
    exact = pair.sides['float64']
    local = pair.local_sides()
    results = []
    for step in range(cfg.steps):
        x = rs.standard_normal((cfg.batch, 3, cfg.input_size, cfg.input_size))
        y = rs.randint(0, cfg.classes, cfg.batch)
        lr = lr_at(cfg, step)
        if local:
            start, momenta = pair.gluon_tensors(), pair.gluon_momenta()
            for side in local.values():
                side.load(start, momenta)
        losses = {d: side.step(x, y, chunks, lr) for d, side in pair.sides.items()}
        local_losses = {d: side.step(x, y, chunks, lr) for d, side in local.items()}
        loss = _gluon_step(pair, x, y, chunks, lr)
        got = pair.gluon_tensors()
        res = StepResult(step, lr, losses['float64'], _rel(loss, losses['float64']),
                         *_distance(got, exact.tensors(), pair.rows))
        if local:
            own = _distance(pair.sides[cfg.dtype].tensors(), exact.tensors(), pair.rows)
            here = local['float64'].tensors()
            mine = _distance(got, here, pair.rows)
            theirs = _distance(local[cfg.dtype].tensors(), here, pair.rows)
            res = res._replace(own=(_rel(losses[cfg.dtype], losses['float64']),) + own[:1] + own[2:4],
                               local=(_rel(loss, local_losses['float64']),) + mine[:1] + mine[2:4],
                               local_own=(_rel(local_losses[cfg.dtype], local_losses['float64']),)
                               + theirs[:1] + theirs[2:4])
            if not passes(res, tolerance(cfg)):
                res = res._replace(sensitivity=_sensitivity(pair, start, momenta, (x, y, chunks, lr),
                                                            local['float64'], local_losses['float64'], step))
        results.append(res)
        if on_step:
            on_step(res)
    return results, pair.optimizer_name


def _sensitivity(pair, start, momenta, batch, exact, exact_loss, step):
    """How far PyTorch float64's own step moves when its start state is perturbed by float32-sized rounding
    (relative :data:`PERTURBATION`, :data:`SENSITIVITY_SAMPLES` seeded draws): the largest (loss, param, mean, var)
    distances to the unperturbed step. Some steps amplify rounding by orders of magnitude (an activation within 1e-6
    of a ReLU6 bound goes the other way; whether a draw finds it is chance, hence several); a float32 step that
    differs from PyTorch by about as much is as equal as float32 can be."""
    worst = np.zeros(4)
    for sample in range(SENSITIVITY_SAMPLES):
        rs = np.random.RandomState(1000 * (step + 1) + sample)
        noisy = {k: v * (1 + PERTURBATION * rs.standard_normal(v.shape)) for k, v in start.items()}
        side = _TorchSide(pair._ref, pair.cfg, pair._no_wd, 'float64')
        side.load(noisy, momenta)
        loss = side.step(*batch)
        d = _distance(side.tensors(), exact.tensors(), pair.rows)
        worst = np.maximum(worst, (_rel(loss, exact_loss),) + d[:1] + d[2:4])
    return tuple(float(w) for w in worst)


def tolerance(cfg):
    """The run's relative tolerance: ``cfg.tol``, else :data:`TOLERANCE` of its dtype."""
    return cfg.tol if cfg.tol is not None else TOLERANCE[cfg.dtype]


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def passes(res, tol):
    """A step passes when each distance is within ``tol``; in float32, when each distance of the step taken from
    the same state is within ``tol`` or FLOAT32_FACTOR x PyTorch float32's own distance from that state, or (a
    step that amplifies rounding) FLOAT32_FACTOR x PyTorch float64's own move under float32-sized perturbation."""
    if res.local is None:
        return max(res.loss_diff, res.param_diff, res.mean_diff, res.var_diff) <= tol
    bounds = [max(tol, FLOAT32_FACTOR * o) for o in res.local_own]
    if res.sensitivity is not None:
        bounds = [max(b, FLOAT32_FACTOR * s) for b, s in zip(bounds, res.sensitivity)]
    return all(m <= b for m, b in zip(res.local, bounds))


def build_parser():
    import argparse
    p = argparse.ArgumentParser(description='Training parity with PyTorch, step by step: the same weights and '
                                'batches through rexnet-gluon and the PyTorch reference; exit status 0 only when '
                                'every step is within the tolerance.')
    d = ParityConfig()
    p.add_argument('--model', default=d.model, help='zoo name (default %(default)s)')
    p.add_argument('--steps', type=int, default=d.steps)
    p.add_argument('--dtype', choices=('float64', 'float32'), default=d.dtype)
    p.add_argument('--input-size', type=int, default=d.input_size)
    p.add_argument('--batch', type=int, default=d.batch, help='global batch (split over --contexts)')
    p.add_argument('--classes', type=int, default=d.classes)
    p.add_argument('--contexts', type=int, default=d.contexts, help='CPU contexts of the Gluon side')
    p.add_argument('--lr', type=float, default=None, help='peak lr (default: the recipe\'s 0.5 x batch / 512)')
    p.add_argument('--wd', type=float, default=d.wd)
    p.add_argument('--optimizer', default=None, help="Gluon optimizer (default nag_torch, PyTorch's rule)")
    p.add_argument('--bn-running-var', choices=('unbiased', 'biased'), default=d.bn_running_var)
    p.add_argument('--no-last-gamma', action='store_true')
    p.add_argument('--swish-op', choices=('sigmoid', 'activation'), default=d.swish_op,
                   help="Swish as x * Activation(x, 'sigmoid') (oneDNN, the networks' default) or x * sigmoid(x)")
    p.add_argument('--tol', type=float, default=None, help='relative tolerance (default: 1e-6 float64, 1e-3 '
                   'float32)')
    p.add_argument('--markdown', metavar='FILE', help='also write the table as Markdown')
    return p


def main(argv=None):
    """``scripts/train_parity.py``: prints one line per step and a PASS/FAIL line; 0 only if every step passes."""
    p = build_parser()
    args = p.parse_args(argv)
    from ..zoo import get_model_info
    try:
        args.model = get_model_info(args.model).name
    except ValueError as err:
        p.error(str(err))
    for flag, value, low in (('--steps', args.steps, 1), ('--input-size', args.input_size, 32),
                             ('--classes', args.classes, 2), ('--contexts', args.contexts, 1),
                             ('--batch', args.batch, 2 * args.contexts)):
        if value < low:
            p.error('%s %d: must be at least %d' % (flag, value, low))
    lr = args.lr if args.lr is not None else 0.5 * args.batch / 512
    cfg = ParityConfig(args.model, args.steps, args.dtype, args.input_size, args.batch, args.classes, args.contexts,
                       lr, min(3, args.steps - 1), 1e-4, 0.9, args.wd, 0.1, args.optimizer,
                       args.bn_running_var, not args.no_last_gamma, 0, args.swish_op, args.tol)
    tol = tolerance(cfg)
    f32 = args.dtype != 'float64'
    head = ('| step | lr | loss (PyTorch) | loss rel. diff | max param rel. diff | running mean | running var |' +
            (' PyTorch float32 itself | from the same state: rexnet-gluon | PyTorch float32 | PyTorch float64 '
             'perturbed by %g (steps beyond their own bound) |' % PERTURBATION if f32 else ''))
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    print('%s, %s, batch %d at %d px over %d context(s), %d steps; distances to PyTorch in float64, relative per '
          'tensor; a step passes within %g%s' % (cfg.model, cfg.dtype, cfg.batch, cfg.input_size, cfg.contexts,
                                                  cfg.steps, tol, FLOAT32_RULE % FLOAT32_FACTOR if f32 else ''))
    print(head)

    def show(r):
        line = '| %d | %.5f | %.6f | %.1e | %.1e | %.1e | %.1e |' % (
            r.step, r.lr, r.loss_ref, r.loss_diff, r.param_diff, r.mean_diff, r.var_diff)
        if f32:
            for part in (r.own, r.local, r.local_own, r.sensitivity):
                line += ' %.1e / %.1e / %.1e / %.1e |' % part if part is not None else ' - |'
        lines.append(line)
        print(line, flush=True)

    results, optimizer = run_parity(cfg, on_step=show)
    bad = [r for r in results if not passes(r, tol)]
    summary = ('PASS: %d steps (optimizer %s, BatchNorm running variance %s, Swish %s)'
               % (len(results), optimizer, cfg.bn_running_var, cfg.swish_op) if not bad else
               'FAIL: %d of %d steps beyond the tolerance; first at step %d (worst parameter %s, statistic %s); '
               'optimizer %s, BatchNorm running variance %s, Swish %s' % (
                   len(bad), len(results), bad[0].step, bad[0].param_name, bad[0].stat_name, optimizer,
                   cfg.bn_running_var, cfg.swish_op))
    print(summary)
    if args.markdown:
        from ..utils.fileio import atomic_write_text
        atomic_write_text(args.markdown, '\n'.join(lines + ['', summary, '']))
    return 0 if not bad else 1
