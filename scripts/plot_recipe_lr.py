#!/usr/bin/env python
"""The learning rate of ``--recipe rexnet`` and ``--recipe rexnet-timm2020`` per epoch, as a PNG.

    python scripts/plot_recipe_lr.py [--output results/recipe_lr.png]

Read from the scheduler the training script builds (``train.schedule.make_schedule``), at lr 0.5 (the recipe's
global batch of 512): the whole run, its first epochs (warm-up from 1e-4) and its last ones (timm 2020's cooldown).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def recipe_lrs(recipe):
    from rexnet_gluon.train.flags import parse_args
    from rexnet_gluon.train.schedule import LRProbe, make_schedule
    opt = parse_args(['--model', 'rexnet_1.0x', '--recipe', recipe, '--lr', '0.5'])
    probe = LRProbe(make_schedule(opt, 1))
    return [probe.lr_at(e) for e in range(opt.num_epochs)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--output', default=os.path.join(REPO, 'results', 'recipe_lr.png'))
    args = p.parse_args(argv)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from rexnet_gluon.utils.fileio import atomic_write
    curves = {r: recipe_lrs(r) for r in ('rexnet', 'rexnet-timm2020')}
    fig = Figure(figsize=(12, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for ax, (lo, hi, title) in zip(axes, ((0, 410, 'whole run'), (0, 10, 'first epochs: warm-up from 1e-4'),
                                          (390, 410, 'last epochs: 2020 cooldown'))):
        for (name, lrs), style in zip(curves.items(), ('o-', 's--')):
            ep = list(range(lo, min(hi, len(lrs))))
            ax.plot(ep, [lrs[e] for e in ep], style, markersize=3 if hi - lo <= 20 else 0, label='--recipe ' + name)
        ax.set_title(title)
        ax.set_xlabel('epoch')
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel('learning rate (global batch 512)')
    axes[2].set_yscale('log')
    axes[0].legend()
    fig.tight_layout()
    atomic_write(args.output, lambda tmp: fig.savefig(tmp, format='png', dpi=80))
    for name, lrs in curves.items():
        print('%-16s epochs %d: %s ... %s' % (name, len(lrs), ', '.join('%.4g' % v for v in lrs[:4]),
                                            ', '.join('%.4g' % v for v in lrs[-3:])))
    print('wrote %s' % args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
