"""GluonCV integration: importing beside torch >= 2, zoo registration, running GluonCV-style scripts."""
import os
import subprocess
import sys
import textwrap

import mxnet as mx
import pytest

import rexnet_gluon
from rexnet_gluon import zoo

from helpers import REPO as ROOT  # noqa: E402


def run_py(code, *args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
               PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable] + list(args) if not code else [sys.executable, '-c', code],
                          capture_output=True, text=True, env=env, cwd=cwd or ROOT, timeout=300)


def test_names_case_insensitive_and_unknown_lists_known():
    names = rexnet_gluon.get_model_list()
    assert names == ['rexnet_1.0x', 'rexnet_1.3x', 'rexnet_1.5x', 'rexnet_2.0x', 'rexnet_3.0x', 'rexnet_lite_1.0x',
                     'rexnet_lite_1.3x', 'rexnet_lite_1.5x', 'rexnet_lite_2.0x', 'rexnetr_2.0x', 'rexnetr_3.0x']
    net = rexnet_gluon.get_model('ReXNet_1.3X', classes=3)
    assert net.spec.name == 'rexnet_1.3x' and net.num_classes == 3
    assert rexnet_gluon.get_model('rexnetr_3.0x').spec.pen == 3840
    assert zoo.rexnet_lite_1_5x().spec.name == 'rexnet_lite_1.5x'   # one function per name, GluonCV style
    with pytest.raises(ValueError) as err:
        rexnet_gluon.get_model('rexnet_9.9x')
    assert 'rexnet_1.0x' in str(err.value) and 'rexnetr_3.0x' in str(err.value)


def test_preprocessing_attributes():
    p = rexnet_gluon.get_model('rexnet_1.0x').preprocess
    assert p['mean'] == (0.485, 0.456, 0.406) and p['std'] == (0.229, 0.224, 0.225)
    assert (p['resize'], p['crop'], p['interpolation']) == (256, 224, 'bicubic')
    r = rexnet_gluon.get_model('rexnetr_2.0x').preprocess
    assert (r['input_size'], r['resize'], r['crop']) == (288, 288, 288)   # timm: 288 px, crop_pct 1.0


def _block_gammas(net):
    """[(has shortcut, [gamma of each BN in the block, in order])] for every LinearBottleneck."""
    from rexnet_gluon.model import LinearBottleneck
    out = []
    for blk in net.features._children.values():
        if isinstance(blk, LinearBottleneck):
            gammas = [p.data().asnumpy() for name, p in sorted(blk._collect_params_with_prefix().items(),
                                                                key=lambda kv: [int(t) if t.isdigit() else t
                                                                                for t in kv[0].split('.')])
                      if name.endswith('gamma') and '.fc.' not in name]
            out.append((blk.use_shortcut, gammas))
    return out


def test_gluoncv_kwargs_ctx_list_and_fine_tune_head(tmp_path, monkeypatch):
    ctx = [mx.cpu(0), mx.cpu(1)]
    net = rexnet_gluon.get_model('rexnet_1.0x', pretrained=False, ctx=ctx, classes=1000, last_gamma=True,
                                 input_size=160, root='/nonexistent')
    net.initialize(ctx=ctx)
    assert net.input_size == 160
    blocks = _block_gammas(net)
    assert sum(s for s, _ in blocks) >= 5
    for shortcut, gammas in blocks:     # last_gamma: the last BN of each residual block starts at 0, no other
        assert (gammas[-1] == 0).all() == shortcut
        assert all((g == 1).all() for g in gammas[:-1])
    plain = rexnet_gluon.get_model('rexnet_1.0x')
    plain.initialize()
    assert all((g == 1).all() for _, gammas in _block_gammas(plain) for g in gammas)
    # root: where pretrained weights are looked up (when $MXNET_HOME is unset, GluonCV's rule)
    monkeypatch.delenv('MXNET_HOME', raising=False)
    with pytest.raises(ValueError, match='no cached rexnet_1.0x-0123abcd.params in %s' % (tmp_path / 'models')):
        rexnet_gluon.get_model('rexnet_1.0x', pretrained='0123abcd', root=str(tmp_path / 'models'))
    with net.name_scope():
        net.output = mx.gluon.nn.Dense(5)   # the GluonCV transfer-learning recipe
    net.output.initialize(mx.init.Xavier(), ctx=ctx)
    net.hybridize()
    outs = [net(mx.nd.ones((1, 3, 64, 64), ctx=c)) for c in ctx]
    assert [o.shape for o in outs] == [(1, 5), (1, 5)]
    assert (outs[0].asnumpy() == outs[1].asnumpy()).all()


