# Semantic FPN with a FasterNet-T0 backbone on ADE20K, 40k iterations.
# Same protocol as S (SyncBN, no drop path); only the backbone differs.
_base_ = './fpn_fasternet_s_ade20k_40k.py'
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_t0-epoch.281-val_acc1.71.9180.pth'  # noqa

model = dict(
    backbone=dict(arch='t0', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[40, 80, 160, 320]))
