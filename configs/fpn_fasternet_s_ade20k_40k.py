# Semantic FPN with a FasterNet-S backbone on ADE20K, 40k iterations: the
# protocol under which PVT, PoolFormer, EfficientFormer and RepViT report
# Semantic FPN (PoolFormer's official configs): 512x512 crops, batch 4 per GPU
# x 8 GPUs = 32, AdamW lr 2e-4 / wd 1e-4, poly decay to 0.
# The T0/T1/T2/M/L configs inherit from this file and change only what differs.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    # 40k iterations, validation and checkpoint every 4k.
    'mmseg::_base_/schedules/schedule_40k.py',
]
custom_imports = dict(imports=['mmfasternet'], allow_failed_imports=False)
# FasterNet-S's ImageNet weights from the official release, downloaded on
# first use into the torch hub cache (README: Weights). A child config sets
# its own `checkpoint` and passes it to the backbone's init_cfg.
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_s-epoch.299-val_acc1.81.2840.pth'  # noqa

crop_size = (512, 512)
model = dict(
    # fpn_r50.py sets a ResNet checkpoint here, which mmseg would push into
    # any backbone's init_cfg; FasterNet loads its own weights below.
    pretrained=None,
    # Pad training crops to 512x512 (images smaller than the crop).
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        arch='s',
        out_indices=(0, 1, 2, 3),
        # No stochastic depth: PoolFormer's protocol trains every backbone
        # without it (the detection configs' 0.15 is the paper's COCO
        # recipe, not this protocol's).
        drop_path_rate=0.0,
        # SyncBN, as fpn_r50.py's backbone: 4 crops per GPU are too few for
        # per-GPU BN statistics. A single process (mmengine) and CPU DDP
        # (mmfasternet.engine) run it as plain BN.
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    # Stage i outputs embed_dims * 2**i channels (embed_dims 128 for S).
    neck=dict(in_channels=[128, 256, 512, 1024], out_channels=256, num_outs=4),
    decode_head=dict(num_classes=150))

# Train pipeline from ade20k.py as is: LoadAnnotations(reduce_zero_label),
# RandomResize((2048, 512), ratio 0.5-2.0), RandomCrop(512, cat_max_ratio
# 0.75), RandomFlip(0.5), PhotoMetricDistortion. The test pipeline adds
# ResizeToMultiple (sides made divisible by 32), as PoolFormer's configs do.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    # ground truth is loaded after resizing: metrics use the original size
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# AdamW on every parameter, fp32; schedule_40k.py's optim wrapper (no
# gradient clipping) is kept, only its SGD optimizer is replaced.
optimizer = dict(_delete_=True, type='AdamW', lr=2e-4, weight_decay=1e-4)
optim_wrapper = dict(optimizer=optimizer)
# Poly (power 0.9) over the 40k iterations as schedule_40k.py, but decaying
# to 0 as PoolFormer's configs (the base stops at eta_min 1e-4); a list
# replaces the base's whole, so the scheduler is restated.
param_scheduler = [
    dict(
        type='PolyLR',
        power=0.9,
        eta_min=0.0,
        begin=0,
        end=40000,
        by_epoch=False)
]
