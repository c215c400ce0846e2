"""The ADE20K Semantic FPN configs: they load, build, and hold the protocol.

Protocol (PoolFormer's Semantic FPN configs, also used by PVT,
EfficientFormer and RepViT): 512x512 crops, 40k iterations, batch 4 per GPU,
AdamW lr 2e-4 / wd 1e-4, poly to 0, validation and checkpoint every 4k;
the backbone trains with SyncBN and without stochastic depth.
"""
import functools
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmfasternet.models.backbones import FasterNet
from official_weights import FASTERNET_ASSETS, fasternet_url

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
# arch: official ImageNet asset
VARIANTS = FASTERNET_ASSETS


@functools.lru_cache(maxsize=None)
def load(arch: str) -> Config:
    """The parsed config (cached: parsing resolves mmseg's bases, ~1 s)."""
    return Config.fromfile(
        str(CONFIGS / f'fpn_fasternet_{arch}_ade20k_40k.py'))


def plain(value):
    """``value`` as plain dicts/lists without mmseg's ``_scope_`` keys."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def by_type(pipeline, name):
    found = [t for t in pipeline if t['type'] == name]
    assert len(found) == 1, f'{name} not once in {pipeline}'
    return found[0]


def test_every_variant_has_a_config():
    names = {p.name for p in CONFIGS.glob('fpn_fasternet_*_ade20k_40k.py')}
    assert names == {f'fpn_fasternet_{a}_ade20k_40k.py' for a in VARIANTS}


@pytest.mark.parametrize('arch', list(VARIANTS))
def test_model_fields(arch):
    cfg = load(arch)
    assert cfg.custom_imports == dict(
        imports=['mmfasternet'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmseg'

    model = cfg.model
    assert model.type == 'EncoderDecoder' and model.pretrained is None
    # the ResNet dict is replaced, not merged into
    assert plain(model.backbone) == dict(
        type='FasterNet',
        arch=arch,
        out_indices=(0, 1, 2, 3),
        # PoolFormer's protocol: no stochastic depth, SyncBN as fpn_r50.py
        drop_path_rate=0.0,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=fasternet_url(arch)))
    c = FasterNet.arch_settings[arch]['embed_dims']
    assert plain(model.neck) == dict(
        type='FPN',
        in_channels=[c, 2 * c, 4 * c, 8 * c],
        out_channels=256,
        num_outs=4)
    assert model.decode_head.type == 'FPNHead'
    assert model.decode_head.num_classes == 150
    assert model.data_preprocessor.size == (512, 512)


@pytest.mark.parametrize('arch', list(VARIANTS))
def test_data_and_schedule_fields(arch):
    cfg = load(arch)
    train = cfg.train_dataloader
    assert train.batch_size == 4  # x 8 GPUs = 32
    assert train.dataset.type == 'ADE20KDataset'
    assert by_type(train.dataset.pipeline,
                   'LoadAnnotations')['reduce_zero_label'] is True
    resize = by_type(train.dataset.pipeline, 'RandomResize')
    assert resize.scale == (2048, 512) and resize.keep_ratio
    assert resize.ratio_range == (0.5, 2.0)
    crop = by_type(train.dataset.pipeline, 'RandomCrop')
    assert (crop.crop_size, crop.cat_max_ratio) == ((512, 512), 0.75)
    assert by_type(train.dataset.pipeline, 'RandomFlip').prob == 0.5
    by_type(train.dataset.pipeline, 'PhotoMetricDistortion')

    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        pipeline = loader.dataset.pipeline
        assert [t['type'] for t in pipeline] == [
            'LoadImageFromFile', 'Resize', 'ResizeToMultiple',
            'LoadAnnotations', 'PackSegInputs'
        ]
        resize = by_type(pipeline, 'Resize')
        assert (resize.scale, resize.keep_ratio) == ((2048, 512), True)
        assert by_type(pipeline, 'ResizeToMultiple').size_divisor == 32
        assert by_type(pipeline, 'LoadAnnotations').reduce_zero_label
    assert plain(cfg.val_evaluator) == dict(
        type='IoUMetric', iou_metrics=['mIoU'])

    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == 40000
    assert cfg.train_cfg.val_interval == 4000
    checkpoint = cfg.default_hooks.checkpoint
    assert (checkpoint.interval, checkpoint.by_epoch) == (4000, False)

    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert cfg.optim_wrapper.clip_grad is None
    # no SGD momentum left over from the base schedule
    assert plain(cfg.optim_wrapper.optimizer) == dict(
        type='AdamW', lr=2e-4, weight_decay=1e-4)
    assert plain(cfg.optimizer) == plain(cfg.optim_wrapper.optimizer)
    assert plain(cfg.param_scheduler) == [
        dict(
            type='PolyLR',
            power=0.9,
            eta_min=0.0,
            begin=0,
            end=40000,
            by_epoch=False)
    ]


@pytest.mark.parametrize('arch', list(VARIANTS))
def test_model_builds_and_runs(arch):
    from mmseg.registry import MODELS
    cfg = load(arch)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model).eval()  # no init_weights: no download
    assert isinstance(model.backbone, FasterNet)
    assert model.backbone.init_cfg['checkpoint'].endswith(VARIANTS[arch])
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 64, 96), mode='tensor')
    assert logits.shape == (1, 150, 16, 24)  # FPNHead output: stride 4
