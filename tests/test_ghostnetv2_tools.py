"""A GhostNetV2 Mask R-CNN through tools/train.py and tools/test.py.

The toy config is ``configs/mask_rcnn_ghostnetv2_100_fpn_1x_coco.py`` with
the demo detector's toy-COCO data settings (``toy_configs.toy_coco_data``),
smaller images and proposal counts, and no ImageNet weights.
"""
import pickle
import re

import pytest
from mmengine.config import Config

from mmfasternet.datasets import SHAPE_CLASSES
from tool_runner import REPO, run_tool
from toy_configs import toy_coco_data

CONFIG = REPO / 'configs' / 'mask_rcnn_ghostnetv2_100_fpn_1x_coco.py'


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
