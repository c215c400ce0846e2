# RTMDet with a GhostNetV2-1.6 backbone: the FasterNet-T2 RTMDet config
# (RTMDet-s's neck, head and 300-epoch recipe, RGB ImageNet preprocessor)
# with only the backbone (and the neck's input widths) swapped.
# Matched against FasterNet-T2 by nearest ImageNet top-1 (the papers' numbers):
# GhostNetV2-1.6 has 77.8% at 0.399 GFLOPs, FasterNet-T2 78.9% at 1.91 G; T2 is
# 1.1 points away, T1 (76.2%) 1.6. Not by FLOPs: every GhostNetV2 width is
# below FasterNet-T0's 0.34 G.
# timm's ImageNet weights: model.safetensors (or pytorch_model.bin) of the
# hub repository timm/ghostnetv2_160.in1k, downloaded on first use into the
# torch hub cache (README: Weights).
_base_ = './rtmdet_fasternet_t2_8xb32-300e_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='GhostNetV2',
        arch='1.6',
        # Strides 8, 16 and 32, as CSPNeXt's outputs.
        out_indices=(1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://huggingface.co/timm/ghostnetv2_160.in1k/'
            'resolve/main/model.safetensors')),
    neck=dict(in_channels=[64, 180, 256]))
