"""The public names the README uses are there after a plain ``import rexnet_gluon`` (fresh process: no other test's
imports can make them appear), and that import loads neither torch nor gluoncv."""
import os
import subprocess
import sys

from helpers import REPO

NAMES = ['get_model', 'get_model_list', 'ReXNet', 'ReXNetV1', 'ReXNetV1Lite', 'ReXNetFeatures', 'convert.spec_from_name',
         'convert.convert_checkpoint', 'zoo.rexnet_1_0x', 'zoo.get_rexnet', 'zoo.pretrained_file', 'import_gluoncv']


def test_readme_names_after_a_plain_import():
    code = ('import functools, sys, rexnet_gluon\n'
            'missing = [n for n in %r if functools.reduce(lambda o, a: getattr(o, a, None), n.split("."), '
            'rexnet_gluon) is None]\n'
            'print("MISSING", missing, "torch" in sys.modules, "gluoncv" in sys.modules)\n' % NAMES)
    res = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, PYTHONPATH=REPO, PYTHONWARNINGS='ignore'),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'MISSING [] False False' in res.stdout, res.stdout
