"""``benchmarks/backbone_comparison.py``: a ``--quick --no-detectors`` run
(about 10 s on 2 cores; the whole detectors would add 5-20 s) and its report
writers."""
import json
import re

import pytest
import torch

from tool_runner import load_script, run_script

SCRIPT = 'benchmarks/backbone_comparison.py'


@pytest.fixture(scope='module')
def script():
    """The benchmark script as a module (it is not in a package)."""
    return load_script(SCRIPT)


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    """``--quick --no-detectors`` output: (result dict, markdown text, PNG
    path)."""
    out = tmp_path_factory.mktemp('backbone_comparison')
    # All threads (no OMP_NUM_THREADS): the script times 1 and all.
    run_script(
        SCRIPT,
        '--quick',
        '--no-detectors',
        '--out-dir',
        out,
        OMP_NUM_THREADS=None)
    stem = out / 'backbone_comparison_quick'
    result = json.loads(stem.with_suffix('.json').read_text())
    return result, stem.with_suffix('.md').read_text(), stem.with_suffix(
        '.png')


def test_quick_run_writes_json_markdown_and_chart(quick, script):
    result, table, png = quick
    assert list(result['backbones']) == list(script.BACKBONES)
    for label, row in result['backbones'].items():
        assert row['folded_rel_error'] <= script.FOLD_TOLERANCE, label
        assert set(
            row['latency']) == {f'64|{t}'
                                for t in result['thread_settings']}
        assert f'| {label} |' in table
    assert result['detectors'] == {}
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # The chart's x range holds every point (a fixed one did not at 64x64).
    (low, high), ticks = script.log_axis(
        [row['gmacs']['64'] for row in result['backbones'].values()])
    assert all(low < row['gmacs']['64'] < high
               for row in result['backbones'].values())
    assert ticks and all(low <= t <= high for t in ticks)


def test_markdown_states_each_detector_tables_rounds(quick, script):
    # The default run: --detector-repeat 3 for Mask R-CNN, --repeat 10 // 2
    # for RTMDet.
    result = dict(quick[0], detector_repeat=3)
    result['detectors'] = {
        kind: {
            label:
            dict(median_s=1., min_s=1., max_s=1., rounds=rounds, params_m=1.)
            for label in ('FasterNet-T1', 'GhostNetV2-1.0')
        }
        for kind, rounds in (('mask_rcnn', 3), ('rtmdet', 5))
    }
    table = script.markdown(result)
    assert re.search(r'Whole mask_rcnn .* of 3 rounds', table)
    assert re.search(r'Whole rtmdet .* of 5 rounds', table)


def test_fold_check_raises_beyond_tolerance(script):
    x = torch.ones(1, 3, 4, 4)
    assert script.check_folded('same', lambda t: (t, ), lambda t: (t, ),
                               x) == 0
    with pytest.raises(
            AssertionError,
            match=r'off: the folded model differs from the eager one by '
            r'1\.00e-03 \(relative\), above the tolerance 0\.0001'):
        script.check_folded('off', lambda t: (t * 1.001, ), lambda t: (t, ), x)
