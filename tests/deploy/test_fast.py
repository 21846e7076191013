"""rexnet_gluon.deploy.fast: the fast inference graph equals the plain network; INT8 agreement; benchmark smoke run.

Speed is measured by scripts/benchmark.py (rexnet_gluon/deploy/benchmark/) and never asserted here.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from rexnet_gluon.convert.parity import randomize_gluon_
import pytest

import mxnet as mx
from mxnet.gluon import nn

from rexnet_gluon import ReXNetV1, ReXNetV1Lite
from rexnet_gluon.deploy import fast

from helpers import REPO  # noqa: E402
SIZE = 64


def randomize(net, seed=0):
    """Random weights WITH random BN statistics and affine parameters (as in a trained network)."""
    return randomize_gluon_(net, seed)


def build(kind, seed=0):
    net = {'1.0': lambda: ReXNetV1(1.0), '1.5': lambda: ReXNetV1(1.5), 'lite1.0': lambda: ReXNetV1Lite(1.0),
           'r1.0': lambda: ReXNetV1(1.0, ch_div=8)}[kind]()
    net.initialize()
    randomize(net, seed)
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def images(n, seed, size=SIZE):
    return mx.nd.array(np.random.RandomState(seed).randn(n, 3, size, size).astype('float32'))


def assert_close(got, ref, tol=1e-4):
    """The project's parity rule (README): max |diff| <= tol at logit scale 15, scaled linearly above; same top-1."""
    scale = float(ref.abs().max().asscalar())
    diff = fast.max_abs_diff(got, ref)
    assert diff <= tol * max(1.0, scale / 15.0), (diff, scale)
    assert (got.argmax(axis=1) == ref.argmax(axis=1)).asnumpy().all()
    return diff


@pytest.fixture(scope='module', params=['1.0', '1.5', 'lite1.0'])
def plain(request):
    return request.param, build(request.param)


@pytest.mark.parametrize('batch', [1, 4])
def test_fast_path_matches_plain_network(plain, batch):
    """fp32, fused for oneDNN, at 224 px: within 1e-4 (x logit scale / 15) of the plain hybridized network.

    (At 64-128 px both this and MXNet's own optimize_for differ from the plain graph by up to ~1.3e-4: random
    weights amplify fp32 rounding; the float64 test below shows the graph itself is exact.)
    """
    kind, net = plain
    f = fast.prepare(net, example=(1, 3, 224, 224))
    for seed in (1, 2):   # a second, different input: nothing input-dependent may be cached by the fused graph
        x = images(batch, seed, 224)
        assert_close(f(x), net(x))


def test_one_line_optimize_for_matches_plain_network(plain):
    """The documented one-line speed-up of the plain network, ``net.optimize_for(x, backend='MKLDNN')``.

    Swish is ``x * sigmoid(x)``: the conv output has two consumers, and MXNet 1.9.1's fusion pass mishandles some
    such patterns (``y + relu(y)`` comes out wrong), so the fused graph is checked here.
    """
    kind, net = plain
    fused = build(kind)   # same seed: the same weights as ``net``
    fused.optimize_for(images(2, 0, 224), backend='MKLDNN', static_alloc=True, static_shape=True)
    for seed in (3, 4):   # a second input: nothing input-dependent may be cached by the fused graph
        x = images(2, seed, 224)
        assert_close(fused(x), net(x))


@pytest.mark.parametrize('micro_batch', [1, 0])
def test_transformation_is_exact_in_float64(plain, micro_batch):
    """BN folding, zero padding, shortcut as a full add, SE gate as BatchNorm: exact up to rounding (fp64)."""
    kind, net = plain
    net64 = build(kind)
    net64.cast('float64')
    f = fast.prepare(net, example=(max(1, micro_batch), 3, SIZE, SIZE), micro_batch=micro_batch, dtype='float64')
    for batch in (1, 4):
        x = images(batch, 3).astype('float64')
        if micro_batch == 0 and batch == 4:
            f = fast.prepare(net, example=x, micro_batch=0, dtype='float64')
        assert_close(f(x), net64(x), tol=1e-10)


