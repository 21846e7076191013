"""PyTorch's BatchNorm running-variance update for the BatchNorm layers of a Gluon network.

MXNet 1.9.1's BatchNorm updates ``running_var`` with the *biased* batch variance (sum of squares / n) and does it in
the backward pass; PyTorch uses the *unbiased* one (/ (n - 1)). The published ReXNet weights were trained by
PyTorch, so our networks default to PyTorch's statistics: :class:`UnbiasedRunningVar` adds what MXNet's update left
out, ``(1 - m) * var_b / (n - 1)``, which it recovers exactly from the variance before the update:
``(running_var - m * before) / (n - 1)`` (``m`` is MXNet's momentum, 0.9 for PyTorch's 0.1; ``n`` the values per
channel the layer normalised on that device: batch x height x width).

The layers stay plain ``nn.BatchNorm`` (the same op in the graph, oneDNN-fused in inference, exported like any
BatchNorm); only their statistics change. The correction runs when it is needed: each time the network is called
(for that device's pending update) and before its parameters are saved or exported (all of them). It needs the
network itself to be called: a ReXNet traced inside another hybridized block keeps MXNet's biased update (a warning
says so once).
"""
import warnings

import numpy as np

__all__ = ['UnbiasedRunningVar']


class UnbiasedRunningVar:
    """Watches the ``nn.BatchNorm`` layers of ``net`` (not SyncBatchNorm or other norms, whose statistics are left
    as they are) and corrects their running variance to PyTorch's unbiased update; see the module docstring.
    Attach with ``net.register_forward_pre_hook(watcher.before_call)``; call :meth:`flush` before reading the
    statistics (saving, exporting)."""

    def __init__(self, net):
        self.net = net
        self._pending = {}      # context -> [(layer, running_var before the update, n)]
        self._tracing = False
        self._warned = False
        self.watch()

    def watch(self):
        """(Re)collect the watched layers, e.g. after a child of the network was replaced."""
        from mxnet.gluon import nn
        self.layers = [b for b in _blocks(self.net) if type(b) is nn.BatchNorm]
        self._counts = {}       # input shape -> n per layer

    def before_call(self, block, args):
        """Forward pre-hook: correct this device's last update, then (training) remember the variance before the
        next one."""
        import mxnet as mx
        x = args[0] if args else None
        if not isinstance(x, mx.nd.NDArray):
            if not self._tracing and not self._warned and self.layers:
                self._warned = True
                warnings.warn('%s is traced inside another hybridized block: its BatchNorm running variance gets '
                              "MXNet's biased update there, not PyTorch's (call the network itself to keep it)"
                              % type(self.net).__name__)
            return
        ctx = x.context
        self.flush(ctx)
        if mx.autograd.is_training() and self.layers:
            pending = [(layer, layer.running_var.data(ctx).copy(), n)
                       for layer, n in zip(self.layers, self.counts(x.shape))]
            for _, before, _ in pending:
                before.wait_to_read()   # taken before this step's update lands (see flush)
            self._pending[ctx] = pending

    def flush(self, ctx=None):
        """Apply the pending corrections (of ``ctx``, or of every device). A layer whose variance did not change
        since (a training-mode forward without backward) is left alone."""
        import mxnet as mx
        for c in ([ctx] if ctx is not None else list(self._pending)):
            for layer, before, n in self._pending.pop(c, ()):
                if n < 2:
                    continue    # one value per channel: PyTorch refuses to train that; nothing to correct
                # A network hybridized with static_alloc writes the statistics in its backward without the engine
                # tracking that write (MXNet 1.9.1): reading running_var right after a step can see the value of
                # the step before. The same backward op writes gamma's gradient, which is tracked: wait on that.
                grads = [p for p in (layer.gamma, layer.beta) if p.grad_req != 'null']
                if grads:
                    grads[0].grad(c).wait_to_read()
                else:
                    mx.nd.waitall()
                var = layer.running_var.data(c)
                # MXNet's kernel multiplies in the momentum as float32: use the same number
                m = float(np.float32(layer._kwargs['momentum']))
                changed = (var != before).max()
                var += changed * (var - m * before) / (n - 1)
                var.wait_to_read()      # done before the next backward's (untracked) write

    def counts(self, shape):
        """Values per channel each watched layer normalises for an input of ``shape`` (from the graph's shapes)."""
        key = tuple(shape)
        if key not in self._counts:
            import mxnet as mx
            self._tracing = True
            try:
                sym = self.net(mx.sym.var('data'))
            finally:
                self._tracing = False
            internals = sym.get_internals()
            _, shapes, _ = internals.infer_shape_partial(data=key)
            by_name = dict(zip(internals.list_outputs(), shapes))
            counts = []
            for layer in self.layers:
                out = by_name[layer.prefix + 'fwd_output']
                axis = layer._kwargs.get('axis', 1)
                counts.append(int(np.prod(out)) // int(out[axis]))
            self._counts[key] = counts
        return self._counts[key]


def _blocks(block):
    yield block
    for child in block._children.values():
        yield from _blocks(child)
