"""``make operators`` runs: both study scripts in ``--quick`` mode write
their JSON, markdown and chart (the numbers of a quick run are noise)."""
import json
from pathlib import Path

from tool_runner import run_script


def run_study(script: str, out_dir: Path, threads: int) -> str:
    return run_script(
        f'benchmarks/{script}',
        '--quick',
        '--out-dir',
        out_dir,
        timeout=300,
        OMP_NUM_THREADS=str(threads))


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
    # Counted FLOPs follow the mixers' costs.
    macs = {name: row['macs_224'] for name, row in rows.items()}
    assert macs['identity'] < macs['dwconv'] < macs['pconv'] < macs['conv']
    assert macs['pconv_n8'] < macs['pconv'] < macs['pconv_n2']
