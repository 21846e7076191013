"""PyTorch's BatchNorm running-variance update (rexnet_gluon/norm.py), against numpy: after a training step the
running variance is m * before + (1 - m) * unbiased batch variance, in every execution mode of a Gluon network."""
import warnings

import mxnet as mx
import numpy as np
import pytest

from rexnet_gluon.model import ReXNetV1

M = float(np.float32(0.9))


def _stats_input(net, x):
    """The input of the stem BatchNorm (features.1): the stem conv's output, computed separately."""
    return net.features[0](x).asnumpy().astype(np.float64)


@pytest.mark.parametrize('mode', ['imperative', 'hybrid', 'static'])
@pytest.mark.parametrize('kind', ['unbiased', 'biased'])
def test_running_var_update(mode, kind):
    net = ReXNetV1(0.5, classes=5, bn_running_var=kind)
    net.initialize(mx.init.Xavier())
    net.cast('float64')
    if mode != 'imperative':
        net.hybridize(**(dict(static_alloc=True, static_shape=True) if mode == 'static' else {}))
    x = mx.nd.array(np.random.RandomState(0).randn(4, 3, 32, 32), dtype='float64')
    a = _stats_input(net, x)
    var = a.var(axis=(0, 2, 3), ddof=1 if kind == 'unbiased' else 0)
    trainer = mx.gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.0})
    p = net.features[1].running_var
    before = p.data().asnumpy().copy()
    with mx.autograd.record():
        y = net(x)
    y.backward()
    trainer.step(4)
    net.save_parameters('/dev/null')                # flushes the correction, as before any save
    mx.nd.waitall()
    got = p.data().asnumpy()
    np.testing.assert_allclose(got, M * before + (1 - M) * var, rtol=1e-12, atol=1e-12)
    # a second step builds on the corrected value
    before = got.copy()
    with mx.autograd.record():
        y = net(x)
    y.backward()
    trainer.step(4)
    net(x)                                            # the next call applies the pending correction too
    mx.nd.waitall()
    np.testing.assert_allclose(p.data().asnumpy(), M * before + (1 - M) * var, rtol=1e-12, atol=1e-12)


def test_forward_without_backward_leaves_statistics():
    net = ReXNetV1(0.5, classes=5)
    net.initialize()
    x = mx.nd.random.normal(shape=(2, 3, 32, 32))
    before = net.features[1].running_var.data().asnumpy().copy()
    with mx.autograd.record():
        net(x)
    net(x)
    np.testing.assert_array_equal(net.features[1].running_var.data().asnumpy(), before)


def test_two_contexts_each_corrected():
    ctx = [mx.cpu(0), mx.cpu(1)]
    net = ReXNetV1(0.5, classes=5)
    net.initialize(ctx=ctx)
    net.cast('float64')
    net.hybridize(static_alloc=True, static_shape=True)
    xs = [mx.nd.array(np.random.RandomState(i).randn(3, 3, 32, 32), ctx=c, dtype='float64')
          for i, c in enumerate(ctx)]
    p = net.features[1].running_var
    before = [p.data(c).asnumpy().copy() for c in ctx]
    with mx.autograd.record():
        outs = [net(x) for x in xs]
    mx.autograd.backward(outs)
    net.save_parameters('/dev/null')
    for c, x, b in zip(ctx, xs, before):
        var = _stats_input(net, x).var(axis=(0, 2, 3), ddof=1)
        np.testing.assert_allclose(p.data(c).asnumpy(), M * b + (1 - M) * var, rtol=1e-12)


def test_inside_a_hybridized_parent_warns():
    net = ReXNetV1(0.5, classes=5)
    parent = mx.gluon.nn.HybridSequential()
    parent.add(net)
    parent.initialize()
    parent.hybridize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        parent(mx.nd.random.normal(shape=(1, 3, 32, 32)))
    assert any("MXNet's biased update" in str(w.message) for w in caught)


def test_bad_option():
    with pytest.raises(ValueError, match="bn_running_var must be 'unbiased'"):
        ReXNetV1(1.0, bn_running_var='pytorch')
