"""Whole detectors on mmcv's compiled ops and on torchvision's kernels.

A toy Mask R-CNN (NMS and RoIAlign, forward and backward) and a toy RTMDet
(NMS) are trained for a few iterations; then one training step (losses and
every gradient) and the evaluation (every detection, and the COCO mAP) are
run once with mmcv's compiled extension and once with the stand-in of
``mmfasternet.mmcv_ops``, swapped in where mmcv's op modules hold it. Needs
mmcv with compiled ops (``make test-stacks`` runs it in such a venv);
skipped elsewhere.
"""
import importlib

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmfasternet  # noqa: F401
from mmfasternet import mmcv_ops
from toy_configs import REPO, toy_coco_data

DEMO = REPO / 'configs' / 'demo'
SCALE = (128, 96)  # the toy_coco_root fixture's images
# config and training iterations (enough for a COCO mAP above zero)
DETECTORS = {
    'mask_rcnn': (DEMO / 'mask_rcnn_fasternet_t0_fpn_toy.py', 8),
    'rtmdet': (DEMO / 'rtmdet_fasternet_t0_toy.py', 32),
}


@pytest.fixture(scope='module')
def exts():
    """``{'compiled': mmcv._ext, 'torchvision': the stand-in}``, or skip."""
    if mmcv_ops.mmcv_ops_backend() != 'compiled':
        pytest.skip('mmcv has no compiled ops here (mmcv-lite): comparing '
                    'both needs MMCV_OPS=compiled (make test-stacks)')
    return dict(
        compiled=importlib.import_module('mmcv._ext'),
        torchvision=mmcv_ops._build_ext())


def use_ops(monkeypatch, ext):
    """Point mmcv's NMS and RoIAlign modules at ``ext``."""
    for name in ('mmcv.ops.nms', 'mmcv.ops.roi_align'):
        monkeypatch.setattr(importlib.import_module(name), 'ext_module', ext)


@pytest.fixture(scope='module', params=sorted(DETECTORS))
def trained(request, toy_coco_info, tmp_path_factory):
    """A runner whose detector has trained a few toy iterations on
    the compiled ops, evaluated on its own training images (the toy set is
    too small for a held-out mAP above zero after a few iterations)."""
    config, iters = DETECTORS[request.param]
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(toy_coco_data(toy_coco_info, SCALE, batch_size=4))
    train_set = cfg.train_dataloader.dataset
    if request.param == 'rtmdet':  # boxes only: some RTMDet heads use masks
        for transform in train_set.pipeline:
            if transform['type'] == 'LoadAnnotations':
                transform['with_mask'] = False
    train_ann = train_set.data_root + train_set.ann_file
    for split in ('val', 'test'):
        cfg[f'{split}_dataloader'].dataset.ann_file = train_set.ann_file
        cfg[f'{split}_dataloader'].dataset.data_prefix = train_set.data_prefix
        cfg[f'{split}_evaluator'].ann_file = train_ann
        if request.param == 'rtmdet':  # no masks predicted
            cfg[f'{split}_evaluator'].metric = 'bbox'
    # every detection counts: a few iterations leave the scores low
    test_cfg = dict(rcnn=dict(score_thr=0.0)) if 'rcnn' in \
        cfg.model.test_cfg else dict(score_thr=0.0)
    cfg.merge_from_dict(
        dict(
            model=dict(test_cfg=test_cfg),
            work_dir=str(tmp_path_factory.mktemp(request.param)),
            train_cfg=dict(
                _delete_=True,
                type='IterBasedTrainLoop',
                max_iters=iters,
                val_interval=iters + 1),
            # constant learning rate: no warm-up within a few iterations
            param_scheduler=[],
            custom_hooks=[],
            default_hooks=dict(checkpoint=dict(interval=iters + 1)),
            randomness=dict(seed=0)))
    runner = Runner.from_cfg(cfg)
    runner.train()
    return request.param, runner


def test_training_step_matches(exts, trained, monkeypatch):
    name, runner = trained
    model = runner.model
    batch = next(iter(runner.train_dataloader))
    results = {}
    for backend, ext in exts.items():
        use_ops(monkeypatch, ext)
        torch.manual_seed(0)  # the same RoI samples both ways
        model.zero_grad()
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
        total, _ = model.parse_losses(losses)
        total.backward()
        grads = {
            k: p.grad.clone()
            for k, p in model.named_parameters() if p.grad is not None
        }
        results[backend] = (total.detach(), grads)
    (loss, grads), (ref_loss, ref_grads) = (results['torchvision'],
                                            results['compiled'])
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == ref_grads.keys()
    if name == 'mask_rcnn':  # RoIAlign's backward reaches the neck
        assert grads['neck.fpn_convs.0.conv.weight'].abs().sum() > 0
    for key in grads:
        torch.testing.assert_close(
            grads[key], ref_grads[key], rtol=1e-4, atol=1e-6, msg=key)


def test_evaluation_matches(exts, trained, monkeypatch):
    name, runner = trained
    model = runner.model
    predictions, metrics = {}, {}
    for backend, ext in exts.items():
        use_ops(monkeypatch, ext)
        model.eval()
        with torch.no_grad():
            predictions[backend] = [
                sample.pred_instances for batch in runner.test_dataloader
                for sample in model.test_step(batch)
            ]
        metrics[backend] = runner.test()
    print(f'{name}: {metrics}')
    assert metrics['compiled']['coco/bbox_mAP'] > 0
    assert metrics['torchvision'] == metrics['compiled']
    for ours, ref in zip(predictions['torchvision'], predictions['compiled']):
        assert len(ours) == len(ref) > 0
        for key in ('labels', 'scores', 'bboxes', 'masks'):
            if key in ref:
                torch.testing.assert_close(
                    ours[key].float(),
                    ref[key].float(),
                    rtol=1e-5,
                    atol=1e-4,
                    msg=key)
