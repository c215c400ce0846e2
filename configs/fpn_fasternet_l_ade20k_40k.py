# Semantic FPN with a FasterNet-L backbone on ADE20K, 40k iterations.
# Same protocol as S (SyncBN, no drop path); only the backbone differs.
_base_ = './fpn_fasternet_s_ade20k_40k.py'
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_l-epoch.299-val_acc1.83.5060.pth'  # noqa

model = dict(
    backbone=dict(arch='l', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[192, 384, 768, 1536]))
