# Mask R-CNN with a FasterNet-L backbone, 1x schedule on COCO.
# Paper: 110.9M params, 484G FLOPs at 1280x800, 44.0 box AP / 39.9 mask AP.
# Recipe of M (lr 1e-4), with the L backbone.
_base_ = './mask_rcnn_fasternet_m_fpn_1x_coco.py'
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_l-epoch.299-val_acc1.83.5060.pth'  # noqa

model = dict(
    backbone=dict(
        arch='l', drop_path_rate=0.3, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[192, 384, 768, 1536]))
