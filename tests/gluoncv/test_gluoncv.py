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


def test_gluoncv_get_model_takes_aliases_and_lists_zoo_names_only():
    """GluonCV's get_model() ('name.lower()', then '_models[name]') finds the aliases after registration; its
    get_model_list() grows by the 11 zoo names only, and its own names and errors are untouched."""
    code = textwrap.dedent('''
        import rexnet_gluon
        import gluoncv
        from gluoncv.model_zoo import get_model, get_model_list
        rexnet_gluon.register_gluoncv()               # again: idempotent
        added = [n for n in get_model_list() if 'rexnet' in n]     # GluonCV has no ReXNet of its own
        assert added == rexnet_gluon.get_model_list(), added
        assert not set(get_model_list()) & set(rexnet_gluon.zoo.ALIASES)
        for typed, name in [('REXNET_100', 'rexnet_1.0x'), ('rexnet', 'rexnet_1.0x'),
                            ('ReXNet_Lite', 'rexnet_lite_1.0x'), ('rexnetr_200.sw_in12k_ft_in1k', 'rexnetr_2.0x'),
                            ('rexnetv1_1.5.pth', 'rexnet_1.5x')]:
            net = get_model(typed, classes=10)
            assert net.spec.name == name and net.num_classes == 10, (typed, net.spec.name)
        assert type(get_model('mobilenetv2_1.0', classes=3)).__name__ == 'MobileNetV2'
        for bad in ('rexnet_lite_3.0', 'rexnetr_200.sw_in12k', 'resnet50_v9'):
            try:
                get_model(bad)
            except ValueError as err:
                assert 'is not among the following model list' in str(err) and 'rexnet_100' not in str(err)
            else:
                raise AssertionError(bad)
        print('aliases ok', len(added))
    ''')
    res = run_py(code)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'aliases ok 11' in res.stdout


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


# GluonCV's train_imagenet.py (master), its model, trainer, RecordIO data and checkpoint lines kept as they are
TRAIN_STAND_IN_SCRIPT = '''
import argparse, logging, os, mxnet as mx
from mxnet import autograd as ag, gluon
from gluoncv.model_zoo import get_model
p = argparse.ArgumentParser()
p.add_argument('--model', required=True)
p.add_argument('--rec-train', required=True)
p.add_argument('--rec-train-idx', required=True)
p.add_argument('--input-size', type=int, default=224)
p.add_argument('--batch-size', type=int, default=8)
p.add_argument('--num-epochs', type=int, default=1)
p.add_argument('--save-dir', default='params')
opt = p.parse_args()
logging.basicConfig(level=logging.INFO)
logging.info(opt)
context, classes = [mx.cpu()], 1000
model_name = opt.model
net = get_model(model_name, ctx=context, pretrained=False, classes=classes)
train_data = mx.io.ImageRecordIter(path_imgrec=opt.rec_train, path_imgidx=opt.rec_train_idx, shuffle=True,
                                   batch_size=opt.batch_size, data_shape=(3, opt.input_size, opt.input_size),
                                   preprocess_threads=1, rand_mirror=True)
net.initialize(mx.init.MSRAPrelu(), ctx=context)
net.hybridize(static_alloc=True, static_shape=True)
trainer = gluon.Trainer(net.collect_params(), 'nag', {'learning_rate': 0.1, 'wd': 1e-4, 'momentum': 0.9})
L = gluon.loss.SoftmaxCrossEntropyLoss()
os.makedirs(opt.save_dir, exist_ok=True)
for epoch in range(opt.num_epochs):
    train_data.reset()
    for i, batch in enumerate(train_data):
        data = gluon.utils.split_and_load(batch.data[0], ctx_list=context, batch_axis=0)
        label = gluon.utils.split_and_load(batch.label[0], ctx_list=context, batch_axis=0)
        with ag.record():
            loss = [L(net(X), y) for X, y in zip(data, label)]
        for l in loss:
            l.backward()
        trainer.step(opt.batch_size)
        logging.info('Epoch[%d] Batch [%d] loss=%f', epoch, i, loss[0].mean().asscalar())
    net.save_parameters('%s/imagenet-%s-%d.params' % (opt.save_dir, model_name, epoch))
    trainer.save_states('%s/imagenet-%s-%d.states' % (opt.save_dir, model_name, epoch))
print('TRAINED', model_name, type(net).__name__)
'''
GLUONCV_TRAIN_IMAGENET = os.environ.get('GLUONCV_TRAIN_IMAGENET')   # gluon-cv/scripts/classification/imagenet/...


