"""Shared fixtures."""
import os
import subprocess
import sys

import pytest

from helpers import REPO  # noqa: E402  (conftest's folder is on sys.path: pytest's default import mode)

TRAINED_SIZE = 64

# Tests never write exports into the user's $MXNET_HOME/models/engines: the engine cache is off, except in
# tests/deploy/test_engine_cache.py, which turns it on with a MXNET_HOME of its own.
os.environ['REXNET_ENGINE_CACHE'] = '0'


@pytest.fixture(scope='session')
def trained_shapes(tmp_path_factory):
    """A ReXNet-1.0x trained (by scripts/train_imagenet.py, ~3 min on 2 cores) on the drawn-shapes data set of
    tests/datasets.py at 64 px: the stand-in for a trained network where random weights say nothing (INT8
    agreement). 800 training images (calibration draws from these), 1000 held-out validation images.
    Returns dict(params, train, val, size, log: the lines of the training metrics CSV)."""
    from datasets import make_shapes_dataset
    root = tmp_path_factory.mktemp('trained_shapes')
    data = root / 'shapes'
    make_shapes_dataset(str(data), 200, 250, TRAINED_SIZE, rec=False)
    run = root / 'run'
    cmd = [sys.executable, os.path.join(REPO, 'scripts', 'train_imagenet.py'), '--model', 'rexnet_1.0x',
           '--data-dir', str(data), '--input-size', str(TRAINED_SIZE), '-j', '2', '--mode', 'hybrid',
           '--batch-size', '16', '--num-epochs', '10', '--lr', '0.05', '--lr-mode', 'cosine', '--warmup-epochs', '1',
           '--dropout', '0', '--no-wd', '--min-random-area', '0.3', '--color-jitter', '0.2', '--pca-noise', '0',
           '--seed', '1', '--save-frequency', '10', '--save-dir', str(run), '--metrics-file', str(run / 'm.csv'),
           '--logging-file', str(run / 'train.log')]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    params = run / 'imagenet-rexnet_1.0x-9.params'
    assert params.is_file(), sorted(os.listdir(run))
    last = (run / 'm.csv').read_text().strip().splitlines()
    return dict(params=str(params), train=str(data / 'train'), val=str(data / 'val'), size=TRAINED_SIZE,
                log=last)
