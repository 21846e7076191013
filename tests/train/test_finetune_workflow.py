"""Fine-tuning end to end, V1 and lite, on a tiny ImageFolder set, with the commands a user runs in order:
``scripts/finetune.py`` -> ``scripts/verify_pretrained.py`` -> ``python -m rexnet_gluon predict`` ->
``python -m rexnet_gluon export --format symbol,onnx,openvino``.

The "pretrained" body is a seeded random PyTorch checkpoint (1000 classes, non-trivial BN statistics) given as a
.pth, so the published-weights path (convert, load everything but the classifier) is the one exercised. The
fine-tuned network is read back with Gluon's own strict ``load_parameters`` into the zoo architecture, independent
of the project's loader, and every later step must agree with it.
"""
import json
import os
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

pytest.importorskip('torch')
pytest.importorskip('onnxruntime')

from rexnet_gluon.deploy.images import load_image  # noqa: E402
from rexnet_gluon.model import ReXNetV1, ReXNetV1Lite  # noqa: E402

from datasets import CLASSES, make_shapes_dataset  # noqa: E402
from helpers import REPO, random_checkpoint  # noqa: E402

SIZE = 64
ROW = re.compile(r'^\s+(\d+)\s+([\d.]+)%\s+(\d+)\s+(\S.*)$')
CASES = {'rexnet_1.0x': (ReXNetV1, 'output.1'), 'rexnet_lite_1.0x': (ReXNetV1Lite, 'output.4')}


