"""tools/ on the toy Mask R-CNN demo config, CPU only.

The runs use the real demo config
(``configs/demo/mask_rcnn_fasternet_t0_fpn_toy.py``: the COCO config's model
code and recipe, FasterNet-T0 without pretrained weights) and override only
what the tests need: the fixture's 8 training images at their own 128x96
size, batch 2, fewer proposals, and an epoch-based loop of one epoch (for
the epoch-numbered checkpoints and logs that the resume test reads).
"""
import pickle
import re
import signal
import time
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from checkpoint_factory import (official_detection_checkpoint,
                                random_official_state)
from mmfasternet.benchmarking import has_native_bf16
from mmfasternet.engine import setup_cpu_distributed
from tool_runner import (dist_train_on_cpu, run_script_without_compiled_mmcv,
                         run_tool, start_tool)
from toy_configs import DEMO_DETECTOR, toy_coco_data

REPO = Path(__file__).resolve().parents[1]
S_CONFIG = REPO / 'configs' / 'mask_rcnn_fasternet_s_fpn_1x_coco.py'
SCALE = (128, 96)  # the toy_coco_root fixture's images
BATCH = 2
ITERS_PER_EPOCH = 8 // BATCH  # 8 toy training images


@pytest.fixture(scope='module')
def toy_config(toy_coco_info, tmp_path_factory):
    """The demo config on the fixture's data, one short epoch."""
    cfg = Config.fromfile(DEMO_DETECTOR)
    cfg.merge_from_dict(
        dict(
            **toy_coco_data(toy_coco_info, SCALE, BATCH),
            model=dict(
                train_cfg=dict(
                    rpn_proposal=dict(nms_pre=200, max_per_img=100),
                    rcnn=dict(sampler=dict(num=64))),
                test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100))),
            # Epochs, whatever the demo's loop: the tests count them.
            train_cfg=dict(
                _delete_=True,
                type='EpochBasedTrainLoop',
                max_epochs=1,
                val_interval=1),
            default_hooks=dict(
                logger=dict(interval=1),
                checkpoint=dict(by_epoch=True, interval=1)),
            log_processor=dict(by_epoch=True)))
    path = tmp_path_factory.mktemp('toy_cfg') / 'mask_rcnn_fasternet_toy.py'
    cfg.dump(path)
    return str(path)


def train_epochs(output: str):
    """Epoch numbers of the training log lines, in order."""
    return [int(m) for m in re.findall(r'Epoch\(train\)\s*\[(\d+)\]', output)]


@pytest.fixture(scope='module')
def trained(toy_config, tmp_path_factory):
    """One toy epoch with tools/train.py: (work_dir, output, seconds)."""
    work_dir = tmp_path_factory.mktemp('train')
    start = time.time()
    output = run_tool('train.py', toy_config, '--work-dir', str(work_dir))
    return work_dir, output, time.time() - start


def test_train_checkpoints_and_validates(trained):
    work_dir, output, seconds = trained
    print(f'toy train: {seconds:.1f} s')
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.is_file()
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(ckpt)
    assert train_epochs(output) == [1] * ITERS_PER_EPOCH
    assert re.search(r'Epoch\(val\)\s*\[1\]\[\d+/\d+\].*coco/bbox_mAP', output)
    assert 'coco/segm_mAP' in output
    meta = torch.load(ckpt, map_location='cpu', weights_only=False)['meta']
    assert (meta['epoch'], meta['iter']) == (1, ITERS_PER_EPOCH)


@pytest.fixture(scope='module')
def tested(trained, toy_config, tmp_path_factory):
    """tools/test.py on the trained checkpoint, eager, on the CPU (a GPU,
    if any, hidden), predictions to a pickle: (output, predictions)."""
    work_dir, _, _ = trained
    test_dir = tmp_path_factory.mktemp('test')
    out = test_dir / 'results.pkl'
    start = time.time()
    output = run_tool(
        'test.py',
        toy_config,
        str(work_dir / 'epoch_1.pth'),
        '--work-dir',
        str(test_dir),
        '--out',
        str(out),
        CUDA_VISIBLE_DEVICES='')
    print(f'toy test: {time.time() - start:.1f} s')
    with open(out, 'rb') as f:
        return output, pickle.load(f)


def test_test_evaluates_and_writes_out(tested):
    output, results = tested
    assert re.search(r'Epoch\(test\).*coco/bbox_mAP', output)
    assert 'coco/segm_mAP' in output
    assert len(results) == 4  # toy val images
    assert {'pred_instances', 'img_id'} <= set(results[0])


