# Semantic FPN with a FasterNet-M backbone on ADE20K, 40k iterations.
# Same protocol as S (SyncBN, no drop path); only the backbone differs.
_base_ = './fpn_fasternet_s_ade20k_40k.py'
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_m-epoch.291-val_acc1.82.9620.pth'  # noqa

model = dict(
    backbone=dict(arch='m', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[144, 288, 576, 1152]))
