"""The COCO Mask R-CNN configs build, match the paper and hold the recipe."""
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from official_weights import FASTERNET_RELEASE

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'configs'

# variant: (embed dim, lr, drop path, official ImageNet release asset)
VARIANTS = {
    't0': (40, 2e-4, 0.0, 'fasternet_t0-epoch.281-val_acc1.71.9180.pth'),
    't1': (64, 2e-4, 0.02, 'fasternet_t1-epoch.291-val_acc1.76.2180.pth'),
    't2': (96, 2e-4, 0.05, 'fasternet_t2-epoch.289-val_acc1.78.8860.pth'),
    's': (128, 2e-4, 0.15, 'fasternet_s-epoch.299-val_acc1.81.2840.pth'),
    'm': (144, 1e-4, 0.2, 'fasternet_m-epoch.291-val_acc1.82.9620.pth'),
    'l': (192, 1e-4, 0.3, 'fasternet_l-epoch.299-val_acc1.83.5060.pth'),
}
# The paper's COCO table (Mask R-CNN, 80 classes), in millions.
PAPER_PARAMS = {'s': 49.0, 'm': 71.2, 'l': 110.9}


def load(variant: str) -> Config:
    return Config.fromfile(
        str(CONFIG_DIR / f'mask_rcnn_fasternet_{variant}_fpn_1x_coco.py'))


def test_flat_list_of_configs():
    names = sorted(p.name for p in CONFIG_DIR.glob('mask_rcnn_fasternet_*.py'))
    assert names == sorted(f'mask_rcnn_fasternet_{v}_fpn_1x_coco.py'
                           for v in VARIANTS)


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_recipe(variant):
    embed, lr, drop_path, asset = VARIANTS[variant]
    cfg = load(variant)
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(
        imports=['mmfasternet'], allow_failed_imports=False)

    backbone = cfg.model.backbone
    # `_delete_` left nothing of ResNet's dict behind.
    assert backbone == dict(
        type='FasterNet',
        arch=variant,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=drop_path,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=f'{FASTERNET_RELEASE}/{asset}'))
    assert cfg.model.neck.in_channels == [embed * 2**i for i in range(4)]
    assert cfg.model.roi_head.bbox_head.num_classes == 80
    assert cfg.model.roi_head.mask_head.num_classes == 80

    optim = cfg.optim_wrapper
    assert optim.type == 'OptimWrapper'
    assert optim.optimizer == dict(type='AdamW', lr=lr, weight_decay=1e-4)
    assert optim.get('clip_grad') is None
    assert 'paramwise_cfg' not in optim

    assert cfg.train_cfg.type == 'EpochBasedTrainLoop'
    assert cfg.train_cfg.max_epochs == 12
    # inherited from schedule_1x.py (mmdet tags what it defines: _scope_)
    warmup, steps = ({
        k: v
        for k, v in step.items() if k != '_scope_'
    } for step in cfg.param_scheduler)
    assert warmup == dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500)
    assert steps == dict(
        type='MultiStepLR',
        begin=0,
        end=12,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)

    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16
    pipeline = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    assert pipeline['Resize']['scale'] == (1333, 800)
    assert pipeline['Resize']['keep_ratio'] is True
    assert pipeline['RandomFlip']['prob'] == 0.5
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'


def count_params(cfg: Config) -> int:
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('variant', sorted(PAPER_PARAMS))
def test_params_match_paper(variant):
    params = count_params(load(variant)) / 1e6
    assert abs(params - PAPER_PARAMS[variant]) <= 0.1, \
        f'{variant}: {params:.3f}M, paper {PAPER_PARAMS[variant]}M'


@pytest.mark.parametrize('variant', ['t0', 't1', 't2'])
def test_tiny_variants_build(variant):
    embed = VARIANTS[variant][0]
    cfg = load(variant)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    assert [c.in_channels for c in model.neck.lateral_convs
            ] == [embed * 2**i for i in range(4)]
