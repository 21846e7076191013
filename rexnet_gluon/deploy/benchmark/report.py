"""The benchmark's outputs: the Markdown speed table (img/s, ratios to timm, RSS), the per-operator profile table,
the bar chart, and the README's speed block (a summary table and the goals of issue #12, from the run's JSON)."""
from .child import ALL_CONFIGS, FAST_ENV, TRAIN_CONFIGS

__all__ = ['LABELS', 'speed_ratio', 'make_head', 'make_table', 'make_profile_table', 'make_chart', 'make_summary',
           'goal_ratios', 'make_goals', 'make_readme_block', 'replace_readme_block', ]

LABELS = {'mx_imperative': 'MXNet imperative', 'mx_hybrid': 'MXNet hybridized',
          'mx_fused': 'MXNet hybrid + oneDNN fusion',
          'mx_fast': 'MXNet fast path (fast.py)', 'mx_fast_threaded': 'fast path, default engine',
          'mx_bf16': 'MXNet bfloat16 (amp)', 'mx_int8': 'MXNet INT8 (quantize_net)',
          'mx_fast_int8': 'fast path INT8', 'timm_eager': 'timm eager NCHW', 'timm_cl': 'timm channels_last',
          'timm_compile': 'timm torch.compile', 'mx_train': 'MXNet train step', 'timm_train': 'timm train step'}


def _fmt(v, nd=1):
    return '-' if v is None else ('%.*f' % (nd, v))


