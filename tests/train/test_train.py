"""scripts/train_imagenet.py, finetune.py and verify_pretrained.py on small real image data sets (tests/datasets.py).

Most runs call the scripts' ``main(argv)`` in this process (the real argument parsing, data, loop, checkpoints and
logs); runs whose exit status, stdin or process-global state matter (NaN exit code, DALI, AMP, dist_sync) run as
subprocesses. A small ReXNet (``--model-kwargs`` width 0.5, depth 0.5) at 48 px keeps the whole file in a few minutes
on 2 CPU cores.
"""
import csv
import importlib.util
import json
import math
import os
import re

import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from rexnet_gluon.train import data as D
from rexnet_gluon.train.checkpoints import find_latest_checkpoint
from rexnet_gluon.train.finetune import finetune_net
from rexnet_gluon.train.flags import parse_args
from rexnet_gluon.train.logs import close_logger
from rexnet_gluon.train.models import create_model
from rexnet_gluon.train.runtime import Runtime
from rexnet_gluon.train.session import Session

from datasets import CLASSES, make_shapes_dataset  # noqa: E402

from helpers import REPO as ROOT  # noqa: E402

SCRIPTS = os.path.join(ROOT, 'scripts')
SMALL = '{"width_mult": 0.5, "depth_mult": 0.5}'
BASE = ['--model', 'rexnet_1.0x', '--model-kwargs', SMALL, '--input-size', '48', '-j', '0', '--no-progress',
        '--seed', '3']
MODEL = 'rexnet_1.0x'


