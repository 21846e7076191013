#!/usr/bin/env python
"""How far the fast fp32 graph (``deploy.fast.prepare``) is from the plain network, per zoo model: the measurement
behind the fast export's tolerance (``rexnet_gluon.deploy.export.mxnet_formats.FAST_TOLERANCE``).

    python scripts/measure_fast_rounding.py [--models rexnet_1.0x,rexnet_3.0x] [--images 16] [--seed 0]

For each model: seeded random weights with random BN statistics (``parity.randomize_gluon_``), the export check's
held-out generated images at the model's evaluation size, and the logits of the plain network in float32 and
float64 (the exact reference) and of the fast graph. Prints a Markdown table (also written to
``results/fast_rounding.md``): each distance as a multiple of the parity rule ``1e-4 x max(1, scale / 15)``.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too


def measure(name, images, seed):
    import numpy as np
    import mxnet as mx
    import rexnet_gluon
    from rexnet_gluon.convert.parity import allowed_diff, randomize_gluon_
    from rexnet_gluon.deploy import fast
    from rexnet_gluon.deploy.export.data import EVAL_SEED, generated_images
    from rexnet_gluon.deploy.export.graphs import run_batches
    net = rexnet_gluon.get_model(name)
    size = net.preprocess['input_size']
    net.initialize()
    net(mx.nd.zeros((1, 3, size, size)))
    randomize_gluon_(net, seed)
    x = generated_images(images, size, net.preprocess, EVAL_SEED)
    plain = run_batches(net, x, images)
    fnet = fast.prepare(net, example=(1, 3, size, size))
    quick = run_batches(fnet, x, 1)
    net.cast('float64')
    exact = run_batches(net, x.astype('float64'), images)
    scale = float(np.abs(exact).max())
    rule = allowed_diff(scale)
    dist = {k: float(np.abs(v - exact).max()) for k, v in (('plain', plain), ('fast', quick))}
    return dict(model=name, size=size, scale=scale, rule=rule, fast_vs_plain=float(np.abs(quick - plain).max()),
                plain_vs_exact=dist['plain'], fast_vs_exact=dist['fast'])


def table(rows):
    out = ['| model | size | logit scale | fast vs plain fp32 | x rule | plain fp32 vs fp64 | fast vs fp64 |',
           '|---|---|---|---|---|---|---|']
    for r in rows:
        out.append('| %s | %d | %.1f | %.2e | %.2f | %.2e | %.2e |' % (
            r['model'], r['size'], r['scale'], r['fast_vs_plain'], r['fast_vs_plain'] / r['rule'],
            r['plain_vs_exact'], r['fast_vs_exact']))
    return '\n'.join(out)


def main(argv=None):
    os.environ.update({'MXNET_ENGINE_TYPE': 'NaiveEngine', 'MXNET_USE_OPERATOR_TUNING': '0'})
    import rexnet_gluon
    from rexnet_gluon.utils.fileio import atomic_write_text
    from rexnet_gluon.utils.quiet import quiet_warnings
    quiet_warnings()
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', default=','.join(rexnet_gluon.get_model_list()))
    p.add_argument('--images', type=int, default=16, help='held-out generated images (the export check uses 16)')
    p.add_argument('--seed', type=int, default=0, help='seed of the random weights')
    p.add_argument('--output', default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                    'results', 'fast_rounding.md'))
    args = p.parse_args(argv)
    models, unknown = [], []
    for m in args.models.split(','):   # zoo names or aliases (rexnet, rexnet_100, rexnetv1_1.0, ...)
        try:
            models.append(rexnet_gluon.zoo.canonical_name(m))
        except ValueError:
            unknown.append(m)
    if unknown or args.images < 1:
        p.error('unknown model(s) %s; choose from %s' % (', '.join(unknown), ', '.join(rexnet_gluon.get_model_list()))
                if unknown else '--images must be at least 1')
    from tqdm import tqdm
    rows = [measure(m, args.images, args.seed) for m in tqdm(models, desc='models', file=sys.stderr)]
    text = table(rows)
    worst = max(r['fast_vs_plain'] / r['rule'] for r in rows)
    text += ('\n\nRandom weights (seed %d), %d held-out generated images per model, batch 1 through the fast graph. '
             'Worst fast-vs-plain distance: %.2f x the parity rule. Command: python scripts/measure_fast_rounding.py'
             '\n' % (args.seed, args.images, worst))
    print(text)
    atomic_write_text(args.output, text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
