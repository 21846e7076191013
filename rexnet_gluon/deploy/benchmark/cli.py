"""CPU speed of rexnet_gluon (MXNet) against timm's rexnet (PyTorch): inference img/s and peak memory.

    python scripts/benchmark.py                                   # 1.0x, batch 1 and 32, every configuration
    python scripts/benchmark.py --widths 1.0,1.5,lite1.0 --batches 1,8,32 --torch-compile
    python scripts/benchmark.py --configs mx_fast,timm_cl --batches 1 --repeats 3 --output-dir /tmp/bench

Every (configuration, width, batch) runs in a subprocess of its own (so its peak RSS, the child's VmHWM, is
its own); the parent only schedules and aggregates. A child waits for the machine to be quiet, builds the network
and warms up. Then, by default, the parent times the configurations of one width and batch in interleaved rounds:
each round asks every child for one repeat of ``--iters`` forward passes (MXNet: until ``wait_to_read``; PyTorch:
``torch.no_grad`` + eval), in an order rotated from round to round. On a shared machine whose speed drifts over
minutes (seen here within one hour: the fast path's batch-1 median from 96 to 139 img/s, timm's from 52 to 76)
this keeps the comparison fair: the ratios are the medians of the per-round ratios. ``--sequential`` times one
configuration after the other instead (one process alive at a time). Reported: median / min / max img/s. Repeats
during which other processes used more than ``--max-foreign`` of the CPUs are re-run after a wait (at most twice
each), and the worst foreign load of the kept repeats is reported.

Configurations (``--configs``, default: all but timm_compile, which ``--torch-compile`` adds):

==================  ====================================================================================
mx_imperative       ReXNet, no hybridize
mx_hybrid           hybridize(static_alloc=True, static_shape=True)
mx_fused            + net.optimize_for(x, backend='MKLDNN') (oneDNN subgraph fusion)
mx_fast             rexnet_gluon.deploy.fast.prepare(net) with fast.RECOMMENDED_ENV (NaiveEngine, no op tuning)
mx_fast_threaded    the same graph with MXNet's default engine and environment
mx_bf16             mx.contrib.amp.convert_hybrid_block(net, 'bfloat16'), hybridized
mx_int8             mx.contrib.quantization.quantize_net(net, quantized_dtype='int8', calib_mode='naive')
mx_fast_int8        rexnet_gluon.deploy.fast.quantize(fast graph), int8, naive calibration
ov_fp32             our ONNX export as OpenVINO IR run as predict's openvino engine runs it (OpenVinoRunner: f32,
                    LATENCY hint, one sync request, static shape; files made before the children start)
ov_int8             the IR quantized by NNCF (export --format openvino-int8's quantize_ir), generated calibration
ort_fp32            ONNX Runtime (CPUExecutionProvider) on our ONNX export
ov_timm             timm's model exported by torch.onnx.export, run in OpenVINO f32 as ov_fp32 (vs timm eager)
timm_eager          timm rexnet_100-style model (same width), eval, NCHW
timm_cl             the same, channels_last
timm_compile        torch.compile (inductor) of the NCHW model
mx_train            one training step: forward + softmax CE + backward + SGD (momentum 0.9), BN in train mode
timm_train          the same in PyTorch
==================  ====================================================================================

Weights are random (seeded) with random BatchNorm statistics; calibration and agreement images are generated
(smooth random patterns). The MXNet rows also report max |logit diff| to the plain hybridized network and,
for the reduced-precision rows, the top-1 agreement with it on 32 held-out generated images.
Outputs: Markdown + JSON + PNG in ``--output-dir``; the table is printed with the machine and the command line.
"""
import argparse
import json
import os
import sys
import tempfile
import time

from ...utils.fileio import atomic_path, atomic_write_text
from .child import ALL_CONFIGS, TRAIN_CONFIGS, child_main, parse_width
from .prepare import missing_runtimes, prepare_files
from .report import (make_chart, make_goals, make_head, make_profile_table, make_readme_block, make_table,
                     replace_readme_block)
from .runner import machine_info, run_jobs, torch_available

__all__ = ['build_parser', 'plan_jobs', 'main', 'write_outputs', ]

