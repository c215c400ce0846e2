# Semantic FPN with a FasterNet-T1 backbone on ADE20K, 40k iterations.
# Same protocol as S (SyncBN, no drop path); only the backbone differs.
_base_ = './fpn_fasternet_s_ade20k_40k.py'
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_t1-epoch.291-val_acc1.76.2180.pth'  # noqa

model = dict(
    backbone=dict(arch='t1', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 128, 256, 512]))
