# RTMDet with a FasterNet-T2 backbone, RTMDet's 300-epoch COCO recipe.
#
# Base: RTMDet-s (128-channel neck and head), like T1. T2's strides 8/16/32
# have 192/384/768 channels, CSPNeXt-m's widths, but RTMDet-m's neck and
# head (192 channels, two CSP blocks per stage) count 23.5 GFLOPs at
# 640x640 against 13.6 G for RTMDet-s's on T2's widths (tools/get_flops.py).
# With them T2 stays real-time (29.2 G in all, between RTMDet-s's 14.8 G and
# RTMDet-m's 39.2 G), and T1 and T2 share one reference, RTMDet-s.
#
# What differs from stock RTMDet-s, and why: the backbone (swapped as in
# rtmdet_fasternet_t0_8xb32-300e_coco.py, with T2's drop path 0.05) and the
# RGB ImageNet preprocessor its weights expect. The rest is RTMDet-s's
# recipe, inherited.
_base_ = './rtmdet_fasternet_t1_8xb32-300e_coco.py'
# FasterNet-T2's ImageNet weights from the official release,
# downloaded on first use into the torch hub cache (README: Weights).
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_t2-epoch.289-val_acc1.78.8860.pth'  # noqa

model = dict(
    backbone=dict(
        arch='t2', drop_path_rate=0.05, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[192, 384, 768]))
