"""The Gluon network itself: schedule, shapes, parameter counts, hybridize/export, dtypes, training."""
import numpy as np
import pytest

import mxnet as mx
from mxnet import autograd, gluon

from rexnet_gluon import ReXNet, ReXNetV1, ReXNetV1Lite, lite_spec, v1_spec
from rexnet_gluon.model import LinearBottleneck, _NormFactory
from rexnet_gluon.spec import BlockSpec, make_divisible


def n_params(net):
    return sum(int(np.prod(p.shape)) for p in net.collect_params().values() if p.grad_req != 'null')


# Published block outputs (rexnet-spec.md 1.6): stem / 16 outs / pen.
V1_TABLE = {
    0.9: (32, [16, 26, 36, 46, 56, 67, 77, 87, 97, 107, 117, 127, 138, 148, 158, 168], 1152),
    1.0: (32, [16, 27, 38, 50, 61, 72, 84, 95, 106, 117, 128, 140, 151, 162, 174, 185], 1280),
    1.3: (42, [21, 35, 50, 65, 79, 94, 109, 123, 138, 152, 167, 182, 196, 211, 226, 240], 1664),
    1.5: (48, [24, 41, 58, 75, 92, 108, 125, 142, 159, 176, 193, 210, 226, 243, 260, 277], 1920),
    2.0: (64, [32, 54, 77, 100, 122, 144, 167, 190, 212, 234, 257, 280, 302, 324, 347, 370], 2560),
    3.0: (96, [48, 82, 116, 149, 183, 217, 250, 284, 318, 352, 386, 419, 453, 487, 520, 554], 3840),
}


@pytest.mark.parametrize('width', sorted(V1_TABLE))
def test_v1_channel_schedule_matches_official(width):
    stem, outs, pen = V1_TABLE[width]
    spec = v1_spec(width)
    assert (spec.stem, [b.out_channels for b in spec.blocks], spec.pen) == (stem, outs, pen)
    assert [b.stride for b in spec.blocks] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert [bool(b.se_channels) for b in spec.blocks] == [False] * 3 + [True] * 13
    assert all(b.dw_channels == b.in_channels * (6 if i else 1) for i, b in enumerate(spec.blocks))


def test_round_half_to_even_is_used():
    # At 1.0x the exact halves 38.5, 83.5, 128.5, 173.5 become 38, 84, 128, 174 (Python round);
    # round-half-up would give 39, 84, 129, 174.
    outs = [b.out_channels for b in v1_spec(1.0).blocks]
    assert outs[2] == 38 and outs[6] == 84 and outs[10] == 128 and outs[14] == 174


def test_se_hidden_widths_and_lite_and_rexnetr_schedules():
    assert [b.se_channels for b in v1_spec(1.5).blocks][3:] == [29, 37, 46, 54, 62, 71, 79, 88, 96, 105, 113, 121, 130]
    lite = lite_spec(1.0)
    assert lite.stem == 32 and lite.pen == 1280 and lite.head_hidden == 1024
    assert [b.out_channels for b in lite.blocks] == [16, 32, 40, 48, 64, 72, 80, 96, 104, 112, 128, 136, 144, 160,
                                                     168, 184]
    r = v1_spec(1.0, ch_div=8)
    assert [b.out_channels for b in r.blocks] == [16, 32, 40, 48, 64, 72, 88, 96, 104, 120, 128, 144, 152, 160,
                                                  176, 184]
    assert make_divisible(11.0, 8) == 16 and make_divisible(90, 16) == 96


@pytest.mark.parametrize('width,count', [(0.9, 4091257), (1.0, 4796873), (1.3, 7557091), (1.5, 9728593),
                                         (2.0, 16366620), (2.2, 19485308), (3.0, 34708792)])
def test_v1_parameter_counts(width, count):
    assert n_params(ReXNetV1(width)) == count


@pytest.mark.parametrize('width,count', [(1.0, 4740056), (1.3, 6747960), (1.5, 8332296), (2.0, 12966200)])
def test_lite_parameter_counts(width, count):
    assert n_params(ReXNetV1Lite(width)) == count


def test_rexnetr_parameter_counts():
    # timm: rexnetr_200 16,522,432 and rexnetr_300 34,810,008 parameters.
    assert n_params(ReXNet(v1_spec(2.0, ch_div=8))) == 16522432
    assert n_params(ReXNet(v1_spec(3.0, ch_div=16))) == 34810008