# the checkout (this file is REPO/rexnet_gluon/deploy/benchmark/cli.py): --output-dir is REPO/results/benchmark
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--widths', default='1.0', help="comma list: 1.0,1.5,lite1.0 (lite: MXNet rows only)")
    p.add_argument('--batches', default='1,32', help='comma list of inference batch sizes')
    p.add_argument('--threads', type=int, default=2, help='OMP / torch threads (default 2)')
    p.add_argument('--repeats', type=int, default=7, help='timed repeats per configuration')
    p.add_argument('--iters', type=int, default=0, help='iterations per repeat (default: 20 at bs1, 64/bs above)')
    p.add_argument('--warmup', type=int, default=None, help='warm-up iterations (default 10 at bs1, 3 above)')
    p.add_argument('--configs', default='', help='comma list (default: all but timm_compile); see the module doc')
    p.add_argument('--torch-compile', action='store_true', help='add timm_compile (first call compiles: minutes)')
    p.add_argument('--no-train', action='store_true', help='skip the training-step rows')
    p.add_argument('--train-batch', type=int, default=32)
    p.add_argument('--size', type=int, default=224, help='input resolution')
    p.add_argument('--calib', type=int, default=32, help='generated calibration images for INT8')
    p.add_argument('--max-foreign', type=float, default=0.10,
                   help='wait for / re-run repeats when other processes use more than this share of the CPUs')
    p.add_argument('--no-wait', action='store_true', help='do not wait for a quiet machine')
    p.add_argument('--timeout', type=int, default=1800, help='seconds per configuration (build, or one repeat)')
    p.add_argument('--sequential', action='store_true',
                   help='time one configuration after the other (one process alive at a time: less memory) instead '
                        'of interleaving the repeats of all configurations of a width and batch')
    p.add_argument('--profile', default='', metavar='CONFIGS',
                   help='also write a per-operator profile (mx.profiler, bulk execution off) of these MXNet '
                        'configurations, e.g. mx_fused,mx_fast, to benchmark_profile.md / .json')
    p.add_argument('--output-dir', default=os.path.join(REPO, 'results', 'benchmark'))
    p.add_argument('--readme', metavar='FILE', help='also rewrite the speed block of FILE (README.md: between '
                   'its speed-table markers) from this run: summary table, chart, goals')
    p.add_argument('--from-json', metavar='FILE', help='time nothing: write the outputs (and --readme) again from '
                   'the benchmark.json of an earlier run')
    p.add_argument('--child', help=argparse.SUPPRESS)
    return p


def plan_jobs(p, args):
    """The (configuration, width, batch) jobs of the command line, profiles included: (batches, jobs, skipped
    configurations); bad values end in ``p.error``."""
    widths = [w.strip() for w in args.widths.split(',') if w.strip()]
    for w in widths:
        try:
            if parse_width(w)[1] <= 0:
                raise ValueError
        except ValueError:
            p.error('--widths: %r is not a width; give numbers such as 1.0 or 1.5, or lite1.0 for ReXNet-lite' % w)
    batches = [int(b) for b in args.batches.split(',') if b.strip()]
    configs = [c.strip() for c in args.configs.split(',') if c.strip()] or \
        [c for c in ALL_CONFIGS if c != 'timm_compile']
    if args.torch_compile and 'timm_compile' not in configs:
        configs.append('timm_compile')
    if args.no_train:
        configs = [c for c in configs if c not in TRAIN_CONFIGS]
    unknown = [c for c in configs if c not in ALL_CONFIGS]
    if unknown:
        p.error('unknown configurations %s; known: %s' % (unknown, ', '.join(ALL_CONFIGS)))
    have_torch = torch_available()
    skipped = ['%s (no %s)' % (c, ', '.join(m)) for c, m in missing_runtimes(configs).items()]
    if not have_torch:
        skipped += ['%s (no torch/timm)' % c for c in configs if c.startswith('timm')]
    configs = [c for c in configs if not any(s.startswith(c + ' ') for s in skipped)]
    child_args = dict(repeats=args.repeats, iters=args.iters, warmup=args.warmup, size=args.size, calib=args.calib,
                      threads=args.threads, max_foreign=args.max_foreign, wait_quiet=not args.no_wait)
    jobs = []
    for w in widths:
        for c in configs:
            if c in ('ov_timm', *[t for t in ALL_CONFIGS if t.startswith('timm')]) and parse_width(w)[0]:
                continue
            for b in ([args.train_batch] if c in TRAIN_CONFIGS else batches):
                jobs.append(dict(config=c, width=w, batch=b, args=child_args))
    profile_configs = [c.strip() for c in args.profile.split(',') if c.strip()]
    bad = [c for c in profile_configs if not c.startswith('mx_') or c in TRAIN_CONFIGS]
    if bad:
        p.error('--profile takes MXNet inference configurations, not %s' % bad)
    for w in widths:
        for c in profile_configs:
            for b in batches:
                jobs.append(dict(config=c, width=w, batch=b, args=child_args, profile=True))
    return batches, jobs, skipped


