"""Pretrained weights one call away: download, convert, verify, cache -- against a server on 127.0.0.1.

The checkpoints are random-weight PyTorch models saved in the real file formats of each source.
"""
import glob
import hashlib
import http.server
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time

import mxnet as mx
import numpy as np
import pytest

import rexnet_gluon
from rexnet_gluon import zoo
from rexnet_gluon.zoo import cache
from rexnet_gluon.convert import spec_from_name
from rexnet_gluon.zoo.download import DownloadError

torch = pytest.importorskip('torch')
from rexnet_gluon.convert.torch_reference import randomize_, reference_model, state_dict_in_layout  # noqa: E402

from helpers import REPO as ROOT  # noqa: E402


class Server:
    """Serves ``files`` (path -> bytes). ``/drop/...`` sends half the body and hangs up; ``/short/...`` sends half
    with no Content-Length and closes (a close-delimited body: it looks complete); ``/slow/...`` sends half, then
    waits ``slow_seconds`` before the rest."""

    def __init__(self):
        self.files, self.hits, self.slow_seconds = {}, [], 30
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server.hits.append(self.path)
                mode = next((m for m in ('/drop', '/short', '/slow') if self.path.startswith(m + '/')), '')
                data = server.files.get(self.path[len(mode):])
                if data is None:
                    return self.send_error(404)
                self.send_response(200)
                if mode == '/short':
                    self.send_header('Connection', 'close')
                    self.end_headers()
                    self.wfile.write(data[:len(data) // 2])
                    self.close_connection = True
                    return
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                if mode == '/slow':
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    time.sleep(server.slow_seconds)
                    self.wfile.write(data[len(data) // 2:])
                elif mode == '/drop':
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                else:
                    self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d' % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope='module')
def checkpoint():
    """A random timm-layout rexnet_1.0x checkpoint (zip .pth), its bytes, sha256 and reference logits."""
    spec = spec_from_name('rexnet_1.0x')
    ref = randomize_(reference_model(spec), seed=11)
    import io
    buf = io.BytesIO()
    torch.save(state_dict_in_layout(ref, spec, 1000, 'timm'), buf)
    x = np.random.RandomState(0).standard_normal((2, 3, 64, 64)).astype('float32')
    with torch.no_grad():
        logits = ref(torch.from_numpy(x)).numpy()
    data = buf.getvalue()
    return dict(data=data, sha256=hashlib.sha256(data).hexdigest(), x=x, logits=logits)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mxhome'))
    monkeypatch.setattr(cache, 'DOWNLOAD_BACKOFF', 0.0)
    monkeypatch.setattr(cache, 'DOWNLOAD_RETRIES', 2)
    return tmp_path / 'mxhome' / 'models'


def point_sources(monkeypatch, sources):
    monkeypatch.setattr(zoo.MODELS['rexnet_1.0x'], 'sources', sources)


def release_source(server, checkpoint, sha=None, drop=False):
    sha8 = checkpoint['sha256'][:8]
    name = 'rexnetv1_100-%s.pth' % sha8
    server.files['/release/' + name] = checkpoint['data']
    return dict(url=server.url + ('/drop' if drop else '') + '/release/' + name, filename=name,
                sha256=sha or sha8)


def test_download_convert_cache_then_offline(server, checkpoint, home, monkeypatch):
    point_sources(monkeypatch, [release_source(server, checkpoint)])
    net = rexnet_gluon.get_model('rexnet_1.0x', pretrained=True, root='/ignored/because/MXNET_HOME/is/set')
    got = net(mx.nd.array(checkpoint['x'])).asnumpy()
    assert np.abs(got - checkpoint['logits']).max() < 1e-4 * max(1, np.abs(got).max() / 15)
    assert len(net.classes) == 1000 and net.synset[0] == 'n01440764' and 'tench' in net.classes_long[0]
    cached = glob.glob(str(home / '*.params'))
    assert len(cached) == 1
    m = re.match(r'rexnet_1\.0x-([0-9a-f]{8})\.params$', os.path.basename(cached[0]))
    assert m and hashlib.sha1(open(cached[0], 'rb').read()).hexdigest().startswith(m.group(1))
    assert not os.path.exists(home / 'downloads' / os.path.basename(zoo.MODELS['rexnet_1.0x'].sources[0]['filename']))
    hits = len(server.hits)
    server.close()                                    # the network is gone: the cache must do
    again = rexnet_gluon.get_model('rexnet_1.0x', pretrained=True)
    assert np.array_equal(again(mx.nd.array(checkpoint['x'])).asnumpy(), got)
    alias = rexnet_gluon.get_model(' ReXNet_100.nav_in1k', pretrained=True)    # an alias finds the same cache file
    assert np.array_equal(alias(mx.nd.array(checkpoint['x'])).asnumpy(), got)
    assert len(server.hits) == hits == 1 and len(glob.glob(str(home / '*.params'))) == 1


def test_damaged_cache_file_is_replaced(server, checkpoint, home, monkeypatch):
    point_sources(monkeypatch, [release_source(server, checkpoint)])
    path = zoo.pretrained_file('rexnet_1.0x', progress=False)
    with open(path, 'r+b') as f:                      # flip bytes: the content no longer matches the name
        f.seek(200)
        f.write(b'\0' * 16)
    again = zoo.pretrained_file('rexnet_1.0x', progress=False)
    assert again == path and len(server.hits) == 2
    assert hashlib.sha1(open(again, 'rb').read()).hexdigest().startswith(os.path.basename(again)[12:20])


def test_hash_mismatch_removes_file_and_names_urls(server, checkpoint, home, monkeypatch):
    point_sources(monkeypatch, [release_source(server, checkpoint, sha='deadbeef')])
    with pytest.raises(DownloadError) as err:
        rexnet_gluon.get_model('rexnet_1.0x', pretrained=True)
    msg = str(err.value)
    assert server.url + '/release/' in msg and 'deadbeef' in msg and 'pt2mx.py' in msg
    assert not glob.glob(str(home / '*.params'))
    assert not [f for f in os.listdir(home / 'downloads') if not f.endswith('.lock')]


def test_dropped_connection_retries_then_clean_error(server, checkpoint, home, monkeypatch):
    point_sources(monkeypatch, [release_source(server, checkpoint, drop=True)])
    with pytest.raises(DownloadError) as err:
        zoo.pretrained_file('rexnet_1.0x', progress=False)
    assert len(server.hits) == cache.DOWNLOAD_RETRIES == 2
    assert '/drop/release/' in str(err.value)
    leftovers = [f for f in os.listdir(home / 'downloads') if not f.endswith('.lock')]
    assert leftovers == [] and not glob.glob(str(home / '*.params'))


def test_offline_error_lists_every_url_and_falls_back(server, checkpoint, home, monkeypatch):
    dead = 'http://127.0.0.1:9/none.pth'              # port 9 (discard) is closed here
    point_sources(monkeypatch, [dict(url=dead, filename='none.pth', sha256=None),
                                dict(url=server.url + '/hf/model.safetensors', filename='m.safetensors',
                                     sha256=None)])
    with pytest.raises(DownloadError) as err:
        zoo.pretrained_file('rexnet_1.0x', progress=False)
    assert dead in str(err.value) and server.url + '/hf/model.safetensors' in str(err.value)
    # With the second source up (safetensors, as on the HF hub), the fallback succeeds.
    from safetensors.torch import save_file
    spec = spec_from_name('rexnet_1.0x')
    tmp = str(home.parent / 'm.safetensors')
    save_file(dict(randomize_(reference_model(spec), seed=3).state_dict()), tmp)
    server.files['/hf/model.safetensors'] = open(tmp, 'rb').read()
    assert zoo.pretrained_file('rexnet_1.0x', progress=False).endswith('.params')


def _two_processes_fetch(source):
    """Two processes call pretrained_file('rexnet_1.0x') at once from ``source``; returns their (stdout, stderr)
    after asserting both succeeded."""
    script = textwrap.dedent('''
        from rexnet_gluon import zoo
        from rexnet_gluon.zoo import cache
        cache.DOWNLOAD_BACKOFF = 0.0
        zoo.MODELS['rexnet_1.0x'].sources = [%r]
        print(zoo.pretrained_file('rexnet_1.0x', progress=False))
    ''' % source)
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONWARNINGS='ignore')
    procs = [subprocess.Popen([sys.executable, '-c', script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    return outs


def test_two_processes_download_once(server, checkpoint, home, monkeypatch, tmp_path):
    source = release_source(server, checkpoint)
    outs = _two_processes_fetch(source)
    paths = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(paths) == 1 and os.path.exists(paths.pop())
    assert len(server.hits) == 1


def test_pretrained_local_file_and_fine_tune_classes(checkpoint, tmp_path, home):
    path = tmp_path / 'mine.pth'
    path.write_bytes(checkpoint['data'])
    net = rexnet_gluon.get_model('rexnet_1.0x', pretrained=str(path))
    got = net(mx.nd.array(checkpoint['x'])).asnumpy()
    assert np.abs(got - checkpoint['logits']).max() < 1e-4 * max(1, np.abs(got).max() / 15)
    params = str(tmp_path / 'mine.params')
    net.save_parameters(params)
    assert np.array_equal(rexnet_gluon.get_model('rexnet_1.0x', pretrained=params)(mx.nd.array(checkpoint['x']))
                          .asnumpy(), got)
    # Fine-tuning: 10 classes keep the pretrained body and get a fresh head.
    ft = rexnet_gluon.get_model('rexnet_1.0x', pretrained=str(path), classes=10)
    assert ft.output[1].weight.shape == (10, 1280, 1, 1)
    assert np.array_equal(ft.features[0].weight.data().asnumpy(), net.features[0].weight.data().asnumpy())
    assert not hasattr(ft, 'synset')
    with pytest.raises(FileNotFoundError, match='no such file'):
        rexnet_gluon.get_model('rexnet_1.0x', pretrained=str(tmp_path / 'absent.pth'))
    from rexnet_gluon.convert import ConversionError
    with pytest.raises(ConversionError, match='rexnet_1.3x'):       # a 1.0x file asked to be a 1.3x
        rexnet_gluon.get_model('rexnet_1.3x', pretrained=str(path))


def test_gluoncv_get_model_pretrained_with_torch_imported_first(server, checkpoint, home):
    source = release_source(server, checkpoint)
    code = textwrap.dedent('''
        import torch, numpy as np, mxnet as mx
        import rexnet_gluon
        from rexnet_gluon import zoo
        zoo.MODELS['rexnet_1.0x'].sources = [%r]
        import gluoncv
        net = gluoncv.model_zoo.get_model('rexnet_1.0x', pretrained=True)
        x = mx.nd.array(np.load(%r))
        print('LOGIT0', float(net(x)[0, 0].asscalar()), len(net.classes))
    ''' % (source, str(home.parent / 'x.npy')))
    os.makedirs(str(home.parent), exist_ok=True)
    np.save(str(home.parent / 'x.npy'), checkpoint['x'])
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONWARNINGS='ignore')
    res = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    logit0, n = re.search(r'LOGIT0 (\S+) (\d+)', res.stdout).groups()
    assert abs(float(logit0) - checkpoint['logits'][0, 0]) < 1e-3 and n == '1000'


# ------------------------------------------------------------------------------------------ a cache that heals
def _hf_source(server, checkpoint, mode=''):
    """A source that publishes no hash (as the Hugging Face hub and Google Drive)."""
    server.files['/hf/model.pth'] = checkpoint['data']
    return dict(url=server.url + mode + '/hf/model.pth', filename='hf-model.pth', sha256=None)


def _downloads(home):
    return sorted(f for f in os.listdir(home / 'downloads') if not f.endswith('.lock'))


def test_full_disk_is_caught_before_anything_is_cached(server, checkpoint, home, monkeypatch):
    """MXNet's nd.save does not report a failed final write; a truncated .params must never enter the cache."""
    point_sources(monkeypatch, [release_source(server, checkpoint)])
    real_save = mx.nd.save

    def full_disk(fname, data):      # what a full disk did: the file silently ends 4000 bytes short
        real_save(fname, data)
        with open(fname, 'r+b') as f:
            f.truncate(os.path.getsize(fname) - 4000)
    monkeypatch.setattr(mx.nd, 'save', full_disk)
    with pytest.raises(zoo.CacheError) as err:
        zoo.pretrained_file('rexnet_1.0x', progress=False)
    assert str(home) in str(err.value) and 'disk full' in str(err.value) and 'MXNET_HOME' in str(err.value)
    assert not glob.glob(str(home / '*.params')) and not glob.glob(str(home / '.*staging*'))
    monkeypatch.setattr(mx.nd, 'save', real_save)                    # space again: it recovers by itself
    path = zoo.pretrained_file('rexnet_1.0x', progress=False)
    assert len(server.hits) == 1                                     # the verified download was kept
    assert rexnet_gluon.get_model('rexnet_1.0x', pretrained=True)(mx.nd.array(checkpoint['x'])).shape == (2, 1000)
    assert path.endswith('.params') and _downloads(home) == []


def test_short_download_without_a_hash_is_removed_and_the_next_source_used(server, checkpoint, home, monkeypatch):
    short, good = _hf_source(server, checkpoint, '/short'), release_source(server, checkpoint)
    point_sources(monkeypatch, [short])
    with pytest.raises(DownloadError) as err:
        zoo.pretrained_file('rexnet_1.0x', progress=False)
    assert short['url'] + ' -> downloaded, but not a usable rexnet_1.0x checkpoint, so removed' in str(err.value)
    assert _downloads(home) == []                                    # not kept to be "reused" forever
    point_sources(monkeypatch, [short, good])
    assert zoo.pretrained_file('rexnet_1.0x', progress=False).endswith('.params')
    assert server.hits == ['/short/hf/model.pth'] * 2 + ['/release/' + good['filename']]


def test_unhashed_source_gets_its_hash_recorded_and_checked(server, checkpoint, home, monkeypatch):
    source = _hf_source(server, checkpoint)
    point_sources(monkeypatch, [source])
    first = zoo.pretrained_file('rexnet_1.0x', progress=False)
    record = home / 'downloads' / 'hf-model.pth.sha256'
    assert record.read_text().strip() == checkpoint['sha256']
    os.remove(first)
    server.files['/hf/model.pth'] = checkpoint['data'][:-10] + b'0123456789'   # the source now serves another file
    with pytest.raises(DownloadError, match='SHA-256 mismatch'):
        zoo.pretrained_file('rexnet_1.0x', progress=False)
    assert not glob.glob(str(home / '*.params'))


def test_two_processes_and_one_damaged_cache_file(server, checkpoint, home, monkeypatch):
    source = release_source(server, checkpoint)
    point_sources(monkeypatch, [source])
    path = zoo.pretrained_file('rexnet_1.0x', progress=False)
    with open(path, 'r+b') as f:
        f.seek(300)
        f.write(b'\xff' * 32)
    outs = _two_processes_fetch(source)
    assert {o[0].strip().splitlines()[-1] for o in outs} == {path}
    assert len(server.hits) == 2                                     # the first fetch, then one repair


def test_read_only_cache(server, checkpoint, home, monkeypatch):
    """Root ignores permission bits, so read-only is simulated where the cache writes: the lock file, removals."""
    point_sources(monkeypatch, [release_source(server, checkpoint)])
    good = zoo.pretrained_file('rexnet_1.0x', progress=False)
    damaged = str(home / 'rexnet_1.0x-00000000.params')              # sorts first, fails its hash
    with open(damaged, 'wb') as f:
        f.write(b'junk')
    from rexnet_gluon.zoo import download

    def read_only(*args, **kwargs):
        raise PermissionError(30, 'Read-only file system')
    monkeypatch.setattr(download, 'file_lock', read_only)
    monkeypatch.setattr(os, 'remove', read_only)
    assert zoo.pretrained_file('rexnet_1.0x', progress=False) == good   # the valid file is used
    monkeypatch.setenv('MXNET_HOME', str(home.parent / 'empty'))
    with pytest.raises(zoo.CacheError) as err:
        zoo.pretrained_file('rexnet_1.0x', progress=False)
    msg = str(err.value)
    assert str(home.parent / 'empty' / 'models') in msg and 'Read-only' in msg and 'root=' in msg


def test_killed_download_leaves_no_part_file(server, checkpoint, home, monkeypatch, tmp_path):
    source = release_source(server, checkpoint)
    slow = dict(source, url=source['url'].replace('/release/', '/slow/release/'))
    script = textwrap.dedent('''
        from rexnet_gluon import zoo
        zoo.MODELS['rexnet_1.0x'].sources = [%r]
        zoo.pretrained_file('rexnet_1.0x', progress=False)
    ''' % slow)
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONWARNINGS='ignore')
    proc = subprocess.Popen([sys.executable, '-c', script], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    parts = []
    for _ in range(600):                                             # wait for the half-written .part
        parts = glob.glob(str(home / 'downloads' / '.*.part'))
        if parts and os.path.getsize(parts[0]) > 0:
            break
        time.sleep(0.1)
    proc.kill()                                                      # SIGKILL: no clean-up can run
    proc.wait()
    assert parts and os.path.exists(parts[0])
    point_sources(monkeypatch, [source])
    assert zoo.pretrained_file('rexnet_1.0x', progress=False).endswith('.params')
    assert not glob.glob(str(home / 'downloads' / '.*.part'))


def test_mxnet_home_as_gluoncv_reads_it(monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setenv('MXNET_HOME', '~/mx')
    assert zoo.models_root('/ignored') == str(tmp_path / 'mx' / 'models')   # expanded
    monkeypatch.setenv('MXNET_HOME', '')
    assert zoo.models_root('/ignored') == 'models'                  # set but empty: GluonCV's join('', 'models')
    monkeypatch.delenv('MXNET_HOME')
    assert zoo.models_root('~/r') == str(tmp_path / 'r')


def test_fine_tuned_dense_head_loads_and_a_wrong_head_is_an_error(tmp_path):
    """Older fine-tunes saved their classifier as a Dense, (C, 1280); the zoo's is a 1x1 conv, (C, 1280, 1, 1). It
    must load as trained (it was silently left at its random initialisation), and a head of another class count
    is an error naming the tensor and both shapes, never a silent re-initialisation."""
    from rexnet_gluon.convert.parity import randomize_gluon_
    net = rexnet_gluon.get_model('rexnet_1.0x', classes=3)
    net.initialize()
    net(mx.nd.zeros((1, 3, 64, 64)))
    randomize_gluon_(net, 4)
    arrays = {k: p.data() for k, p in net._collect_params_with_prefix().items()}
    arrays['output.1.weight'] = arrays['output.1.weight'].reshape((3, -1))        # the Dense layout
    path = str(tmp_path / 'finetuned.params')
    mx.nd.save(path, arrays)
    loaded = rexnet_gluon.get_model('rexnet_1.0x', pretrained=path, classes=3)
    assert np.array_equal(loaded.output[1].weight.data().asnumpy(), net.output[1].weight.data().asnumpy())
    x = mx.nd.random.normal(shape=(2, 3, 64, 64))
    assert np.abs(loaded(x).asnumpy() - net(x).asnumpy()).max() < 1e-5
    with pytest.raises(ValueError, match=r'output\.1\.weight has shape \(3, 1280\) but the network has '
                                         r'\(5, 1280, 1, 1\): build the network with classes=3'):
        rexnet_gluon.get_model('rexnet_1.0x', pretrained=path, classes=5)


# --------------------------------------------------------------------------------------------- names users type
# (typed, zoo name): every kind of alias, in mixed case and with spaces around.
ALIAS_TABLE = [
    ('rexnet_1.3x', 'rexnet_1.3x'), (' RexNet_Lite_2.0X ', 'rexnet_lite_2.0x'), ('REXNETR_3.0x', 'rexnetr_3.0x'),
    # the family's name: its 1.0x model
    ('rexnet', 'rexnet_1.0x'), ('ReXNet', 'rexnet_1.0x'), ('rexnet_lite', 'rexnet_lite_1.0x'),
    (' REXNET_LITE\t', 'rexnet_lite_1.0x'),
    # timm's names, bare and with the tag of the zoo's weights
    ('rexnet_100', 'rexnet_1.0x'), ('rexnet_130', 'rexnet_1.3x'), ('RexNet_150', 'rexnet_1.5x'),
    ('rexnet_200', 'rexnet_2.0x'), ('rexnet_300', 'rexnet_3.0x'), ('rexnetr_200', 'rexnetr_2.0x'),
    ('rexnetr_300', 'rexnetr_3.0x'), ('rexnet_100.nav_in1k', 'rexnet_1.0x'), ('Rexnet_130.Nav_In1k', 'rexnet_1.3x'),
    ('rexnet_150.nav_in1k', 'rexnet_1.5x'), ('rexnet_200.nav_in1k', 'rexnet_2.0x'),
    ('REXNET_300.NAV_IN1K', 'rexnet_3.0x'),
    ('rexnetr_200.sw_in12k_ft_in1k', 'rexnetr_2.0x'), ('RexNetR_300.SW_IN12K_FT_IN1K', 'rexnetr_3.0x'),
    # the official release's file stems, bare and with .pth
    ('rexnetv1_1.0', 'rexnet_1.0x'), ('rexnetv1_1.3', 'rexnet_1.3x'), ('rexnetv1_1.5', 'rexnet_1.5x'),
    ('rexnetv1_2.0', 'rexnet_2.0x'), ('ReXNetV1_3.0', 'rexnet_3.0x'), ('rexnetv1_1.5.pth', 'rexnet_1.5x'),
    ('rexnet_lite_1.0', 'rexnet_lite_1.0x'), ('rexnet_lite_1.3', 'rexnet_lite_1.3x'),
    ('rexnet_lite_1.5', 'rexnet_lite_1.5x'), ('REXNET_LITE_2.0', 'rexnet_lite_2.0x'),
    ('rexnet_lite_1.3.PTH', 'rexnet_lite_1.3x'),
]


@pytest.mark.parametrize('typed, name', ALIAS_TABLE)
def test_alias_resolves_to_zoo_name(typed, name):
    assert zoo.canonical_name(typed) == name
    assert zoo.get_model_info(typed) is zoo.MODELS[name]


def test_every_zoo_entry_has_its_aliases_in_the_table():
    """The table above covers every alias the zoo defines (so a new alias gets a row)."""
    typed = {t.strip().lower() for t, _ in ALIAS_TABLE}
    assert set(zoo.ALIASES) <= typed | {a for a in zoo.ALIASES if a.endswith('.pth')}
    assert all(zoo.ALIASES[t.strip().lower()] == n for t, n in ALIAS_TABLE if t.strip().lower() in zoo.ALIASES)


@pytest.mark.parametrize('typed, close, not_close', [
    ('rexnet_1.5', ['rexnet_1.5x'], []),                              # no "x": the zoo name is suggested
    ('rexnet_lite_3.0', ['rexnet_lite_2.0 (= rexnet_lite_2.0x)'], ['= rexnet_lite_3']),   # not in the zoo
    ('rexnetr_100', ['rexnetr_200 (= rexnetr_2.0x)'], []),            # timm has it, the zoo has no weights
    ('rexnet_1.0', ['rexnet_1.0x'], []),
    ('rexnet_100.pth', ['rexnet_100.nav_in1k (= rexnet_1.0x)'], []),  # .pth only on the official file stems
    ('rexnetv1_1.0.nav_in1k', [], []),
    ('resnet50_v1', [], []),
])
def test_unknown_name_lists_close_ones(typed, close, not_close):
    with pytest.raises(ValueError) as err:
        zoo.canonical_name(typed)
    msg = str(err.value)
    assert msg.startswith('unknown model %r' % typed) and 'rexnet_gluon.get_model_list()' in msg
    assert all(name in msg for name in zoo.get_model_list())
    for c in close:
        assert c in msg.split('rexnet_gluon.get_model_list()')[0], msg
    assert not any(n in msg for n in not_close), msg
    with pytest.raises(ValueError, match='unknown model'):
        rexnet_gluon.get_model(typed)


def test_other_timm_tag_is_other_weights():
    """timm's rexnetr_200.sw_in12k is the 11821-class ImageNet-12k model, not the zoo's 1k fine-tune: an error
    that says which tag the zoo has."""
    with pytest.raises(ValueError, match=r"the zoo has timm's rexnetr_200 only with the weights "
                                         r"rexnetr_200\.sw_in12k_ft_in1k \(= rexnetr_2\.0x\)"):
        zoo.canonical_name('rexnetr_200.sw_in12k')


def test_aliases_build_models_but_are_not_listed():
    names = ['rexnet_1.0x', 'rexnet_1.3x', 'rexnet_1.5x', 'rexnet_2.0x', 'rexnet_3.0x', 'rexnet_lite_1.0x',
             'rexnet_lite_1.3x', 'rexnet_lite_1.5x', 'rexnet_lite_2.0x', 'rexnetr_2.0x', 'rexnetr_3.0x']
    assert rexnet_gluon.get_model_list() == zoo.get_model_list() == list(zoo.MODELS) == names
    net = rexnet_gluon.get_model('Rexnet_Lite', classes=3)
    assert net.spec.name == 'rexnet_lite_1.0x' and net.num_classes == 3 and net.preprocess['crop'] == 224
    assert rexnet_gluon.get_model('rexnetr_300.sw_in12k_ft_in1k').preprocess['crop'] == 288
    assert zoo.get_rexnet('rexnetv1_1.3.pth').spec.name == 'rexnet_1.3x'
    # the per-name functions are the zoo names' only (rexnet_1_0x, ...), unchanged
    functions = [n for n in zoo.__all__ if n.startswith('rexnet')]
    assert functions == [n.replace('.', '_') for n in names]
    assert not hasattr(zoo, 'rexnet_100') and zoo.rexnet_1_0x().spec.name == 'rexnet_1.0x'