def test_constructor_arguments():
    net = ReXNetV1(multiplier=1.3, classes=10, dropout_ratio=0.1, depth_mult=1.5, use_se=False, input_size=160)
    assert net.spec == v1_spec(1.3, 1.5, use_se=False)
    assert len(net.spec.blocks) == sum(int(np.ceil(n * 1.5)) for n in (1, 2, 2, 3, 3, 5))
    assert net.num_classes == 10 and net.input_size == 160
    assert all(b.se_channels == 0 for b in net.spec.blocks)
    assert net.output[0]._rate == 0.1
    # Arbitrary widths work and keep the official rule for w < 1 (stem 32, block 0 16).
    assert v1_spec(0.77).stem == 32 and v1_spec(0.77).blocks[0].out_channels == 16
    assert ReXNetV1(2.37).spec.pen == int(1280 * 2.37)
    for bad in (dict(width_mult=0), dict(width_mult=-1.0), dict(classes=0), dict(dropout=1.5),
                dict(se_ratio=0)):
        with pytest.raises(ValueError):
            ReXNetV1(**bad)
    with pytest.raises(ValueError, match='kernel_conf'):
        ReXNetV1Lite(kernel_conf='33')
    with pytest.raises(TypeError, match='get_model'):
        ReXNetV1(pretrained=True)


def _forward_all_modes(net, x):
    imperative = net(x).asnumpy()
    net.hybridize(static_alloc=True, static_shape=True)
    hybrid = net(x).asnumpy()
    return imperative, hybrid


@pytest.mark.parametrize('make', [lambda: ReXNetV1(1.0, classes=7), lambda: ReXNetV1Lite(1.3, classes=7),
                                  lambda: ReXNet(v1_spec(1.5, ch_div=8), classes=7)])
def test_hybridized_equals_imperative_and_export_roundtrip(make, tmp_path):
    mx.random.seed(0)
    net = make()
    net.initialize(mx.init.Xavier())
    x = mx.nd.random.normal(shape=(2, 3, 64, 64))
    imperative, hybrid = _forward_all_modes(net, x)
    assert imperative.shape == (2, 7)
    np.testing.assert_allclose(hybrid, imperative, rtol=1e-5, atol=1e-5)
    prefix = str(tmp_path / 'rexnet')
    net.export(prefix, epoch=0)
    loaded = gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    assert np.array_equal(loaded(x).asnumpy(), hybrid)