@pytest.mark.parametrize('script', ['stand-in', pytest.param('gluoncv', marks=pytest.mark.skipif(
    not GLUONCV_TRAIN_IMAGENET, reason='set GLUONCV_TRAIN_IMAGENET to GluonCV\'s train_imagenet.py to run it'))])
def test_gluoncv_train_imagenet_with_model_rexnet(script, tmp_path):
    """``python -m rexnet_gluon.gluoncv train_imagenet.py --model rexnet`` (issue 11's literal command) trains on
    tiny RecordIO data; the wrapper hands the script the zoo name, so its logs and checkpoints carry rexnet_1.0x.
    GluonCV master's own script needs --use-rec on MXNet: its ImageFolder path indexes the batch wrongly."""
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    from datasets import make_shapes_dataset
    data = make_shapes_dataset(str(tmp_path / 'data'), train_per_class=8, val_per_class=4, size=32)
    rec = ['--rec-train', data['rec_train'], '--rec-train-idx', data['idx_train']]
    if script == 'gluoncv':
        path = GLUONCV_TRAIN_IMAGENET
        args = rec + ['--use-rec', '--rec-val', data['rec_val'], '--rec-val-idx', data['idx_val'], '-j', '1',
                      '--num-training-samples', '32', '--save-frequency', '1', '--logging-file',
                      str(tmp_path / 'train.log'), '--mode', 'hybrid']
    else:
        path = str(tmp_path / 'train_imagenet.py')
        with open(path, 'w') as f:
            f.write(TRAIN_STAND_IN_SCRIPT)
        args = rec
    res = run_py(None, '-m', 'rexnet_gluon.gluoncv', path, '--model', 'rexnet', '--input-size', '32',
                 '--batch-size', '8', '--num-epochs', '1', '--save-dir', str(tmp_path / 'params'), *args,
                 cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count('rexnet_gluon: rexnet -> rexnet_1.0x') == 1
    assert "model='rexnet_1.0x'" in res.stderr and 'Epoch[0] Batch [' in res.stderr
    assert {'imagenet-rexnet_1.0x-0.params', 'imagenet-rexnet_1.0x-0.states'} <= set(os.listdir(tmp_path / 'params'))
    weights = mx.nd.load(str(tmp_path / 'params' / 'imagenet-rexnet_1.0x-0.params'))
    assert weights['output.1.weight'].shape == (1000, 1280, 1, 1)
    assert script == 'gluoncv' or 'TRAINED rexnet_1.0x ReXNetV1' in res.stdout


def test_wrapper_rewrites_only_rexnet_aliases():
    from rexnet_gluon.gluoncv.__main__ import canonical_argv
    args, notes = canonical_argv(['--model=REXNET_LITE', '--teacher', 'rexnet_300', '--data-dir', 'rexnet',
                                  '--model-kwargs', 'rexnet', '--lr', '0.1'])
    assert args == ['--model=rexnet_lite_1.0x', '--teacher', 'rexnet_3.0x', '--data-dir', 'rexnet', '--model-kwargs',
                    'rexnet', '--lr', '0.1']
    assert notes == ['REXNET_LITE -> rexnet_lite_1.0x', 'rexnet_300 -> rexnet_3.0x']
    assert canonical_argv(['--model', 'resnet50_v1b', '--teacher', 'rexnet_1.0x']) == \
        (['--model', 'resnet50_v1b', '--teacher', 'rexnet_1.0x'], [])


def test_model_table_command():
    res = run_py(None, '-m', 'rexnet_gluon', 'models')
    assert res.returncode == 0, res.stderr[-1000:]
    rows = [l for l in res.stdout.splitlines() if l.startswith('| rexnet')]
    assert len(rows) == 11
    assert '| rexnet_1.0x | 4,796,873 | 0.398 G |' in res.stdout and '| rexnetr_3.0x | 34,810,008 |' in res.stdout
