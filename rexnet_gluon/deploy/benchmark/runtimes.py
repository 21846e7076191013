"""The benchmark configurations that run a file rather than a network: OpenVINO (``ov_fp32``, ``ov_int8``,
``ov_timm``) and ONNX Runtime (``ort_fp32``), and the export of timm's model to ONNX that ``ov_timm`` runs.

Like ``child.py``, this file is loaded by path (``load_runtimes``), never through the package: its children then
hold only their runtime (no MXNet, no PyTorch), so their peak RSS is the runtime's own. The files are made
before the timed children start (``prepare.py``); the top level imports only the standard library.

    python runtimes.py export-timm SPEC   # torch only: timm's rexnet as ONNX, and its logits on the test images
"""
import json
import os
import sys

__all__ = ['RUNTIME_CONFIGS', 'build_runtime', 'export_timm_onnx', ]

# configuration -> (file it runs, the reference its logits are compared with)
RUNTIME_CONFIGS = {'ov_fp32': ('ir_fp32', 'mxnet'), 'ov_int8': ('ir_int8', 'mxnet'),
                   'ort_fp32': ('onnx', 'mxnet'), 'ov_timm': ('ir_timm', 'timm')}


def _ov_runner_module():
    """``deploy/openvino_runner.py``, loaded by its path (the package would import MXNet)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'openvino_runner.py')
    spec = importlib.util.spec_from_file_location('rexnet_openvino_runner', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ov_step(path, x, threads):
    """The IR run as the ``openvino`` engine of ``predict`` runs it (``OpenVinoRunner``: f32, LATENCY hint, one
    synchronous request, static shape from a batch size's second call on). Returns (step, run, description)."""
    import numpy as np
    import openvino as ov
    m = _ov_runner_module()
    core = ov.Core()
    runner = m.OpenVinoRunner(core.read_model(path), m.cpu_config('f32', threads), core=core)
    compiled, request = runner.dynamic    # the check's batches of 8 on the model the runner holds anyway

    def check(imgs):
        return np.array(request.infer({0: imgs})[compiled.output(0)])
    return (lambda: runner(x), check, 'the openvino engine (OpenVinoRunner): f32, LATENCY hint, 1 sync request, '
            'static shape for a recurring batch size')


def _ort_step(path, x, threads):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    session = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return (lambda: session.run(None, {name: x}), lambda imgs: session.run(None, {name: imgs})[0],
            'CPUExecutionProvider, %d intra-op threads' % threads)


def build_runtime(cfg, a, x):
    """(step, extra) of a runtime configuration, like ``child._child_mx``: ``extra['check']`` compares its logits
    on the prepared test images with the reference's (the plain MXNet net, or timm eager for ov_timm)."""
    import numpy as np
    name = cfg['config']
    kind, against = RUNTIME_CONFIGS[name]
    if 'error' in cfg['files']:
        raise RuntimeError('preparing its files failed: ' + cfg['files']['error'])
    path = cfg['files'][kind]
    step, run, how = (_ort_step if kind == 'onnx' else _ov_step)(path, x, a['threads'])

    def check():
        ref = np.load(cfg['files']['ref_' + against])
        got = np.concatenate([run(ref['test'][i:i + 8]) for i in range(0, len(ref['test']), 8)])
        logits = ref['logits']
        return dict(top1_agreement=float(np.mean(got.argmax(1) == logits.argmax(1))),
                    max_abs_diff=float(np.abs(got - logits).max()), logit_scale=float(np.abs(logits).max()),
                    reference=against, runtime=how)
    return step, {'check': check, 'runtime': how}


def export_timm_onnx(spec):
    """timm's RexNet of ``width`` with the timm rows' seeded weights, exported by ``torch.onnx.export`` (dynamic
    batch) to ``onnx``; its eager logits on ``test`` (an .npz with the test images) saved to ``ref``."""
    import numpy as np
    import torch
    sys.path[0] = os.path.dirname(os.path.abspath(__file__))
    from child import timm_model   # noqa: E402 - the sibling script (no package import: no MXNet here)
    torch.set_num_threads(spec['threads'])
    model, _ = timm_model(spec['width'])
    test = np.load(spec['test'])['test']
    with torch.no_grad():
        logits = model(torch.from_numpy(test)).numpy()
    torch.onnx.export(model, torch.from_numpy(test[:1]), spec['onnx'], input_names=['data'], output_names=['logits'],
                      dynamic_axes={'data': {0: 'batch'}, 'logits': {0: 'batch'}}, opset_version=17, dynamo=False)
    np.savez(spec['ref'], test=test, logits=logits)


if __name__ == '__main__':
    if sys.argv[1:2] == ['export-timm']:
        export_timm_onnx(json.loads(sys.argv[2]))
    else:
        sys.exit('usage: python runtimes.py export-timm SPEC')