def test_float64_forward_and_export(tmp_path):
    mx.random.seed(1)
    net = ReXNetV1(1.0, classes=5)
    net.initialize(mx.init.Xavier())
    x = mx.nd.random.normal(shape=(2, 3, 48, 48))
    y32 = net(x).asnumpy()
    net.cast('float64')
    x64 = x.astype('float64')
    imperative, hybrid = _forward_all_modes(net, x64)
    assert imperative.dtype == np.float64
    np.testing.assert_allclose(imperative, y32, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(hybrid, imperative, rtol=1e-12, atol=1e-12)
    prefix = str(tmp_path / 'rexnet64')
    net.export(prefix)
    loaded = gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    loaded.cast('float64')
    assert np.array_equal(loaded(x64).asnumpy(), hybrid)


def _train_steps(net, steps=2, size=32, classes=5):
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.05, 'momentum': 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x = mx.nd.random.normal(shape=(2, 3, size, size))
    y = mx.nd.array(np.arange(2) % classes)
    losses = []
    for _ in range(steps):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(2)
        losses.append(float(loss.mean().asscalar()))
    mx.nd.waitall()
    return losses


@pytest.mark.parametrize('hybrid', [False, True], ids=['imperative', 'hybrid'])
@pytest.mark.parametrize('make', [lambda: ReXNetV1(w, classes=5) for w in (0.9, 1.0, 1.3, 1.5, 2.0, 3.0)] +
                         [lambda: ReXNetV1Lite(w, classes=5) for w in (1.0, 2.0)] +
                         [lambda: ReXNet(v1_spec(2.0, ch_div=8), classes=5)],
                         ids=['1.0x-0.9', '1.0', '1.3', '1.5', '2.0', '3.0', 'lite1.0', 'lite2.0', 'r2.0'])
def test_trains_with_onednn(make, hybrid):
    """Forward + backward + update of the whole network with oneDNN on (the default): the plain
    slice+add+concat shortcut fails here with 'could not construct a sub-memory'."""
    assert mx.runtime.Features().is_enabled('MKLDNN')
    mx.random.seed(2)
    net = make()
    net.initialize(mx.init.Xavier())
    if hybrid:
        net.hybridize(static_alloc=True, static_shape=True)
    first_w = net.features[0].weight.data().copy()
    mean_before = net.features[1].running_mean.data().copy()
    losses = _train_steps(net)
    assert all(np.isfinite(losses))
    assert not np.array_equal(net.features[0].weight.data().asnumpy(), first_w.asnumpy())  # updated
    assert not np.array_equal(net.features[1].running_mean.data().asnumpy(), mean_before.asnumpy())  # BN stats


def test_shortcut_is_exact_in_forward_and_backward():
    """Our padded shortcut equals out[:, :in] += x exactly: output, input gradient, parameter gradients."""
    mx.random.seed(3)
    block = LinearBottleneck(BlockSpec(27, 162, 38, 1), 'swish', _NormFactory())
    block.initialize(mx.init.Xavier())
    x = mx.nd.random.normal(shape=(2, 27, 9, 9))
    head = mx.nd.random.normal(shape=(2, 38, 9, 9))   # a generic upstream gradient

    def run(fn):
        xx = x.copy()
        xx.attach_grad()
        with autograd.record():
            y = fn(xx)
        y.backward(head)
        grads = {k: p.grad().asnumpy().copy() for k, p in block.collect_params().items() if p.grad_req != 'null'}
        return y.asnumpy(), xx.grad.asnumpy(), grads

    def reference(xx):
        out = block.out(xx)
        return mx.nd.concat(out[:, :27] + xx, out[:, 27:], dim=1)

    y, gx, gp = run(block)
    y_ref, gx_ref, gp_ref = run(reference)
    assert block.use_shortcut
    assert np.array_equal(y, y_ref) and np.array_equal(gx, gx_ref)
    assert all(np.array_equal(gp[k], gp_ref[k]) for k in gp)
    # The shortcut really is partial: the extra 11 channels carry no input.
    with autograd.train_mode():   # batch statistics, as in the runs above
        out = block.out(x).asnumpy()
    assert np.array_equal(y[:, 27:], out[:, 27:]) and np.array_equal(y[:, :27], out[:, :27] + x.asnumpy())


def test_feature_extractor_strides_and_shared_parameters():
    net = ReXNetV1(1.0, classes=3)
    net.initialize(mx.init.Xavier())
    assert [(f['stride'], f['channels']) for f in net.feature_info] == [(2, 16), (4, 38), (8, 61), (16, 128),
                                                                        (32, 185)]
    fe = net.feature_extractor()
    x = mx.nd.random.normal(shape=(1, 3, 64, 64))
    feats = fe(x)
    assert [f.shape for f in feats] == [(1, 38, 16, 16), (1, 61, 8, 8), (1, 128, 4, 4), (1, 185, 2, 2)]
    assert fe.channels == [38, 61, 128, 185]
    manual = net.features[:3 + 16](x)   # stem + all blocks = the stride-32 map
    assert np.array_equal(feats[-1].asnumpy(), manual.asnumpy())
    fe.hybridize()
    assert np.array_equal(fe(x)[0].asnumpy(), feats[0].asnumpy())
    with pytest.raises(ValueError, match='available strides'):
        net.feature_extractor(strides=(64,))


def test_norm_layer_and_last_gamma():
    net = ReXNetV1(1.0, classes=4, last_gamma=True)
    net.initialize()
    for block in net.features[3:19]:
        gamma = block.out[-1].gamma.data().asnumpy()
        assert (gamma == 0).all() == block.use_shortcut
    gn = ReXNetV1(1.0, classes=4, norm_layer=gluon.nn.GroupNorm)   # default 1 group divides everything
    gn.initialize()
    assert gn(mx.nd.ones((2, 3, 32, 32))).shape == (2, 4)
    with pytest.raises(ValueError, match='not divisible by 32') as err:
        ReXNetV1(1.0, norm_layer=gluon.nn.GroupNorm, norm_kwargs={'num_groups': 32})
    assert "norm_kwargs={'num_groups': 1}" in str(err.value)
    sync = ReXNetV1(1.0, classes=4, norm_layer=gluon.contrib.nn.SyncBatchNorm, norm_kwargs={'num_devices': 1})
    sync.initialize()
    assert sync(mx.nd.ones((1, 3, 32, 32))).shape == (1, 4)


def test_macs_match_published_figures():
    # rexnet-spec 1.7 (computed with hooks on timm): 0.398 / 0.662 / 0.876 / 1.529 / 3.396 G at 224.
    got = [round(v1_spec(w).macs() / 1e9, 3) for w in (1.0, 1.3, 1.5, 2.0, 3.0)]
    assert got == [0.398, 0.662, 0.876, 1.529, 3.396]
    assert v1_spec(1.0).macs(112) < v1_spec(1.0).macs(224) / 3.5


def test_default_hybridize_is_static_and_exact_across_batch_sizes():
    """``hybridize()`` without flags turns on static_alloc/static_shape (faster on CPU); the logits equal plain
    hybridization bit for bit, also when the batch size changes between calls; explicit flags are kept."""
    mx.random.seed(2)
    nets = []
    for flags in ({}, dict(static_alloc=False, static_shape=False)):
        net = ReXNetV1(1.0, classes=5, prefix='n%d_' % len(nets))
        net.initialize(mx.init.Xavier())
        if nets:
            for a, b in zip(nets[0].collect_params().values(), net.collect_params().values()):
                b.set_data(a.data())
        net.hybridize(**flags)
        nets.append(net)
    flags = [{k: dict(n._flags).get(k) for k in ('static_alloc', 'static_shape')} for n in nets]
    assert flags == [dict(static_alloc=True, static_shape=True), dict(static_alloc=False, static_shape=False)]
    for n in (2, 3, 1, 3):
        x = mx.nd.random.normal(shape=(n, 3, 48, 48))
        assert np.array_equal(nets[0](x).asnumpy(), nets[1](x).asnumpy())
