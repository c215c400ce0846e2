# The `make demo` detector: Mask R-CNN with a FasterNet-T0 backbone trained
# from scratch on the toy shapes set (mmfasternet.datasets.make_toy_coco), in
# about 4 minutes on a 2-core CPU. Same model code and recipe as the COCO
# config; only the sizes differ, cut where a profile of one training
# iteration showed the time going (on 2 AVX2 cores: 5.2 s an iteration with
# the COCO widths, 1.1 s with these):
# - 128-channel FPN, RPN and RoI features instead of 256: at 256 channels the
#   neck's and RPN's 3x3 convs cost ~15x the backbone's FLOPs;
# - RoIAlign with 2x2 samples per bin instead of adaptive, 64 sampled RoIs
#   per image and fewer proposals: mmcv's CPU RoIAlign (backward most of
#   all) was a third of the iteration;
# - lighter RoI heads (256-d box FCs, 2x64-channel mask convs);
# - 240x192 images (the toy set's 320x256 scaled by 0.75), batch 4,
#   200 iterations.
#
#   python -m mmfasternet.datasets.toy_data coco data/toy_coco
#   python tools/train.py configs/demo/mask_rcnn_fasternet_t0_fpn_toy.py
_base_ = ['../mask_rcnn_fasternet_t0_fpn_1x_coco.py', './_base_/toy_coco.py']

data_root = _base_.toy_data_root  # the inherited COCO setting's name
num_classes = _base_.toy_num_classes
img_scale = (240, 192)
feat_channels = 128
max_iters = 200

model = dict(
    # From scratch: no ImageNet weights to download.
    backbone=dict(init_cfg=None),
    neck=dict(out_channels=feat_channels),
    rpn_head=dict(in_channels=feat_channels, feat_channels=feat_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=2), out_channels=feat_channels),
        bbox_head=dict(
            in_channels=feat_channels,
            fc_out_channels=256,
            num_classes=num_classes),
        mask_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=2), out_channels=feat_channels),
        mask_head=dict(
            num_convs=2,
            in_channels=feat_channels,
            conv_out_channels=64,
            num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(**_base_.toy_train_set, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=2,
    dataset=dict(**_base_.toy_val_set, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=_base_.toy_val_ann_file, metric=['bbox', 'segm'])
test_evaluator = val_evaluator

# Iteration-based: warm up, then AdamW at 1e-3 with two steps down.
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
optim_wrapper = dict(
    optimizer=dict(lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[int(max_iters * 0.75),
                    int(max_iters * 0.9)],
        gamma=0.1),
]

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
