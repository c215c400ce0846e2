# RTMDet with a FasterNet-T0 backbone, RTMDet's 300-epoch COCO recipe.
#
# Base: RTMDet-tiny (96-channel CSPNeXtPAFPN neck and head). T0's strides
# 8/16/32 have 80/160/320 channels, nearest to tiny's 96/192/384 of RTMDet's
# sizes, and T0 matches CSPNeXt-tiny in size: 2.22M params and 2.75 GFLOPs
# at 640x640 against 2.35M and 2.76 G (tools/get_flops.py).
#
# What differs from stock RTMDet-tiny, and why:
# * the backbone, swapped as mmdet's RTMDet-Swin/ConvNeXt configs do
#   (`_delete_=True`, out_indices (1, 2, 3), the neck's in_channels set to
#   the stage widths, ImageNet weights through init_cfg) with T0's drop path
#   (0, as in the Mask R-CNN configs);
# * the data preprocessor: FasterNet's ImageNet weights expect RGB input
#   normalised with ImageNet mean/std, not CSPNeXt's BGR statistics.
# Everything else is inherited: 300 epochs, AdamW lr 0.004 with weight decay
# 0.05 (none on norms and biases), EMA, the pipeline switch at epoch 280,
# CachedMosaic/CachedMixUp, the dynamic soft-label assigner, and SyncBN:
# RTMDet's `use_syncbn=True` converts every BN, the backbone's included, to
# SyncBN in multi-GPU runs (on CPUs it runs as BN, mmfasternet.engine).
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'
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
        # Strides 8, 16 and 32, as CSPNeXt's outputs.
        out_indices=(1, 2, 3),
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[80, 160, 320]))