def test_import_gluoncv_beside_torch2_and_registration():
    code = textwrap.dedent('''
        import torch
        assert int(torch.__version__.split('.')[0]) >= 2
        import rexnet_gluon
        import gluoncv                                # would raise RuntimeError without rexnet_gluon
        from gluoncv.model_zoo import get_model, get_model_list
        net = get_model('ReXNet_1.0x', classes=10)    # GluonCV lower-cases the name
        assert type(net).__name__ == 'ReXNetV1', type(net)
        assert all(n in get_model_list() for n in rexnet_gluon.get_model_list())
        assert get_model('mobilenetv2_1.0', classes=3) is not None   # GluonCV's own zoo is intact
        print('torch ok', float(torch.ones(3).sum()))  # torch still usable
    ''')
    res = run_py(code)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'torch ok 3.0' in res.stdout


def test_plain_gluoncv_import_fails_without_us():
    """The problem we solve is real in this environment: a bare `import gluoncv` beside torch 2 fails."""
    res = run_py('import torch, gluoncv')
    assert res.returncode != 0 and 'torch' in res.stderr


STAND_IN_SCRIPT = '''
import argparse, mxnet as mx
from gluoncv.model_zoo import get_model      # as train_imagenet.py does
p = argparse.ArgumentParser()
p.add_argument('--model', required=True)
p.add_argument('--num-gpus', type=int, default=0)
p.add_argument('--use-pretrained', action='store_true')
p.add_argument('--last-gamma', action='store_true')
p.add_argument('--mode', default=None)
opt = p.parse_args()
context = [mx.gpu(i) for i in range(opt.num_gpus)] if opt.num_gpus > 0 else [mx.cpu()]
kwargs = {'ctx': context, 'pretrained': opt.use_pretrained, 'classes': 1000}
if opt.last_gamma:
    kwargs['last_gamma'] = True
net = get_model(opt.model, **kwargs)
net.initialize(mx.init.MSRAPrelu(), ctx=context)
if opt.mode == 'hybrid':
    net.hybridize(static_alloc=True, static_shape=True)
out = net(mx.nd.ones((2, 3, 64, 64), ctx=context[0]))
print('STANDIN', opt.model, type(net).__name__, out.shape)
'''


def test_wrapper_runs_unmodified_gluoncv_style_script(tmp_path):
    script = tmp_path / 'train_imagenet.py'
    script.write_text(STAND_IN_SCRIPT)
    res = run_py(None, '-m', 'rexnet_gluon.gluoncv', str(script), '--model', 'rexnet_lite_1.0x', '--mode', 'hybrid',
                 '--last-gamma', cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'STANDIN rexnet_lite_1.0x ReXNetV1Lite (2, 1000)' in res.stdout
    bad = run_py(None, '-m', 'rexnet_gluon.gluoncv', str(tmp_path / 'missing.py'))
    assert bad.returncode == 2 and 'is not a file' in bad.stderr


def test_model_table_command():
    res = run_py(None, '-m', 'rexnet_gluon', 'models')
    assert res.returncode == 0, res.stderr[-1000:]
    rows = [l for l in res.stdout.splitlines() if l.startswith('| rexnet')]
    assert len(rows) == 11
    assert '| rexnet_1.0x | 4,796,873 | 0.398 G |' in res.stdout and '| rexnetr_3.0x | 34,810,008 |' in res.stdout