def _script(name):
    spec = importlib.util.spec_from_file_location('script_' + name, os.path.join(SCRIPTS, name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_main = _script('train_imagenet').main
finetune_main = _script('finetune').finetune_main
verify_main = _script('verify_pretrained').verify_main


def run_script(name, *args, timeout=300):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    env.pop('DMLC_ROLE', None)
    return subprocess.run([sys.executable, os.path.join(SCRIPTS, name + '.py')] + list(args), capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL)


def train(tmp, *args, name='run'):
    """In-process scripts/train_imagenet.py; returns (exit status, save dir, log text)."""
    save = os.path.join(str(tmp), name)
    log = os.path.join(save, 'train.log')
    status = train_main(BASE + ['--save-dir', save, '--logging-file', log] + list(args))
    text = open(log).read() if os.path.exists(log) else ''
    return status, save, text


def load_params(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def logged_lrs(text):
    return [float(x) for x in re.findall(r'Batch \[\d+\]\tSpeed: [\d.]+ samples/sec\taccuracy=[\d.]+\tlr=([\d.]+)',
                                         text)]


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    """600 training / 200 validation images of 48x48 px, 4 classes, as image folders and RecordIO."""
    return make_shapes_dataset(str(tmp_path_factory.mktemp('shapes')), train_per_class=150, val_per_class=50,
                               size=48)


@pytest.fixture(scope='module')
def learned(shapes, tmp_path_factory):
    """The learning run (also the source of a trained checkpoint for the fine-tuning / verify / teacher tests)."""
    tmp = tmp_path_factory.mktemp('learn')
    tic = time.time()
    status, save, log = train(tmp, '--data-dir', shapes['root'], '-j', '2', '--mode', 'hybrid', '--batch-size', '16',
                              '--num-epochs', '12', '--lr', '0.05', '--lr-mode', 'cosine', '--warmup-epochs', '1',
                              '--dropout', '0', '--no-wd', '--min-random-area', '0.3', '--color-jitter', '0.2',
                              '--pca-noise', '0', '--seed', '1', '--save-frequency', '4', '--plot')
    return dict(status=status, save=save, log=log, seconds=time.time() - tic)


# --------------------------------------------------------------------------------------------- learning + outputs
def test_learns_shapes_well_above_chance(learned, shapes):
    assert learned['status'] == 0, learned['log'][-3000:]
    rows = read_csv(os.path.join(learned['save'], 'metrics.csv'))
    assert [int(r['epoch']) for r in rows] == list(range(12))
    final = float(rows[-1]['val_top1'])
    print('learning: val top-1 %.3f after 12 epochs (chance 0.25), %.1f s' % (final, learned['seconds']))
    assert final >= 0.7, rows
    assert float(rows[-1]['train_loss']) < float(rows[0]['train_loss'])
    # GluonCV log lines and the counted sample number (the folder's file count)
    log = learned['log']
    assert '[Epoch 11] validation: err-top1=' in log and 'Training time for 12 epochs' in log
    assert '%d training samples (counted in %s)' % (shapes['num_train'], os.path.join(shapes['root'], 'train')) in log
    assert '37 batches/epoch, 37 iterations/epoch in the LR schedule' in log       # 600 // 16


def test_outputs_metrics_plot_and_checkpoints(learned):
    save = learned['save']
    with open(os.path.join(save, 'metrics.json')) as f:
        meta = json.load(f)
    assert [r['epoch'] for r in meta['epochs']] == list(range(12))
    assert meta['hyperparameters']['lr_mode'] == 'cosine' and meta['args']['seed'] == 1
    png = os.path.join(save, 'training_curves.png')
    with open(png, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    from PIL import Image
    assert Image.open(png).size[0] > 400
    files = os.listdir(save)
    assert not [f for f in files if '.tmp' in f], files                      # atomic writes leave nothing behind
    for epoch in (3, 7, 11):                                                  # --save-frequency 4 (+ the last)
        for ext in ('.params', '.states', '.json'):
            assert 'imagenet-%s-%d%s' % (MODEL, epoch, ext) in files
    best = [f for f in files if f.endswith('-best.params')]
    assert best and all(re.match(r'\d\.\d{4}-imagenet-rexnet_1\.0x-\d+-best\.params$', f) for f in best)
    latest = find_latest_checkpoint(save, 'imagenet', MODEL)
    assert latest['epoch'] == 11 and latest['kind'] == 'periodic'
    assert len(latest['history']) == 12


def test_verify_pretrained_reproduces_validation(learned, shapes, capsys):
    params = os.path.join(learned['save'], 'imagenet-%s-11.params' % MODEL)
    err = float(read_csv(os.path.join(learned['save'], 'metrics.csv'))[-1]['val_err_top1'])
    for source in (['--data-dir', shapes['root']], ['--rec-val', shapes['rec_val']]):
        assert verify_main(['--model', MODEL, '--model-kwargs', SMALL, '--params-file', params, '--input-size', '48',
                            '--batch-size', '50', '-j', '0'] + source) == 0
        out = capsys.readouterr().out
        final = re.search(r'rexnet_1.0x: err-top1=([\d.]+) err-top5=([\d.]+) on 200 images', out)
        assert final, out
        # the same images, pipelines equal to 2e-7 (python and RecordIO): the same error up to a near-tie
        assert float(final.group(1)) == pytest.approx(err, abs=0.006)
        assert '[4/4] err-top1=' in out and 'Throughput:' in out and 'Parameters:' in out
    assert verify_main(['--model', MODEL, '--model-kwargs', SMALL, '--params-file', params, '--input-size', '48',
                        '--benchmark', '--num-batches', '2', '--batch-size', '4', '--cpus', '2']) == 0
    assert re.search(r'benchmark of 2 batches of 8 at 48x48: [\d.]+ images/sec', capsys.readouterr().out)


def test_finetune_new_head_and_body_lr_mult(learned, shapes, tmp_path):
    body = os.path.join(learned['save'], 'imagenet-%s-11.params' % MODEL)
    save = str(tmp_path / 'ft')
    status = finetune_main(BASE + ['--data-dir', shapes['root'], '--pretrained', body, '--body-lr-mult', '0.1',
                                   '--batch-size', '16', '--num-epochs', '2', '--lr', '0.05', '--save-dir', save,
                                   '--logging-file', os.path.join(save, 'ft.log'), '--save-frequency', '1',
                                   '--min-random-area', '0.3'])
    log = open(os.path.join(save, 'ft.log')).read()
    assert status == 0, log[-2000:]
    assert re.search(r'body and dropout from %s with lr_mult 0\.1; new classifier output\.1 \(1x1 conv \d+ -> 4\) '
                     r'with lr_mult 1' % re.escape(body), log), log
    params = load_params(os.path.join(save, 'finetune-%s-1.params' % MODEL))
    assert params['output.1.weight'].shape[::2] == (4, 1)            # the zoo's 1x1 conv classifier, nothing else
    assert sorted(k for k in params if k.startswith('output.')) == ['output.1.bias', 'output.1.weight']
    meta = json.load(open(os.path.join(save, 'finetune-%s-1.json' % MODEL)))
    assert meta['class_names'] == list(CLASSES) and meta['preprocess']['input_size'] == 48
    rows = read_csv(os.path.join(save, 'metrics.csv'))
    assert float(rows[-1]['val_top1']) >= 0.7       # the trained body transfers at once
    # lr_mult set on the real parameters the trainer sees
    opt = parse_args(BASE + ['--data-dir', shapes['root'], '--pretrained', body, '--save-dir', '',
                             '--logging-file', ''], kind='finetune')
    r = Session(opt, finetune_net, 'finetune')
    try:
        r.setup()
        mults = {k: p.lr_mult for k, p in r.learner.net._collect_params_with_prefix().items()}
        assert mults['output.1.weight'] == 1.0 and mults['features.0.weight'] == 0.1
    finally:
        r.close()
        close_logger(r.logger)


# ------------------------------------------------------------------------------------------------------ resume
RESUME = ['-j', '2', '--mode', 'hybrid', '--batch-size', '16', '--max-batches-per-epoch', '4', '--save-frequency', '1',
          '--lr-mode', 'cosine', '--warmup-epochs', '1', '--warmup-lr', '0.01', '--randaugment', 'rand-m9-mstd0.5',
          '--reprob', '0.3', '--mixup', '--label-smoothing', '--seed', '7']
TIMING = ('samples_per_sec', 'epoch_time')


def _metrics(save):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_csv(os.path.join(save, 'metrics.csv'))]


@pytest.mark.parametrize('cpus', [1, 2], ids=['one-device', 'two-devices'])
def test_resume_equals_uninterrupted_run(shapes, tmp_path, cpus):
    """Bit-exact, on several devices too: each device's BatchNorm running statistics are saved (.devstats) and
    restored, not their average that .params holds. The two-device run uses nag_torch (its states pickle the
    optimizer: rexnet_gluon.train.optimizer.NAGTorch), the one-device run MXNet's nag."""
    data = ['--data-dir', shapes['root'], '--num-epochs', '2'] + (['--cpus', str(cpus), '--optimizer', 'nag_torch']
                                                                  if cpus > 1 else [])
    status, full, _ = train(tmp_path, *(data + RESUME), name='full')
    assert status == 0
    # interrupted (Ctrl-C after epoch 0 is saved), then --resume picks up the latest checkpoint
    status, part, log = train(tmp_path, *(data + RESUME + ['--interrupt-after-epoch', '0', '--plot']), name='part')
    assert status == 130 and 'continue with --resume' in log
    assert os.path.exists(os.path.join(part, 'training_curves.png'))          # the plot is written on interruption
    status, part, log = train(tmp_path, *(data + RESUME + ['--resume']), name='part')
    assert status == 0 and '--resume: continuing from' in log and 'next epoch 1' in log
    a = load_params(os.path.join(full, 'imagenet-%s-1.params' % MODEL))
    b = load_params(os.path.join(part, 'imagenet-%s-1.params' % MODEL))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)                  # bit-exact
    with open(os.path.join(full, 'imagenet-%s-1.states' % MODEL), 'rb') as f1, \
            open(os.path.join(part, 'imagenet-%s-1.states' % MODEL), 'rb') as f2:
        assert f1.read() == f2.read()                                         # momentum and update count too
    assert _metrics(full) == _metrics(part)
    if cpus > 1:
        assert os.path.isfile(os.path.join(part, 'imagenet-%s-0.devstats' % MODEL))


def test_killed_run_resumes_equal_to_uninterrupted(shapes, tmp_path):
    """SIGKILL mid-epoch (no clean stop, loader worker processes running): --resume continues from the last
    complete checkpoint and ends bit-identical to an uninterrupted run."""
    data = ['--data-dir', shapes['root'], '--num-epochs', '2']
    status, full, _ = train(tmp_path, *(data + RESUME), name='full')
    assert status == 0
    part = str(tmp_path / 'part')
    r = run_script('train_imagenet', *(BASE + data + RESUME + ['--save-dir', part, '--logging-file', part + '/log',
                                                               '--kill-at-step', '6']))   # epoch 1, batch 1
    assert r.returncode == -9, r.stderr[-2000:]
    assert find_latest_checkpoint(part, 'imagenet', MODEL)['epoch'] == 0
    status, part, log = train(tmp_path, *(data + RESUME + ['--resume']), name='part')
    assert status == 0 and 'next epoch 1' in log
    a = load_params(os.path.join(full, 'imagenet-%s-1.params' % MODEL))
    b = load_params(os.path.join(part, 'imagenet-%s-1.params' % MODEL))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert _metrics(full) == _metrics(part)


def test_resume_one_epoch_then_second_constant_lr(shapes, tmp_path):
    """The literal recipe: --num-epochs 1, then --resume --num-epochs 2 (the schedule must not depend on the total:
    step mode without decay)."""
    common = ['--data-dir', shapes['root'], '--batch-size', '16', '--max-batches-per-epoch', '3',
              '--save-frequency', '1', '--lr-mode', 'step', '--lr', '0.05', '--seed', '5']
    assert train(tmp_path, *(common + ['--num-epochs', '2']), name='full')[0] == 0
    assert train(tmp_path, *(common + ['--num-epochs', '1']), name='part')[0] == 0
    status, part, log = train(tmp_path, *(common + ['--num-epochs', '2', '--resume']), name='part')
    assert status == 0
    a = load_params(os.path.join(str(tmp_path), 'full', 'imagenet-%s-1.params' % MODEL))
    b = load_params(os.path.join(part, 'imagenet-%s-1.params' % MODEL))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert _metrics(os.path.join(str(tmp_path), 'full')) == _metrics(part)


# ------------------------------------------------------------------------------------------------ model names
def test_model_alias_trains_under_the_zoo_name(shapes, tmp_path, capsys):
    """--model rexnet (issue 11's literal command) and the other aliases are resolved when the flags are parsed:
    checkpoints, metrics and logs carry rexnet_1.0x, the rename is logged once, --resume under another alias of
    the same model continues the run; --teacher, fine-tuning and verify_pretrained.py take aliases too."""
    quick = ['--data-dir', shapes['root'], '--batch-size', '8', '--max-batches-per-epoch', '2', '--max-val-batches',
             '1', '--save-frequency', '1']
    status, save, log = train(tmp_path, *(quick + ['--num-epochs', '1', '--model', 'rexnet', '--teacher', 'rexnet_lite',
                                                   '--teacher-params', 'random', '--hard-weight', '0.5']))
    assert status == 0, log[-2000:]
    assert log.count('--model rexnet -> rexnet_1.0x') == 1 and "model='rexnet_1.0x'" in log
    assert '--teacher rexnet_lite -> rexnet_lite_1.0x' in log and "teacher='rexnet_lite_1.0x'" in log
    files = set(os.listdir(save))
    assert {'imagenet-rexnet_1.0x-0.params', 'imagenet-rexnet_1.0x-0.states', 'imagenet-rexnet_1.0x-0.json'} <= files
    assert not [f for f in files if 'imagenet-rexnet-' in f], files
    with open(os.path.join(save, 'metrics.json')) as f:
        assert json.load(f)['args']['model'] == 'rexnet_1.0x'
    status, save, log = train(tmp_path, *(quick + ['--num-epochs', '2', '--model', 'REXNET_100.nav_in1k', '--resume']))
    assert status == 0, log[-2000:]
    assert '--model REXNET_100.nav_in1k -> rexnet_1.0x' in log and 'next epoch 1' in log
    assert 'imagenet-rexnet_1.0x-1.params' in os.listdir(save)
    ckpt = os.path.join(save, 'imagenet-rexnet_1.0x-1.params')
    assert verify_main(['--model', 'rexnetv1_1.0', '--model-kwargs', SMALL, '--params-file', ckpt, '--data-dir',
                        shapes['root'], '--input-size', '48', '--batch-size', '8', '--max-batches', '1',
                        '-j', '0']) == 0
    out = capsys.readouterr().out
    assert out.startswith('--model rexnetv1_1.0 -> rexnet_1.0x\n') and 'rexnet_1.0x: err-top1=' in out
    ft = str(tmp_path / 'ft')
    status = finetune_main(BASE + quick + ['--model', 'Rexnet_100', '--pretrained', ckpt, '--num-epochs', '1',
                                           '--save-dir', ft, '--logging-file', os.path.join(ft, 'ft.log')])
    assert status == 0 and 'finetune-rexnet_1.0x-0.params' in os.listdir(ft)
    assert '--model Rexnet_100 -> rexnet_1.0x' in open(os.path.join(ft, 'ft.log')).read()


# ---------------------------------------------------------------------------------------------------- NaN stop
def test_nan_loss_stops_and_keeps_last_good_checkpoint(shapes, tmp_path):
    args = ['--data-dir', shapes['root'], '--batch-size', '16', '--max-batches-per-epoch', '3', '--num-epochs', '3',
            '--save-frequency', '1', '--inject-nan-at-step', '4']                # update 4: epoch 1, batch 1
    status, save, log = train(tmp_path, *args)
    assert status == 1
    assert 'the training loss became nan at epoch 1, batch 1' in log
    good = os.path.join(save, 'imagenet-%s-0.params' % MODEL)
    assert 'The last good checkpoint is %s' % good in log
    assert not os.path.exists(os.path.join(save, 'imagenet-%s-1.params' % MODEL))
    net = create_model(MODEL, 4, mx.cpu(), False, json.loads(SMALL))
    net.load_parameters(good)
    assert all(np.isfinite(p.data().asnumpy()).all() for p in net.collect_params().values())
    assert [r['epoch'] for r in read_csv(os.path.join(save, 'metrics.csv'))] == ['0']


def test_huge_lr_process_exit_status(shapes, tmp_path):
    r = run_script('train_imagenet', *(BASE + ['--data-dir', shapes['root'], '--batch-size', '16', '--lr', '1e30',
                                               '--max-batches-per-epoch', '3', '--num-epochs', '1',
                                               '--save-dir', str(tmp_path), '--logging-file',
                                               str(tmp_path / 'log')]))
    assert r.returncode == 1, r.stderr[-2000:]
    assert 'the training loss became nan' in r.stderr and 'There is no checkpoint yet' in r.stderr


# --------------------------------------------------------------------------------------------- flag families
def test_recordio_path_counts_samples_mixup_smoothing_hybrid(shapes, tmp_path):
    status, save, log = train(tmp_path, '--data-dir', shapes['root'], '--use-rec', '--classes', '4', '--mixup',
                              '--label-smoothing', '--mode', 'hybrid', '--batch-size', '16', '--num-epochs', '1',
                              '--max-batches-per-epoch', '4', '--save-frequency', '1', '-j', '2')
    assert status == 0, log[-2000:]
    assert 'Data: recordio, %d training samples (counted in %s)' % (shapes['num_train'], shapes['idx_train']) in log
    assert 'mixup=alpha 0.2' in log and 'label_smoothing=0.1' in log and 'mode=hybrid' in log
    assert '[Epoch 0] validation:' in log
    # the count from the .rec alone (no .idx) and from the folder equal the number of files written
    assert D.count_rec_samples(shapes['rec_train'])[0] == shapes['num_train']
    n_files = sum(len(files) for _, _, files in os.walk(os.path.join(shapes['root'], 'train')))
    assert D.count_folder_samples(os.path.join(shapes['root'], 'train')) == n_files == shapes['num_train']
    # --num-training-samples still overrides (LR schedule length only)
    status, _, log = train(tmp_path, '--data-dir', shapes['root'], '--num-training-samples', '320', '--batch-size',
                           '16', '--num-epochs', '1', '--max-batches-per-epoch', '2', '--val-interval', '0',
                           name='override')
    assert status == 0 and '--num-training-samples 320 overrides the 600 samples counted' in log


def test_no_wd_last_gamma_and_trainer_settings(shapes, tmp_path):
    opt = parse_args(BASE + ['--data-dir', shapes['root'], '--no-wd', '--last-gamma', '--wd', '3e-5',
                             '--optimizer', 'sgd', '--save-dir', str(tmp_path), '--logging-file', '',
                             '--batch-size', '16', '--num-epochs', '1', '--max-batches-per-epoch', '2'])
    r = Session(opt)
    try:
        r.setup()
        params = r.learner.net._collect_params_with_prefix()
        kinds = {}
        for name, p in params.items():
            kinds.setdefault(name.rsplit('.', 1)[-1], set()).add(p.wd_mult)
        assert kinds['gamma'] == {0.0} and kinds['beta'] == {0.0} and kinds['bias'] == {0.0}
        assert kinds['weight'] == {1.0}                                         # convolutions keep weight decay
        assert params['features.0.weight'].wd_mult == 1.0 and params['output.1.bias'].wd_mult == 0.0
        # last_gamma: the last BN of every block with a shortcut starts at 0, the others at 1
        blocks = [b for b in r.learner.net.features if hasattr(b, 'use_shortcut')]
        assert any(b.use_shortcut for b in blocks)
        for b in blocks:
            gamma = b.out[len(b.out) - 1].gamma.data().asnumpy()
            assert (gamma == 0).all() if b.use_shortcut else (gamma == 1).all()
        assert type(r.learner.trainer._optimizer).__name__ == 'SGD' and r.learner.trainer._optimizer.wd == 3e-5
        r.fit()
    finally:
        r.close()
        close_logger(r.logger)


def _expected_lr(t, lr, warmup_lr, warm, total, mode, steps=(), decay=0.1):
    if t < warm:
        return warmup_lr + (lr - warmup_lr) * t / warm
    if mode == 'cosine':
        return lr * (1 + math.cos(math.pi * (t - warm) / (total - 1 - warm))) / 2
    return lr * decay ** sum(1 for s in steps if t >= s)


def test_lr_schedule_warmup_starts_at_warmup_lr(shapes, tmp_path):
    common = ['--data-dir', shapes['root'], '--batch-size', '16', '--max-batches-per-epoch', '3', '--log-interval',
              '1', '--val-interval', '0', '--save-frequency', '0', '--lr', '0.4', '--warmup-epochs', '1',
              '--warmup-lr', '0.1']
    status, _, log = train(tmp_path, *(common + ['--lr-mode', 'cosine', '--num-epochs', '4']), name='cos')
    assert status == 0
    lrs = logged_lrs(log)
    assert len(lrs) == 12 and lrs[0] == pytest.approx(0.1)                    # the first update uses --warmup-lr
    assert lrs == pytest.approx([_expected_lr(t, 0.4, 0.1, 3, 12, 'cosine') for t in range(12)], abs=2e-6)
    assert lrs[3] == pytest.approx(0.4) and lrs[-1] == pytest.approx(0.0, abs=1e-6)
    # step: --lr-decay-epoch is in absolute epochs (GluonCV), decaying at epochs 2 and 3
    status, _, log = train(tmp_path, *(common + ['--lr-mode', 'step', '--lr-decay-epoch', '2,3', '--lr-decay',
                                                 '0.5', '--num-epochs', '4']), name='step')
    assert status == 0
    assert logged_lrs(log) == pytest.approx([_expected_lr(t, 0.4, 0.1, 3, 12, 'step', (6, 9), 0.5)
                                             for t in range(12)], abs=2e-6)
    with open(os.path.join(str(tmp_path), 'step', 'train.log')) as f:
        assert 'lr_decay_epochs=2,3' in f.read()


def test_distillation_teacher(learned, shapes, tmp_path):
    common = ['--data-dir', shapes['root'], '--batch-size', '8', '--num-epochs', '1', '--max-batches-per-epoch', '2',
              '--max-val-batches', '1', '--save-frequency', '1', '--mode', 'hybrid']
    status, _, log = train(tmp_path, *(common + ['--teacher', MODEL, '--teacher-params', 'random',
                                                 '--temperature', '4']), name='random')
    assert status == 0, log[-2000:]
    assert 'distillation=rexnet_1.0x, T=4, hard_weight=0.5' in log
    teacher = os.path.join(learned['save'], 'imagenet-%s-11.params' % MODEL)
    status, _, log = train(tmp_path, *(common + ['--teacher', MODEL, '--teacher-params', teacher,
                                                 '--teacher-kwargs', SMALL]), name='file')
    assert status == 0, log[-2000:]
    # the same file for a full-width teacher does not fit: a clear error, exit status 2
    status, _, log = train(tmp_path, *(common + ['--teacher', MODEL, '--teacher-params', teacher]), name='bad')
    assert status == 2 and 'cannot build the teacher --teacher rexnet_1.0x' in log and '--teacher-params' in log
    status, _, log = train(tmp_path, *(common + ['--teacher', 'no_such_net', '--teacher-params', 'random']),
                           name='unknown')
    assert status == 2 and "unknown --model 'no_such_net'" in log


def test_recipe_rexnet_resolution(shapes, tmp_path):
    opt = parse_args(['--model', MODEL, '--recipe', 'rexnet'])
    assert (opt.optimizer, opt.momentum, opt.wd, opt.lr_mode, opt.warmup_epochs, opt.num_epochs) == \
        ('nag_torch', 0.9, 1e-5, 'cosine', 3, 400)
    assert opt.label_smoothing and opt.no_wd and not opt.mixup and opt.teacher is None
    assert (opt.dropout, opt.randaugment, opt.reprob, opt.remode) == (0.2, 'rand-m9-mstd0.5', 0.2, 'pixel')
    assert opt.lr_scale == (0.5, 512)
    explicit = parse_args(['--model', MODEL, '--recipe', 'rexnet', '--wd', '5e-5', '--lr', '0.3', '--num-epochs',
                           '10', '--randaugment', 'none'])
    assert (explicit.wd, explicit.lr, explicit.num_epochs, explicit.lr_scale, explicit.randaugment) == \
        (5e-5, 0.3, 10, None, None)
    # a real run: lr = 0.5 x global batch (8 per device x 2 devices) / 512, RandAugment and erasing on
    status, _, log = train(tmp_path, '--data-dir', shapes['root'], '--recipe', 'rexnet', '--cpus', '2',
                           '--batch-size', '8', '--num-epochs', '1', '--warmup-epochs', '0',
                           '--max-batches-per-epoch', '2', '--max-val-batches', '1')
    assert status == 0, log[-2000:]
    line = [l for l in log.splitlines() if l.startswith('Resolved hyper-parameters')][0]
    for expected in ('recipe=rexnet', 'optimizer=nag_torch', 'lr=0.015625 (recipe rexnet: 0.5 x global batch 16 / 512)',
                     'momentum=0.9', 'wd=1e-05', 'no_wd=True', 'lr_mode=cosine', 'label_smoothing=0.1',
                     'dropout=0.2', 'randaugment=rand-m9-mstd0.5', 'reprob=0.2', 'remode=pixel', 'mixup=off',
                     'distillation=off', 'batch=8 per device x 2 devices x 1 workers = 16 global'):
        assert expected in line, (expected, line)
    assert 'RandAugment(rand-m9-mstd0.5) -> Normalize -> RandomErasing(0.20, pixel)' in log
    assert 'random interpolation' in log and 'lr_steps=per epoch, decay counted from epoch 0' in line


def test_two_cpu_contexts_equal_one_with_the_same_global_batch(shapes, tmp_path):
    """GroupNorm (no per-device statistics) and no dropout: 2 devices x 8 must train like 1 device x 16; this checks
    split_and_load, the gradient sum over devices and the step size. (With BatchNorm each device normalises its own
    8 samples, as in GluonCV.)"""
    common = ['--data-dir', shapes['root'], '--use-gn', '--dropout', '0', '--num-epochs', '2',
              '--max-batches-per-epoch', '3', '--lr-mode', 'cosine', '--lr', '0.05', '--save-frequency', '1',
              '--val-interval', '0', '--mixup']
    status, one, log1 = train(tmp_path, *(common + ['--batch-size', '16']), name='one')
    assert status == 0, log1[-2000:]
    status, two, log2 = train(tmp_path, *(common + ['--batch-size', '8', '--cpus', '2']), name='two')
    assert status == 0, log2[-2000:]
    assert 'contexts=[cpu(0),cpu(1)]' in log2 and 'GroupNorm(ngroups=' in log2
    a = load_params(os.path.join(one, 'imagenet-%s-1.params' % MODEL))
    b = load_params(os.path.join(two, 'imagenet-%s-1.params' % MODEL))
    moved = 0
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-4, err_msg=k)
        moved += not np.allclose(a[k], b[k], rtol=0, atol=0)
    assert moved, 'both runs identical to the bit: suspicious'
    assert float(_metrics(one)[-1]['train_loss']) == pytest.approx(float(_metrics(two)[-1]['train_loss']), rel=1e-4)


def test_group_norm_group_count(shapes, tmp_path, capsys):
    common = ['--data-dir', shapes['root'], '--use-gn', '--batch-size', '8', '--num-epochs', '1',
              '--max-batches-per-epoch', '1', '--val-interval', '0', '--save-frequency', '0']
    status, _, log = train(tmp_path, *(common + ['--gn-groups', '32']), name='g32')
    assert status == 2 and 'not divisible by 32' in log and 'ngroups' in log     # the model's own message
    status, _, log = train(tmp_path, *(common + ['--mode', 'hybrid']), name='hyb')
    # configuration errors found before the run starts (and before the log file is opened) go to stderr
    assert status == 2 and 'cannot be hybridized' in capsys.readouterr().err
    status, _, log = train(tmp_path, *(common + ['--log-interval', '1']), name='auto')
    assert status == 0 and re.search(r'model_notes=GroupNorm\(ngroups=\d+\)', log)


def test_clear_errors(shapes, tmp_path, capsys, monkeypatch):
    # horovod masked (an import of it fails as where it is not installed): the case below is its missing-build
    # message; where it is installed, --kvstore horovod without horovodrun would train as a 1-rank job
    monkeypatch.setitem(sys.modules, 'horovod', None)
    monkeypatch.setitem(sys.modules, 'horovod.mxnet', None)
    ok = ['--data-dir', shapes['root'], '--batch-size', '8', '--num-epochs', '1', '--max-batches-per-epoch', '1']
    cases = [
        (['--dtype', 'float16'], 'float16 needs a GPU'),
        (['--data-backend', 'dali-cpu'], 'DALI is not supported'),
        (['--model', 'rexnet_9.9x'], "unknown --model 'rexnet_9.9x'. rexnet_gluon has: rexnet_1.0x"),
        (['--model', 'rexnet_1.5'], 'Close to it: rexnet_1.5x, rexnetv1_1.5 (= rexnet_1.5x)'),
        (['--num-gpus', '1'], 'MXNet sees 0 GPU(s)'),
        (['--kvstore', 'horovod'], 'bash scripts/install_horovod.sh'),
        (['--kvstore', 'dist_sync'], 'needs the ps-lite environment'),
        (['--data-dir', str(tmp_path / 'nowhere')], 'has no train/ folder'),
        (['--amp', '--dtype', 'float16'], 'exclude each other'),
        (['--dtype', 'float64', '--kvstore', 'dist_sync'], 'hands the weights back as float32 values'),
        (['--model-kwargs', '{not json'], '--model-kwargs is not valid JSON'),
        (['--use-rec', '--rec-train', str(tmp_path / 'x.rec')], 'x.rec does not exist'),
    ]
    for extra, message in cases:
        status, _, log = train(tmp_path, *(ok + extra), name='err')
        err = capsys.readouterr().err
        assert status == 2, (extra, log[-1500:])
        assert message in log + err, (extra, message, (log + err)[-1500:])
    # DALI through the real process: no interactive prompt (stdin is closed), one clear line, exit status 2
    r = run_script('train_imagenet', '--model', MODEL, '--data-backend', 'dali-gpu', '--logging-file',
                   str(tmp_path / 'd.log'), timeout=120)
    assert r.returncode == 2 and 'DALI is not supported' in r.stderr and 'Traceback' not in r.stderr


def test_amp_bfloat16_on_cpu(shapes, tmp_path):
    r = run_script('train_imagenet', *(BASE + ['--data-dir', shapes['root'], '--amp', '--mode', 'hybrid',
                                               '--batch-size', '8', '--num-epochs', '1', '--max-batches-per-epoch',
                                               '2', '--max-val-batches', '1', '--save-dir', str(tmp_path),
                                               '--logging-file', str(tmp_path / 'log')]))
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'amp=bfloat16' in r.stderr and '[Epoch 0] validation:' in r.stderr


# ------------------------------------------------------------------------------------------------ distributed
def test_sharding_and_step_semantics_unit():
    # every worker reads a disjoint, equally long part of the same per-epoch permutation
    parts = [D.shard_order(10, seed=1, epoch=3, num_parts=3, part_index=i) for i in range(3)]
    assert [len(p) for p in parts] == [4, 4, 4]
    assert sorted(set(np.concatenate(parts))) == list(range(10))
    assert (D.shard_order(10, 1, 3) != D.shard_order(10, 1, 4)).any()          # a new order every epoch
    np.testing.assert_array_equal(D.shard_order(10, 1, 3), D.shard_order(10, 1, 3))
    # dist kvstores sum worker gradients: step over the global batch; Horovod averages: per-worker batch
    assert Runtime('dist', 'dist_sync', 1, 4).step_batch(32) == 128
    assert Runtime('horovod', 'horovod', 1, 4).step_batch(32) == 32
    assert Runtime('local', 'device', 0, 1).step_batch(64) == 64
    assert not Runtime('dist', 'dist_sync', 0, 2).can_save_states
    sampler = D.EpochBatchSampler(600, 8, seed=0, num_parts=2, part_index=1)
    assert len(sampler) == 37                                                   # (600 / 2) // 8


def test_recordio_iter_shards(shapes):
    cfg = D.AugmentConfig(input_size=48)
    loaders = [D.RecordIterTrainLoader(shapes['rec_train'], shapes['idx_train'], cfg, 16, seed=0, num_workers=1,
                                       num_parts=2, part_index=i) for i in range(2)]
    assert [len(l) for l in loaders] == [18, 18]                                # (600 // 2) // 16
    labels = [np.concatenate([lab.asnumpy() for _, lab in l.epoch(0)]) for l in loaders]
    assert [len(x) for x in labels] == [288, 288]
    assert not np.array_equal(labels[0], labels[1])


def test_augmentation_independent_of_worker_count(shapes):
    cfg = D.AugmentConfig(input_size=48, randaugment='rand-m9-mstd0.5', reprob=0.5)
    batches = []
    for workers in (0, 2):
        loader = D.TrainLoader(D.FolderSource(os.path.join(shapes['root'], 'train')), cfg, 16, seed=4,
                               num_workers=workers)
        batches.append([d.asnumpy() for _, (d, _l) in zip(range(3), loader.epoch(2))])
        del loader
    for x, y in zip(*batches):
        np.testing.assert_array_equal(x, y)


# The multi-process runs compare final weights after 6 steps with one process on 2 devices. In float32 that
# distance is rounding amplified by the trajectory, and it depends on the machine: 1e-7 apart after one step (the
# gradients summed in another order), then at peak lr 0.1 / 0.02 it ended 1.1e-5 / 5.9e-4 apart on an AMD EPYC and
# 9.5e-4 / 4.3e-7 on an Intel Xeon (nag, 2026-12). Horovod keeps float64 (7e-16 apart), so its test runs there with
# a tight limit; ps-lite's dist_sync does not (every weight of a float64 dist_sync run came back float32-
# representable; the training script refuses that combination), so its test stays in float32 with the limit the
# CI machines passed.
DIST_LR, DIST_WARMUP_LR = 0.1, 0.02
DIST_TOL = 2e-5        # dist_sync, float32: max |weight diff| after 6 steps
HOROVOD_TOL = 1e-12    # Horovod, float64
# the lr of each of the 6 iterations: 3 of linear warm-up, then cosine over the second epoch
DIST_LRS = [DIST_WARMUP_LR + (DIST_LR - DIST_WARMUP_LR) * t / 3 for t in range(3)] + [DIST_LR, DIST_LR / 2, 0.0]


def _dist_args(shapes, optimizer=None, dtype='float32'):
    return BASE + ['--data-dir', shapes['root'], '--use-gn', '--dropout', '0', '--num-epochs', '2',
                   '--max-batches-per-epoch', '3', '--lr-mode', 'cosine', '--lr', str(DIST_LR), '--warmup-epochs',
                   '1', '--warmup-lr', str(DIST_WARMUP_LR), '--save-frequency', '1', '--val-interval', '0',
                   '--batch-size', '8', '--log-interval', '1', '--dtype', dtype] + (
                       ['--optimizer', optimizer] if optimizer else [])


@pytest.fixture(scope='module')
def two_device_runs(shapes, tmp_path_factory):
    """The dist_sync test's reference: one process, 2 devices, the same global batch; final weights by optimizer,
    each run once, when first asked for."""
    done = {}

    def final_weights(optimizer):
        if optimizer not in done:
            status, save, log = train(tmp_path_factory.mktemp('single-' + optimizer),
                                      *(_dist_args(shapes, optimizer)[len(BASE):] + ['--cpus', '2']), name='single')
            assert status == 0, log[-2000:]
            done[optimizer] = load_params(os.path.join(save, 'imagenet-%s-1.params' % MODEL))
        return done[optimizer]
    return final_weights


@pytest.mark.parametrize('optimizer', ['nag', 'nag_torch'])
def test_dist_sync_two_workers_equal_two_devices(shapes, tmp_path, optimizer, two_device_runs):
    """A real localhost ps-lite run: scheduler, server, 2 workers. The workers read disjoint shards, the LR schedule
    counts iterations per worker, and the gradient is the global-batch mean: with GroupNorm and no dropout the
    result equals one process with 2 devices and the same global batch. With nag_torch the server must unpickle
    rexnet_gluon's optimizer (scripts/launch_dist.py starts it so), and its result is not nag's."""
    args = _dist_args(shapes, optimizer)
    dist, logdir = str(tmp_path / 'dist'), str(tmp_path / 'logs')
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    env.pop('DMLC_ROLE', None)
    launch = subprocess.run([sys.executable, os.path.join(SCRIPTS, 'launch_dist.py'), '-n', '2', '-s', '1',
                             '--log-dir', logdir, '--timeout', '240', '--',
                             sys.executable, os.path.join(SCRIPTS, 'train_imagenet.py')] + args +
                            ['--kvstore', 'dist_sync', '--save-dir', dist, '--logging-file', dist + '/log'],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    outs = [open(os.path.join(logdir, 'worker%d.log' % i)).read() for i in range(2)]
    server = open(os.path.join(logdir, 'server0.log')).read()
    assert launch.returncode == 0, launch.stderr[-1000:] + server[-2000:] + outs[0][-2000:] + outs[1][-2000:]
    assert 'Traceback' not in server, server[-3000:]
    prints = [re.search(r'Parameter fingerprint: (\w+)', o).group(1) for o in outs]
    assert prints[0] == prints[1]                                               # workers in sync
    rank0 = [o for o in outs if '[rank 1]' not in o][0]
    assert 'kvstore=dist_sync (rank 0 of 2 workers)' in rank0 and 'optimizer=%s,' % optimizer in rank0
    assert '300 per worker, 3 batches/epoch, 3 iterations/epoch' in rank0
    assert logged_lrs(rank0) == pytest.approx(DIST_LRS, abs=2e-6)
    a = load_params(os.path.join(dist, 'imagenet-%s-1.params' % MODEL))
    b = two_device_runs(optimizer)
    first = load_params(os.path.join(dist, 'imagenet-%s-0.params' % MODEL))
    moved = [k for k in a if np.abs(a[k] - first[k]).max() > 10 * DIST_TOL]
    assert len(moved) > 0.9 * len(a), 'the second epoch left most weights where they were: %d of %d moved' % (
        len(moved), len(a))
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    print('dist_sync vs one process with 2 devices: max |diff| %.3g; %d of %d moved' % (worst, len(moved), len(a)))
    # measured 3.5e-6 (the kvstore sums in another order than the devices do); before: 1e-4 relative + absolute
    assert worst < DIST_TOL, 'dist_sync vs one process with 2 devices: max |diff| %.3g' % worst
    if optimizer != 'nag':
        nag = two_device_runs('nag')
        apart = max(float(np.abs(a[k] - nag[k]).max()) for k in a)
        print('%s vs nag: %.3g apart' % (optimizer, apart))
        assert apart > 100 * DIST_TOL, '%s ended %.3g from nag: it did not run its own rule' % (optimizer, apart)


# ----------------------------------------------------------------------------------------------- checkpoint files
def test_incomplete_checkpoints_are_ignored(tmp_path, learned):
    import shutil
    src = learned['save']
    for f in os.listdir(src):
        if f.startswith('imagenet-%s-' % MODEL):
            shutil.copy(os.path.join(src, f), tmp_path / f)
    # a crash between .params and .json: epoch 12 has no marker, so epoch 11 is the latest
    (tmp_path / ('imagenet-%s-12.params' % MODEL)).write_bytes(b'partial')
    assert find_latest_checkpoint(str(tmp_path), 'imagenet', MODEL)['epoch'] == 11
    os.remove(tmp_path / ('imagenet-%s-11.states' % MODEL))                    # a file of 11 missing
    assert find_latest_checkpoint(str(tmp_path), 'imagenet', MODEL)['epoch'] == 7
    assert find_latest_checkpoint(str(tmp_path), 'imagenet', 'rexnet_2.0x') is None


def _horovodrun():
    """horovodrun of this interpreter's environment; skips where Horovod is not installed, fails under CI=true
    (the set-up command builds it there: scripts/install_horovod.sh), so a broken build cannot skip silently."""
    try:
        import horovod.mxnet  # noqa: F401
    except ImportError as err:
        message = ('horovod.mxnet does not import (%s): build it with `bash scripts/install_horovod.sh` (part of the '
                   "README's set-up command)" % err)
        if os.environ.get('CI') == 'true':
            pytest.fail('CI=true: ' + message)
        pytest.skip(message)
    import shutil
    beside = os.path.join(os.path.dirname(sys.executable), 'horovodrun')   # a venv's bin/, not always on PATH
    runner = beside if os.access(beside, os.X_OK) else shutil.which('horovodrun')
    if runner is None:
        pytest.fail('horovod.mxnet imports but horovodrun is neither next to %s nor on PATH' % sys.executable)
    return runner


def test_horovod_two_ranks_equal_two_devices(shapes, tmp_path):
    """A real 2-rank Horovod run (horovodrun --gloo on localhost) equals one process with 2 devices on the same
    global batch, as the dist_sync test shows for ps-lite: the ranks read disjoint shards, start from rank 0's
    broadcast weights, Horovod averages the gradients (so the step is over the per-worker batch) and the LR schedule
    counts iterations per rank; both ranks end with the same weights, and only rank 0 writes checkpoints."""
    runner = _horovodrun()
    args = _dist_args(shapes, dtype='float64')
    hvd = str(tmp_path / 'hvd')
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')
    env.pop('DMLC_ROLE', None)
    res = subprocess.run([runner, '-np', '2', '-H', 'localhost:2', '--gloo', sys.executable,
                          os.path.join(SCRIPTS, 'train_imagenet.py')] + args +
                         ['--kvstore', 'horovod', '--save-dir', hvd, '--logging-file', hvd + '/log'],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    prints = re.findall(r'(\[rank 1\] )?Parameter fingerprint: (\w+)', out)
    assert sorted(bool(r) for r, _ in prints) == [False, True], out[-3000:]       # one line from each rank
    assert prints[0][1] == prints[1][1], prints                                     # ranks in sync
    rank0 = open(hvd + '/log').read()                                               # only rank 0 writes the log
    assert 'kvstore=horovod (rank 0 of 2 workers)' in rank0
    assert 'batch=8 per device x 1 devices x 2 workers = 16 global' in rank0
    assert '300 per worker, 3 batches/epoch, 3 iterations/epoch' in rank0
    assert logged_lrs(rank0) == pytest.approx(DIST_LRS, abs=2e-6)
    assert sorted(f for f in os.listdir(hvd) if f.endswith('.params')) == [
        'imagenet-%s-%d.params' % (MODEL, e) for e in (0, 1)]                       # rank 0's checkpoints only
    status, single, _ = train(tmp_path, *(args[len(BASE):] + ['--cpus', '2']), name='single')
    assert status == 0
    a = load_params(os.path.join(hvd, 'imagenet-%s-1.params' % MODEL))
    b = load_params(os.path.join(single, 'imagenet-%s-1.params' % MODEL))
    first = load_params(os.path.join(hvd, 'imagenet-%s-0.params' % MODEL))
    assert a[next(iter(a))].dtype == np.float64
    moved = [k for k in a if np.abs(a[k] - first[k]).max() > 1e-6]
    assert len(moved) > 0.9 * len(a), 'the second epoch left most weights where they were: %d of %d moved' % (
        len(moved), len(a))
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    print('horovod vs one process with 2 devices (float64): max |diff| %.3g' % worst)
    # measured 7.4e-16 (Gloo sums in another order than the devices do); stepping over the global batch (the
    # horovod-sum-step mutation of tests/mutations.py) fails here
    assert worst < HOROVOD_TOL, 'horovod vs one process with 2 devices: max |diff| %.3g' % worst
