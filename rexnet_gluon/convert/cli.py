"""Command line of ``python convert/pt2mx.py``: convert PyTorch ReXNet checkpoints and prove parity.

With ``--checkpoint`` it converts one file. With no arguments it runs the whole pipeline on seeded
*random* checkpoints of every released width and layout (no network needed): make the PyTorch model,
save it in a real checkpoint format, convert the file, load the .params into Gluon, compare logits.
"""
import argparse
import logging
import os
import sys
import tempfile
import time

from .checkpoint_io import CheckpointError, load_state_dict
from ..utils.fileio import atomic_path
from .mapping import ConversionError, convert_state_dict, save_params, spec_from_name

log = logging.getLogger('rexnet_gluon.convert')

# (model name, layout of the file, file format). Formats follow where such files come from: the
# official 2020 release (legacy torch pickle), timm's hub (safetensors), later torch.save (zip).
DEMO_CASES = [('rexnet_%sx' % w, 'official', 'legacy') for w in ('1.0', '1.3', '1.5', '2.0', '3.0')] + \
    [('rexnet_%sx' % w, 'timm', 'safetensors') for w in ('1.0', '1.3', '1.5', '2.0', '3.0')] + \
    [('rexnetr_%sx' % w, 'timm', 'zip') for w in ('2.0', '3.0')] + \
    [('rexnet_lite_%sx' % w, 'official_lite', 'zip') for w in ('1.0', '1.3', '1.5', '2.0')]


def build_parser():
    p = argparse.ArgumentParser(
        prog='pt2mx.py',
        description='Convert a PyTorch ReXNet checkpoint (official clovaai, timm rexnet/rexnetr or official '
                    'ReXNet-lite layout; .pth zip or legacy, or .safetensors) to MXNet Gluon .params. '
                    'Without --checkpoint: convert and check seeded random checkpoints of every width.')
    p.add_argument('--checkpoint', help='PyTorch checkpoint to convert (.pth, .pth.tar, .bin, .safetensors)')
    p.add_argument('--output', help='where to write the Gluon .params (default: next to the checkpoint)')
    p.add_argument('--model', help='expected model, e.g. rexnet_1.5x, rexnet_lite_1.0x, rexnetr_3.0x; '
                                   'default: detected from the tensor shapes')
    p.add_argument('--check', action='store_true',
                   help='run the PyTorch reference (needs torch + timm) and the converted Gluon model on the same '
                        'input; exit 1 unless fp32 logits agree within 1e-4 (at logit scale 15) and top-1 agrees')
    p.add_argument('--fp64', action='store_true', help='with --check, also compare in float64 (~1e-14 expected)')
    p.add_argument('--input-size', type=int, default=224, help='image size for --check (default 224)')
    p.add_argument('--batch', type=int, default=2, help='batch size for --check (default 2)')
    p.add_argument('--demo-models', help='comma-separated subset of the demo models (default: all %d cases)'
                   % len(DEMO_CASES))
    p.add_argument('--report', default=os.path.join('results', 'parity.md'),
                   help='demo: Markdown table written here (default results/parity.md)')
    p.add_argument('--work-dir', help='demo: keep the generated checkpoints and .params here (default: a temp dir)')
    p.add_argument('-q', '--quiet', action='store_true', help='only print errors and the result')
    return p


def _fmt_results(results):
    return ', '.join('%s max|diff| %.2e (logits up to %.1f, top-1 agree %.0f%%)%s'
                     % (r.dtype, r.max_abs_diff, r.logit_scale, 100 * r.top1_agreement, '' if r.ok else ' FAILED')
                     for r in results)


def convert_one(args):
    if not args.checkpoint:
        raise SystemExit('pt2mx.py: --output/--model/--check need --checkpoint')
    stem = os.path.splitext(args.checkpoint)[0]
    output = args.output or stem + '.params'
    if not output.endswith('.params'):
        raise ConversionError('--output should end in .params (got %s): Gluon loads it with '
                              'net.load_parameters()' % output)
    t0 = time.time()
    state_dict = load_state_dict(args.checkpoint)
    try:
        arrays, spec, classes, layout = convert_state_dict(state_dict, model=args.model)
    except ConversionError as err:
        raise ConversionError('%s: %s' % (args.checkpoint, err)) from None
    save_params(arrays, output)
    n_params = sum(int(v.size) for k, v in arrays.items() if 'running_' not in k)
    print('Converted %s' % args.checkpoint)
    print('  layout      %s' % layout)
    print('  model       %s (%d classes, %s parameters)' % (spec.name, classes, format(n_params, ',')))
    print('  wrote       %s (%.1fs)' % (output, time.time() - t0))
    print('  load with   net = rexnet_gluon.ReXNet(rexnet_gluon.convert.spec_from_name(%r), classes=%d); '
          'net.load_parameters(%r)' % (spec.name, classes, output))
    if not args.check:
        return 0
    from .parity import check_parity
    dtypes = ('float32', 'float64') if args.fp64 else ('float32',)
    results = check_parity(state_dict, layout, output, spec, classes, dtypes, args.batch, args.input_size)
    ok = all(r.ok for r in results)
    print('  parity      %s -> %s' % (_fmt_results(results), 'PASS' if ok else 'FAIL'))
    return 0 if ok else 1