def speed_ratio(r, t):
    """r's speed over t's: the median of the per-round ratios when both were timed in the same interleaved rounds
    (each round's pair saw the same machine state), else the ratio of the medians."""
    ra, rt = r.get('rates') or [], t.get('rates') or []
    if r.get('interleaved') and t.get('interleaved') and ra and len(ra) == len(rt):
        q = sorted(a / b for a, b in zip(ra, rt))
        return q[len(q) // 2]
    return r['median'] / t['median']


def make_head(machine, command, stamp, args):
    """The Markdown file's head: machine, command line, and how the numbers were taken."""
    head = ['# rexnet_gluon CPU benchmark (%s)' % stamp, '',
            'Machine: %s; %s logical CPUs; ISA %s; MXNet %s (oneDNN %s, MKLDNN=%s); torch %s, timm %s; '
            '%d threads (OMP_NUM_THREADS / torch.set_num_threads).' % (
                machine.get('cpu', '?'), machine.get('logical_cpus'), machine.get('isa', '?'),
                machine.get('mxnet', '?'), machine.get('onednn', '?'), machine.get('mkldnn', '?'),
                machine.get('torch', '-'), machine.get('timm', '-'), args.threads), '',
            'Command: `%s`' % command, '',
            'img/s: median [min-max] over %d repeats after warm-up; every configuration in a process of its own '
            '(RSS = its peak, VmHWM). %s x timm = %s to timm eager NCHW / channels_last at the same width and batch. '
            'Random weights and BN statistics; mx_fast and mx_fast_int8 run with %s. "foreign CPU": the most any '
            'kept repeat saw other processes use.' % (
                args.repeats,
                'Configurations run one after the other.' if args.sequential else
                'The processes of one width and batch are all built and warmed up first, then timed in interleaved '
                'rounds (one repeat of each per round, order rotated), so that drifts of the machine hit all alike.',
                'ratio of medians' if args.sequential else 'median over the rounds of the per-round speed ratio',
                ' '.join('%s=%s' % kv for kv in FAST_ENV.items())),
            '']
    return '\n'.join(head)


def make_table(results, batches):
    """Markdown: one row per (width, config), img/s per batch with ratios to timm eager / channels_last."""
    by = {(r['width'], r['config'], r['batch']): r for r in results}
    widths = sorted({r['width'] for r in results}, key=lambda w: (str(w).startswith('lite'), str(w)))
    lines = ['| width | configuration | ' + ' | '.join(
        'bs%d img/s median [min-max] | bs%d x timm eager / x timm CL | bs%d RSS MiB' % (b, b, b) for b in batches) +
        ' | max abs diff / top-1 agree | foreign CPU max |',
        '|---|---|' + '---|---|---|' * len(batches) + '---|---|']
    for w in widths:
        for c in ALL_CONFIGS:
            if c in TRAIN_CONFIGS:
                continue
            rows = [by.get((w, c, b)) for b in batches]
            if not any(rows):
                continue
            cells, notes, foreign = [], '', []
            for b, r in zip(batches, rows):
                if r is None:
                    cells += ['', '', '']
                    continue
                if not r.get('ok'):
                    cells += ['error: %s' % r.get('error', '?')[:120].replace('|', '/'), '', _fmt(r.get('rss_mib'), 0)]
                    continue
                te, tc = by.get((w, 'timm_eager', b)), by.get((w, 'timm_cl', b))
                ratio = ' / '.join(_fmt(speed_ratio(r, t), 2) if t and t.get('ok') else '-' for t in (te, tc))
                cells += ['**%s** [%s-%s]' % (_fmt(r['median']), _fmt(r['min']), _fmt(r['max'])), ratio,
                          _fmt(r['rss_mib'], 0)]
                foreign.append(r.get('foreign_max', 0))
                if 'max_abs_diff' in r and not notes:
                    notes = '%.1e / %.0f %%' % (r['max_abs_diff'], 100 * r['top1_agreement'])
            lines.append('| %s | %s | %s | %s | %s |' % (w, LABELS.get(c, c), ' | '.join(cells), notes or '-',
                                                         ('%.0f %%' % (100 * max(foreign))) if foreign else '-'))
    train = [r for r in results if r['config'] in TRAIN_CONFIGS]
    if train:
        lines += ['', '| width | training step (fwd + bwd + SGD, BN train mode) | batch | img/s median [min-max] | '
                  'x timm train | RSS MiB |', '|---|---|---|---|---|---|']
        for r in sorted(train, key=lambda r: (str(r['width']), r['config'])):
            t = by.get((r['width'], 'timm_train', r['batch']))
            if r.get('ok'):
                ratio = _fmt(speed_ratio(r, t), 2) if t and t.get('ok') else '-'
                lines.append('| %s | %s | %d | **%s** [%s-%s] | %s | %s |' % (
                    r['width'], LABELS[r['config']], r['batch'], _fmt(r['median']), _fmt(r['min']), _fmt(r['max']),
                    ratio, _fmt(r['rss_mib'], 0)))
            else:
                lines.append('| %s | %s | %d | error: %s | - | %s |' % (r['width'], LABELS[r['config']], r['batch'],
                                                                     r.get('error', '?')[:150].replace('|', '/'),
                                                                     _fmt(r.get('rss_mib'), 0)))
    return '\n'.join(lines)


def make_profile_table(profiles, top=14):
    out = []
    for r in profiles:
        if not r.get('ok'):
            out.append('### %s, width %s, batch %d: error %s\n' % (LABELS.get(r['config']), r['width'], r['batch'],
                                                                  r.get('error')))
            continue
        pr = r['profile']
        total = sum(o['ms'] for o in pr['ops']) or 1.0
        out.append('### %s, width %s, batch %d: %.2f ms per forward (%.1f img/s while profiled)\n'
                   % (LABELS.get(r['config'], r['config']), r['width'], r['batch'], pr['wall_ms'],
                      1e3 * r['batch'] / pr['wall_ms']))
        out.append('| operator | calls / forward | ms / forward | share |\n|---|---|---|---|')
        for o in pr['ops'][:top]:
            out.append('| %s | %.1f | %.2f | %.1f %% |' % (o['op'][:60], o['calls'], o['ms'], 100 * o['ms'] / total))
        out.append('')
    return '\n'.join(out)


def make_chart(results, batches, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    widths = sorted({r['width'] for r in results}, key=str)
    configs = [c for c in ALL_CONFIGS if c not in TRAIN_CONFIGS and any(r['config'] == c for r in results)]
    # one row per width, one column per batch size
    fig, axes = plt.subplots(len(widths), len(batches), figsize=(5.5 * len(batches),
                                                                 (0.45 * len(configs) + 1.8) * len(widths)),
                             squeeze=False)
    for ax, (w, b) in zip(axes.ravel(), [(w, b) for w in widths for b in batches]):
        vals, errs, labels, colors = [], [], [], []
        for c in configs:
            r = next((r for r in results if r['config'] == c and r['width'] == w and r['batch'] == b), None)
            ok = bool(r and r.get('ok'))
            vals.append(r['median'] if ok else 0)
            errs.append([r['median'] - r['min'], r['max'] - r['median']] if ok else [0, 0])
            labels.append(LABELS.get(c, c) + ('' if ok else ' (n/a)'))
            colors.append('tab:orange' if c.startswith('timm') else ('tab:green' if 'fast' in c else 'tab:blue'))
        y = range(len(configs))
        ax.barh(y, vals, xerr=list(zip(*errs)), color=colors, capsize=2)
        ax.set_yticks(list(y))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel('img/s (median, min-max)')
        ax.set_title('width %s, batch %d' % (w, b), fontsize=10)
        for yi, v, e in zip(y, vals, errs):
            if v:   # the median, written past the max whisker
                ax.text(v + e[1], yi, '  %.1f' % v, va='center', fontsize=7)
        ax.set_xlim(0, max(v + e[1] for v, e in zip(vals, errs)) * 1.15 or 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# The README's speed table: the rows a user chooses between, named as the user meets them.
SUMMARY_LABELS = {
    'mx_hybrid': 'rexnet_gluon hybridized (what `get_model` + `hybridize()` gives)',
    'mx_fused': 'rexnet_gluon hybridized + `optimize_for(x, backend=\'MKLDNN\')`',
    'mx_fast': 'rexnet_gluon `fast.prepare`',
    'mx_fast_int8': 'rexnet_gluon `fast.quantize` (MXNet INT8)',
    'ov_fp32': '**OpenVINO on our IR, f32: the `openvino` engine, predict\'s default**',
    'ov_int8': '**OpenVINO INT8 (`export --format openvino-int8`)**',
    'ort_fp32': 'ONNX Runtime on our ONNX export (the `onnxruntime` engine)',
    'ov_timm': 'OpenVINO on timm\'s own ONNX export of `rexnet_100` (`torch.onnx.export`), same runner',
    'timm_eager': 'timm `rexnet_100` eager NCHW',
    'timm_cl': 'timm channels_last'}
# Issue #12's goals: (what, configuration, compared with, at least, batches)
GOALS = [('default runtime (OpenVINO engine) vs timm channels_last', 'ov_fp32', 'timm_cl', 3.0, None),
         ('default runtime vs OpenVINO on timm\'s ONNX', 'ov_fp32', 'ov_timm', 1.0, None),
         ('OpenVINO INT8 vs OpenVINO f32', 'ov_int8', 'ov_fp32', 1.5, (32,)),
         ('`fast.prepare` vs timm channels_last', 'mx_fast', 'timm_cl', 2.0, None),
         ('plain hybridized vs timm channels_last', 'mx_hybrid', 'timm_cl', 1.0, None)]


def _row(by, width, config, batch):
    r = by.get((width, config, batch))
    return r if r and r.get('ok') else None


def make_summary(results, batches, width='1.0'):
    """Markdown: the README's table of one width (img/s per batch, x timm channels_last, peak RSS)."""
    by = {(str(r['width']), r['config'], r['batch']): r for r in results}
    lines = ['| configuration | %s | x timm channels_last (%s) | peak RSS MiB (%s) |' % (
        ' | '.join('batch %d' % b for b in batches), ' / '.join('bs%d' % b for b in batches),
        ' / '.join('bs%d' % b for b in batches)), '|---|' + '---|' * (len(batches) + 2)]
    for c, label in SUMMARY_LABELS.items():
        rows = [_row(by, width, c, b) for b in batches]
        if not any(rows):
            continue
        cl = [_row(by, width, 'timm_cl', b) for b in batches]
        lines.append('| %s | %s | %s | %s |' % (
            label, ' | '.join(_fmt(r['median']) if r else 'n/a' for r in rows),
            ' / '.join(_fmt(speed_ratio(r, t), 2) if r and t else '-' for r, t in zip(rows, cl)),
            ' / '.join(_fmt(r['rss_mib'], 0) if r else '-' for r in rows)))
    return '\n'.join(lines)


def goal_ratios(results, width='1.0'):
    """[(what, target, {batch: ratio or None}, met)] of :data:`GOALS`; met only when every batch asked for has a
    ratio at or above the target."""
    by = {(str(r['width']), r['config'], r['batch']): r for r in results}
    batches = sorted({r['batch'] for r in results if r['config'] not in TRAIN_CONFIGS})
    out = []
    for what, config, against, target, only in GOALS:
        ratios = {}
        for b in batches:
            r, t = _row(by, width, config, b), _row(by, width, against, b)
            ratios[b] = speed_ratio(r, t) if r and t else None
        judged = [ratios[b] for b in (only or batches) if b in ratios]
        out.append((what, target, ratios, bool(judged) and all(v is not None and v >= target for v in judged)))
    return out


def make_goals(results, width='1.0'):
    """Markdown: the goals of issue #12 with this run's ratios (per-round medians) and whether each is met."""
    goals = goal_ratios(results, width)
    batches = sorted(goals[0][2]) if goals else []
    lines = ['| goal | at least | %s | met |' % ' | '.join('bs%d' % b for b in batches),
             '|---|---|' + '---|' * len(batches) + '---|']
    for (what, target, ratios, met), (_, _, _, _, only) in zip(goals, GOALS):
        cells = [('%.2fx' % ratios[b] if ratios[b] is not None else 'n/a') + ('' if not only or b in only else
                                                                              ' (not judged)') for b in batches]
        lines.append('| %s | %.1fx%s | %s | %s |' % (what, target, ' at bs%s' % ','.join(map(str, only)) if only
                                                     else '', ' | '.join(cells), '**yes**' if met else 'no'))
    return '\n'.join(lines)


README_BEGIN, README_END = '<!-- speed-table: made by scripts/benchmark.py --readme -->', '<!-- /speed-table -->'


def make_readme_block(run):
    """The README's speed block of a run (benchmark.json's content): what was run where, the summary table of
    width 1.0 (or the first width), the chart and the goals."""
    results = run['results']
    widths = sorted({str(r['width']) for r in results}, key=lambda w: (w != '1.0', w))
    batches = sorted({r['batch'] for r in results if r['config'] not in TRAIN_CONFIGS})
    m = run['machine']
    head = ('`%s` (%s; %s, %s logical CPUs, ISA %s), ReXNet-%s, %s px, random weights, img/s: the median of %s '
            'interleaved rounds; ratios: the median of the per-round ratios; every configuration in a process of its '
            'own (its own peak RSS).' % (run['command'], run['date'], m.get('cpu', '?'), m.get('logical_cpus'),
                                        m.get('isa', '?'), widths[0] + 'x', run['args'].get('size'),
                                        run['args'].get('repeats')))
    return '\n\n'.join([README_BEGIN, head, make_summary(results, batches, widths[0]),
                        '![benchmark chart](results/benchmark/benchmark.png)',
                        'Goals of issue #12 in this run:', make_goals(results, widths[0]), README_END])


def replace_readme_block(text, block):
    """``text`` with its speed block replaced by ``block``; ValueError when it has no such block."""
    a, b = text.find(README_BEGIN), text.find(README_END)
    if a < 0 or b < a:
        raise ValueError('no speed block: the file needs a line %s and, below it, a line %s' % (README_BEGIN,
                                                                                              README_END))
    return text[:a] + block + text[b + len(README_END):]
