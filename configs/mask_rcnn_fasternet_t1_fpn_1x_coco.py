# Mask R-CNN with a FasterNet-T1 backbone, 1x schedule on COCO.
# Same recipe as S (lr 2e-4); not in the paper's COCO table.
_base_ = './mask_rcnn_fasternet_s_fpn_1x_coco.py'
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_t1-epoch.291-val_acc1.76.2180.pth'  # noqa

model = dict(
    backbone=dict(
        arch='t1', drop_path_rate=0.02, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 128, 256, 512]))