def _save_checkpoint(sd, path, fmt):
    import torch
    if fmt == 'safetensors':
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in sd.items()}, path)
    else:
        torch.save(sd, path, _use_new_zipfile_serialization=(fmt == 'zip'))


def run_demo(args):
    from .parity import check_parity
    from .torch_reference import randomize_, reference_model, state_dict_in_layout
    cases = DEMO_CASES
    if args.demo_models:
        wanted = [m.strip().lower() for m in args.demo_models.split(',')]
        unknown = sorted(set(wanted) - {c[0] for c in cases})
        if unknown:
            raise SystemExit('pt2mx.py: --demo-models: unknown %s; choose from %s'
                             % (', '.join(unknown), ', '.join(sorted({c[0] for c in cases}))))
        cases = [c for c in cases if c[0] in wanted]
    work = args.work_dir or tempfile.mkdtemp(prefix='rexnet_pt2mx_')
    os.makedirs(work, exist_ok=True)
    print('Demo: no --checkpoint given, so every checkpoint below is made here from SEEDED RANDOM weights '
          '(random BN statistics too), saved in a real PyTorch file format, converted by reading the file '
          'without torch, loaded with net.load_parameters(), and compared with the PyTorch reference '
          '(timm RexNet; our own reference for lite). The weights are random, not ImageNet-trained.\n')
    try:
        from tqdm import tqdm
    except ImportError:   # progress bar is optional
        def tqdm(x, **_):
            return x
    rows, failed = [], 0
    header = '| model | layout | file | params | fp32 max abs diff | fp64 max abs diff | logit scale | top-1 agree | result |'
    for i, (name, layout, fmt) in enumerate(tqdm(cases, desc='convert+check', disable=args.quiet)):
        spec = spec_from_name(name)
        ref = randomize_(reference_model(spec, 1000), seed=i)
        sd = state_dict_in_layout(ref, spec, 1000, layout)
        ext = '.safetensors' if fmt == 'safetensors' else '.pth'
        ckpt = os.path.join(work, '%s-%s-random%s' % (name, layout, ext))
        _save_checkpoint(sd, ckpt, fmt)
        out = os.path.join(work, '%s-%s-random.params' % (name, layout))
        state = load_state_dict(ckpt)
        arrays, got_spec, classes, got_layout = convert_state_dict(state)
        if got_spec != spec or got_layout != layout:
            raise RuntimeError('detection returned %s/%s for a %s/%s checkpoint' % (got_spec.name, got_layout,
                                                                                    name, layout))
        save_params(arrays, out)
        res = check_parity(state, layout, out, spec, classes, ('float32', 'float64'), args.batch, args.input_size,
                           seed=i)
        ok = all(r.ok for r in res)
        failed += not ok
        n_params = sum(int(v.size) for k, v in arrays.items() if 'running_' not in k)
        rows.append('| %s | %s | %s | %s | %.1e | %.1e | %.1f | %s | %s |' % (
            name, layout, fmt, format(n_params, ','), res[0].max_abs_diff, res[1].max_abs_diff,
            res[0].logit_scale, '%d/%d' % (round(res[0].top1_agreement * args.batch), args.batch),
            'PASS' if ok else 'FAIL'))
    table = '\n'.join([header, '|' + '---|' * 9] + rows)
    note = ('Seeded random weights (not trained), input N(0,1) %dx3x%dx%d, eval mode; pass = fp32 max |diff| '
            '<= 1e-4 x max(1, logit scale / 15) and fp64 <= 1e-10 x the same, and every top-1 equal. '
            'Command: python convert/pt2mx.py' % (args.batch, args.input_size, args.input_size))
    print('\n' + table + '\n\n' + note)
    if args.report:
        with atomic_path(args.report) as tmp, open(tmp, 'w') as f:
            f.write(table + '\n\n' + note + '\n')
        print('Table written to %s; checkpoints and .params in %s' % (args.report, work))
    print('%d/%d cases passed' % (len(rows) - failed, len(rows)))
    return 1 if failed else 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format='%(message)s')
    try:
        if args.checkpoint or args.output or args.model or args.check:
            return convert_one(args)
        return run_demo(args)
    except (CheckpointError, ConversionError, ValueError, OSError, ImportError) as err:
        # Bad input of any kind (file, name, flag, path): one readable paragraph, no traceback.
        print('error: %s' % err, file=sys.stderr)
        return 2