def test_small_input_and_whole_batch_graph_fp32(plain):
    kind, net = plain
    for micro_batch in (1, 0):
        x = images(4, 4)
        f = fast.prepare(net, example=x, micro_batch=micro_batch)
        assert f.micro_batch == micro_batch
        for seed in (4, 5):
            x = images(4, seed)
            assert_close(f(x), net(x), tol=2e-4)   # fp32 rounding at 64 px, see above


def test_unfused_and_imperative_fast_graphs_match(plain):
    kind, net = plain
    x = images(2, 5)
    ref = net(x)
    assert_close(fast.prepare(net, example=x, fuse=False)(x), ref, tol=2e-4)
    assert_close(fast.FastReXNet(fast.folded_layers(net))(x), ref, tol=2e-4)


def test_rexnetr_and_a_replaced_dense_head():
    net = build('r1.0', seed=3)
    x = images(2, 6)
    assert_close(fast.prepare(net, example=x)(x), net(x), tol=2e-4)
    net = ReXNetV1(1.0, classes=10)
    net.initialize()
    randomize(net, 4)
    net.output = nn.HybridSequential()
    net.output.add(nn.Dropout(0.2), nn.Dense(7, in_units=1280))
    net.output.initialize()
    net.output[1].weight.set_data(mx.nd.array(np.random.RandomState(0).randn(7, 1280) * 0.05))
    net.output[1].bias.set_data(mx.nd.array(np.random.RandomState(1).randn(7) * 0.1))
    assert_close(fast.prepare(net, example=x)(x), net(x), tol=2e-4)
    net.cast('float64')
    assert_close(fast.prepare(net, example=x, dtype='float64')(x.astype('float64')), net(x.astype('float64')),
                 tol=1e-10)


def test_padding_and_folding_structure():
    net = build('1.0')
    layers = fast.folded_layers(net)
    convs = [l for l in layers if l['kind'] == 'conv']
    assert all(l['weight'].shape[0] % 16 == 0 for l in convs)
    assert all(l['weight'].shape[1] % 16 == 0 for l in convs if l['groups'] == 1 and l['weight'].shape[1] != 3)
    # padded output channels of the projection convs are exact zeros (weights and bias): they stay 0 in every layer
    spec = net.spec
    projections = [l for l in convs if l['groups'] == 1 and l['act'] is None]
    assert len(projections) == len(spec.blocks)
    for l, b in zip(projections, spec.blocks):
        assert l['weight'][b.out_channels:].shape[0] > 0 or b.out_channels % 16 == 0
        assert not l['weight'][b.out_channels:].any() and not l['bias'][b.out_channels:].any()
        assert not l['weight'][:, b.dw_channels:].any()
    # a stage's blocks share one width, so the partial shortcut is a plain (fused) add
    ends = [l for l in layers if l['kind'] == 'block_end']
    assert sum(e['shortcut'] for e in ends) == sum(b.shortcut for b in spec.blocks)
    widths = [l['weight'].shape[0] for l in projections]
    assert widths == [16, 48, 48, 64, 64, 128, 128, 128, 128, 128, 128, 192, 192, 192, 192, 192]


def test_groupnorm_cannot_be_folded():
    net = ReXNetV1(1.0, norm_layer=nn.GroupNorm, norm_kwargs={'num_groups': 1})
    net.initialize()
    with pytest.raises(ValueError, match='running statistics'):
        fast.folded_layers(net)


def test_export_round_trip(tmp_path):
    net = build('1.0')
    x = images(1, 7)
    f = fast.prepare(net, example=x, fuse=False)
    ref = f(x).copy()
    prefix = str(tmp_path / 'fast')
    f.export(prefix)
    loaded = nn.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    assert fast.max_abs_diff(loaded(x), ref) < 1e-6


def test_prepared_graph_refuses_another_input_size():
    net = build('1.0')
    f = fast.prepare(net, example=(1, 3, SIZE, SIZE))
    with pytest.raises(ValueError, match='prepared for %dx%d inputs' % (SIZE, SIZE)):
        f(images(1, 3, size=SIZE + 32))


def test_recommended_environment_is_reported():
    report = fast.env_report()
    assert set(report) == set(fast.RECOMMENDED_ENV)
    assert report['MXNET_ENGINE_TYPE'][1] == 'NaiveEngine'
    assert int(report['OMP_NUM_THREADS'][1]) >= 1


