# A Semantic FPN toy run: FasterNet-T0 trained from scratch on the toy shapes
# set (mmfasternet.datasets.make_toy_ade), minutes on a CPU. Same model code
# and protocol as the ADE20K config; only the sizes differ: 4 classes,
# 256x192 images, 128x128 crops, batch 4, 400 iterations, lr 1e-3 (no
# ImageNet weights), BN instead of SyncBN in the head (CPU runs), and a
# 128-channel FPN with a 64-channel head instead of 256/128 (the 256-channel
# neck's 3x3 convs were most of an iteration: 0.62 s against 0.28 s now on
# 2 AVX2 cores).
#
#   python -m mmfasternet.datasets.toy_data ade data/toy_ade
#   python tools/train.py configs/demo/fpn_fasternet_t0_ade20k_toy.py
_base_ = '../fpn_fasternet_t0_ade20k_40k.py'

data_root = 'data/toy_ade/'
metainfo = dict(
    classes=('background', 'square', 'circle', 'triangle'),
    palette=[(40, 40, 40), (220, 60, 60), (60, 180, 75), (65, 95, 220)])
img_scale = (256, 192)
crop_size = (128, 128)
max_iters = 400
# ADE20KDataset accepts only its own 150 class names; the generic dataset
# reads the same layout with our classes.
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True)
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    # From scratch: no ImageNet weights to download.
    backbone=dict(init_cfg=None),
    neck=dict(out_channels=128),
    decode_head=dict(
        in_channels=[128] * 4, channels=64, num_classes=4, norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=img_scale,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(**dataset, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=2, dataset=dict(**dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader

optimizer = dict(lr=1e-3)
optim_wrapper = dict(optimizer=optimizer)
# The ADE20K config's poly decay to 0, over the toy's iterations.
param_scheduler = [dict(_base_.param_scheduler[0], end=max_iters)]
train_cfg = dict(max_iters=max_iters, val_interval=200)
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=200, max_keep_ckpts=1))
randomness = dict(seed=0)
