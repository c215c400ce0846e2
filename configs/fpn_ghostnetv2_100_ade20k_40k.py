# Semantic FPN with a GhostNetV2-1.0 backbone on ADE20K, 40k iterations: the
# FasterNet-T1 config with only the backbone (and the neck's input widths)
# swapped, so the two compare at the same protocol.
# Matched against FasterNet-T1 by nearest ImageNet top-1 (the papers' numbers):
# GhostNetV2-1.0 has 75.3% at 0.167 GFLOPs, FasterNet-T1 76.2% at 0.85 G; T0
# (71.9%) is 3.4 points away, T1 0.9. Not by FLOPs: every GhostNetV2 width is
# below FasterNet-T0's 0.34 G.
# timm's ImageNet weights: model.safetensors (or pytorch_model.bin) of the
# hub repository timm/ghostnetv2_100.in1k, downloaded on first use into the
# torch hub cache (README: Weights).
_base_ = './fpn_fasternet_t1_ade20k_40k.py'
checkpoint = 'https://huggingface.co/timm/ghostnetv2_100.in1k/resolve/main/model.safetensors'  # noqa

model = dict(
    backbone=dict(
        _delete_=True,
        type='GhostNetV2',
        arch='1.0',
        out_indices=(0, 1, 2, 3),
        # SyncBN in every BN, timm's too, as the FasterNet base's backbone.
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[24, 40, 112, 160]))