def _generated(n, seed, size=SIZE):
    """Smooth random patterns plus pixel noise (as the benchmark's child generates its calibration images)."""
    rs = np.random.RandomState(seed)
    lo = mx.nd.array(rs.rand(n, 3, 7, 7))
    img = mx.nd.contrib.BilinearResize2D(lo, height=size, width=size).asnumpy()
    img = img + 0.1 * rs.randn(*img.shape)
    mean = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    return mx.nd.array(((img - mean) / std).astype('float32'))


def test_int8_agreement(record_property):
    """INT8 (naive calibration on generated images): top-1 agreement with fp32 on a held-out generated set.

    Reported (``-s`` / junit property), only sanity-checked: a random-weight ReXNet amplifies small perturbations
    (int8-quantizing the stem conv alone moves the logits by ~13 %), so agreement with random weights says little
    about a trained network. A broken graph (e.g. an SE gate cached by a fused op) gives ~0 % and error ~1.
    """
    net = build('1.0')
    calib, held_out = _generated(16, 1), _generated(32, 2)
    q = fast.quantize(fast.prepare(net, example=calib[:1], fuse=False), calib)
    ref = net(held_out)
    got = q(held_out)
    agree = float((got.argmax(axis=1) == ref.argmax(axis=1)).mean().asscalar())
    err = float(((got - ref).norm() / ref.norm()).asscalar())
    record_property('int8_top1_agreement', agree)
    record_property('int8_relative_l2_error', err)
    print('INT8 top-1 agreement %.1f %% on %d held-out generated images, relative L2 logit error %.3f'
          % (100 * agree, held_out.shape[0], err))
    assert np.isfinite(got.asnumpy()).all()
    assert err < 0.8 and agree >= 0.2


def test_int8_agreement_on_a_trained_network(trained_shapes):
    """The fast INT8 graph on a trained 4-class ReXNet-1.0x (conftest.py): calibrated on 64 training images,
    top-1 agreement with the fp32 network on 1000 held-out images. Measured 99.0 % on the net the fixture trains
    (val error 0.05) and 96.5 % on another (val error 0.15);
    asserted >= 95 % (see tests/test_export.py::test_int8_agreement_on_a_trained_network for why not 99 %)."""
    from rexnet_gluon.deploy.export import calibration_images, preprocess_for_size
    from rexnet_gluon.deploy.predict import load_model
    from rexnet_gluon.zoo import get_model_info
    t = trained_shapes
    pp = preprocess_for_size(get_model_info('rexnet_1.0x').preprocess, t['size'])
    calib = mx.nd.array(calibration_images(t['train'], pp, 64))
    held = mx.nd.array(calibration_images(t['val'], pp, 1000))
    net = load_model('rexnet_1.0x', t['params'])
    net.hybridize(static_alloc=True, static_shape=True)
    ref = mx.nd.concat(*[net(held[i:i + 100]).copy() for i in range(0, 1000, 100)], dim=0)
    q = fast.quantize(fast.prepare(net, example=calib[:1], fuse=False), calib)
    got = mx.nd.concat(*[q(held[i:i + 100]) for i in range(0, 1000, 100)], dim=0)
    agree = float((got.argmax(axis=1) == ref.argmax(axis=1)).mean().asscalar())
    print('fast INT8 on a trained net: top-1 agreement %.1f %% on 1000 held-out images' % (100 * agree))
    assert agree >= 0.95


