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

__all__ = ['ParityConfig', 'StepResult', 'run_parity', 'TOLERANCE']

TOLERANCE = {'float64': 1e-6, 'float32': 1e-3}

ParityConfig = namedtuple('ParityConfig', 'model steps dtype input_size batch classes contexts lr warmup_steps '
                                          'warmup_lr momentum wd smoothing optimizer bn_running_var last_gamma seed '
                                          'swish_op')
ParityConfig.__new__.__defaults__ = ('rexnet_1.0x', 20, 'float64', 64, 8, 10, 1, 0.1, 3, 0.01, 0.9, 1e-4, 0.1,
                                     None, 'unbiased', True, 0, 'sigmoid')
StepResult = namedtuple('StepResult', 'step lr loss_ref loss_diff param_diff param_name mean_diff var_diff stat_name')


def lr_at(cfg, step):
    """Linear warm-up from ``warmup_lr`` over ``warmup_steps``, then cosine from ``lr`` to 0 at the last step."""
    if step < cfg.warmup_steps:
        return cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * step / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / span))


class _Pair:
    """The reference and the Gluon network with the same weights, their optimizers, and the name table."""

    def __init__(self, cfg):
        import torch
        from ..convert.mapping import convert_state_dict, param_table, spec_from_name
        from ..convert.torch_reference import randomize_, reference_model, state_dict_in_layout
        self.cfg = cfg
        spec = spec_from_name(cfg.model)
        layout = 'official_lite' if spec.lite else 'timm'
        torch.manual_seed(cfg.seed)
        ref = randomize_(reference_model(spec, cfg.classes), seed=cfg.seed)
        _no_dropout(ref)
        self.rows = [(p.gluon, p.official if spec.lite else p.timm) for p in param_table(spec, cfg.classes)]
        gluon_zero = self._last_gamma_names(spec) if cfg.last_gamma else set()
        with torch.no_grad():
            sd = ref.state_dict()
            for g, t in self.rows:
                if g in gluon_zero:
                    sd[t].zero_()
        if cfg.dtype == 'float64':
            ref = ref.double()
        self.ref = ref.train()
        arrays = convert_state_dict(state_dict_in_layout(ref, spec, cfg.classes, layout), model=cfg.model,
                                    classes=cfg.classes, dtype=cfg.dtype)[0]
        self.net = self._gluon_net(spec, arrays)
        self.t_params = dict(ref.named_parameters())
        start = {n: b.detach().clone() for n, b in ref.named_buffers() if not n.endswith('num_batches_tracked')}
        self.device_buffers = {k: dict(start) for k in range(cfg.contexts)}
        self._optimizers()

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

    def _optimizers(self):
        import torch
        from mxnet import gluon
        cfg = self.cfg
        no_wd = {t for g, t in self.rows if g.rsplit('.', 1)[-1] in ('gamma', 'beta', 'bias')}
        decay = [p for n, p in self.ref.named_parameters() if n not in no_wd]
        rest = [p for n, p in self.ref.named_parameters() if n in no_wd]
        self.t_opt = torch.optim.SGD([dict(params=decay, weight_decay=cfg.wd), dict(params=rest, weight_decay=0.0)],
                                     lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
        name = cfg.optimizer or _default_optimizer()
        self.trainer = gluon.Trainer(self.net.collect_params(), name,
                                     dict(learning_rate=cfg.lr, momentum=cfg.momentum, wd=cfg.wd),
                                     kvstore='device' if cfg.contexts > 1 else None)
        self.optimizer_name = name


def _default_optimizer():
    import mxnet as mx
    registry = mx.optimizer.Optimizer.opt_registry
    for name in ('nag_torch', 'torchsgd', 'torch_sgd', 'sgdnesterov'):
        if name in registry:
            return name
    return 'nag'


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


def _step(pair, x, y, lr):
    """One training step of both; returns the two mean losses."""
    import mxnet as mx
    import torch
    cfg, ctx = pair.cfg, pair.ctx
    # --- PyTorch: the chunks of the devices, each with its own BatchNorm buffers
    chunks = np.array_split(np.arange(len(x)), len(ctx))
    for group in pair.t_opt.param_groups:
        group['lr'] = lr
    pair.t_opt.zero_grad()
    total = 0.0
    lossf = torch.nn.CrossEntropyLoss(reduction='sum', label_smoothing=cfg.smoothing)
    for k, idx in enumerate(chunks):
        _swap_buffers(pair, k)
        out = pair.ref(torch.from_numpy(x[idx]))
        loss = lossf(out, torch.from_numpy(y[idx]).long()) / len(x)
        loss.backward()
        total += float(loss.detach())
        _swap_buffers(pair, k, save=True)
    pair.t_opt.step()
    # --- MXNet, as the training loop does it
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
    return total, float(sum(l.sum().asscalar() for l in losses)) / len(x)


def _swap_buffers(pair, k, save=False):
    """Chunk k's BatchNorm buffers in (or out of, ``save``) the reference: per-device statistics."""
    bufs = {n: b for n, b in pair.ref.named_buffers() if not n.endswith('num_batches_tracked')}
    if save:
        pair.device_buffers[k] = {n: b.detach().clone() for n, b in bufs.items()}
    else:
        for n, b in bufs.items():
            b.data.copy_(pair.device_buffers[k][n])


def _compare(pair):
    """(max relative parameter diff, its name, max relative running mean diff, running var diff, the name of the
    worst statistic) over every tensor (and every device's statistics)."""
    pd, pname, md, vd, sname, worst = 0.0, '', 0.0, 0.0, '', -1.0
    params = pair.net._collect_params_with_prefix()
    for g, t in pair.rows:
        p = params[g]
        field = g.rsplit('.', 1)[-1]
        if field in ('running_mean', 'running_var'):
            for k, c in enumerate(pair.ctx):
                d = _rel(p.data(c).asnumpy(), pair.device_buffers[k][t].numpy())
                if field == 'running_mean':
                    md = max(md, d)
                else:
                    vd = max(vd, d)
                if d > worst:
                    worst, sname = d, '%s (%s)' % (g, c)
        else:
            d = _rel(p.data(pair.ctx[0]).asnumpy(), pair.t_params[t].detach().numpy().reshape(p.shape))
            if d > pd:
                pd, pname = d, g
    return pd, pname, md, vd, sname


def _rel(a, b):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max() / max(np.abs(b).max(), 1e-30))