def _run(*args, timeout=900):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''), PYTHONWARNINGS='ignore')
    p = subprocess.run([sys.executable] + list(args), cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return p


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """4 classes x 12 training / 6 validation images, 80 px (resized to 74, cropped to 64 for validation)."""
    return make_shapes_dataset(str(tmp_path_factory.mktemp('tiny')), train_per_class=12, val_per_class=6, size=80,
                               rec=False)


@pytest.fixture(scope='module', params=sorted(CASES))
def finetuned(request, data, tmp_path_factory):
    """scripts/finetune.py from a PyTorch 'ImageNet' checkpoint: one epoch, checkpoint + JSON + metrics."""
    model = request.param
    tmp = tmp_path_factory.mktemp('ft-' + model)
    pth, _ = random_checkpoint(tmp, seed=5, name=model)
    save = str(tmp / 'run')
    p = _run(os.path.join(REPO, 'scripts', 'finetune.py'), '--model', model, '--pretrained', pth,
             '--data-dir', data['root'], '--input-size', str(SIZE), '--batch-size', '8', '--num-epochs', '1',
             '--lr', '0.01', '-j', '0', '--no-progress', '--seed', '1', '--mode', 'hybrid', '--save-dir', save,
             '--save-frequency', '1', '--logging-file', os.path.join(save, 'ft.log'))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    params = os.path.join(save, 'finetune-%s-0.params' % model)
    meta = json.load(open(os.path.join(save, 'finetune-%s-0.json' % model)))
    log = open(os.path.join(save, 'ft.log')).read()
    return dict(model=model, params=params, meta=meta, log=log, save=save, tmp=tmp, pth=pth)


def _gluon_reference(case):
    """The fine-tuned network read back by Gluon's strict load_parameters (not the project's loader)."""
    cls, _ = CASES[case['model']]
    net = cls(1.0, classes=len(CLASSES))
    net.load_parameters(case['params'], ctx=mx.cpu())
    return net


def test_finetune_replaces_only_the_classifier(finetuned, data):
    from rexnet_gluon.train.finetune import finetune_net
    from rexnet_gluon.train.flags import parse_args
    from rexnet_gluon.zoo import get_model
    model, log = finetuned['model'], finetuned['log']
    _, head = CASES[model]
    arrays = {k: v.asnumpy() for k, v in mx.nd.load(finetuned['params']).items()}
    assert sorted(arrays) == sorted(get_model(model, classes=len(CLASSES))._collect_params_with_prefix())
    assert arrays[head + '.weight'].shape[0::2] == (len(CLASSES), 1)
    assert 'new classifier %s (1x1 conv %d -> %d) with lr_mult 1' % (
        head, arrays[head + '.weight'].shape[1], len(CLASSES)) in log
    if model.startswith('rexnet_lite'):
        assert arrays['output.0.weight'].shape == (1024, 1280, 1, 1)
        assert 'the 1280->1024 head stage (output.0-2) and dropout' in log
    assert finetuned['meta']['class_names'] == list(CLASSES)
    assert finetuned['meta']['preprocess']['input_size'] == SIZE
    # the network fine-tuning starts from: every tensor but the classifier is the pretrained one, exactly
    opt = parse_args(['--model', model, '--pretrained', finetuned['pth'], '--data-dir', data['root']],
                     kind='finetune')
    net = finetune_net(opt, [mx.cpu()], len(CLASSES), {})
    pre = get_model(model, pretrained=finetuned['pth'])._collect_params_with_prefix()
    for k, p in net._collect_params_with_prefix().items():
        same = np.array_equal(p.data().asnumpy(), pre[k].data().asnumpy()) if p.shape == pre[k].shape else False
        assert same != k.startswith(head + '.'), k
        assert p.lr_mult == (1.0 if k.startswith(head + '.') else 0.1), k


def test_verify_equals_the_training_validation(finetuned, data):
    row = finetuned['meta']['metrics']
    p = _run(os.path.join(REPO, 'scripts', 'verify_pretrained.py'), '--model', finetuned['model'],
             '--params-file', finetuned['params'], '--data-dir', data['root'], '--batch-size', '8', '-j', '0')
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "input_size %d from the checkpoint's JSON" % SIZE in p.stdout, p.stdout
    assert "interpolation bilinear from the checkpoint's JSON" in p.stdout
    m = re.search(r'err-top1=([\d.]+) err-top5=([\d.]+) on (\d+) images', p.stdout)
    assert m and int(m.group(3)) == len(CLASSES) * 6, p.stdout
    assert float(m.group(1)) == pytest.approx(row['val_err_top1'], abs=1e-9)


def test_predict_prints_names_and_the_network_probabilities(finetuned, data):
    images = [os.path.join(data['root'], 'val', c, sorted(os.listdir(os.path.join(data['root'], 'val', c)))[0])
              for c in CLASSES]
    p = _run('-m', 'rexnet_gluon', 'predict', *images, '--model', finetuned['model'], '--params',
             finetuned['params'], '--topk', str(len(CLASSES)))
    assert p.returncode == 0, p.stderr
    net = _gluon_reference(finetuned)
    pp = finetuned['meta']['preprocess']
    tables, current = {}, None
    for line in p.stdout.splitlines():
        if line.strip() in images:
            current = tables.setdefault(line.strip(), [])
        elif ROW.match(line) and current is not None:
            r = ROW.match(line)
            current.append((int(r.group(3)), float(r.group(2)), r.group(4)))
    assert set(tables) == set(images), p.stdout
    for path in images:
        probs = mx.nd.softmax(net(load_image(path, pp))).asnumpy()[0]
        assert {name for _, _, name in tables[path]} == set(CLASSES)
        for index, percent, name in tables[path]:
            assert name == CLASSES[index]
            assert percent == pytest.approx(100 * probs[index], abs=0.006)


def test_export_symbol_onnx_openvino_equal_the_finetuned_network(finetuned, data):
    pytest.importorskip('openvino')
    import onnxruntime as ort
    import openvino as ov
    prefix = str(finetuned['tmp'] / 'export' / 'ft')
    os.makedirs(os.path.dirname(prefix))
    p = _run('-m', 'rexnet_gluon', 'export', '--model', finetuned['model'], '--params', finetuned['params'],
             '--format', 'symbol,onnx,openvino', '--output', prefix)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert 'input 1x3x%dx%d' % (SIZE, SIZE) in p.stdout and 'all checks passed' in p.stdout
    net = _gluon_reference(finetuned)
    path = os.path.join(data['root'], 'val', CLASSES[1], sorted(os.listdir(os.path.join(data['root'], 'val',
                                                                                       CLASSES[1])))[0])
    x = load_image(path, finetuned['meta']['preprocess'])
    ref = net(x).asnumpy()
    tol = 1e-5 * max(1.0, float(np.abs(ref).max()))
    sym = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    got = {'symbol': sym(x).asnumpy()}
    session = ort.InferenceSession(prefix + '.onnx', providers=['CPUExecutionProvider'])
    got['onnx'] = session.run(None, {session.get_inputs()[0].name: x.asnumpy()})[0]
    compiled = ov.Core().compile_model(prefix + '.xml', 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    got['openvino'] = compiled(x.asnumpy())[0]
    for fmt, out in got.items():
        assert out.shape == (1, len(CLASSES)), fmt
        assert np.abs(out - ref).max() <= tol, (fmt, np.abs(out - ref).max(), tol)


def test_pretrained_none_trains_the_body_at_the_classifier_lr(data):
    from rexnet_gluon.train.finetune import finetune_net
    from rexnet_gluon.train.flags import parse_args
    for extra, body in (([], 1.0), (['--body-lr-mult', '0.5'], 0.5)):
        opt = parse_args(['--model', 'rexnet_lite_1.0x', '--pretrained', 'none', '--data-dir', data['root']] + extra,
                         kind='finetune')
        net = finetune_net(opt, [mx.cpu()], len(CLASSES), {})
        mults = {k: p.lr_mult for k, p in net._collect_params_with_prefix().items()}
        assert mults['output.4.weight'] == 1.0 and mults['features.0.weight'] == body
        assert mults['output.0.weight'] == body                  # lite's 1280->1024 stage is body, not classifier
