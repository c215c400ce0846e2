"""tools/ on the toy RTMDet and RTMDet-Ins FasterNet-T0 configs, CPU only.

The runs use the real demo configs (``configs/demo/rtmdet*_toy.py``: the
COCO configs' model code and recipe on the toy shapes set) and shorten them
with ``--cfg-options`` only: the fixture's 8 training images, batch 4, two
epochs with the pipeline switch after the first (so that a run goes through
both of RTMDet's pipelines and updates the EMA model), inputs at half the
toy configs' size.

* RTMDet-Ins: ``tools/train.py`` trains it, ``tools/test.py --deploy``
  evaluates the EMA checkpoint (bbox and segm mAP), then ``--resume`` trains
  a third epoch from the saved one.
* RTMDet: ``tools/dist_train.sh`` with 2 CPU processes trains it and
  validates the EMA weights at the end (bbox mAP); ``tools/test.py`` (eager,
  EMAHook kept) evaluates the saved checkpoint to the same bbox mAP.

Each tool run costs ~10 s of start-up (imports, model, dataset), so the
steps are spread over the two models rather than repeated for both.
"""
import os
import re
import time
from pathlib import Path
from typing import List

import pytest
import torch
from mmengine.config import Config

from tool_runner import dist_train_on_cpu, run_tool

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / 'configs' / 'demo'
DET_CONFIG = str(DEMO / 'rtmdet_fasternet_t0_toy.py')
INS_CONFIG = str(DEMO / 'rtmdet-ins_fasternet_t0_toy.py')
BATCH = 8  # 1 iteration per epoch, also with 2 processes (4 images each)
NUM_TRAIN = 8  # images of the toy_coco_root fixture
EPOCHS = 2
SWITCH_EPOCH = 1  # stage 2 (no mosaic / mix-up) from the second epoch on
SIZE_KEYS = ('img_scale', 'scale', 'crop_size', 'size')