def main(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    if args.child:
        return child_main(args.child)

    if args.from_json:
        return _rewrite_from_json(p, args)
    batches, jobs, skipped = plan_jobs(p, args)
    if args.readme:
        _readme_text(p, args.readme)      # a bad --readme fails now, not after an hour of timing
    command = ' '.join(['python', os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd())] +
                       list(sys.argv[1:] if argv is None else argv))
    machine = machine_info(args.threads)
    print('machine: %s' % json.dumps(machine))
    print('command: %s' % command)
    if skipped:
        print('not installed, skipping: %s' % ', '.join(skipped))
    with tempfile.TemporaryDirectory(prefix='rexnet-bench-') as folder:
        prepare_files(jobs, folder)     # ONNX / IR files, before any timed child starts
        results, profiles = run_jobs(jobs, args)
    run = dict(machine=machine, command=command, date=time.strftime('%Y-%m-%d %H:%M'), args=vars(args),
               results=results)
    table = write_outputs(p, run, profiles, args.output_dir, args.readme)
    print()
    print(table)
    print()
    print('machine: %s' % json.dumps(machine))
    print('command: %s' % command)
    print('written: %s/benchmark.{md,json,png}%s' % (args.output_dir, ' and ' + args.readme if args.readme else ''))
    return 0 if all(r.get('ok') for r in results) else 1


def _readme_text(p, path):
    try:
        text = open(path).read()
        replace_readme_block(text, '')
    except (OSError, ValueError) as err:
        p.error('--readme %s: %s' % (path, err))
    return text


def _rewrite_from_json(p, args):
    try:
        with open(args.from_json) as f:
            run = json.load(f)
        if not isinstance(run, dict) or not isinstance(run.get('results'), list) or 'args' not in run:
            raise ValueError('no "results" list and "args"')
    except (OSError, ValueError) as err:
        p.error('--from-json %s: not the benchmark.json of a run (%s: %s)' % (args.from_json, type(err).__name__,
                                                                              err))
    if args.readme:
        _readme_text(p, args.readme)
    print(write_outputs(p, run, None, args.output_dir, args.readme))
    return 0


def write_outputs(p, run, profiles, output_dir, readme=None):
    """benchmark.md / .json / .png (and the profile files when ``profiles``) in ``output_dir``, each written
    atomically, and ``readme``'s speed block; returns the speed table."""
    results = run['results']
    batches = sorted({r['batch'] for r in results if r['config'] not in TRAIN_CONFIGS})
    table = make_table(results, batches)
    os.makedirs(output_dir, exist_ok=True)
    head = make_head(run['machine'], run['command'], run['date'], argparse.Namespace(**run['args']))
    out = lambda name: os.path.join(output_dir, name)   # noqa: E731
    atomic_write_text(out('benchmark.md'), head + table + '\n\n## Goals of issue #12\n\n' +
                      make_goals(results) + '\n')
    atomic_write_text(out('benchmark.json'), json.dumps(run, indent=1))
    if profiles:
        text = make_profile_table(profiles)
        atomic_write_text(out('benchmark_profile.md'),
                          '# Per-operator profile (mx.profiler, MXNET_EXEC_BULK_EXEC_INFERENCE=0)\n\n' + text + '\n')
        atomic_write_text(out('benchmark_profile.json'), json.dumps(profiles, indent=1))
        print(text)
    if readme:
        atomic_write_text(readme, replace_readme_block(_readme_text(p, readme), make_readme_block(run)))
    try:
        with atomic_path(out('benchmark.png'), suffix='.png') as tmp:   # matplotlib reads the format off the name
            make_chart(results, batches, tmp)
    except Exception as e:   # the numbers matter more than the picture
        print('chart failed: %s' % e)
    return table
