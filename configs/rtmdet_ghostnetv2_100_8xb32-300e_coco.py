# RTMDet with a GhostNetV2-1.0 backbone: the FasterNet-T1 RTMDet config
# (RTMDet-s's neck, head and 300-epoch recipe, RGB ImageNet preprocessor)
# with only the backbone (and the neck's input widths) swapped.
# Matched against FasterNet-T1 by nearest ImageNet top-1 (the papers' numbers):
# GhostNetV2-1.0 has 75.3% at 0.167 GFLOPs, FasterNet-T1 76.2% at 0.85 G; T0
# (71.9%) is 3.4 points away, T1 0.9. Not by FLOPs: every GhostNetV2 width is
# below FasterNet-T0's 0.34 G.
# timm's ImageNet weights: model.safetensors (or pytorch_model.bin) of the
# hub repository timm/ghostnetv2_100.in1k, downloaded on first use into the
# torch hub cache (README: Weights).
_base_ = './rtmdet_fasternet_t1_8xb32-300e_coco.py'
checkpoint = 'https://huggingface.co/timm/ghostnetv2_100.in1k/resolve/main/model.safetensors'  # noqa

model = dict(
    backbone=dict(
        _delete_=True,
        type='GhostNetV2',
        arch='1.0',
        # Strides 8, 16 and 32, as CSPNeXt's outputs.
        out_indices=(1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[40, 112, 160]))
