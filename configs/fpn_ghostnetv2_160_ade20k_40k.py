# Semantic FPN with a GhostNetV2-1.6 backbone on ADE20K, 40k iterations: the
# FasterNet-T2 config with only the backbone (and the neck's input widths)
# swapped, so the two compare at the same protocol.
# Matched against FasterNet-T2 by nearest ImageNet top-1 (the papers' numbers):
# GhostNetV2-1.6 has 77.8% at 0.399 GFLOPs, FasterNet-T2 78.9% at 1.91 G; T2 is
# 1.1 points away, T1 (76.2%) 1.6. Not by FLOPs: every GhostNetV2 width is
# below FasterNet-T0's 0.34 G.
# timm's ImageNet weights: model.safetensors (or pytorch_model.bin) of the
# hub repository timm/ghostnetv2_160.in1k, downloaded on first use into the
# torch hub cache (README: Weights).
_base_ = './fpn_fasternet_t2_ade20k_40k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='GhostNetV2',
        arch='1.6',
        out_indices=(0, 1, 2, 3),
        # SyncBN in every BN, timm's too, as the FasterNet base's backbone.
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://huggingface.co/timm/ghostnetv2_160.in1k/'
            'resolve/main/model.safetensors')),
    neck=dict(in_channels=[40, 64, 180, 256]))