@pytest.mark.parametrize('mode', ['interleaved', 'sequential'])
def test_benchmark_smoke_run(tmp_path, mode):
    out = tmp_path / 'bench'
    cmd = [sys.executable, os.path.join(REPO, 'scripts', 'benchmark.py'), '--widths', '1.0', '--batches', '1',
           '--repeats', '2', '--iters', '2', '--warmup', '1', '--configs', 'mx_hybrid,mx_fast', '--no-train',
           '--size', str(SIZE), '--no-wait', '--output-dir', str(out)] + (['--sequential'] if mode == 'sequential'
                                                                          else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    md = (out / 'benchmark.md').read_text()
    assert '| width | configuration |' in md and 'MXNet fast path' in md and 'Command:' in md
    data = json.loads((out / 'benchmark.json').read_text())
    assert {r['config'] for r in data['results']} == {'mx_hybrid', 'mx_fast'}
    assert all(r['ok'] and r['median'] > 0 and r['rss_mib'] > 0 for r in data['results'])
    assert all(r['interleaved'] == (mode == 'interleaved') and len(r['rates']) == 2 for r in data['results'])
    assert (out / 'benchmark.png').stat().st_size > 1000
    assert 'machine:' in p.stdout and 'command:' in p.stdout


def test_benchmark_interleaves_and_survives_a_failing_configuration():
    """Interleaved rounds: each child answers one repeat per round; a child that fails while building is reported
    as an error and the others still finish with one rate per round."""
    from rexnet_gluon.deploy.benchmark import child, report, runner
    args = dict(repeats=3, iters=2, warmup=1, size=SIZE, calib=4, threads=1, max_foreign=0.1, wait_quiet=False)
    jobs = [dict(config='mx_hybrid', width='0.5', batch=1, args=args),
            dict(config='mx_no_such_configuration', width='0.5', batch=1, args=args),
            dict(config='mx_fast', width='0.5', batch=1, args=args)]
    envs = [{}, {}, dict(child.FAST_ENV)]
    ok, bad, fast_r = runner.run_interleaved(jobs, 1, envs, 3, timeout=300)
    assert bad['ok'] is False and 'mx_no_such_configuration' in bad['error']
    for r in (ok, fast_r):
        assert r['ok'] and len(r['rates']) == 3 and r['min'] <= r['median'] <= r['max']
    for r in (ok, fast_r):
        r['interleaved'] = True
    paired = report.speed_ratio(fast_r, ok)
    q = sorted(a / b for a, b in zip(fast_r['rates'], ok['rates']))
    assert paired == q[1]


STALE_SEQUENCE = textwrap.dedent('''
    import os, sys
    import numpy as np, mxnet as mx
    import rexnet_gluon
    from rexnet_gluon.convert.parity import allowed_diff, randomize_gluon_
    from rexnet_gluon.deploy import fast
    for name in ('rexnet_1.5x', 'rexnet_2.0x', 'rexnet_3.0x', 'rexnet_lite_1.5x'):
        net = rexnet_gluon.get_model(name)
        net.initialize()
        net(mx.nd.zeros((1, 3, 32, 32)))
        randomize_gluon_(net, 0)
        net.hybridize()
        x = mx.nd.array(np.random.RandomState(0).randn(3, 3, 32, 32).astype('float32'))
        ref = net(x).asnumpy()
        try:
            out = fast.prepare(net, example=(1, 3, 32, 32))(x).asnumpy()
        except fast.StalePrimitiveError as err:
            print(name, 'FENCED', err)
            continue
        diff = np.abs(out - ref).max()
        print(name, 'OK' if diff <= allowed_diff(np.abs(ref).max()) else 'WRONG %g' % diff)
''')


@pytest.mark.parametrize('cache', ['default', '0'])
def test_stale_onednn_primitive_is_fenced_or_avoided(cache):
    """The smallest sequence found (4 graphs, 32 px, batch 3) after which MXNet 1.9.1 failed inside the last graph
    with "can't generate TBlob for MKLDNN data". By default the failure must surface as StalePrimitiveError with
    its remedy, never as MXNet's internal message; with MXNET_MKLDNN_CACHE_NUM=0 (the remedy) every graph runs
    and equals the plain network."""
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONWARNINGS='ignore', **fast.RECOMMENDED_ENV)
    if cache == '0':
        env['MXNET_MKLDNN_CACHE_NUM'] = '0'
    res = subprocess.run([sys.executable, '-c', STALE_SEQUENCE], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith('rexnet')]
    assert len(lines) == 4 and not any('WRONG' in ln for ln in lines), res.stdout
    fenced = [ln for ln in lines if 'FENCED' in ln]
    assert all('MXNET_MKLDNN_CACHE_NUM=0' in ln for ln in fenced), fenced
    if cache == '0':
        assert not fenced, res.stdout
    print('\n' + '\n'.join(ln[:160] for ln in lines))
