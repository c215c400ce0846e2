# Semantic FPN with a GhostNetV2-1.3 backbone on ADE20K, 40k iterations:
# fpn_ghostnetv2_100_ade20k_40k.py (the FasterNet-T1 config with the
# backbone swapped) with only the width, its weights and the neck's input
# widths changed.
# Matched against FasterNet-T1 by nearest ImageNet top-1 (the papers' numbers):
# GhostNetV2-1.3 has 76.9% at 0.269 GFLOPs, FasterNet-T1 76.2% at 0.85 G; T1 is
# 0.7 points away, T2 (78.9%) 2.0. Not by FLOPs: every GhostNetV2 width is
# below FasterNet-T0's 0.34 G.
# timm's ImageNet weights, downloaded on first use into the torch hub cache
# (README: Weights).
_base_ = './fpn_ghostnetv2_100_ade20k_40k.py'
checkpoint = 'https://huggingface.co/timm/ghostnetv2_130.in1k/resolve/main/model.safetensors'  # noqa

model = dict(
    backbone=dict(arch='1.3', init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[32, 52, 144, 208]))
