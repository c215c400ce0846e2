# The `python tools/toy_demo.py --rtmdet` detector: RTMDet with a FasterNet-T0
# backbone trained from scratch on the toy shapes set
# (mmfasternet.datasets.make_toy_coco) on a CPU (14.7 min measured on 2
# shared AVX2 cores: see the README). The model
# code and the recipe are those of the COCO config (AdamW, EMA, CachedMosaic
# and CachedMixUp, then the pipeline switch, dynamic soft-label assigner);
# only the sizes differ: 3 classes, 256x256 inputs instead of 640x640,
# batch 8, 8 epochs of the 200-image toy set (200 iterations), set in
# _base_/toy_rtmdet.py (the schedule) and the _base_/toy_coco.py it inherits
# (the data).
#
#   python -m mmfasternet.datasets.toy_data coco data/toy_coco
#   python tools/train.py configs/demo/rtmdet_fasternet_t0_toy.py
_base_ = [
    '../rtmdet_fasternet_t0_8xb32-300e_coco.py', './_base_/toy_rtmdet.py'
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

# RTMDet-tiny's pipelines at the toy size: boxes only.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    *_base_.toy_rtmdet_mosaic,
    dict(type='RandomCrop', crop_size=img_scale),
    *_base_.toy_rtmdet_jitter_flip_pad,
    _base_.toy_rtmdet_mixup,
    dict(type='PackDetInputs')
]  # yapf: disable
train_dataloader = dict(
    **_base_.toy_rtmdet_train_loader,
    dataset=dict(**_base_.toy_train_set, pipeline=train_pipeline))
train_pipeline_stage2 = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    _base_.toy_rtmdet_stage2_resize,
    dict(type='RandomCrop', crop_size=img_scale),
    *_base_.toy_rtmdet_jitter_flip_pad,
    dict(type='PackDetInputs')
]  # yapf: disable
custom_hooks = [
    _base_.toy_rtmdet_ema_hook,
    dict(_base_.toy_rtmdet_switch_hook, switch_pipeline=train_pipeline_stage2)
]
test_pipeline = _base_.toy_rtmdet_test_pipeline
val_dataloader = test_dataloader = _base_.toy_rtmdet_val_dataloader
val_evaluator = test_evaluator = _base_.toy_rtmdet_val_evaluator

train_cfg = _base_.toy_rtmdet_train_cfg
param_scheduler = _base_.toy_rtmdet_param_scheduler
default_hooks = _base_.toy_rtmdet_default_hooks
