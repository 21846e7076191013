"""Inference engines (``deploy/runtimes.py``) and ``load_predictor``: each engine equals the plain network within
its rule at odd batch sizes, auto picks the fastest engine that passes and skips (saying why) one that does not,
and the predictor gives the same probabilities for paths, PIL images and arrays.

A width-1.0 ReXNet with seeded random weights and BN statistics (logits of a few units), 64 px inputs, 10 classes.
"""
import logging
import sys

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from rexnet_gluon import ReXNetV1, load_predictor
from rexnet_gluon.convert.parity import allowed_diff, randomize_gluon_
from rexnet_gluon.deploy import runtimes
from rexnet_gluon.deploy.errors import UsageError
from rexnet_gluon.deploy.export.data import generated_images, preprocess_for_size
from rexnet_gluon.deploy.export.mxnet_formats import FAST_TOLERANCE
from rexnet_gluon.zoo import get_model_info

SIZE = 64


@pytest.fixture(scope='module')
def net():
    net = ReXNetV1(1.0, classes=10)
    net.initialize(ctx=mx.cpu())
    randomize_gluon_(net, seed=5)
    net.preprocess = preprocess_for_size(get_model_info('rexnet_1.0x').preprocess, SIZE)
    net.classes = ['shape %d' % i for i in range(10)]
    return net


@pytest.fixture(scope='module')
def images(net):
    """Batches of 1, 3 and 5 generated images (other seed than the engines' own check) and their plain logits."""
    x = generated_images(5, SIZE, net.preprocess, seed=11)
    return x, net(mx.nd.array(x)).asnumpy()


@pytest.mark.parametrize('runtime', ['fast', 'openvino', 'onnxruntime'])
def test_engine_equals_the_network(net, images, runtime):
    x, ref = images
    engine = runtimes.build_engine(runtime, net, SIZE)
    assert engine.name == runtime
    scale = float(np.abs(ref).max())
    assert scale > 1.0                                   # logits big enough for the rule to mean something
    factor = FAST_TOLERANCE if runtime == 'fast' else 1.0
    assert engine.tolerance_factor == factor
    for b in (1, 3, 5):
        got = engine(x[:b])
        assert got.shape == (b, 10) and got.dtype == np.float32
        assert np.abs(got - ref[:b]).max() <= factor * allowed_diff(scale), (runtime, b)


def test_openvino_compiles_a_static_model_for_a_batch_size_that_comes_again(net, images):
    """The first call of a batch size runs the dynamic-batch model; the second compiles one for that size (up to
    ``max_static`` sizes), with the same outputs within the rule."""
    pytest.importorskip('openvino')
    x, ref = images
    engine = runtimes.build_engine('openvino', net, SIZE)
    runner = engine._run
    runner.max_static = 1
    for b in (3, 3, 3, 5, 5, 1):
        got = engine(x[:b])
        assert got.shape == (b, 10)
        assert np.abs(got - ref[:b]).max() <= allowed_diff(float(np.abs(ref).max())), b
    assert list(runner.static) == [3]                              # 5 came again, but the cache is full
    shape = runner.static[3][0].input(0).get_partial_shape()
    assert shape.is_static and list(shape.to_shape()) == [3, 3, SIZE, SIZE]
    assert runner.dynamic[0].input(0).get_partial_shape()[0].is_dynamic
    for compiled, _ in [runner.dynamic] + list(runner.static.values()):   # fp32 as the check, one stream
        assert compiled.get_property('INFERENCE_PRECISION_HINT').get_type_name() == 'f32'
        assert str(compiled.get_property('PERFORMANCE_HINT')).endswith('LATENCY')


def _shifted(builder):
    """A builder whose engine adds 1e-3 to one logit: a wrong engine that still looks plausible."""
    def build(net, size, ctx):
        engine = builder(net, size, ctx)
        run = engine._run
        engine._run = lambda x: run(x) + np.eye(1, 10, 3, dtype=np.float32) * 1e-3
        return engine
    return build


def test_auto_picks_openvino(net):
    engine, choice = runtimes.choose_engine('auto', net, SIZE, net.preprocess)
    assert engine.name == 'openvino'
    assert choice[0].startswith('openvino: parity check passed') and len(choice) == 1


def test_auto_skips_an_engine_that_fails_its_check(net, images, monkeypatch, caplog):
    monkeypatch.setitem(runtimes._BUILDERS, 'openvino', _shifted(runtimes._BUILDERS['openvino']))
    with caplog.at_level(logging.INFO, logger='rexnet_gluon.deploy.runtimes'):
        engine, choice = runtimes.choose_engine('auto', net, SIZE, net.preprocess)
    assert engine.name == 'onnxruntime'
    assert choice[0].startswith('openvino: skipped, parity check FAILED: batch 1 max|diff| 1.0e-03') or \
        choice[0].startswith('openvino: skipped, parity check FAILED: batch 1 max|diff| 9.9e-04')
    assert choice[1].startswith('onnxruntime: parity check passed')
    assert 'openvino: skipped, parity check FAILED' in caplog.text
    # An explicit runtime that fails its check is an error, not a silent fallback.
    with pytest.raises(runtimes.ParityFailure, match="runtime 'openvino' does not reproduce the network"):
        runtimes.choose_engine('openvino', net, SIZE, net.preprocess)


