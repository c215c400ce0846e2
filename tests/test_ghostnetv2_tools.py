"""A GhostNetV2 Mask R-CNN through tools/train.py and tools/test.py.

The toy config inherits ``configs/mask_rcnn_ghostnetv2_100_fpn_1x_coco.py``
and only shrinks data, image size and proposal counts (no ImageNet weights).
"""
import os
import pickle
import re

import pytest

from mmfasternet.datasets import SHAPE_CLASSES
from tool_runner import REPO, run_tool

CONFIG = REPO / 'configs' / 'mask_rcnn_ghostnetv2_100_fpn_1x_coco.py'

TOY_CONFIG = """\
_base_ = [{base!r}]
data_root = {root!r}
metainfo = dict(classes={classes!r})
scale = (128, 96)

model = dict(
    backbone=dict(init_cfg=None),
    roi_head=dict(
        bbox_head=dict(num_classes={num_classes}),
        mask_head=dict(num_classes={num_classes})),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(max_per_img=20)))

pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor')),
]
loader = dict(batch_size=2, num_workers=0, persistent_workers=False)
train_dataloader = dict(
    **loader,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=pipeline))
val_dataloader = dict(
    **loader,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
"""


@pytest.fixture(scope='module')
def toy_config(toy_coco_root, tmp_path_factory):
    path = tmp_path_factory.mktemp('toy_cfg') / 'mask_rcnn_ghostnetv2_toy.py'
    path.write_text(
        TOY_CONFIG.format(
            base=str(CONFIG),
            root=os.path.join(str(toy_coco_root), ''),
            classes=tuple(SHAPE_CLASSES),
            num_classes=len(SHAPE_CLASSES)))
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
