# Semantic FPN with a FasterNet-T2 backbone on ADE20K, 40k iterations.
# Same protocol as S (SyncBN, no drop path); only the backbone differs.
_base_ = './fpn_fasternet_s_ade20k_40k.py'
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_t2-epoch.289-val_acc1.78.8860.pth'  # noqa

model = dict(
    backbone=dict(arch='t2', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[96, 192, 384, 768]))
