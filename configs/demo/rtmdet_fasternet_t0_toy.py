# The `python tools/demo.py --rtmdet` detector: RTMDet with a FasterNet-T0
# backbone trained from scratch on the toy shapes set
# (mmfasternet.datasets.make_toy_coco) on a CPU (14.7 min measured on 2
# shared AVX2 cores: see the README). The model
# code and the recipe are those of the COCO config (AdamW, EMA, CachedMosaic
# and CachedMixUp, then the pipeline switch, dynamic soft-label assigner);
# only the sizes differ: 3 classes, 256x256 inputs instead of 640x640,
# batch 8, 8 epochs of the 200-image toy set (200 iterations).
#
#   python -m mmfasternet.datasets.toy_data coco data/toy_coco
#   python tools/train.py configs/demo/rtmdet_fasternet_t0_toy.py
_base_ = '../rtmdet_fasternet_t0_8xb32-300e_coco.py'

data_root = 'data/toy_coco/'
metainfo = dict(
    classes=('square', 'circle', 'triangle'),
    palette=[(220, 60, 60), (60, 180, 75), (65, 95, 220)])
num_classes = 3
img_scale = (256, 256)
max_epochs = 8
stage2_num_epochs = 2
base_lr = 0.004  # RTMDet's (inherited), for the cosine's floor
warmup_iters = 25

model = dict(
    # From scratch: no ImageNet weights to download.
    backbone=dict(init_cfg=None),
    bbox_head=dict(num_classes=num_classes),
    test_cfg=dict(nms_pre=1000, max_per_img=100))

# RTMDet-tiny's pipelines at 256x256 (the toy images are 320x256).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='CachedMosaic',
        img_scale=img_scale,
        pad_val=114.0,
        max_cached_images=20,
        random_pop=False),
    dict(
        type='RandomResize',
        scale=(img_scale[0] * 2, img_scale[1] * 2),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=img_scale),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(
        type='CachedMixUp',
        img_scale=img_scale,
        ratio_range=(1.0, 1.0),
        max_cached_images=10,
        random_pop=False,
        pad_val=(114, 114, 114),
        prob=0.5),
    dict(type='PackDetInputs')
]
train_pipeline_stage2 = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomResize',
        scale=img_scale,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=img_scale),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114, 114, 114))),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=5,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# RTMDet's schedule, shrunk: linear warm-up, flat, then cosine over the
# second half; stage 2 (no mosaic/mix-up) for the last epochs.
train_cfg = dict(
    max_epochs=max_epochs, val_interval=max_epochs, dynamic_intervals=None)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.0e-5,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        eta_min=base_lr * 0.05,
        begin=max_epochs // 2,
        end=max_epochs,
        T_max=max_epochs // 2,
        by_epoch=True,
        convert_to_iter_based=True),
]
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49),
    dict(
        type='PipelineSwitchHook',
        switch_epoch=max_epochs - stage2_num_epochs,
        switch_pipeline=train_pipeline_stage2)
]

default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))

# Reproducible toy runs.
randomness = dict(seed=0)
