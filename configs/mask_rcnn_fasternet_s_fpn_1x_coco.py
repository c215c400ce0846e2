# Mask R-CNN with a FasterNet-S backbone, 1x schedule on COCO: the recipe of
# the FasterNet paper (Appendix B) and of its official mmdet-2.25 configs.
# Paper: 49.0M params, 258G FLOPs at 1280x800, 39.9 box AP / 36.9 mask AP.
# The T0/T1/T2/M/L configs inherit from this file and change only what differs.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmfasternet'], allow_failed_imports=False)
# FasterNet-S's ImageNet weights from the official release, downloaded on
# first use into the torch hub cache (README: Weights). A child config sets
# its own `checkpoint` and passes it to the backbone's init_cfg.
checkpoint = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/fasternet_s-epoch.299-val_acc1.81.2840.pth'  # noqa

model = dict(
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        arch='s',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.15,
        # Every stage trains and BN stays in train mode. The official configs
        # merged this backbone into ResNet's dict without `_delete_`, so
        # ResNet's frozen_stages=1 and norm_eval=True were swallowed by the
        # official backbone's **kwargs and never applied: the paper's
        # numbers come from a fully trainable backbone with BN updating.
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    # Stage i outputs embed_dim * 2**i channels (embed_dim 128 for S).
    neck=dict(in_channels=[128, 256, 512, 1024]))

# 2 images per GPU x 8 GPUs = 16 (the batch of 2, the resize to (1333, 800)
# keeping the ratio and flip 0.5 come from coco_instance.py);
# schedule_1x.py gives the 12 epochs (500-iteration linear warm-up, x0.1 at
# epochs 8 and 11) and auto_scale_lr's base batch of 16: of the schedule,
# only the optimizer differs.

# AdamW on every parameter (no paramwise rules), no gradient clipping (as
# schedule_1x.py): the paper's recipe, where schedule_1x.py has SGD lr 0.02.
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, weight_decay=1e-4))
