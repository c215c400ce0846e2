# RTMDet's recipe at the toy sizes, shared by configs/demo/rtmdet_*_toy.py
# and rtmdet-ins_*_toy.py: 256x256 inputs (the toy images are 320x256),
# batch 8, 8 epochs of the 200-image toy set (200 iterations). The schedule
# is RTMDet's, shrunk: linear warm-up, flat, then cosine over the second
# half; EMA; stage 2 (no mosaic/mix-up) for the last 2 epochs. A toy config
# inherits this file beside its COCO config and sets its keys from these
# (the names start with toy_ because two bases may not share a key):
#   train_cfg = _base_.toy_rtmdet_train_cfg
toy_rtmdet_img_scale = (256, 256)
toy_rtmdet_epochs = 8
toy_rtmdet_stage2_epochs = 2
toy_rtmdet_base_lr = 0.004  # RTMDet's (inherited), for the cosine's floor
toy_rtmdet_warmup_iters = 25

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
toy_rtmdet_switch_epoch = toy_rtmdet_epochs - toy_rtmdet_stage2_epochs
toy_rtmdet_default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=toy_rtmdet_epochs, max_keep_ckpts=1))
