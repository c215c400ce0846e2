# RTMDet with a GhostNetV2-1.6 backbone:
# rtmdet_ghostnetv2_100_8xb32-300e_coco.py (the FasterNet-T1 RTMDet config
# with the backbone swapped) with only the width, its weights and the
# neck's input widths changed; FasterNet-T2's config is T1's with another
# backbone, so this is also the T2 config with the backbone swapped.
# Matched against FasterNet-T2 by nearest ImageNet top-1 (the papers' numbers):
# GhostNetV2-1.6 has 77.8% at 0.399 GFLOPs, FasterNet-T2 78.9% at 1.91 G; T2 is
# 1.1 points away, T1 (76.2%) 1.6. Not by FLOPs: every GhostNetV2 width is
# below FasterNet-T0's 0.34 G.
# timm's ImageNet weights, downloaded on first use into the torch hub cache
# (README: Weights).
_base_ = './rtmdet_ghostnetv2_100_8xb32-300e_coco.py'
checkpoint = 'https://huggingface.co/timm/ghostnetv2_160.in1k/resolve/main/model.safetensors'  # noqa

model = dict(
    backbone=dict(arch='1.6', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 180, 256]))
