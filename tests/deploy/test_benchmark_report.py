"""The benchmark's summary, goals and README block: ratios are the per-round medians of the run's JSON, a goal is
met only when every batch it names reaches it, and ``--from-json --readme`` rewrites the README's block and nothing
else (a README without the block is refused before anything is written)."""
import json
import os
import subprocess
import sys

import pytest

from helpers import REPO
from rexnet_gluon.deploy.benchmark import report

# per-round img/s of an interleaved run: (config, batch) -> rates
RATES = {('timm_cl', 1): [50, 40, 60], ('timm_cl', 32): [50, 50, 50],
         ('ov_fp32', 1): [160, 110, 150], ('ov_fp32', 32): [150, 160, 155],     # 3.2/2.75/2.5 -> 2.75; 3.0/3.2/3.1
         ('ov_timm', 1): [150, 100, 160], ('ov_timm', 32): [160, 170, 160],   # 1.07 (met), 0.94 (not)
         ('ov_int8', 1): [200, 150, 200], ('ov_int8', 32): [240, 240, 240],     # bs32 / ov_fp32: 1.6 / 1.5 / 1.548
         ('mx_hybrid', 1): [20, 20, 20], ('mx_hybrid', 32): [30, 30, 30]}


def _results(rates=RATES):
    out = []
    for (config, batch), r in rates.items():
        out.append(dict(config=config, width='1.0', batch=batch, ok=True, interleaved=True, rates=list(r),
                        median=sorted(r)[1], min=min(r), max=max(r), rss_mib=100.0))
    out.append(dict(config='mx_fast', width='1.0', batch=1, ok=False, error='boom', rss_mib=50.0))
    return out


def _run():
    return dict(machine=dict(cpu='Test CPU', logical_cpus=2, isa='avx2'), command='python scripts/benchmark.py -x',
                date='2026-12-06 12:00', args=dict(repeats=3, size=224, threads=2, sequential=False),
                results=_results())


def test_goal_ratios_are_per_round_medians_and_met_only_when_every_batch_reaches_the_goal():
    goals = {what: (target, ratios, met) for what, target, ratios, met in report.goal_ratios(_results())}
    target, ratios, met = goals['default runtime (OpenVINO engine) vs timm channels_last']
    assert ratios[1] == pytest.approx(2.75) and ratios[32] == pytest.approx(3.1) and not met   # bs1 below 3.0
    _, ratios, met = goals['default runtime vs OpenVINO on timm\'s ONNX']
    assert ratios[1] == pytest.approx(160 / 150) and ratios[32] == pytest.approx(160 / 170) and not met
    _, ratios, met = goals['OpenVINO INT8 vs OpenVINO f32']
    assert ratios[32] == pytest.approx(240 / 155) and met                     # judged at batch 32 only
    _, ratios, met = goals['`fast.prepare` vs timm channels_last']
    assert ratios == {1: None, 32: None} and not met                      # failed / missing rows are no pass
    table = report.make_goals(_results())
    assert '| OpenVINO INT8 vs OpenVINO f32 | 1.5x at bs32 |' in table and '(not judged)' in table
    assert table.count('**yes**') == 1


def test_readme_block_replaces_only_the_block():
    block = report.make_readme_block(_run())
    assert block.startswith(report.README_BEGIN) and block.endswith(report.README_END)
    assert 'python scripts/benchmark.py -x' in block and 'Test CPU' in block and '2026-12-06 12:00' in block
    assert '| timm channels_last | 50.0 | 50.0 | 1.00 / 1.00 |' in block
    assert 'predict\'s default' in block and '| 150.0 | 155.0 | 2.75 / 3.10 |' in block
    text = 'intro\n%s\nold table\n%s\noutro\n' % (report.README_BEGIN, report.README_END)
    new = report.replace_readme_block(text, block)
    assert new.startswith('intro\n') and new.endswith('\noutro\n') and 'old table' not in new and block in new
    with pytest.raises(ValueError, match='speed-table'):
        report.replace_readme_block('no markers here', block)


def _bench(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'benchmark.py')] + list(args),
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def test_from_json_rewrites_outputs_and_readme(tmp_path):
    src = tmp_path / 'run.json'
    src.write_text(json.dumps(_run()))
    readme = tmp_path / 'README.md'
    readme.write_text('# x\n\n%s\nstale\n%s\n\nrest\n' % (report.README_BEGIN, report.README_END))
    out = tmp_path / 'out'
    p = _bench('--from-json', str(src), '--readme', str(readme), '--output-dir', str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    text = readme.read_text()
    assert 'stale' not in text and text.endswith('\n\nrest\n') and '| goal | at least |' in text
    md = (out / 'benchmark.md').read_text()
    assert 'Command: `python scripts/benchmark.py -x`' in md and '## Goals of issue #12' in md
    assert json.loads((out / 'benchmark.json').read_text()) == _run()
    assert (out / 'benchmark.png').stat().st_size > 1000
    assert not [f for f in os.listdir(out) if f.startswith('.')]          # no temporary files left


def test_bad_readme_or_json_is_refused_before_writing(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text('no block\n')
    src = tmp_path / 'run.json'
    src.write_text(json.dumps(_run()))
    p = _bench('--from-json', str(src), '--readme', str(readme), '--output-dir', str(tmp_path / 'out'))
    assert p.returncode == 2 and 'speed-table' in p.stderr and readme.read_text() == 'no block\n'
    assert not (tmp_path / 'out').exists()
    src.write_text('{"results": 3}')
    p = _bench('--from-json', str(src), '--output-dir', str(tmp_path / 'out'))
    assert p.returncode == 2 and 'not the benchmark.json of a run' in p.stderr
    p = _bench('--readme', str(tmp_path / 'missing.md'), '--configs', 'mx_hybrid', '--output-dir', str(tmp_path))
    assert p.returncode == 2 and 'missing.md' in p.stderr