def test_test_deploy_and_bf16_match_eager(trained, tested, toy_config,
                                          tmp_path):
    """--deploy predicts what the eager model predicts; --bf16 runs where
    the CPU has native bf16 and is refused with advice elsewhere (on the
    CPU: a GPU, if any, is hidden from the tool)."""
    work_dir, _, _ = trained
    ckpt = str(work_dir / 'epoch_1.pth')
    results = {'': tested[1]}
    flags = ['--deploy']
    if has_native_bf16('cpu'):
        flags.append('--bf16')
    else:
        output = run_tool(
            'test.py',
            toy_config,
            ckpt,
            '--bf16',
            expect_failure=True,
            CUDA_VISIBLE_DEVICES='')
        assert '--bf16 refused' in output and 'Use --deploy' in output
    for flag in flags:
        out = tmp_path / f'results{flag}.pkl'
        output = run_tool(
            'test.py',
            toy_config,
            ckpt,
            '--work-dir',
            str(tmp_path / flag),
            '--out',
            str(out),
            flag,
            CUDA_VISIBLE_DEVICES='')
        assert '1 FasterNet backbone(s) in deploy mode' in output
        with open(out, 'rb') as f:
            results[flag] = pickle.load(f)
    for eager, deploy in zip(results[''], results['--deploy']):
        a, b = eager['pred_instances'], deploy['pred_instances']
        assert torch.allclose(a['scores'], b['scores'], atol=1e-4)
        assert torch.allclose(a['bboxes'], b['bboxes'], atol=1e-2)
    if '--bf16' in results:
        assert len(results['--bf16']) == len(results[''])


def test_resume_continues_from_checkpoint(toy_config, tmp_path):
    """Kill training after its first checkpoint; --resume goes on from it."""
    epochs = 2
    common = [
        toy_config, '--work-dir',
        str(tmp_path), '--cfg-options', f'train_cfg.max_epochs={epochs}'
    ]
    start = time.time()
    proc = start_tool('train.py', *common)
    last = tmp_path / 'last_checkpoint'
    try:
        while not last.exists():
            assert proc.poll() is None, 'training ended before a checkpoint'
            assert time.time() - start < 240, 'no checkpoint in time'
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    first = last.read_text().strip()
    done = int(re.search(r'epoch_(\d+)\.pth$', first).group(1))
    assert done < epochs and not (tmp_path / f'epoch_{epochs}.pth').exists()
    killed_at = time.time()

    output = run_tool('train.py', *common, '--resume')
    print(f'toy resume: killed after {killed_at - start:.1f} s, '
          f'resumed run {time.time() - killed_at:.1f} s')
    assert (f'resumed epoch: {done}, iter: {done * ITERS_PER_EPOCH}' in output)
    # Training restarts at the next epoch, not from zero.
    logged = train_epochs(output)
    assert logged[0] == done + 1 and logged[-1] == epochs
    ckpt = torch.load(
        tmp_path / f'epoch_{epochs}.pth',
        map_location='cpu',
        weights_only=False)
    assert ckpt['meta']['iter'] == epochs * ITERS_PER_EPOCH


def test_dist_train_two_cpu_processes(toy_config, tmp_path):
    """torchrun with 2 processes on CPU (gloo) trains one epoch."""
    output = dist_train_on_cpu('toy dist_train (2 CPU procs)', toy_config,
                               tmp_path)
    assert "type='CPUDistributedDataParallel'" in output  # config dump
    # 8 images / (2 processes x 2 per batch) = 2 iterations per process.
    assert re.search(r'Epoch\(train\)\s*\[1\]\[2/2\]', output)
    assert (tmp_path / 'epoch_1.pth').is_file()
    assert 'coco/bbox_mAP' in output


