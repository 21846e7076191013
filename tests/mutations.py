#!/usr/bin/env python
"""Do the tests catch the bugs they claim to? Break the code on purpose, run the guarding tests, expect a failure.

    python tests/mutations.py                 # every mutation below (about 15 minutes on 2 cores)
    python tests/mutations.py --only crop,inf # some of them
    python tests/mutations.py --list

Each mutation is a small textual change of one package file, applied to a fresh copy of the repository (the work
tree is never touched); the guarding tests then run in that copy and must fail. A mutation that no longer applies
(the code moved) is reported as such, so this table cannot rot silently. tests/README.md lists the same table
with the results of the last run. Not collected by pytest (no test_ prefix): it is a tool, run by hand.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import namedtuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Mutation = namedtuple('Mutation', 'name claim path old new tests')

MUTATIONS = [
    Mutation('official-bn-swap', 'official-layout parity',
             'rexnet_gluon/convert/mapping.py',
             "        rows.append(Param('%s.%s' % (gluon[1], g), '%s.%s' % (official[1], t),",
             "        rows.append(Param('%s.%s' % (gluon[1], g), '%s.%s' % (official[1], {'running_mean': "
             "'running_var', 'running_var': 'running_mean'}.get(t, t)),",
             ['tests/convert/test_parity.py', '-k', 'official']),
    Mutation('detect-ch-div', 'model detection from shapes (rexnetr_3.0x: ch_div 16)',
             'rexnet_gluon/convert/mapping.py', 'for c in (1, 8, 16)]', 'for c in (1, 8)]',
             ['tests/convert/test_convert.py', '-k', 'detect and rexnetr_3']),
    Mutation('inf-passes', 'bad input: non-finite tensors refused',
             'rexnet_gluon/convert/mapping.py', 'if not np.all(np.isfinite(value)):', 'if np.any(np.isnan(value)):',
             ['tests/convert/test_convert.py', '-k', 'inf']),
    Mutation('hash-prefix-only', 'downloads: full SHA-256 checked',
             'rexnet_gluon/zoo/download.py', 'if want and not actual.startswith(want):',
             'if want and not actual[:8] == want[:8]:',
             ['tests/zoo/test_download.py', '-k', 'full_digest']),
    Mutation('symbol-self-compare', 'symbol export equals the network',
             'rexnet_gluon/deploy/export/mxnet_formats.py',
             'run_batches(load_exported(st.staged_prefix), x, batch)', 'run_batches(net, x, batch)',
             ['tests/deploy/test_export.py', '-k', 'corrupted_mxnet and symbol']),
    Mutation('fast-self-compare', 'fast export equals the network',
             'rexnet_gluon/deploy/export/mxnet_formats.py',
             'out = run_batches(load_exported(st.staged_prefix), held, 1)', 'out = run_batches(net, held, 1)',
             ['tests/deploy/test_export.py', '-k', 'corrupted_mxnet and fast']),
    Mutation('onnx-self-compare', 'ONNX export equals the network',
             'rexnet_gluon/deploy/export/onnx_format.py',
             'lambda xb: session.run(None, {input_name: xb})[0]', 'lambda xb: run_batches(net, xb, len(xb))',
             ['tests/deploy/test_export.py', '-k', 'corrupted_onnx']),
    Mutation('openvino-self-compare', 'OpenVINO export equals the network',
             'rexnet_gluon/deploy/export/openvino_format.py',
             'lambda xb: run_ir(compiled, xb)', "lambda xb: net(__import__('mxnet').nd.array(xb)).asnumpy()",
             ['tests/deploy/test_export.py', '-k', 'corrupted_openvino']),
    Mutation('int8-self-compare', 'INT8 agreement is measured against fp32',
             'rexnet_gluon/deploy/export/lowp.py',
             'in_memory).max())\n        agree = top1_agreement(out, ref)',
             'in_memory).max())\n        agree = top1_agreement(out, out)',
             ['tests/deploy/test_export.py', '-k', 'int8_export_artifacts']),
    Mutation('val-crop-round', 'folder and RecordIO validation see the same pixels',
             'rexnet_gluon/train/data/transforms.py', 'y0, x0 = (nh - size) // 2, (nw - size) // 2',
             'y0, x0 = int(round((nh - size) / 2.)), int(round((nw - size) / 2.))',
             ['tests/train/test_data.py']),
    Mutation('grey16-clipped', 'images: 16-bit files scaled, not clipped to white',
             'rexnet_gluon/deploy/images.py', 'return _flatten(_to_8bit(img, path))', 'return _flatten(img)',
             ['tests/deploy/test_images.py', '-k', '16_bit']),
    Mutation('save-unverified', 'a full disk never leaves a truncated cached file',
             'rexnet_gluon/convert/mapping.py', '        _check_written(tmp, arrays, path)\n', '',
             ['tests/zoo/test_zoo.py', '-k', 'full_disk']),
    Mutation('unusable-download-kept', 'a download that does not convert is removed, the next source tried',
             'rexnet_gluon/zoo/cache.py', '        os.remove(path)\n        raise _Unusable',
             '        raise _Unusable',
             ['tests/zoo/test_zoo.py', '-k', 'short_download']),
    Mutation('trained-head-dropped', 'a trained head loads as it is, or fails loudly',
             'rexnet_gluon/zoo/weights.py',
             'if in_classifier and classes is not None and classes != 1000 and value.shape[:1] == (1000,):',
             'if in_classifier and classes is not None and classes != 1000:',
             ['tests/zoo/test_zoo.py', '-k', 'dense_head']),
    Mutation('resume-drops-momentum', 'resume equals an uninterrupted run',
             'rexnet_gluon/train/learner.py', 'trainer.load_states(opt.resume_states)', 'pass',
             ['tests/train/test_train.py', '-k', 'resume_equals_uninterrupted']),
    Mutation('resume-devstats-ignored', 'a multi-device resume equals an uninterrupted run (BN statistics)',
             'rexnet_gluon/train/learner.py', 'restore_device_stats(self.net, opt.resume_params, log)', 'pass',
             ['tests/train/test_train.py', '-k', 'resume_equals_uninterrupted and two']),
    Mutation('verify-zoo-preprocess', "verify evaluates a checkpoint as its training validated it",
             'rexnet_gluon/train/verify.py', "meta = checkpoint_meta(opt.params_file).get('preprocess')",
             'meta = None', ['tests/train/test_finetune_workflow.py', '-k', 'verify']),
    Mutation('class-names-dropped', 'a fine-tuned checkpoint predicts with its class names',
             'rexnet_gluon/train/outputs.py', 'class_names=self.plan.class_names,', 'class_names=None,',
             ['tests/train/test_finetune_workflow.py', '-k', 'predict']),
    Mutation('finetune-new-body', 'fine-tuning keeps every pretrained tensor but the classifier',
             'rexnet_gluon/train/finetune.py', 'load_arrays(net, arrays, ctx, classes, new_classifier=True, source=source)',
             'pass', ['tests/train/test_finetune_workflow.py', '-k', 'replaces_only']),
    Mutation('bn-var-biased', "BatchNorm running variance updated as PyTorch does (unbiased)",
             'rexnet_gluon/norm.py', 'var += changed * (var - m * before) / (n - 1)', 'var += 0 * changed',
             ['tests/network/test_norm.py']),
    Mutation('dist-same-shard', 'dist_sync equals one process on the combined batch',
             'rexnet_gluon/train/plan.py', 'part_index=rt.rank)', 'part_index=0)',
             ['tests/train/test_train.py', '-k', 'dist_sync']),
    Mutation('horovod-sum-step', 'Horovod (2 ranks) equals one process on the combined batch',
             'rexnet_gluon/train/runtime.py', "(self.num_workers if self.kind == 'dist' else 1)",
             "(self.num_workers if self.kind in ('dist', 'horovod') else 1)",
             ['tests/train/test_train.py', '-k', 'horovod']),
    Mutation('nag-torch-wd-after-update', "nag_torch is PyTorch's SGD(nesterov, weight_decay), not nag's wd rule",
             'rexnet_gluon/train/optimizer.py',
             """        if wd != 0.0:
            g += weight * wd
        if state is not None:
            momentum = float(self.momentum)
            state *= momentum
            state += g
            g += state * momentum
        weight -= g * lr
