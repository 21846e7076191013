"""The engine cache (``deploy/engine_cache.py``): the openvino / onnxruntime engines export a network once and load
the file afterwards; the key follows the weights (not the block's name prefix); a damaged cached file is removed
and made again; an unwritable cache or ``REXNET_ENGINE_CACHE=0`` only costs the reuse. Each engine, from a new or a
cached file, equals the network within the parity rule."""
import glob
import os

import mxnet as mx
import numpy as np
import pytest

from rexnet_gluon import ReXNetV1
from rexnet_gluon.convert.parity import allowed_diff, randomize_gluon_
from rexnet_gluon.deploy import engine_cache, runtimes
from rexnet_gluon.deploy.export.data import generated_images
from rexnet_gluon.zoo import get_model_info

SIZE = 48


def _net(seed=5):
    net = ReXNetV1(1.0, classes=10)
    net.initialize(ctx=mx.cpu())
    randomize_gluon_(net, seed=seed)
    return net


@pytest.fixture(scope='module')
def net():
    return _net()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'home'))
    monkeypatch.delenv(engine_cache.ENGINE_CACHE_ENV, raising=False)
    return tmp_path / 'home' / 'models' / 'engines'


def _cached_files(folder):
    return sorted(glob.glob(str(folder / '*.onnx')))


def _assert_equals_network(engine, net):
    x = generated_images(3, SIZE, get_model_info('rexnet_1.0x').preprocess, seed=11)
    ref = net(mx.nd.array(x)).asnumpy()
    assert np.abs(engine(x) - ref).max() <= allowed_diff(float(np.abs(ref).max()))


@pytest.mark.parametrize('runtime', ['openvino', 'onnxruntime'])
def test_second_engine_comes_from_the_cache(net, home, runtime):
    pytest.importorskip(runtime)
    first = runtimes.build_engine(runtime, net, SIZE)
    files = _cached_files(home)
    assert len(files) == 1 and 'made now ' + files[0] in first.notes[-1]
    key = engine_cache.network_key(net, SIZE)
    assert os.path.basename(files[0]).startswith(key + '-')
    second = runtimes.build_engine(runtime, net, SIZE)
    assert 'cached at ' + files[0] in second.notes[-1] and _cached_files(home) == files
    for engine in (first, second):
        _assert_equals_network(engine, net)


def test_key_follows_the_weights_not_the_block(net):
    twin = _net()                                   # same weights, another instance (another name prefix)
    assert engine_cache.network_key(twin, SIZE) == engine_cache.network_key(net, SIZE)
    assert engine_cache.network_key(net, SIZE + 16) != engine_cache.network_key(net, SIZE)
    stats = twin.features[1].running_mean           # a BatchNorm statistic: not a trained weight, still the net
    stats.set_data(stats.data() + 1e-6)
    assert engine_cache.network_key(twin, SIZE) != engine_cache.network_key(net, SIZE)


def test_damaged_cached_file_is_made_again(net, home, caplog):
    pytest.importorskip('onnxruntime')
    runtimes.build_engine('onnxruntime', net, SIZE)
    [path] = _cached_files(home)
    with open(path, 'r+b') as f:                    # one byte changed inside the weights
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    engine = runtimes.build_engine('onnxruntime', net, SIZE)
    assert "no longer has its name's SHA-1" in caplog.text
    assert 'made now' in engine.notes[-1] and _cached_files(home) == [path]    # the same content again
    _assert_equals_network(engine, net)


def test_unwritable_cache_or_cache_off_still_builds(net, tmp_path, monkeypatch):
    pytest.importorskip('onnxruntime')
    blocker = tmp_path / 'a-file'
    blocker.write_text('not a folder')
    monkeypatch.setenv('MXNET_HOME', str(blocker))
    engine = runtimes.build_engine('onnxruntime', net, SIZE)
    assert 'not cached' in engine.notes[-1]
    _assert_equals_network(engine, net)
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'home'))
    monkeypatch.setenv(engine_cache.ENGINE_CACHE_ENV, '0')
    engine = runtimes.build_engine('onnxruntime', net, SIZE)
    assert 'not cached' in engine.notes[-1] and not (tmp_path / 'home').exists()
    _assert_equals_network(engine, net)