def mmdet2_mask_rcnn_heads(cfg: Config) -> dict:
    """Random neck and head weights under the names mmdet 2.x's Mask R-CNN
    (FPN, RPNHead, Shared2FCBBoxHead, FCNMaskHead) saves, written out here,
    with the sizes the config sets."""
    model = cfg.model
    c = model.neck.out_channels
    rpn = model.rpn_head.feat_channels
    anchors = len(model.rpn_head.anchor_generator.ratios)
    box = model.roi_head.bbox_head
    mask = model.roi_head.mask_head
    roi = model.roi_head.bbox_roi_extractor.roi_layer.output_size
    shapes = {}
    for i, width in enumerate(model.neck.in_channels):
        shapes[f'neck.lateral_convs.{i}.conv'] = (c, width, 1, 1)
        shapes[f'neck.fpn_convs.{i}.conv'] = (c, c, 3, 3)
    shapes['rpn_head.rpn_conv'] = (rpn, c, 3, 3)
    shapes['rpn_head.rpn_cls'] = (anchors, rpn, 1, 1)  # sigmoid: 1 a prior
    shapes['rpn_head.rpn_reg'] = (4 * anchors, rpn, 1, 1)
    fc = box.fc_out_channels
    shapes['roi_head.bbox_head.shared_fcs.0'] = (fc, c * roi * roi)
    shapes['roi_head.bbox_head.shared_fcs.1'] = (fc, fc)
    shapes['roi_head.bbox_head.fc_cls'] = (box.num_classes + 1, fc)
    shapes['roi_head.bbox_head.fc_reg'] = (4 * box.num_classes, fc)
    width = mask.conv_out_channels
    for i in range(mask.num_convs):
        shapes[f'roi_head.mask_head.convs.{i}.conv'] = (width,
                                                        c if i == 0 else width,
                                                        3, 3)
    shapes['roi_head.mask_head.upsample'] = (width, width, 2, 2)  # transposed
    shapes['roi_head.mask_head.conv_logits'] = (mask.num_classes, width, 1, 1)
    gen = torch.Generator().manual_seed(0)
    heads = {}
    for name, shape in shapes.items():
        out = shape[1] if name.endswith('upsample') else shape[0]
        heads[f'{name}.weight'] = torch.randn(shape, generator=gen) * 0.01
        heads[f'{name}.bias'] = torch.randn(out, generator=gen) * 0.01
    return heads


def test_official_mmdet2_checkpoint_loads_through_test_tool(
        toy_config, tmp_path):
    """An mmdet-2 layout detector checkpoint: every key has its place."""
    cfg = Config.fromfile(toy_config)
    ckpt = official_detection_checkpoint(
        't0', random_official_state('t0', detection=True),
        mmdet2_mask_rcnn_heads(cfg))
    assert {'CLASSES', 'mmcv_version'} <= set(ckpt['meta'])
    path = tmp_path / 'mask_rcnn_fasternet_t0_official.pth'
    torch.save(ckpt, path)

    output = run_tool('test.py', toy_config, str(path), '--work-dir',
                      str(tmp_path))
    assert f'Load checkpoint from {path}' in output
    for complaint in ('missing keys', 'unexpected key', 'size mismatch'):
        assert complaint not in output, re.findall(f'{complaint}.*', output)
    assert re.search(r'Epoch\(test\).*coco/bbox_mAP', output)


@pytest.mark.parametrize('launcher,cuda', [('none', False), ('pytorch', True)])
def test_cpu_distributed_setup_leaves_other_runs_alone(monkeypatch, launcher,
                                                       cuda):
    """No launcher, or CUDA present: the config is not touched."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
    cfg = Config(
        dict(launcher=launcher, env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    before = cfg.to_dict()
    assert setup_cpu_distributed(cfg) is False
    assert cfg.to_dict() == before
    assert not torch.distributed.is_initialized()


def test_get_flops_without_dataset():
    output = run_tool('get_flops.py', str(S_CONFIG), '--shape', '320', '256')
    assert 'Params:      48.99 M' in output
    flops = float(re.search(r'FLOPs:\s+([\d.]+) G', output).group(1))
    assert flops > 0


def test_mmdets_own_test_tool_without_compiled_ops(trained, toy_config,
                                                   tmp_path):
    """mmdet's tools/test.py imports mmcv.ops before it reads the config,
    so without compiled ops it runs through ``python -m mmfasternet.run``
    (NMS and RoIAlign then on torchvision's kernels)."""
    import mmdet
    mmdet_test = Path(mmdet.__file__).parent / '.mim' / 'tools' / 'test.py'
    work_dir, _, _ = trained
    output = run_script_without_compiled_mmcv(
        mmdet_test,
        toy_config,
        work_dir / 'epoch_1.pth',
        '--work-dir',
        tmp_path,
        module='mmfasternet.run')
    assert re.search(r'Epoch\(test\).*coco/bbox_mAP', output)
    assert "run on torchvision's kernels" in output