def test_missing_runtime_is_skipped_by_auto_and_named_when_asked_for(net, monkeypatch):
    monkeypatch.setitem(sys.modules, 'openvino', None)          # import openvino -> ImportError
    monkeypatch.setitem(runtimes._BUILDERS, 'onnxruntime', _shifted(runtimes._BUILDERS['onnxruntime']))
    engine, choice = runtimes.choose_engine('auto', net, SIZE, net.preprocess)
    assert engine.name == 'fast'
    assert 'pip install -e .[export]' in choice[0] and choice[0].startswith('openvino: skipped')
    assert choice[1].startswith('onnxruntime: skipped, parity check FAILED')
    with pytest.raises(runtimes.RuntimeUnavailable, match=r"runtime 'openvino' needs openvino.*pip install -e"):
        runtimes.build_engine('openvino', net, SIZE)


def test_fast_engine_reports_the_environment(net, monkeypatch):
    from rexnet_gluon.deploy import fast
    monkeypatch.delenv('MXNET_ENGINE_TYPE', raising=False)
    assert any('MXNET_ENGINE_TYPE=NaiveEngine' in n for n in runtimes.build_engine('fast', net, SIZE).notes)
    for k, v in fast.RECOMMENDED_ENV.items():
        monkeypatch.setenv(k, v)
    assert runtimes.build_engine('fast', net, SIZE).notes == []


def test_predictor_paths_pil_and_arrays_agree(net, tmp_path):
    rs = np.random.RandomState(0)
    pils = [Image.fromarray(rs.randint(0, 255, (90 + 10 * i, 80, 3)).astype(np.uint8)) for i in range(3)]
    paths = []
    for i, img in enumerate(pils):
        paths.append(str(tmp_path / ('img%d.png' % i)))
        img.save(paths[-1])
    pred = load_predictor(net, runtime='onnxruntime', batch_size=2)
    assert (pred.runtime, pred.num_classes, pred.classes[3]) == ('onnxruntime', 10, 'shape 3')
    from_paths = pred(paths)
    arrays = pred.batch(paths)
    assert arrays.shape == (3, 3, SIZE, SIZE)
    assert np.array_equal(pred(pils), from_paths)
    assert np.array_equal(pred(arrays), from_paths)
    # One image alone is another batch size: the runtime may round differently (seen: 5e-7).
    assert np.abs(pred(arrays[0]) - from_paths[:1]).max() < 1e-5
    assert np.abs(pred(paths[1]) - from_paths[1:2]).max() < 1e-5
    logits = net(mx.nd.array(arrays)).asnumpy().astype(np.float64)
    want = np.exp(logits - logits.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    assert from_paths.dtype == np.float32 and np.abs(from_paths - want).max() < 1e-5
    assert np.allclose(from_paths.sum(1), 1, atol=1e-6)


def test_predictor_bad_requests(net):
    with pytest.raises(UsageError, match='gpu.*MXNet sees 0 GPUs'):
        if mx.context.num_gpus():
            pytest.skip('this machine has a GPU')
        load_predictor(net, ctx=mx.gpu(0))
    with pytest.raises(UsageError, match="unknown runtime 'tensorrt'"):
        load_predictor(net, runtime='tensorrt')
    with pytest.raises(UsageError, match="unknown model 'rexnet_9.9x'"):
        load_predictor('rexnet_9.9x')
    with pytest.raises(runtimes.RuntimeUnavailable, match='CPU only'):
        runtimes.build_engine('fast', net, SIZE, ctx=mx.gpu(0))
    pred = load_predictor(net, runtime='mxnet')
    assert pred.choice == ['mxnet: the plain network (the reference)']
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        pred(np.zeros((2, 4, SIZE, SIZE), np.float32))


def test_verify_runtime_gives_the_error_rate_of_mxnet(tmp_path, capsys):
    """scripts/verify_pretrained.py --runtime onnxruntime: the same top-1/top-5 error as the plain network on a
    small folder set (random weights with BN statistics: logits of a few units, no near-ties at 4e-5)."""
    import importlib.util
    import os
    import re
    from datasets import make_shapes_dataset
    from helpers import REPO
    spec = importlib.util.spec_from_file_location('verify_script', os.path.join(REPO, 'scripts', 'verify_pretrained.py'))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    make_shapes_dataset(str(tmp_path / 'shapes'), 0, 12, 56, seed=4, rec=False)
    net = ReXNetV1(1.0, classes=4)
    net.initialize()
    randomize_gluon_(net, seed=9)
    params = str(tmp_path / 'random4.params')
    net.save_parameters(params)
    base = ['--model', 'rexnet_1.0x', '--params-file', params, '--input-size', '48', '--data-dir',
            str(tmp_path / 'shapes'), '-j', '0', '--batch-size', '10']
    errors = {}
    for runtime in ('mxnet', 'onnxruntime'):
        assert script.verify_main(base + ['--runtime', runtime]) == 0
        out = capsys.readouterr().out
        errors[runtime] = re.search(r'err-top1=([\d.]+) err-top5=([\d.]+) on 48 images', out).groups()
    assert 'Runtime onnxruntime (onnxruntime): onnxruntime: parity check passed' in out
    assert errors['onnxruntime'] == errors['mxnet'] and 0 < float(errors['mxnet'][0]) < 1, errors
    # Training's own entry point has no engines (train does not import deploy): a clear error, exit 2.
    from rexnet_gluon.train import verify_main
    assert verify_main(base + ['--runtime', 'openvino']) == 2
    assert 'run scripts/verify_pretrained.py' in capsys.readouterr().err
