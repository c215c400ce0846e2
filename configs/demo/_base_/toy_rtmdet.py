# RTMDet's recipe at the toy sizes, shared by configs/demo/rtmdet_*_toy.py
# and rtmdet-ins_*_toy.py: 256x256 inputs (the toy images are 320x256),
# batch 8, 8 epochs of the 200-image toy set (200 iterations). The schedule
# is RTMDet's, shrunk: linear warm-up, flat, then cosine over the second
# half; EMA; stage 2 (no mosaic/mix-up) for the last 2 epochs. A toy config
# inherits this file (and with it toy_coco.py, the data) beside its COCO
# config and sets its keys from these (the names start with toy_ because
# two bases may not share a key):
#   train_cfg = _base_.toy_rtmdet_train_cfg
_base_ = './toy_coco.py'
toy_rtmdet_img_scale = (256, 256)
toy_rtmdet_epochs = 8
toy_rtmdet_stage2_epochs = 2
toy_rtmdet_base_lr = 0.004  # RTMDet's (inherited), for the cosine's floor
toy_rtmdet_warmup_iters = 25

# The transforms of RTMDet-tiny's train pipelines at the toy size that boxes
# and masks share; a toy config puts them between its own loading,
# cropping and packing. Stage 1 starts with mosaic and the resize around
# twice the input size, and ends with mix-up; stage 2 resizes around the
# input size; both colour-jitter, flip and pad after cropping.
toy_rtmdet_mosaic = [
    dict(
        type='CachedMosaic',
        img_scale=toy_rtmdet_img_scale,
        pad_val=114.0,
        max_cached_images=20,
        random_pop=False),
    dict(
        type='RandomResize',
        scale=(toy_rtmdet_img_scale[0] * 2, toy_rtmdet_img_scale[1] * 2),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
]
toy_rtmdet_mixup = dict(
    type='CachedMixUp',
    img_scale=toy_rtmdet_img_scale,
    ratio_range=(1.0, 1.0),
    max_cached_images=10,
    random_pop=False,
    pad_val=(114, 114, 114),
    prob=0.5)
toy_rtmdet_stage2_resize = dict(
    type='RandomResize',
    scale=toy_rtmdet_img_scale,
    ratio_range=(0.5, 2.0),
    keep_ratio=True)
toy_rtmdet_jitter_flip_pad = [
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='Pad',
        size=toy_rtmdet_img_scale,
        pad_val=dict(img=(114, 114, 114))),
]

toy_rtmdet_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=toy_rtmdet_img_scale, keep_ratio=True),
    dict(
        type='Pad',
        size=toy_rtmdet_img_scale,
        pad_val=dict(img=(114, 114, 114))),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
toy_rtmdet_train_loader = dict(batch_size=8, num_workers=2)
toy_rtmdet_val_dataloader = dict(
    batch_size=5,
    num_workers=2,
    dataset=dict(**_base_.toy_val_set, pipeline=toy_rtmdet_test_pipeline))
toy_rtmdet_val_evaluator = dict(ann_file=_base_.toy_val_ann_file)

toy_rtmdet_train_cfg = dict(
    max_epochs=toy_rtmdet_epochs,
    val_interval=toy_rtmdet_epochs,
    dynamic_intervals=None)
toy_rtmdet_param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.0e-5,
        by_epoch=False,
        begin=0,
        end=toy_rtmdet_warmup_iters),
    dict(
        type='CosineAnnealingLR',
        eta_min=toy_rtmdet_base_lr * 0.05,
        begin=toy_rtmdet_epochs // 2,
        end=toy_rtmdet_epochs,
        T_max=toy_rtmdet_epochs // 2,
        by_epoch=True,
        convert_to_iter_based=True),
]
toy_rtmdet_ema_hook = dict(
    type='EMAHook',
    ema_type='ExpMomentumEMA',
    momentum=0.0002,
    update_buffers=True,
    priority=49)
toy_rtmdet_switch_hook = dict(
    type='PipelineSwitchHook',
    switch_epoch=toy_rtmdet_epochs - toy_rtmdet_stage2_epochs)
toy_rtmdet_default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=toy_rtmdet_epochs, max_keep_ckpts=1))
