"""Training parity with PyTorch step by step (scripts/train_parity.py, rexnet_gluon/train/step_parity.py): the
command passes for V1, lite and rexnetr in float64 and float32, on one and on two contexts, and fails when the
semantics differ (MXNet's biased BatchNorm variance, MXNet's nag)."""
import os
import subprocess
import sys

import pytest

pytest.importorskip('torch')
pytest.importorskip('timm')

from rexnet_gluon.train.step_parity import ParityConfig, TOLERANCE, main, run_parity  # noqa: E402

from helpers import REPO  # noqa: E402

SMALL = ['--steps', '5', '--input-size', '32', '--batch', '6', '--classes', '5']


@pytest.mark.parametrize('dtype', ['float64', 'float32'])
@pytest.mark.parametrize('model', ['rexnet_1.0x', 'rexnet_lite_1.0x', 'rexnetr_2.0x'])
def test_parity_command_passes(model, dtype, capsys):
    assert main(['--model', model, '--dtype', dtype] + SMALL) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert out.count('\n| ') == 5 + 1 and 'PASS: 5 steps within %g' % TOLERANCE[dtype] in out


def test_two_contexts_against_one_pytorch_batch():
    results, _ = run_parity(ParityConfig(steps=4, input_size=32, batch=6, classes=5, contexts=2))
    worst = max(max(r.loss_diff, r.param_diff, r.mean_diff, r.var_diff) for r in results)
    assert worst <= TOLERANCE['float64'], results


@pytest.mark.parametrize('flags, what', [(['--bn-running-var', 'biased'], 'running var'),
                                         (['--optimizer', 'nag'], 'parameters')])
def test_parity_fails_on_mxnet_semantics(flags, what, capsys):
    assert main(SMALL + flags) == 1
    out = capsys.readouterr().out
    assert 'FAIL:' in out, out


def test_script_exit_status_and_markdown(tmp_path):
    md = tmp_path / 'parity.md'
    p = subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'train_parity.py'), '--steps', '2',
                        '--input-size', '32', '--batch', '4', '--classes', '3', '--markdown', str(md)],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert md.read_text().startswith('| step | lr |') and 'PASS' in md.read_text()