def half_size_options(config: str) -> List[str]:
    """Halve every image size in the config's three pipelines."""
    cfg = Config.fromfile(config)
    pipelines = {
        'train_dataloader.dataset.pipeline':
        cfg.train_dataloader.dataset.pipeline,
        'custom_hooks.1.switch_pipeline': cfg.custom_hooks[1].switch_pipeline,
        'test_dataloader.dataset.pipeline':
        cfg.test_dataloader.dataset.pipeline,
    }
    options = []
    for prefix, pipeline in pipelines.items():
        for i, transform in enumerate(pipeline):
            for key in SIZE_KEYS:
                if isinstance(transform.get(key), tuple):
                    half = tuple(v // 2 for v in transform[key])
                    options.append(f'{prefix}.{i}.{key}=({half[0]},{half[1]})')
    return options


def toy_options(config: str,
                root: str,
                epochs: int = EPOCHS,
                validate: bool = False) -> List[str]:
    """``--cfg-options`` that point a toy config at the fixture's data and
    shorten its schedule; with ``validate``, training ends with validation
    (else tools/test.py evaluates)."""
    root = os.path.join(root, '')
    options = half_size_options(config) + [
        f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs if validate else epochs + 1}',
        f'custom_hooks.1.switch_epoch={SWITCH_EPOCH}',
        f'default_hooks.checkpoint.interval={epochs}',
        'default_hooks.logger.interval=1',
        # Warm up in one iteration, so that the weights (and the EMA) move.
        'param_scheduler.0.end=1',
        'param_scheduler.0.start_factor=1.0',
        f'train_dataloader.batch_size={BATCH}',
        # A few iterations leave every score under the test thresholds;
        # keep the top boxes anyway so that the metrics have input.
        'model.test_cfg.score_thr=0.0',
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [
            f'{loader}.dataset.data_root={root}',
            f'{loader}.num_workers=0',
            f'{loader}.persistent_workers=False',
        ]
    for evaluator in ('val_evaluator', 'test_evaluator'):
        options.append(f'{evaluator}.ann_file='
                       f'{root}annotations/instances_val.json')
    return options


def train_epochs(output: str) -> List[int]:
    """Epoch numbers of the training log lines, in order."""
    return [int(m) for m in re.findall(r'Epoch\(train\)\s*\[(\d+)\]', output)]


def load(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


def check_switch_and_ema(output: str, ckpt: Path, iters: int) -> None:
    """The pipeline switched once, before epoch 2; the EMA took every step."""
    assert output.count('Switch pipeline now!') == 1
    epoch2 = re.search(r'Epoch\(train\)\s*\[2\]', output).start()
    assert output.index('Switch pipeline now!') < epoch2
    state = load(ckpt)
    assert state['meta']['epoch'] == EPOCHS
    ema = state['ema_state_dict']
    assert int(ema['steps']) == iters
    # EMAHook saves the EMA weights as the checkpoint's model (what
    # tools/test.py evaluates) and the trained ones beside them: after a few
    # ExpMomentumEMA steps they are close, but not equal.
    name = 'bbox_head.rtm_cls.0.weight'
    averaged, trained = state['state_dict'][name], ema['module.' + name]
    assert not torch.equal(averaged, trained)
    assert torch.allclose(averaged, trained, atol=0.05)


def timed_tool(label: str, *args, **env) -> str:
    start = time.time()
    output = run_tool(*args, **env)
    print(f'{label}: {time.time() - start:.1f} s')
    return output


@pytest.fixture(scope='module')
def ins_trained(toy_coco_root, tmp_path_factory):
    """The toy RTMDet-Ins trained by tools/train.py: (work_dir, output)."""
    work_dir = tmp_path_factory.mktemp('rtmdet_ins')
    output = timed_tool('rtmdet-ins train', 'train.py', INS_CONFIG,
                        '--work-dir', str(work_dir), '--cfg-options',
                        *toy_options(INS_CONFIG, toy_coco_root))
    return work_dir, output


def test_ins_train_switches_pipeline_and_updates_ema(ins_trained):
    work_dir, output = ins_trained
    per_epoch = NUM_TRAIN // BATCH
    assert train_epochs(output) == [1] * per_epoch + [2] * per_epoch
    check_switch_and_ema(output, work_dir / f'epoch_{EPOCHS}.pth',
                         EPOCHS * per_epoch)


def test_ins_test_on_ema_checkpoint_prints_bbox_and_segm_map(
        ins_trained, toy_coco_root, tmp_path):
    """In deploy mode, which must not let EMAHook swap the eager EMA copy's
    parameters into the fused backbone (the eager path runs in the
    tools/test.py run of
    ``test_det_test_on_ema_checkpoint_matches_validation``)."""
    work_dir, _ = ins_trained
    output = timed_tool('rtmdet-ins test --deploy', 'test.py', INS_CONFIG,
                        str(work_dir / f'epoch_{EPOCHS}.pth'), '--deploy',
                        '--work-dir', str(tmp_path), '--cfg-options',
                        *toy_options(INS_CONFIG, toy_coco_root))
    assert '1 FasterNet backbone(s) in deploy mode' in output
    assert re.search(r'Epoch\(test\).*coco/bbox_mAP: \d', output)
    assert re.search(r'Epoch\(test\).*coco/segm_mAP: \d', output)


def test_ins_resume_continues_from_saved_epoch(ins_trained, toy_coco_root):
    """``--resume`` in the same work dir: a third epoch, not a restart."""
    work_dir, _ = ins_trained
    per_epoch = NUM_TRAIN // BATCH
    output = timed_tool('rtmdet-ins resume', 'train.py', INS_CONFIG,
                        '--work-dir', str(work_dir), '--resume',
                        '--cfg-options',
                        *toy_options(INS_CONFIG, toy_coco_root, epochs=3))
    assert f'resumed epoch: {EPOCHS}, iter: {EPOCHS * per_epoch}' in output
    assert train_epochs(output) == [3] * per_epoch
    # Resumed past the switch epoch: straight into stage 2's pipeline.
    assert 'Switch pipeline now!' in output
    resumed = load(work_dir / 'epoch_3.pth')
    assert resumed['meta']['iter'] == 3 * per_epoch
    assert int(resumed['ema_state_dict']['steps']) == 3 * per_epoch


@pytest.fixture(scope='module')
def det_dist_trained(toy_coco_root, tmp_path_factory):
    """The toy RTMDet trained by dist_train.sh on 2 CPU processes, with
    validation at the end: (work_dir, output)."""
    work_dir = tmp_path_factory.mktemp('rtmdet_dist')
    output = dist_train_on_cpu(
        'rtmdet dist_train (2 CPU procs)', DET_CONFIG, work_dir,
        *toy_options(DET_CONFIG, toy_coco_root, validate=True))
    return work_dir, output


def coco_metric(output: str, mode: str, metric: str) -> float:
    """The value of ``coco/<metric>`` on the last ``Epoch(<mode>)`` line."""
    values = re.findall(rf'Epoch\({mode}\).*coco/{metric}: ([\d.]+)', output)
    assert values, f'no Epoch({mode}) coco/{metric} in the output'
    return float(values[-1])


def test_dist_train_two_cpu_processes(det_dist_trained):
    """RTMDet's SyncBN runs as BN; pipeline switch; EMA updated."""
    work_dir, output = det_dist_trained
    # use_syncbn=True turned every BN into SyncBN in the 2-process world;
    # the CPU wrapper turned them back into per-process BN.
    assert 'Using SyncBatchNorm()' in output
    assert 'SyncBN layers run as per-process BN' in output
    # 8 images over 2 processes: 1 iteration of 4 images per epoch.
    assert train_epochs(output) == [1, 2]
    check_switch_and_ema(output, work_dir / f'epoch_{EPOCHS}.pth', EPOCHS)
    coco_metric(output, 'val', 'bbox_mAP')


def test_det_test_on_ema_checkpoint_matches_validation(det_dist_trained,
                                                       toy_coco_root,
                                                       tmp_path):
    """tools/test.py in eager mode: EMAHook loads the checkpoint's EMA
    state and evaluates the averaged weights, which are what validation at
    the end of training evaluated, so the bbox mAP is the same (up to the
    last printed digit: the two runs use different thread counts)."""
    work_dir, train_output = det_dist_trained
    output = timed_tool('rtmdet test (EMA checkpoint)', 'test.py', DET_CONFIG,
                        str(work_dir / f'epoch_{EPOCHS}.pth'), '--work-dir',
                        str(tmp_path), '--cfg-options',
                        *toy_options(DET_CONFIG, toy_coco_root))
    assert 'deploy mode' not in output
    for metric in ('bbox_mAP', 'bbox_mAP_50'):
        assert coco_metric(output, 'test', metric) == pytest.approx(
            coco_metric(train_output, 'val', metric), abs=0.002), metric