def run_parity(cfg, on_step=None):
    """Run ``cfg.steps`` steps of both; returns (the list of :class:`StepResult`, the Gluon optimizer's name).
    ``on_step(result)`` is called after each step (progress)."""
    pair = _Pair(cfg)
    rs = np.random.RandomState(cfg.seed + 1)
    results = []
    for step in range(cfg.steps):
        x = rs.standard_normal((cfg.batch, 3, cfg.input_size, cfg.input_size)).astype(cfg.dtype)
        y = rs.randint(0, cfg.classes, cfg.batch)
        lr = lr_at(cfg, step)
        loss_ref, loss = _step(pair, x, y, lr)
        pair.net._bn_stats and pair.net._bn_stats.flush()
        pd, pname, md, vd, sname = _compare(pair)
        res = StepResult(step, lr, loss_ref, abs(loss - loss_ref) / max(abs(loss_ref), 1e-30), pd, pname, md, vd,
                         sname)
        results.append(res)
        if on_step:
            on_step(res)
    return results, pair.optimizer_name


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
    p.add_argument('--lr', type=float, default=d.lr)
    p.add_argument('--wd', type=float, default=d.wd)
    p.add_argument('--optimizer', default=None, help="Gluon optimizer (default: PyTorch's rule if registered, "
                   "else nag)")
    p.add_argument('--bn-running-var', choices=('unbiased', 'biased'), default=d.bn_running_var)
    p.add_argument('--no-last-gamma', action='store_true')
    p.add_argument('--swish-op', choices=('sigmoid', 'activation'), default=d.swish_op,
                   help="Swish as x * sigmoid(x) (default) or x * Activation(x, 'sigmoid') (oneDNN)")
    p.add_argument('--tol', type=float, default=None, help='relative tolerance (default: 1e-6 float64, 1e-3 '
                   'float32)')
    p.add_argument('--markdown', metavar='FILE', help='also write the table as Markdown')
    return p


def main(argv=None):
    """``scripts/train_parity.py``: prints one line per step and a PASS/FAIL line; 0 only if every step passes."""
    args = build_parser().parse_args(argv)
    cfg = ParityConfig(args.model, args.steps, args.dtype, args.input_size, args.batch, args.classes, args.contexts,
                       args.lr, min(3, args.steps - 1), 0.01, 0.9, args.wd, 0.1, args.optimizer,
                       args.bn_running_var, not args.no_last_gamma, 0, args.swish_op)
    tol = args.tol if args.tol is not None else TOLERANCE[args.dtype]
    head = '| step | lr | loss (PyTorch) | loss rel. diff | max param rel. diff | running mean | running var |'
    lines = [head, '|---|---|---|---|---|---|---|']
    print('%s, %s, batch %d at %d px over %d context(s), %d steps; tolerance %g relative'
          % (cfg.model, cfg.dtype, cfg.batch, cfg.input_size, cfg.contexts, cfg.steps, tol))
    print(head)

    def show(r):
        line = '| %d | %.4f | %.6f | %.1e | %.1e | %.1e | %.1e |' % (
            r.step, r.lr, r.loss_ref, r.loss_diff, r.param_diff, r.mean_diff, r.var_diff)
        lines.append(line)
        print(line, flush=True)

    results, optimizer = run_parity(cfg, on_step=show)
    bad = [r for r in results if max(r.loss_diff, r.param_diff, r.mean_diff, r.var_diff) > tol]
    summary = ('PASS: %d steps within %g (optimizer %s, BatchNorm running variance %s)'
               % (len(results), tol, optimizer, cfg.bn_running_var) if not bad else
               'FAIL: %d of %d steps beyond %g; first at step %d (worst parameter %s, statistic %s); optimizer %s, '
               'BatchNorm running variance %s' % (len(bad), len(results), tol, bad[0].step, bad[0].param_name,
                                                  bad[0].stat_name, optimizer, cfg.bn_running_var))
    print(summary)
    if args.markdown:
        from ..utils.fileio import atomic_write_text
        atomic_write_text(args.markdown, '\n'.join(lines + ['', summary, '']))
    return 0 if not bad else 1
