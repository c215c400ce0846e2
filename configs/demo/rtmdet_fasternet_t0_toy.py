# The `python tools/toy_demo.py --rtmdet` detector: RTMDet with a FasterNet-T0
# backbone trained from scratch on the toy shapes set
# (mmfasternet.datasets.make_toy_coco) on a CPU (14.7 min measured on 2
# shared AVX2 cores: see the README). The model
# code and the recipe are those of the COCO config (AdamW, EMA, CachedMosaic
# and CachedMixUp, then the pipeline switch, dynamic soft-label assigner);
# only the sizes differ: 3 classes, 256x256 inputs instead of 640x640,
# batch 8, 8 epochs of the 200-image toy set (200 iterations), set in
# _base_/toy_coco.py (the data) and _base_/toy_rtmdet.py (the schedule).
#
#   python -m mmfasternet.datasets.toy_data coco data/toy_coco
#   python tools/train.py configs/demo/rtmdet_fasternet_t0_toy.py
_base_ = [
    '../rtmdet_fasternet_t0_8xb32-300e_coco.py', './_base_/toy_coco.py',
    './_base_/toy_rtmdet.py'
]
# The inherited COCO settings' names, for readers of the config.
data_root = _base_.toy_data_root
max_epochs = _base_.toy_rtmdet_epochs
stage2_num_epochs = _base_.toy_rtmdet_stage2_epochs
img_scale = _base_.toy_rtmdet_img_scale

model = dict(
    # From scratch: no ImageNet weights to download.
    backbone=dict(init_cfg=None),
    bbox_head=dict(num_classes=_base_.toy_num_classes),
    test_cfg=dict(nms_pre=1000, max_per_img=100))

# RTMDet-tiny's pipelines at the toy size.
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
test_pipeline = _base_.toy_rtmdet_test_pipeline

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(**_base_.toy_train_set, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=5,
    num_workers=2,
    dataset=dict(**_base_.toy_val_set, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=_base_.toy_val_ann_file)
test_evaluator = val_evaluator

train_cfg = _base_.toy_rtmdet_train_cfg
param_scheduler = _base_.toy_rtmdet_param_scheduler
custom_hooks = [
    _base_.toy_rtmdet_ema_hook,
    dict(
        type='PipelineSwitchHook',
        switch_epoch=_base_.toy_rtmdet_switch_epoch,
        switch_pipeline=train_pipeline_stage2)
]
default_hooks = _base_.toy_rtmdet_default_hooks
