"""Image predictor: ``load_image`` preprocessing, ``predict`` and ``python -m rexnet_gluon predict``.

Weights are a seeded random PyTorch ReXNet 1.0x (non-trivial BN statistics) saved with torch.save and
converted to .params, so the 1000-class net carries ImageNet names like a pretrained one. No network.
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch')

import mxnet as mx  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from rexnet_gluon.convert.parity import allowed_diff  # noqa: E402
from rexnet_gluon.deploy.images import ImageLoadError, load_image  # noqa: E402
from rexnet_gluon.deploy.predict import predict  # noqa: E402
from rexnet_gluon.zoo import get_model, get_model_info, get_model_list  # noqa: E402

from helpers import REPO, random_checkpoint  # noqa: E402
ROW = re.compile(r'^\s+(\d+)\s+([\d.]+)%\s+(\d+)\s+(\S.*)$')


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """(.pth, .params) of a random ReXNet 1.0x, 1000 classes."""
    return random_checkpoint(tmp_path_factory.mktemp('weights'), seed=21)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """Landscape JPEG, portrait PNG with alpha, grayscale PNG: 300x200 / 200x300 with shapes drawn."""
    folder = tmp_path_factory.mktemp('images')
    out = []
    specs = [('shapes.jpg', 'RGB', (300, 200)), ('portrait.png', 'RGBA', (200, 300)), ('gray.png', 'L', (300, 200))]
    for i, (name, mode, size) in enumerate(specs):
        rs = np.random.RandomState(i)
        img = Image.new('RGB', size, tuple(int(v) for v in rs.randint(0, 255, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = rs.randint(0, size[0] - 40), rs.randint(0, size[1] - 40)
            box = (x0, y0, x0 + rs.randint(20, 120), y0 + rs.randint(20, 120))
            colour = tuple(int(v) for v in rs.randint(0, 255, 3))
            (draw.ellipse if rs.rand() < 0.5 else draw.rectangle)(box, fill=colour)
        draw.line((0, 0, size[0], size[1]), fill=(255, 255, 255), width=5)
        path = str(folder / name)
        img.convert(mode).save(path)
        out.append(path)
    return out


def _manual(path, resize, crop, mean, std, resample):
    """The evaluation transform written out with numpy slicing (independent of load_image's code)."""
    img = Image.open(path).convert('RGB')
    w, h = img.size
    scale = resize / min(w, h)
    size = (resize, int(h * scale)) if w <= h else (int(w * scale), resize)
    arr = np.asarray(img.resize(size, resample), dtype=np.float64) / 255.0
    top, left = int(round((arr.shape[0] - crop) / 2)), int(round((arr.shape[1] - crop) / 2))
    arr = arr[top:top + crop, left:left + crop]
    return ((arr - np.array(mean)) / np.array(std)).transpose(2, 0, 1)[None]


def test_load_image_matches_numpy(images):
    pp = get_model_info('rexnet_1.0x').preprocess
    assert (pp['resize'], pp['crop'], pp['interpolation']) == (256, 224, 'bicubic')
    x = load_image(images[0], pp)
    assert isinstance(x, mx.nd.NDArray) and x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    want = _manual(images[0], 256, 224, pp['mean'], pp['std'], Image.BICUBIC)
    assert np.abs(x.asnumpy() - want).max() < 1e-5
    # Normalised values: ((0..1) - mean) / std lies within these bounds for every channel.
    lo = (0 - np.array(pp['mean'])) / np.array(pp['std'])
    hi = (1 - np.array(pp['mean'])) / np.array(pp['std'])
    per_channel = x.asnumpy()[0].reshape(3, -1)
    assert np.all(per_channel.min(1) >= lo - 1e-6) and np.all(per_channel.max(1) <= hi + 1e-6)


def test_load_image_portrait_alpha_and_bilinear(images):
    pp = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=64, resize=73, crop=64, crop_pct=0.875,
              interpolation='bilinear')
    for path in images[1:]:
        x = load_image(path, pp).asnumpy()
        assert x.shape == (1, 3, 64, 64)
        assert np.abs(x - _manual(path, 73, 64, pp['mean'], pp['std'], Image.BILINEAR)).max() < 1e-5
    gray = load_image(images[2], pp).asnumpy()[0]
    assert np.array_equal(gray[0], gray[1]) and np.array_equal(gray[1], gray[2])   # L -> RGB replicates


