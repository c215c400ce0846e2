# RTMDet-Ins (real-time instance segmentation) with a FasterNet-T0 backbone,
# RTMDet-Ins's 300-epoch COCO recipe: the one-stage counterpart of
# mask_rcnn_fasternet_t0_fpn_1x_coco.py.
#
# Base: RTMDet-Ins-tiny (96-channel neck and head), for the reason given in
# rtmdet_fasternet_t0_8xb32-300e_coco.py. What differs from stock
# RTMDet-Ins-tiny: the FasterNet-T0 backbone, swapped the same way, and the
# RGB ImageNet preprocessor its weights expect. The rest (mask head, losses,
# pipelines with masks, schedule, EMA, pipeline switch) is inherited.
_base_ = 'mmdet::rtmdet/rtmdet-ins_tiny_8xb32-300e_coco.py'
custom_imports = dict(imports=['mmfasternet'], allow_failed_imports=False)
# FasterNet-T0's ImageNet weights from the official release,
# downloaded on first use into the torch hub cache (README: Weights).
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_t0-epoch.281-val_acc1.71.9180.pth'  # noqa

model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        arch='t0',
        out_indices=(1, 2, 3),
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[80, 160, 320]))
