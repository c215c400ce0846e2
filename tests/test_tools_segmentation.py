"""tools/ and MMSegInferencer on the ADE20K Semantic FPN configs, CPU only.

The tool runs use the real demo config
(``configs/demo/fpn_fasternet_t0_ade20k_toy.py``: the T0 ADE20K config with
4 classes, BN in the head and no pretrained weights) and override only what
the tests need: the fixture's 128x96 toy images, 64x64 crops, batch 2 and
a few iterations.
"""
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from mmfasternet.datasets import SEG_CLASSES
from tool_runner import (dist_train_on_cpu, run_script_without_compiled_mmcv,
                         run_tool)
from toy_configs import with_sizes

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / 'configs' / 'demo' / 'fpn_fasternet_t0_ade20k_toy.py'
S_CONFIG = REPO / 'configs' / 'fpn_fasternet_s_ade20k_40k.py'
SCALE = (128, 96)  # the toy_ade_root fixture's images
CROP_SIZE = (64, 64)
MAX_ITERS = 4
TOY_CONFIG_NAME = 'fpn_fasternet_toy.py'


@pytest.fixture(scope='module')
def toy_config(toy_ade_root, tmp_path_factory):
    """The demo config on the fixture's data, a few iterations."""
    root = os.path.join(str(toy_ade_root), '')
    cfg = Config.fromfile(DEMO_CONFIG)
    loader = dict(num_workers=0, persistent_workers=False)
    train_pipeline = with_sizes(
        cfg.train_dataloader.dataset.pipeline,
        scale=SCALE,
        crop_size=CROP_SIZE)

    def test_dataset(split: str) -> dict:
        pipeline = cfg[f'{split}_dataloader'].dataset.pipeline
        return dict(data_root=root, pipeline=with_sizes(pipeline, scale=SCALE))

    cfg.merge_from_dict(
        dict(
            model=dict(data_preprocessor=dict(size=CROP_SIZE)),
            train_dataloader=dict(
                **loader,
                batch_size=2,
                dataset=dict(data_root=root, pipeline=train_pipeline)),
            val_dataloader=dict(**loader, dataset=test_dataset('val')),
            test_dataloader=dict(**loader, dataset=test_dataset('test')),
            train_cfg=dict(max_iters=MAX_ITERS, val_interval=MAX_ITERS),
            default_hooks=dict(
                logger=dict(interval=1), checkpoint=dict(interval=MAX_ITERS))))
    path = tmp_path_factory.mktemp('toy_seg_cfg') / TOY_CONFIG_NAME
    cfg.dump(path)
    return str(path)


def metrics(output: str, mode: str) -> dict:
    """aAcc/mIoU/mAcc of the last ``Iter(<mode>)`` summary line."""
    lines = re.findall(rf'Iter\({mode}\) .*mIoU.*', output)
    assert lines, f'no {mode} metrics in the output'
    return {
        k: float(v)
        for k, v in re.findall(r'(aAcc|mIoU|mAcc): ([\d.]+)', lines[-1])
    }


@pytest.fixture(scope='module')
def trained(toy_config, tmp_path_factory):
    """A few toy iterations with tools/train.py: (work_dir, output)."""
    work_dir = tmp_path_factory.mktemp('seg_train')
    start = time.time()
    output = run_tool('train.py', toy_config, '--work-dir', str(work_dir),
                      '--seed', '5', '--deterministic')
    print(f'toy seg train ({MAX_ITERS} iters + val): '
          f'{time.time() - start:.1f} s')
    return work_dir, output


def test_train_validates(trained):
    work_dir, output = trained
    assert (work_dir / f'iter_{MAX_ITERS}.pth').is_file()
    assert len(re.findall(r'Iter\(train\) \[\s*\d+/\d+\]', output)) \
        == MAX_ITERS
    # per-class table with the toy classes, then the summary
    for name in SEG_CLASSES:
        assert re.search(rf'\|\s*{name}\s*\|', output)
    result = metrics(output, 'val')
    print(f'toy seg val: {result}')
    assert 0 <= result['mIoU'] <= 100


def test_seed_and_deterministic_options(trained):
    work_dir, output = trained
    assert re.search(r'^\s*seed: 5$', output, re.M)
    # the runner dumps the resolved config into the work dir
    dumped = (work_dir / TOY_CONFIG_NAME).read_text()
    assert re.search(r"randomness = dict\(deterministic=True, seed=5\)",
                     dumped), dumped


