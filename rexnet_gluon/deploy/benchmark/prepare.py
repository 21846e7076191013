"""The files the runtime configurations run (``runtimes.py``), made before any timed child starts: our ONNX
export, its OpenVINO IR in fp32 and INT8 (NNCF, calibrated on generated images), timm's own ONNX export (in a
torch-only subprocess) as IR, and the reference logits each row's agreement is measured against.

They are made in a subprocess of their own (:func:`prepare_files`), so the parent that starts the timed children
never holds OpenVINO, NNCF or a quantization's 1.2 GB peak."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

from .child import CHILD_SCRIPT, RUNTIME_CONFIGS, _generated_images, _mx_net

__all__ = ['missing_runtimes', 'make_files', 'prepare_files', ]

NEEDS = {'ov_fp32': ('openvino', 'onnx'), 'ov_int8': ('openvino', 'onnx', 'nncf'),
         'ort_fp32': ('onnxruntime', 'onnx'), 'ov_timm': ('openvino', 'torch', 'timm')}
N_TEST = 32   # test images of the agreement check (seed 2, as the MXNet rows')


def missing_runtimes(configs):
    """{configuration: the packages it needs that are not installed} for the runtime configurations."""
    out = {}
    for c in configs:
        missing = [m for m in NEEDS.get(c, ()) if importlib.util.find_spec(m) is None]
        if missing:
            out[c] = missing
    return out


def _preprocess(size):
    return dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=size, crop=size,
                resize=size, crop_pct=1.0, interpolation='bilinear')


def _checked(rep):
    if not rep.ok:
        raise RuntimeError('the %s export failed its check:\n%s' % (rep.format, rep.summary()))
    return rep


def _mxnet_files(width, configs, folder, a):
    """Our exports of the benchmark's random-weight net (``child._mx_net``), each verified by its export."""
    from ..export import export_onnx, export_openvino, export_openvino_int8
    from ..export.graphs import run_batches
    net = _mx_net(width)
    size, pp, prefix = a['size'], _preprocess(a['size']), os.path.join(folder, 'rexnet_%s' % width)
    test = _generated_images(N_TEST, size, 2)
    files = {'ref_mxnet': prefix + '-ref.npz', 'test': prefix + '-ref.npz'}
    net.hybridize(static_alloc=True, static_shape=True)
    np.savez(files['ref_mxnet'], test=test, logits=run_batches(net, test, 8))
    if 'ort_fp32' in configs:
        files['onnx'] = _checked(export_onnx(net, prefix, size, preprocess=pp)).files[0]
    if 'ov_fp32' in configs:
        files['ir_fp32'] = _checked(export_openvino(net, prefix, size, preprocess=pp)).files[0]
    if 'ov_int8' in configs:   # random weights: agreement is low by nature, the row reports it
        rep = export_openvino_int8(net, prefix + '-int8', size, preprocess=pp, num_eval=N_TEST, min_agreement=0.0,
                                   calib_data=_generated_images(a['calib'], size, 1), num_calib=a['calib'])
        files['ir_int8'] = _checked(rep).files[0]
    return files


def _timm_files(width, folder, a, test_npz):
    """timm's ONNX export (a torch-only subprocess) converted to an fp32 IR; timm eager's logits as reference."""
    import openvino as ov
    prefix = os.path.join(folder, 'timm_%s' % width)
    spec = dict(width=width, threads=a['threads'], test=test_npz, onnx=prefix + '.onnx', ref=prefix + '-ref.npz')
    script = os.path.join(os.path.dirname(CHILD_SCRIPT), 'runtimes.py')
    p = subprocess.run([sys.executable, script, 'export-timm', json.dumps(spec)], capture_output=True, text=True,
                       timeout=900)
    if p.returncode:
        raise RuntimeError('timm ONNX export failed: %s' % (p.stderr.strip().splitlines() or ['?'])[-1])
    ov.save_model(ov.convert_model(spec['onnx']), prefix + '.xml', compress_to_fp16=False)
    return {'ir_timm': prefix + '.xml', 'ref_timm': spec['ref']}


def make_files(jobs, folder):
    """Make the files of the runtime jobs in ``folder``: {width: files}; a failure is recorded as
    ``files['error']``, which the child reports as the row's error."""
    made = {}
    for job in jobs:
        if job['config'] not in RUNTIME_CONFIGS:
            continue
        w = job['width']
        if w not in made:
            configs = {j['config'] for j in jobs if j['width'] == w}
            try:
                files = _mxnet_files(w, configs, folder, job['args'])
                if 'ov_timm' in configs:
                    files.update(_timm_files(w, folder, job['args'], files['test']))
            except Exception as err:   # noqa: BLE001 - reported in the rows, the other configurations still run
                files = {'error': '%s: %s' % (type(err).__name__, str(err)[:800])}
            made[w] = files
    return made


def prepare_files(jobs, folder):
    """:func:`make_files` in a subprocess, then each runtime job's ``job['files']`` set."""
    if not any(j['config'] in RUNTIME_CONFIGS for j in jobs):
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(CHILD_SCRIPT))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    code = 'import sys; from rexnet_gluon.deploy.benchmark.prepare import main; main(sys.argv[1])'
    p = subprocess.run([sys.executable, '-c', code, folder], input=json.dumps(jobs), capture_output=True, text=True,
                       env=env, timeout=3600)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith('FILES ')]
    made = json.loads(lines[-1][6:]) if lines else {}
    for job in jobs:
        if job['config'] in RUNTIME_CONFIGS:
            job['files'] = made.get(job['width']) or {
                'error': 'the preparing process exited with %d: %s' % (p.returncode, p.stderr.strip()[-600:])}


def main(folder):
    """The preparing subprocess: jobs as JSON on stdin, ``FILES {width: files}`` on stdout."""
    made = make_files(json.load(sys.stdin), folder)
    print('FILES ' + json.dumps(made), flush=True)
