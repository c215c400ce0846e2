"""GhostNetV2 configs through tools/train.py and tools/test.py.

* Mask R-CNN: ``configs/mask_rcnn_ghostnetv2_100_fpn_1x_coco.py`` with the
  demo detector's toy-COCO data settings (``toy_configs.toy_coco_data``),
  smaller images and proposal counts, and no ImageNet weights.
* Semantic FPN: ``configs/fpn_ghostnetv2_100_ade20k_40k.py`` (a SyncBN
  backbone) with the demo segmentor's toy-ADE data settings, two
  iterations in a single CPU process.
"""
import os
import pickle
import re

import pytest
from mmengine.config import Config

from mmfasternet.datasets import SEG_CLASSES, SHAPE_CLASSES
from tool_runner import REPO, run_tool
from toy_configs import toy_coco_data, with_sizes

CONFIG = REPO / 'configs' / 'mask_rcnn_ghostnetv2_100_fpn_1x_coco.py'
SEG_CONFIG = REPO / 'configs' / 'fpn_ghostnetv2_100_ade20k_40k.py'
DEMO_SEGMENTOR = REPO / 'configs' / 'demo' / 'fpn_fasternet_t0_ade20k_toy.py'


@pytest.fixture(scope='module')
def toy_config(toy_coco_info, tmp_path_factory):
    """The GhostNetV2 config on the demo detector's toy data settings."""
    cfg = Config.fromfile(CONFIG)
    num_classes = len(SHAPE_CLASSES)
    cfg.merge_from_dict(
        dict(
            **toy_coco_data(toy_coco_info, scale=(128, 96), batch_size=2),
            model=dict(
                backbone=dict(init_cfg=None),
                roi_head=dict(
                    bbox_head=dict(num_classes=num_classes),
                    mask_head=dict(num_classes=num_classes)),
                train_cfg=dict(
                    rpn_proposal=dict(nms_pre=200, max_per_img=100),
                    rcnn=dict(sampler=dict(num=64))),
                test_cfg=dict(
                    rpn=dict(nms_pre=200, max_per_img=100),
                    rcnn=dict(max_per_img=20))),
            train_cfg=dict(max_epochs=1),
            default_hooks=dict(logger=dict(interval=1))))
    path = tmp_path_factory.mktemp('toy_cfg') / 'mask_rcnn_ghostnetv2_toy.py'
    cfg.dump(path)
    return str(path)


def test_train_then_test(toy_config, tmp_path):
    work_dir = tmp_path / 'train'
    output = run_tool('train.py', toy_config, '--work-dir', str(work_dir))
    assert "type='GhostNetV2'" in output  # the config dump
    assert re.search(r'Epoch\(train\)\s*\[1\]\[4/4\].*loss_mask', output)
    assert re.search(r'Epoch\(val\)\s*\[1\].*coco/segm_mAP', output)
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.is_file()

    out = tmp_path / 'results.pkl'
    output = run_tool('test.py', toy_config, str(ckpt), '--work-dir',
                      str(tmp_path / 'test'), '--out', str(out))
    # The whole detector's checkpoint loads into the backbone completely.
    assert 'missing keys' not in output and 'unexpected key' not in output
    assert re.search(r'Epoch\(test\).*coco/bbox_mAP.*coco/segm_mAP', output)
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 4  # toy val images
    assert {'pred_instances', 'img_id'} <= set(results[0])


@pytest.fixture(scope='module')
def toy_seg_config(toy_ade_root, tmp_path_factory):
    """The GhostNetV2 ADE20K config on the demo segmentor's toy data: 64x64
    crops of the fixture's 128x96 images, 2 iterations."""
    cfg = Config.fromfile(SEG_CONFIG)
    demo = Config.fromfile(DEMO_SEGMENTOR)
    overrides = dict(
        model=dict(
            data_preprocessor=dict(size=(64, 64)),
            backbone=dict(init_cfg=None),
            decode_head=dict(num_classes=len(SEG_CLASSES))),
        train_cfg=dict(max_iters=2, val_interval=2),
        default_hooks=dict(
            logger=dict(interval=1), checkpoint=dict(interval=2)))
    for split, sizes in (('train', dict(crop_size=(64, 64))), ('val', {}),
                         ('test', {})):
        dataset = demo[f'{split}_dataloader'].dataset.to_dict()
        dataset.update(
            data_root=os.path.join(str(toy_ade_root), ''),
            pipeline=with_sizes(dataset['pipeline'], scale=(128, 96), **sizes))
        overrides[f'{split}_dataloader'] = dict(
            num_workers=0, persistent_workers=False, dataset=dataset)
    overrides['train_dataloader']['batch_size'] = 2
    cfg.merge_from_dict(overrides)
    path = tmp_path_factory.mktemp('toy_seg_cfg') / 'fpn_ghostnetv2_toy.py'
    cfg.dump(path)
    return str(path)


def test_sync_bn_backbone_trains_in_one_cpu_process(toy_seg_config, tmp_path):
    assert Config.fromfile(toy_seg_config).model.backbone.norm_cfg == dict(
        type='SyncBN', requires_grad=True)
    output = run_tool('train.py', toy_seg_config, '--work-dir', str(tmp_path))
    # MMEngine's runner reverts SyncBN (GPU-only) to BN in one process.
    assert 'SyncBatchNorm (SyncBN) layers in the model will be ' \
        'automatically reverted' in output
    assert re.search(r'Iter\(train\) \[2/2\].*loss', output)
    assert re.search(r'Iter\(val\).*mIoU', output)
    assert (tmp_path / 'iter_2.pth').is_file()