def test_same_seed_reproduces_the_run(trained, toy_config, tmp_path):
    """``--seed 5 --deterministic`` again, in a new work dir: the same
    losses at every iteration and the same validation metrics."""
    _, first = trained
    again = run_tool('train.py', toy_config, '--work-dir', str(tmp_path),
                     '--seed', '5', '--deterministic')
    losses = [
        re.findall(r'Iter\(train\).* loss: ([\d.]+)', out)
        for out in (first, again)
    ]
    assert len(losses[0]) == MAX_ITERS
    assert losses[0] == losses[1]
    assert metrics(again, 'val') == metrics(first, 'val')


def test_test_evaluates_checkpoint(trained, toy_config, tmp_path):
    work_dir, train_output = trained
    start = time.time()
    output = run_tool('test.py', toy_config,
                      str(work_dir / f'iter_{MAX_ITERS}.pth'), '--work-dir',
                      str(tmp_path))
    print(f'toy seg test: {time.time() - start:.1f} s')
    # same weights, same images: the test metrics are the final val metrics
    assert metrics(output, 'test') == metrics(train_output, 'val')


def test_mmsegs_own_test_tool_without_compiled_ops(trained, toy_config,
                                                   tmp_path):
    """mmseg's tools/test.py reads the config (custom_imports: mmfasternet)
    before anything imports mmcv.ops: it runs as it is, compiled mmcv ops
    or not."""
    import mmseg
    mmseg_test = Path(mmseg.__file__).parent / '.mim' / 'tools' / 'test.py'
    work_dir, train_output = trained
    output = run_script_without_compiled_mmcv(
        mmseg_test, toy_config, work_dir / f'iter_{MAX_ITERS}.pth',
        '--work-dir', tmp_path)
    assert metrics(output, 'test') == metrics(train_output, 'val')


def test_dist_train_two_cpu_processes(toy_config, tmp_path):
    output = dist_train_on_cpu('toy seg dist_train (2 CPU procs)', toy_config,
                               tmp_path, 'train_cfg.max_iters=2',
                               'train_cfg.val_interval=2',
                               'default_hooks.checkpoint.interval=2')
    assert re.search(r'Iter\(train\) \[2/2\]', output)
    assert (tmp_path / 'iter_2.pth').is_file()
    assert 'mIoU' in metrics(output, 'val')


def test_inferencer_with_s_config(toy_ade_root, tmp_path):
    from mmseg.apis import MMSegInferencer

    image = sorted((Path(toy_ade_root) / 'images' / 'validation').iterdir())[0]
    # Random weights: no checkpoint is needed to exercise the pipeline.
    inferencer = MMSegInferencer(
        model=str(S_CONFIG), weights=None, dataset_name='ade20k', device='cpu')
    assert len(inferencer.visualizer.dataset_meta['classes']) == 150
    result = inferencer(str(image), out_dir=str(tmp_path))
    height, width = np.asarray(Image.open(image)).shape[:2]
    prediction = result['predictions']
    assert prediction.shape == (height, width)
    assert prediction.min() >= 0 and prediction.max() < 150
    assert (tmp_path / 'vis' / image.name).is_file()


def test_bad_checkpoints_get_clear_errors_in_tools(toy_config, tmp_path):
    """tools/test.py and tools/train.py --resume name an unreadable file and
    never advise weights_only=False (all four kinds are pinned in
    test_checkpoint_loading.py; here two, through the tools)."""
    from test_checkpoint_loading import assert_clear_refusal, write_bad_file
    truncated = write_bad_file(tmp_path / 'truncated.pth', 'truncated')
    out = run_tool(
        'test.py',
        toy_config,
        truncated,
        '--work-dir',
        str(tmp_path / 'test'),
        expect_failure=True)
    assert 'UnreadableCheckpointError' in out
    assert_clear_refusal(out, truncated, 'truncated')

    empty = write_bad_file(tmp_path / 'empty.pth', 'empty')
    out = run_tool(
        'train.py',
        toy_config,
        '--resume',
        empty,
        '--work-dir',
        str(tmp_path / 'train'),
        expect_failure=True)
    assert 'UnreadableCheckpointError' in out
    assert_clear_refusal(out, empty, 'empty')
