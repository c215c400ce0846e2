"""``make operators`` runs: both study scripts in ``--quick`` mode write
their JSON, markdown and chart. The timings of a quick run are noise, so
they are checked for sanity and for agreeing with what is derived from them
(GFLOPS, averages, ratios, the markdown); the FLOP and parameter counts are
checked against the operators' formulas."""
import json
import math
import statistics
from pathlib import Path

import pytest

from tool_runner import run_script

# FasterNet-T0 at 224x224: stage widths, blocks and map sizes.
T0_WIDTHS, T0_DEPTHS, T0_SIDES = (40, 80, 160, 320), (1, 2, 8, 2), (56, 28, 14,
                                                                    7)


def run_study(script: str, out_dir: Path, threads: int) -> str:
    return run_script(
        f'benchmarks/{script}',
        '--quick',
        '--out-dir',
        out_dir,
        timeout=300,
        OMP_NUM_THREADS=str(threads))


def mixer_cost(mixer: str,
               channels: int,
               n_div: int = 4,
               groups: int = 16) -> int:
    """Multiply-adds of one 3x3 spatial mixer per output pixel, which are
    also its weights."""
    return 9 * {
        'conv': channels * channels,
        'gconv': channels * (channels // groups),
        'dwconv': channels,
        'pconv': (channels // n_div)**2,
        'identity': 0,
    }[mixer]


def assert_sane_timing(row: dict) -> None:
    """Median and range of positive, finite times, in order."""
    values = (row['min_ms'], row['median_ms'], row['max_ms'])
    assert all(math.isfinite(v) and v > 0 for v in values), row
    assert row['min_ms'] <= row['median_ms'] <= row['max_ms'], row


def written(out_dir: Path, stem: str) -> dict:
    for suffix in ('.md', '.png'):
        path = out_dir / f'{stem}{suffix}'
        assert path.stat().st_size > 0, path
    return json.loads((out_dir / f'{stem}.json').read_text())


def test_operator_study_quick_on_one_thread(tmp_path):
    """One thread: the two batch-1 settings are one, not a silent
    overwrite of the first by the second."""
    output = run_study('operator_study.py', tmp_path, threads=1)
    assert 'CPU: ' in output
    assert 'FLOPs: analytic == counted for all 24 cells' in output
    result = written(tmp_path, 'operator_study')
    names = [s['name'] for s in result['settings']]
    assert names == ['b1_1t', 'b2_1t']
    assert set(result['measured']) == set(names)
    for name in names:
        assert len(result['measured'][name]) == 24
        summary = result['summary'][name]
        assert summary['pconv_over_dwconv_flops'] > 0
        assert len(summary['pconv_over_dwconv_latency']) == 4
    table = (tmp_path / 'operator_study.md').read_text()
    assert '| PConv r=1/4, split-cat | 96x56x56 | 162.6 |' in table

    mixers = {'conv': ('conv', {}), 'gconv16': ('gconv', {}),
              'dwconv': ('dwconv', {})}  # yapf: disable
    for cell in result['cells']:
        c, h, w = (int(v) for v in cell['feature_map'].split('x'))
        mixer, kwargs = mixers.get(cell['operator'], ('pconv', {}))
        assert cell['macs_analytic'] == cell['macs_counted'] == \
            result['layers'] * h * w * mixer_cost(mixer, c, **kwargs), cell
    batches = {s['name']: s['batch'] for s in result['settings']}
    macs = {
        f'{c["operator"]}@{c["feature_map"]}': c['macs_analytic']
        for c in result['cells']
    }
    for name in names:
        measured = result['measured'][name]
        for key, row in measured.items():
            assert_sane_timing(row)
            assert row['gflops'] == pytest.approx(batches[name] * macs[key] /
                                                  row['median_ms'] / 1e6), key
            assert f'{row["median_ms"]:.2f} [{row["min_ms"]:.2f}-' in table
        summary = result['summary'][name]
        for op, average in summary['average_gflops'].items():
            assert average == pytest.approx(
                statistics.mean(v['gflops'] for k, v in measured.items()
                                if k.startswith(f'{op}@')))
        assert summary['pconv_over_dwconv_flops'] == pytest.approx(
            summary['average_gflops']['pconv_split'] /
            summary['average_gflops']['dwconv'])
        assert summary['pconv_over_dwconv_latency'] == pytest.approx([
            measured[f'pconv_split@{c}x{h}x{w}']['median_ms'] /
            measured[f'dwconv@{c}x{h}x{w}']['median_ms']
            for c, h, w in ((96, 56, 56), (192, 28, 28), (384, 14, 14), (768,
                                                                         7, 7))
        ])


def test_mixer_study_quick(tmp_path):
    run_study('mixer_study.py', tmp_path, threads=2)
    result = written(tmp_path, 'mixer_study')
    assert result['columns'] == ['224 1t', '224 2t', '256x320 2t']
    rows = result['archs']['t0']
    assert set(rows) == {
        'pconv', 'dwconv', 'gconv', 'conv', 'identity', 'pconv_n2', 'pconv_n8'
    }
    for row in rows.values():
        assert set(row['latency']) == set(result['columns'])
    # Counted FLOPs and parameters: the model without a mixer plus each
    # block's mixer (T0's 40 channels take 8 groups, not 16).
    table = (tmp_path / 'mixer_study.md').read_text()
    base = rows['identity']
    for name, row in rows.items():
        mixer, _, n = name.partition('_n')
        kwargs = dict(n_div=int(n)) if n else {}
        if mixer == 'gconv':
            kwargs['groups'] = row['kwargs']['gconv_groups']
            assert kwargs['groups'] == 8
        costs = [mixer_cost(mixer, c, **kwargs) for c in T0_WIDTHS]
        assert row['params'] - base['params'] == sum(
            d * cost for d, cost in zip(T0_DEPTHS, costs)), name
        assert row['macs_224'] - base['macs_224'] == sum(
            d * s * s * cost
            for d, s, cost in zip(T0_DEPTHS, T0_SIDES, costs)), name
        for column, timing in row['latency'].items():
            assert_sane_timing(timing)
            ratio = timing['median_ms'] / \
                rows['pconv']['latency'][column]['median_ms']
            assert (f'{timing["median_ms"]:.1f} [{timing["min_ms"]:.1f}-'
                    f'{timing["max_ms"]:.1f}] | {ratio:.2f} |') in table
        assert f'| T0 | {name} | {row["params"] / 1e6:.2f} |' in table
