# Mask R-CNN with a FasterNet-M backbone, 1x schedule on COCO.
# Paper: 71.2M params, 344G FLOPs at 1280x800, 43.0 box AP / 39.1 mask AP.
_base_ = './mask_rcnn_fasternet_s_fpn_1x_coco.py'
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_m-epoch.291-val_acc1.82.9620.pth'  # noqa

model = dict(
    backbone=dict(
        arch='m', drop_path_rate=0.2, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[144, 288, 576, 1152]))

# M and L halve the learning rate (official configs: 1e-4).
optim_wrapper = dict(optimizer=dict(lr=1e-4))
