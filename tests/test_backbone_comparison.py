"""``benchmarks/backbone_comparison.py``: a ``--quick --no-detectors`` run
(about 10 s on 2 cores; the whole detectors would add 5-20 s) and its report
writers."""
import json
import math
import re

import pytest
import torch

from tool_runner import load_script, run_script

SCRIPT = 'benchmarks/backbone_comparison.py'
# FasterNet's stem width per variant; all three have 1, 2, 8, 2 blocks.
FASTERNET_WIDTHS = {'FasterNet-T0': 40, 'FasterNet-T1': 64, 'FasterNet-T2': 96}
FASTERNET_DEPTHS = (1, 2, 8, 2)


def fasternet_counts(width: int, side: int):
    """(parameters, convolution multiply-adds) of a FasterNet detection
    backbone with stem width ``width`` at a ``side`` x ``side`` input, from
    its layers: a 4x4 stride-4 stem conv, 2x2 stride-2 merging convs, and
    blocks of a PConv on 1/4 of the channels and a 2x-wide pointwise MLP;
    every conv followed by a BN but the PConv and the MLP's second conv;
    an output norm per stage."""
    params = macs = 0
    pixels = (side // 4)**2
    params += 3 * 16 * width + 2 * width
    macs += 3 * 16 * width * pixels
    c = width
    for i, depth in enumerate(FASTERNET_DEPTHS):
        if i:
            pixels //= 4
            params += 4 * c * 2 * c + 2 * 2 * c
            macs += 4 * c * 2 * c * pixels
            c *= 2
        block = 9 * (c // 4)**2 + 2 * c * 2 * c
        params += depth * (block + 2 * 2 * c) + 2 * c
        macs += depth * block * pixels
    return params, macs


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


def test_quick_run_numbers_agree(quick, script):
    """Counts as the layers give them; timings sane, and the GFLOP/s, the
    headline ratios and the markdown made from them."""
    result, table, _ = quick
    rows = result['backbones']
    for label, width in FASTERNET_WIDTHS.items():
        params, macs = fasternet_counts(width, 64)
        assert rows[label]['params_m'] == pytest.approx(params / 1e6), label
        assert rows[label]['gmacs']['64'] == pytest.approx(macs / 1e9), label
    for label, row in rows.items():
        assert row['params_m'] > 0 and row['gmacs']['64'] > 0, label
        for key, timing in row['latency'].items():
            values = (timing['min_s'], timing['median_s'], timing['max_s'])
            assert all(math.isfinite(v) and v > 0 for v in values), label
            assert values[0] <= values[1] <= values[2], label
            assert row['gflops_per_s'][key] == pytest.approx(
                2 * row['gmacs']['64'] / timing['median_s'])
            assert script.fmt_time(timing) in table
        assert (f'| {label} | {row["top1"]} | {row["params_m"]:.2f}M | '
                f'{row["gmacs"]["64"]:.3f} |') in table
    t1, g1 = rows['FasterNet-T1'], rows['GhostNetV2-1.0']
    for threads in result['thread_settings']:
        key = f'64|{threads}'
        assert result['headline'][f'backbone 64x64, {threads} thread(s)'] == \
            pytest.approx(t1['latency'][key]['median_s'] /
                          g1['latency'][key]['median_s'])


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
