# RTMDet with a FasterNet-T1 backbone, RTMDet's 300-epoch COCO recipe.
#
# Base: RTMDet-s (128-channel CSPNeXtPAFPN neck and head). T1's strides
# 8/16/32 have 128/256/512 channels, exactly CSPNeXt-s's, and T1 is the
# FasterNet nearest to CSPNeXt-s in size: 5.66M params and 6.96 GFLOPs at
# 640x640 against 4.38M and 5.42 G (tools/get_flops.py).
#
# What differs from stock RTMDet-s, and why: the backbone (swapped as in
# rtmdet_fasternet_t0_8xb32-300e_coco.py, with T1's drop path 0.02) and the
# RGB ImageNet preprocessor its weights expect. The rest is RTMDet-s's
# recipe, inherited.
_base_ = 'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'
custom_imports = dict(imports=['mmfasternet'], allow_failed_imports=False)
# FasterNet-T1's ImageNet weights from the official release,
# downloaded on first use into the torch hub cache (README: Weights).
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_t1-epoch.291-val_acc1.76.2180.pth'  # noqa

model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        arch='t1',
        out_indices=(1, 2, 3),
        drop_path_rate=0.02,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[128, 256, 512]))
