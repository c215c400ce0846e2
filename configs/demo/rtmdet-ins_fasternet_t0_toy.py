# RTMDet-Ins with a FasterNet-T0 backbone on the toy shapes set, trained from
# scratch on a CPU: the instance-segmentation counterpart of
# rtmdet_fasternet_t0_toy.py, with the same data, sizes and schedule
# (_base_/) and RTMDet-Ins-tiny's pipelines (masks loaded as polygons,
# FilterAnnotations) at 256x256.
#
#   python -m mmfasternet.datasets.toy_data coco data/toy_coco
#   python tools/train.py configs/demo/rtmdet-ins_fasternet_t0_toy.py
_base_ = [
    '../rtmdet-ins_fasternet_t0_8xb32-300e_coco.py', './_base_/toy_rtmdet.py'
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
    test_cfg=dict(nms_pre=1000, max_per_img=50))

# RTMDet-Ins-tiny's pipelines at the toy size: masks loaded as polygons,
# crops that recompute the boxes and may be empty, FilterAnnotations.
load_annotations = dict(
    type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False)
random_crop = dict(
    type='RandomCrop',
    crop_size=img_scale,
    recompute_bbox=True,
    allow_negative_crop=True)
filter_annotations = dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    load_annotations,
    *_base_.toy_rtmdet_mosaic,
    random_crop,
    *_base_.toy_rtmdet_jitter_flip_pad,
    _base_.toy_rtmdet_mixup,
    filter_annotations,
    dict(type='PackDetInputs')
]  # yapf: disable
train_dataloader = dict(
    **_base_.toy_rtmdet_train_loader,
    dataset=dict(**_base_.toy_train_set, pipeline=train_pipeline))
train_pipeline_stage2 = [
    dict(type='LoadImageFromFile'),
    load_annotations,
    _base_.toy_rtmdet_stage2_resize,
    random_crop,
    filter_annotations,
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