""",
             """        if wd != 0.0 and state is None:
            g += weight * wd
        if state is not None:
            momentum = float(self.momentum)
            state *= momentum
            state += g
            g += state * momentum + weight * (wd * (1 + momentum))
        weight -= g * lr
        if state is not None:
            state += weight * wd    # nag's rule: the momentum's wd term from the updated weight
""",
             ['tests/train/test_optimizer.py']),
    Mutation('dist-plain-server', 'a dist_sync server runs nag_torch (launch_dist starts it able to unpickle it)',
             'scripts/launch_dist.py', "[sys.executable, os.path.abspath(__file__), '--serve']",
             "[sys.executable, '-c', 'import mxnet']",
             ['tests/train/test_train.py', '-k', 'dist_sync and nag_torch']),
    Mutation('ov-int8-self-compare', 'OpenVINO INT8 agreement is measured against the fp32 IR',
             'rexnet_gluon/deploy/export/openvino_int8.py',
             'agree, agree_mx = top1_agreement(out, fp32), top1_agreement(out, mx_ref)',
             'agree, agree_mx = top1_agreement(fp32, fp32), top1_agreement(out, mx_ref)',
             ['tests/deploy/test_openvino_int8.py', '-k', 'refused or api']),
    Mutation('ov-int8-gate-open', 'an OpenVINO INT8 IR below --int8-min-agreement is not published',
             'rexnet_gluon/deploy/export/openvino_int8.py',
             'agree >= min_agreement)\n        if rep.ok or keep_failed:',
             'True)\n        if rep.ok or keep_failed:',
             ['tests/deploy/test_openvino_int8.py', '-k', 'refused']),
    Mutation('last-gamma-ignored', 'GluonCV kwargs take effect (last_gamma)',
             'rexnet_gluon/model.py', 'zero_gamma=last_gamma and self.use_shortcut', 'zero_gamma=False',
             ['tests/gluoncv/test_gluoncv.py', '-k', 'kwargs']),
    Mutation('hybridize-not-static', 'hybridize() without flags is static_alloc + static_shape (faster, exact)',
             'rexnet_gluon/model.py', 'kwargs.update(static_alloc=True, static_shape=True)', 'pass',
             ['tests/network/test_model.py', '-k', 'default_hybridize']),
    Mutation('auto-takes-failing-engine', 'runtime auto skips an engine that fails its parity check',
             'rexnet_gluon/deploy/runtimes.py',
             "return (engine, 'parity check passed: ' + text) if ok else (None, 'parity check FAILED: ' + text)",
             "return (engine, 'parity check passed: ' + text)",
             ['tests/deploy/test_runtimes.py', '-k', 'fails_its_check']),
    Mutation('bad-file-aborts', 'predict reports and skips an unreadable image, classifies the others',
             'rexnet_gluon/deploy/predict.py', 'except ImageLoadError as err:\n                    failures.append',
             'except KeyError as err:\n                    failures.append',
             ['tests/deploy/test_predict.py', '-k', 'cli_folder_with_bad_files']),
    Mutation('engine-cache-unverified', "a cached export whose content lost its name's SHA-1 is made again",
             'rexnet_gluon/deploy/engine_cache.py', "if file_digest(path)[:8] != m.group(1):", 'if False:',
             ['tests/deploy/test_engine_cache.py', '-k', 'damaged']),
    Mutation('engine-key-weights-only', 'the engine cache key covers BatchNorm statistics, not only trained weights',
             'rexnet_gluon/deploy/engine_cache.py',
             'for name, param in sorted(net._collect_params_with_prefix().items()):\n',
             "for name, param in sorted(net._collect_params_with_prefix().items()):\n"
             "        if param.grad_req == 'null':\n            continue\n",
             ['tests/deploy/test_engine_cache.py', '-k', 'key_follows']),
    Mutation('ov-runner-dynamic-only', 'the openvino engine compiles a static model for a recurring batch size',
             'rexnet_gluon/deploy/openvino_runner.py', 'if n in self._seen and len(self.static) < self.max_static:',
             'if False:', ['tests/deploy/test_runtimes.py', '-k', 'static_model']),
    Mutation('goal-any-batch', 'a speed goal is met only when every batch it names reaches it',
             'rexnet_gluon/deploy/benchmark/report.py',
             'all(v is not None and v >= target for v in judged)', 'any(v is not None and v >= target for v in judged)',
             ['tests/deploy/test_benchmark_report.py', '-k', 'goal_ratios']),
]


def _copy_repo(dest):
    ignore = shutil.ignore_patterns('.venv', '.git', '__pycache__', '*.egg-info', '.pytest_cache', 'results')
    shutil.copytree(REPO, dest, ignore=ignore)


def run_one(m, log):
    """'caught' (the tests failed), 'MISSED' (they passed), or 'stale' (the code to mutate is gone)."""
    with tempfile.TemporaryDirectory(prefix='mutation-') as tmp:
        copy = os.path.join(tmp, 'repo')
        _copy_repo(copy)
        path = os.path.join(copy, m.path)
        with open(path) as f:
            text = f.read()
        if text.count(m.old) != 1:
            return 'stale', 0.0
        with open(path, 'w') as f:
            f.write(text.replace(m.old, m.new))
        env = dict(os.environ, PYTHONPATH=copy, PYTHONDONTWRITEBYTECODE='1')
        tic = time.time()
        res = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-x', '-p', 'no:cacheprovider'] + m.tests,
                             cwd=copy, env=env, capture_output=True, text=True)
        log.write('=== %s (exit %d)\n%s\n' % (m.name, res.returncode, res.stdout[-3000:]))
        if res.returncode == 5:
            return 'no tests ran', time.time() - tic
        return ('caught' if res.returncode == 1 else 'MISSED' if res.returncode == 0 else
                'error %d' % res.returncode), time.time() - tic


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--only', default='', help='comma-separated mutation names')
    p.add_argument('--list', action='store_true')
    p.add_argument('--log', default=os.path.join(tempfile.gettempdir(), 'rexnet_mutations.log'))
    args = p.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only.split(',')]
    if args.list or not chosen:
        for m in MUTATIONS:
            print('%-22s %s  [%s]' % (m.name, m.claim, ' '.join(m.tests)))
        return 0 if chosen else 2
    print('| mutation | claim | guarding tests | result |\n|---|---|---|---|')
    bad = 0
    with open(args.log, 'w') as log:
        for m in chosen:
            result, secs = run_one(m, log)
            bad += result != 'caught'
            print('| `%s` (%s) | %s | `%s` | %s (%.0f s) |' % (m.name, m.path, m.claim, ' '.join(m.tests), result,
                                                             secs), flush=True)
    print('\npytest output of each run: %s' % args.log)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
