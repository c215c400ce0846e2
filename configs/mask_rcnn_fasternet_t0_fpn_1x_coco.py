# Mask R-CNN with a FasterNet-T0 backbone, 1x schedule on COCO.
# Same recipe as S (lr 2e-4); not in the paper's COCO table.
_base_ = './mask_rcnn_fasternet_s_fpn_1x_coco.py'
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_t0-epoch.281-val_acc1.71.9180.pth'  # noqa

model = dict(
    backbone=dict(
        arch='t0', drop_path_rate=0.0, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[40, 80, 160, 320]))