def test_load_image_errors_name_the_file(tmp_path):
    pp = get_model_info('rexnet_1.0x').preprocess
    missing = str(tmp_path / 'nope.jpg')
    with pytest.raises(ImageLoadError, match=re.escape(missing)):
        load_image(missing, pp)
    text = tmp_path / 'notes.jpg'
    text.write_text('this is not a JPEG')
    with pytest.raises(ImageLoadError, match=re.escape(str(text))) as err:
        load_image(str(text), pp)
    assert isinstance(err.value, ValueError) and 'not an image' in str(err.value)
    truncated = tmp_path / 'truncated.png'
    Image.new('RGB', (300, 200), (10, 200, 30)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(ImageLoadError, match=re.escape(str(truncated))):
        load_image(str(truncated), pp)


def test_predict_api(weights, images):
    net = get_model('rexnet_1.0x', pretrained=weights[1])
    batch = mx.nd.concat(*[load_image(p, net.preprocess) for p in images], dim=0)
    results = predict(net, batch, topk=5)
    assert len(results) == 3
    logits = net(batch).asnumpy()
    for res, row in zip(results, logits):
        assert len(res) == 5
        idx, name, prob = res[0]
        assert idx == int(row.argmax()) and name == net.classes_long[idx]
        probs = [p for _, _, p in res]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        exp = np.exp(row - row.max())
        assert abs(prob - exp.max() / exp.sum()) < 1e-5
    # Paths work too (net.preprocess), and a net without class names falls back to 'class N'.
    assert predict(net, images[:1], topk=2)[0][0][0] == results[0][0][0]
    bare = get_model('rexnet_1.0x', classes=7)
    bare.initialize()
    top = predict(bare, batch[:1], topk=10)[0]
    assert len(top) == 7 and all(name == 'class %d' % i for i, name, _ in top)
    with pytest.raises(ValueError):
        predict(net, batch, topk=0)


def _cli(*args, cwd=REPO, env=None):
    full_env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    full_env.update(env or {})
    return subprocess.run([sys.executable, '-m', 'rexnet_gluon'] + list(args), cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def _tables(stdout, paths):
    """{path: [(rank, percent, index, name)]} parsed from the CLI's output."""
    tables, current = {}, None
    for line in stdout.splitlines():
        if line.strip() in paths:
            current = tables.setdefault(line.strip(), [])
            continue
        m = ROW.match(line)
        if m and current is not None:
            current.append((int(m.group(1)), float(m.group(2)), int(m.group(3)), m.group(4)))
    return tables


def test_cli_predict(weights, images, tmp_path):
    proc = _cli('predict', *images, '--model', 'rexnet_1.0x', '--params', weights[1])
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr
    tables = _tables(proc.stdout, images)
    assert set(tables) == set(images), proc.stdout
    net = get_model('rexnet_1.0x', pretrained=weights[1])
    for path in images:
        rows = tables[path]
        assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
        percents = [r[1] for r in rows]
        assert percents == sorted(percents, reverse=True)
        assert sum(percents) <= 100.0 + 5 * 0.005          # five values printed to 0.01 %
        top1 = int(net(load_image(path, net.preprocess)).asnumpy().argmax())
        assert rows[0][2] == top1
        assert rows[0][3] == net.classes_long[top1]
    # A PyTorch checkpoint given to --params is converted on the fly: same predictions.
    proc_pth = _cli('predict', images[0], '--model', 'rexnet_1.0x', '--params', weights[0], '--topk', '3')
    assert proc_pth.returncode == 0, proc_pth.stderr
    rows = _tables(proc_pth.stdout, images[:1])[images[0]]
    assert [r[2] for r in rows] == [r[2] for r in tables[images[0]][:3]]


def _bad_folder(folder, images):
    """A folder tree holding the good images (one in a sub-folder) and three bad ones: a JPEG whose data is
    garbage after a valid header, a truncated PNG, a text file named .jpg. Returns (good paths, bad paths)."""
    import shutil
    sub = folder / 'more'
    sub.mkdir(parents=True)
    good = [str(shutil.copy(images[0], folder / 'a.jpg')), str(shutil.copy(images[1], sub / 'b.png')),
            str(shutil.copy(images[2], folder / 'c.png'))]
    corrupt = folder / 'corrupt.jpg'
    corrupt.write_bytes(open(images[0], 'rb').read()[:200] + bytes(range(256)) * 40)
    truncated = sub / 'truncated.png'
    truncated.write_bytes(open(images[1], 'rb').read()[:300])
    text = folder / 'notes.jpg'
    text.write_text('this is not a JPEG')
    (folder / 'readme.txt').write_text('not an image extension: ignored')
    return good, [str(corrupt), str(truncated), str(text)]


def _softmax(logits):
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def test_cli_folder_with_bad_files(weights, images, tmp_path):
    """Good images are classified with the network's probabilities; bad ones are reported and skipped: exit 1.
    JSON, CSV (written with --output) and the table say the same."""
    import csv
    import json
    good, bad = _bad_folder(tmp_path / 'photos', images)
    proc = _cli('predict', str(tmp_path / 'photos'), '--model', 'rexnet_1.0x', '--params', weights[1], '--json',
                '--batch-size', '2')
    assert proc.returncode == 1, proc.stderr
    assert 'Traceback' not in proc.stderr and 'runtime openvino (auto)' in proc.stderr
    for path in bad:
        assert 'skipped %s: ' % path in proc.stderr
    doc = json.loads(proc.stdout)
    assert sorted(f['path'] for f in doc['failed']) == sorted(bad)
    assert [p['path'] for p in doc['predictions']] == sorted(good) and doc['runtime'] == 'openvino'
    net = get_model('rexnet_1.0x', pretrained=weights[1])
    logits = np.concatenate([net(load_image(p, net.preprocess)).asnumpy() for p in sorted(good)])
    # Logits within the parity rule move a softmax probability by at most twice as much (|dp_i| <= 2 max|dz|).
    tol = 2 * allowed_diff(float(np.abs(logits).max()))
    for pred, row in zip(doc['predictions'], _softmax(logits.astype(np.float64))):
        top = pred['top']
        assert [t['index'] for t in top] == list(np.argsort(-row, kind='stable')[:5])
        assert np.abs(np.array([t['probability'] for t in top]) - row[[t['index'] for t in top]]).max() <= tol
        assert top[0]['class'] == net.classes_long[top[0]['index']]

    out = tmp_path / 'out' / 'pred.csv'
    proc_csv = _cli('predict', str(tmp_path / 'photos' / '**' / '*.png'), good[0], '--model', 'rexnet_1.0x',
                    '--params', weights[1], '--csv', '--output', str(out), '--runtime', 'onnxruntime')
    assert proc_csv.returncode == 1 and proc_csv.stdout == '' and 'skipped %s' % bad[1] in proc_csv.stderr
    rows = list(csv.DictReader(open(out)))
    assert sorted({r['path'] for r in rows}) == sorted(good) and len(rows) == 15
    proc_table = _cli('predict', *good, '--model', 'rexnet_1.0x', '--params', weights[1], '--runtime', 'fast')
    assert proc_table.returncode == 0, proc_table.stderr
    tables = _tables(proc_table.stdout, good)
    for pred in doc['predictions']:
        table, csv_rows = tables[pred['path']], [r for r in rows if r['path'] == pred['path']]
        assert [t[2] for t in table] == [t['index'] for t in pred['top']] == [int(r['index']) for r in csv_rows]
        assert [t[3] for t in table] == [r['class'] for r in csv_rows]
        assert np.allclose([t[1] for t in table], [100 * float(r['probability']) for r in csv_rows], atol=0.006)


def test_cli_bad_input(weights, images, tmp_path):
    missing = str(tmp_path / 'missing.jpg')
    proc = _cli('predict', images[0], missing, '--model', 'rexnet_1.0x', '--params', weights[1], '--runtime', 'mxnet')
    assert proc.returncode == 1 and 'skipped %s: no such file' % missing in proc.stderr, proc.stderr
    assert 'Traceback' not in proc.stderr and _tables(proc.stdout, images[:1])

    not_image = tmp_path / 'readme.png'
    not_image.write_text('hello')
    proc = _cli('predict', str(not_image), missing, '--model', 'rexnet_1.0x', '--params', weights[1],
                '--runtime', 'mxnet')
    assert proc.returncode == 2 and str(not_image) in proc.stderr and 'Traceback' not in proc.stderr
    assert 'none of the 2 images could be read' in proc.stderr and proc.stdout == ''

    (tmp_path / 'empty').mkdir()
    proc = _cli('predict', str(tmp_path / 'nothing-*.jpg'), str(tmp_path / 'empty'), '--model', 'rexnet_1.0x',
                '--params', weights[1])
    assert proc.returncode == 2 and 'no file matches this pattern' in proc.stderr and 'no image to classify' in \
        proc.stderr and 'empty: a folder with no image files' in proc.stderr and 'runtime' not in proc.stderr

    proc = _cli('predict', images[0], '--model', 'rexnet_9.9x', '--params', weights[1])
    assert proc.returncode == 2 and 'rexnet_9.9x' in proc.stderr
    assert all(name in proc.stderr for name in get_model_list()), proc.stderr

    proc = _cli('predict', images[0], '--model', 'rexnet_1.0x', '--params', str(tmp_path / 'none.params'))
    assert proc.returncode == 2 and 'none.params' in proc.stderr and 'Traceback' not in proc.stderr

    if mx.context.num_gpus() == 0:
        proc = _cli('predict', images[0], '--model', 'rexnet_1.0x', '--params', weights[1], '--gpu', '0')
        assert proc.returncode == 2 and '--gpu 0' in proc.stderr and 'Traceback' not in proc.stderr

    proc = _cli('predict', images[0], '--model', 'rexnet_1.0x', '--pretrained', '--params', weights[1])
    assert proc.returncode == 2 and 'not allowed with' in proc.stderr
    proc = _cli('predict', images[0], '--model', 'rexnet_1.0x', '--runtime', 'tensorrt')
    assert proc.returncode == 2 and "invalid choice: 'tensorrt'" in proc.stderr


def test_cli_default_weights_offline(images, tmp_path, monkeypatch, capsys):
    """Without --params the published weights are used; offline, the zoo's error is printed, exit 2."""
    import rexnet_gluon.zoo.download as download
    from rexnet_gluon.__main__ import main

    def offline(*args, **kwargs):
        raise download.DownloadError('cannot resolve the host (offline, or no DNS)')

    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mxnet_home'))
    monkeypatch.setattr(download, 'fetch_one', offline)
    assert main(['predict', images[0], '--model', 'rexnet_1.0x']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: could not fetch pretrained weights for rexnet_1.0x')
    assert 'pretrained=' in err and 'Traceback' not in err
    assert err.count('-> cannot resolve the host') == 4            # every source named, with its failure


def test_cli_predict_takes_an_alias(weights, images, capsys):
    """--model accepts what users type (timm's name with its tag, any case): the zoo model, its name printed."""
    from rexnet_gluon.__main__ import main
    assert main(['predict', images[0], '--model', 'rexnet_1.0x', '--params', weights[1], '--topk', '3']) == 0
    canonical = capsys.readouterr().out
    assert main(['predict', images[0], '--model', ' REXNET_100.nav_in1k', '--params', weights[1], '--topk', '3']) == 0
    aliased = capsys.readouterr().out
    assert aliased.startswith('rexnet_1.0x (%s), input 224x224, top-3 of 1000 classes' % weights[1])
    assert aliased == canonical
    assert main(['predict', images[0], '--model', 'rexnet_lite_3.0', '--params', weights[1]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'rexnet_lite_3.0'; did you mean ") and 'Traceback' not in err
