# The toy shapes set (mmfasternet.datasets.make_toy_coco) as the toy
# detectors of configs/demo/ read it:
#   python -m mmfasternet.datasets.toy_data coco data/toy_coco
# A toy config inherits this file (the RTMDet ones through toy_rtmdet.py)
# beside its COCO config and builds its dataloaders from these settings
# with its own pipelines:
#   train_dataloader = dict(
#       dataset=dict(**_base_.toy_train_set, pipeline=train_pipeline))
# The names start with toy_ because two bases may not share a key (the
# COCO config has its own data settings).
toy_data_root = 'data/toy_coco/'
toy_metainfo = dict(
    classes=('square', 'circle', 'triangle'),
    palette=[(220, 60, 60), (60, 180, 75), (65, 95, 220)])
toy_num_classes = 3
toy_train_set = dict(
    data_root=toy_data_root,
    metainfo=toy_metainfo,
    ann_file='annotations/instances_train.json',
    data_prefix=dict(img='train/'))
toy_val_set = dict(
    data_root=toy_data_root,
    metainfo=toy_metainfo,
    ann_file='annotations/instances_val.json',
    data_prefix=dict(img='val/'))
toy_val_ann_file = toy_data_root + 'annotations/instances_val.json'

# Reproducible toy runs.
randomness = dict(seed=0)
