"""``export --format openvino-int8`` (rexnet_gluon/deploy/export/openvino_int8.py): NNCF INT8 of the OpenVINO IR,
published only when its top-1 agreement with the fp32 IR reaches --int8-min-agreement; and the benchmark's
OpenVINO / ONNX Runtime rows (deploy/benchmark/runtimes.py, prepare.py) in a tiny smoke run.

Agreement means something only on a trained net (random weights: ~60 %, see test_export.py), so the accepted
export is measured on the session's trained stand-in (conftest.py); the refused one on random weights."""
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ov = pytest.importorskip('openvino')
pytest.importorskip('nncf')
pytest.importorskip('onnxruntime')

import rexnet_gluon.deploy.export as ex  # noqa: E402
from rexnet_gluon.zoo import get_model  # noqa: E402

from helpers import REPO, random_checkpoint  # noqa: E402

SIZE = 64


def _export(*args, cwd):
    return subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'export.py')] + list(args), cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def test_openvino_int8_agreement_on_a_trained_network(trained_shapes, tmp_path):
    """Through the CLI, calibrated on 64 training images, checked on 1000 held-out ones. Measured on a net trained
    by the same command (val error 0.078): 99.6 % agreement with the fp32 IR, cosine 0.9992 (NNCF's default
    activation ranges: 95.9 %). Asserted: 98 %, which NNCF's default ranges (95-96 %) and a broken graph fail."""
    t = trained_shapes
    proc = _export('--model', 'rexnet_1.0x', '--params', t['params'], '--format', 'openvino-int8', '--input-size',
                   str(t['size']), '--calib-dir', t['train'], '--num-calib', '64', '--eval-dir', t['val'],
                   '--num-eval', '1000', '--int8-min-agreement', '0.98', '--output', 'q/shapes', cwd=str(tmp_path))
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    m = re.search(r'top-1 agreement with the fp32 IR on 1000 held-out images: ([\d.]+) %', proc.stdout)
    assert m and float(m.group(1)) >= 98.0 and '[openvino-int8] PASS' in proc.stdout
    fq, n_int8 = map(int, re.search(r'(\d+) FakeQuantize nodes; the CPU plugin runs (\d+) of', proc.stdout).groups())
    assert fq > 50 and n_int8 > 30
    prefix = str(tmp_path / 'q' / 'shapes')
    core = ov.Core()                                   # fresh: as a deployment reads the published files
    model = core.read_model(prefix + '.xml', prefix + '.bin')
    assert sum(op.get_type_name() == 'FakeQuantize' for op in model.get_ops()) == fq
    out = np.array(core.compile_model(model, 'CPU')(np.zeros((2, 3, t['size'], t['size']), np.float32))[0])
    assert out.shape == (2, 4) and np.isfinite(out).all()


def test_refused_openvino_int8_publishes_nothing(tmp_path):
    """Random weights agree ~60 % with fp32: --int8-min-agreement 1.0 must refuse the file (exit 1, nothing under
    the prefix, no staging folder left), and the report still gives the measured agreement."""
    params = random_checkpoint(tmp_path, seed=5)[1]
    proc = _export('--model', 'rexnet_1.0x', '--params', params, '--format', 'openvino-int8', '--input-size',
                   str(SIZE), '--num-calib', '16', '--num-eval', '64', '--int8-min-agreement', '1.0',
                   '--output', 'q/rexnet', cwd=str(tmp_path))
    print(proc.stdout)
    assert proc.returncode == 1 and '[openvino-int8] FAIL' in proc.stdout and 'wrote     nothing' in proc.stdout
    agree = float(re.search(r'fp32 IR on 64 held-out generated images \(seed 1\): ([\d.]+) %', proc.stdout).group(1))
    assert 20 < agree < 100
    assert os.listdir(str(tmp_path / 'q')) == []


def test_openvino_int8_api_measures_against_the_fp32_ir(tmp_path):
    """The API's figures are what they say: the agreement equals one recomputed from the published IR and the fp32
    IR of the openvino format on the same held-out images."""
    net = get_model('rexnet_1.0x', pretrained=random_checkpoint(tmp_path, seed=5)[1])
    pp = ex.preprocess_for_size(net.preprocess, SIZE)
    rep = ex.export_openvino_int8(net, str(tmp_path / 'int8'), size=SIZE, preprocess=pp, num_calib=16, num_eval=64,
                                  min_agreement=0.0)
    fp = ex.export_openvino(net, str(tmp_path / 'fp32'), size=SIZE, preprocess=pp)
    assert rep.ok and fp.ok and rep.files == [str(tmp_path / 'int8.xml'), str(tmp_path / 'int8.bin')]
    held = ex.generated_images(64, SIZE, pp, ex.EVAL_SEED)
    core = ov.Core()
    q, f = [np.array(core.compile_model(core.read_model(str(tmp_path / (n + '.xml'))), 'CPU',
                                        {'INFERENCE_PRECISION_HINT': 'f32'})(held)[0]) for n in ('int8', 'fp32')]
    assert np.mean(q.argmax(1) == f.argmax(1)) == pytest.approx(rep.figures['top1_agreement'])
    assert rep.figures['int8_convolutions'] > 30 and np.abs(q - f).max() > 1e-3   # it is quantized


def test_benchmark_runtime_rows_smoke(tmp_path):
    """ov_fp32, ov_int8, ort_fp32, ov_timm run (files made before the timed children), each row with its check:
    fp32 runtimes agree with MXNet (ov_timm with timm eager), and the OpenVINO children hold no MXNet (their peak
    RSS is below the MXNet row's)."""
    pytest.importorskip('timm')
    out = tmp_path / 'bench'
    cmd = [sys.executable, os.path.join(REPO, 'scripts', 'benchmark.py'), '--widths', '1.0', '--batches', '2',
           '--repeats', '2', '--iters', '2', '--warmup', '1', '--configs', 'mx_hybrid,ov_fp32,ov_int8,ort_fp32,ov_timm',
           '--size', '32', '--calib', '4', '--no-wait', '--output-dir', str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rows = {r['config']: r for r in json.loads((out / 'benchmark.json').read_text())['results']}
    assert all(r['ok'] and r['median'] > 0 for r in rows.values()), rows
    for c in ('ov_fp32', 'ort_fp32', 'ov_timm'):
        assert rows[c]['top1_agreement'] == 1.0 and rows[c]['max_abs_diff'] < 1e-3 * max(1, rows[c]['logit_scale'])
    assert rows['ov_timm']['reference'] == 'timm' and rows['ov_fp32']['reference'] == 'mxnet'
    assert 'OpenVinoRunner' in rows['ov_fp32']['runtime'] and 0 <= rows['ov_int8']['top1_agreement'] <= 1
    assert rows['ov_fp32']['rss_mib'] < rows['mx_hybrid']['rss_mib']
    assert glob.glob(str(out / 'benchmark.md'))
