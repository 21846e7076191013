"""``nag_torch``: PyTorch's ``torch.optim.SGD(momentum, nesterov=True, weight_decay)``, the optimizer the published
ReXNet weights were trained with (timm's ``--opt sgd``), as an MXNet optimizer.

MXNet 1.9.1's own ``nag`` is not that rule, in two ways: its momentum holds lr-scaled steps (``mom = momentum * mom
- lr * g``), so when the lr changes (warm-up, cosine, steps) the steps already in it keep their old lr, where
PyTorch's buffer holds gradients that all move at the new lr; and with wd > 0, ``nag_mom_update(weight, ...,
out=weight)`` takes the ``wd * weight`` of its momentum from the already updated weight (its output is in place).
Here, per step (dampening 0)::

    g = clip(rescale_grad * grad, clip_gradient) + wd * weight     # clip only if clip_gradient > 0
    buf = momentum * buf + g                                       # buf starts at 0: the first step gives buf = g
    weight = weight - lr * (g + momentum * buf)

with lr and wd per parameter (``lr_mult``, ``wd_mult``: ``--no-wd`` is wd_mult 0) and the lr scheduler's lr.
No fused MXNet kernel computes this (``sgd_mom_update`` and ``nag_mom_update`` keep lr-scaled momentum), so it is
written with NDArray operators, in the weight's dtype, the hyper-parameters as Python floats (MXNet's scalar
operators keep them in double): 20 float64 steps equal PyTorch's to ~3e-16 relative (``nag_mom_update`` with a
separate output, constant lr: 1.3e-7, its hyper-parameters being float32). ``multi_precision``: float16 weights are
updated through a float32 master copy, as MXNet's SGD does. Dense gradients only.

Imports only mxnet, so that whatever unpickles the optimizer (``Trainer.load_states``, a dist_* server) can import
it cheaply. A dist server must have it imported before its loop starts, which a plain ``import mxnet`` server
cannot do (its loop runs half-way through that import): ``scripts/launch_dist.py`` starts servers that can.
Importing this module (``import rexnet_gluon`` does) registers ``nag_torch``, and ``nagtorch`` from the class name
by ``mx.optimizer.register``.
"""
import mxnet as mx

__all__ = ['NAME', 'NAGTorch']

NAME = 'nag_torch'


class NAGTorch(mx.optimizer.Optimizer):
    """``torch.optim.SGD(params, lr, momentum, nesterov=True, weight_decay=wd)`` (see the module's docstring).
    Accepts the arguments of :class:`mxnet.optimizer.Optimizer` and ``momentum`` (default 0: plain SGD with weight
    decay, no state)."""

    def __init__(self, momentum=0.0, **kwargs):
        super(NAGTorch, self).__init__(**kwargs)
        self.momentum = momentum

    def create_state(self, index, weight):
        if self.momentum == 0.0:
            return None
        return mx.nd.zeros(weight.shape, weight.context, dtype=weight.dtype)

    def update(self, index, weight, grad, state):
        if weight.stype != 'default' or grad.stype != 'default':
            raise ValueError('%s supports dense weights and gradients only, got %s / %s'
                             % (NAME, weight.stype, grad.stype))
        self._update_count(index)
        lr = float(self._get_lr(index))
        wd = float(self._get_wd(index))
        g = grad * float(self.rescale_grad)
        if self.clip_gradient is not None and self.clip_gradient > 0:     # MXNet's kernels: <= 0 is no clipping
            c = float(self.clip_gradient)
            g = mx.nd.maximum(mx.nd.minimum(g, c), -c)      # scalar min/max: double thresholds (clip's are float)
        if wd != 0.0:
            g += weight * wd
        if state is not None:
            momentum = float(self.momentum)
            state *= momentum
            state += g
            g += state * momentum
        weight -= g * lr


mx.optimizer.register(NAGTorch)                         # 'nagtorch', MXNet's class-name rule
mx.optimizer.Optimizer.opt_registry[NAME] = NAGTorch    # and the readable name
