"""ONNX export of FasterNet, RTMDet, RTMDet-Ins and Mask R-CNN's backbone,
neck and RPN (``--mode features``; its end-to-end graph is in
``test_onnx_mask_rcnn.py``), checked with ONNX Runtime and OpenVINO, and
evaluation of the exported detector through tools/test.py.

Random weights at toy sizes. The features of the backbone must match
PyTorch within 1e-4 relative, the detections of the end-to-end RTMDet
graph (decoding and NMS inside) must be those of mmdet's ``predict``:
same number, same labels, boxes and scores within 1e-4.
"""
import pickle
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from test_tools_rtmdet import toy_options

from checkpoint_factory import randomize_bn
from mmfasternet.deploy import (ExportError, build_backend, compare_outputs,
                                example_inputs, export_onnx)
from mmfasternet.models import FasterNet
from tool_runner import REPO, run_tool

pytest.importorskip('onnxruntime')
pytest.importorskip('openvino')

BACKENDS = ('onnxruntime', 'openvino')
DET_CONFIG = str(REPO / 'configs' / 'demo' / 'rtmdet_fasternet_t0_toy.py')
INS_CONFIG = str(REPO / 'configs' / 'demo' / 'rtmdet-ins_fasternet_t0_toy.py')
FEATURE_SHAPE = (96, 128)
DET_SHAPE = (128, 128)


def run_backends(onnx_file: str, inputs) -> dict:
    arrays = [t.numpy() for t in inputs]
    return {b: build_backend(b, onnx_file)(arrays) for b in BACKENDS}


def build_rtmdet(seed: int = 0) -> torch.nn.Module:
    cfg = Config.fromfile(DET_CONFIG)
    init_default_scope('mmdet')
    torch.manual_seed(seed)
    return randomize_bn(MODELS.build(cfg.model)).eval()


@pytest.mark.parametrize('deploy', [False, True])
def test_backbone_features_match_pytorch(tmp_path, deploy):
    torch.manual_seed(0)
    model = randomize_bn(FasterNet(arch='t0')).eval()
    if deploy:
        model.switch_to_deploy()
    onnx_file = str(tmp_path / 't0.onnx')
    wrapper = export_onnx(
        model,
        onnx_file,
        input_shape=FEATURE_SHAPE,
        batch=2,
        dynamic_batch=True)
    inputs = example_inputs('features', 3, FEATURE_SHAPE, seed=3)
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(*inputs)]
    assert [e.shape[1] for e in expected] == [40, 80, 160, 320]
    for backend, outputs in run_backends(onnx_file, inputs).items():
        err = compare_outputs(expected, outputs)
        assert err < 1e-4, (backend, err)


def test_rtmdet_end_to_end_detections_match_predict(tmp_path):
    from mmdet.structures import DetDataSample
    model = build_rtmdet()
    onnx_file = str(tmp_path / 'rtmdet.onnx')
    wrapper = export_onnx(
        model, onnx_file, mode='end2end', input_shape=DET_SHAPE)
    x, img_shape, rescale = example_inputs('end2end', 1, DET_SHAPE, seed=2)
    # A resized image smaller than the padded input, and a rescale back to
    # a larger original: clipping and rescaling happen inside the graph.
    meta = dict(
        img_shape=(100, 120),
        ori_shape=(200, 300),
        scale_factor=(120 / 300, 100 / 200),
        pad_shape=DET_SHAPE,
        batch_input_shape=DET_SHAPE)
    img_shape = torch.tensor([[100., 120.]])
    rescale = torch.tensor([[300 / 120, 200 / 100]])
    with torch.no_grad():
        pred = model.predict(x, [DetDataSample(metainfo=meta)])[0]
        ours = [t.numpy() for t in wrapper(x, img_shape, rescale)]
    pred = pred.pred_instances
    expected = [
        np.zeros(len(pred), np.int64),
        pred.bboxes.numpy(),
        pred.scores.numpy(),
        pred.labels.numpy()
    ]
    assert 0 < len(pred) <= model.bbox_head.test_cfg.max_per_img
    assert compare_outputs(expected, ours) < 1e-5
    outputs = run_backends(onnx_file, (x, img_shape, rescale))
    for backend, result in outputs.items():
        assert compare_outputs(expected, result) < 1e-4, backend


def test_rtmdet_ins_end_to_end_masks_match_predict(tmp_path):
    """RTMDet-Ins: same detections, and the same binary masks once the
    backend detector has resized the graph's logits to the original size."""
    from mmdet.structures import DetDataSample

    from mmfasternet.deploy.backend_detector import BackendDetector
    cfg = Config.fromfile(INS_CONFIG)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = randomize_bn(MODELS.build(cfg.model)).eval()
    onnx_file = str(tmp_path / 'ins.onnx')
    export_onnx(model, onnx_file, mode='end2end', input_shape=DET_SHAPE)
    x = example_inputs('end2end', 1, DET_SHAPE, seed=2)[0]
    meta = dict(
        img_shape=(100, 120),
        ori_shape=(200, 300),
        scale_factor=(120 / 300, 100 / 200),
        pad_shape=DET_SHAPE,
        batch_input_shape=DET_SHAPE)
    with torch.no_grad():
        pred = model.predict(x, [DetDataSample(metainfo=meta)])[0]
    pred = pred.pred_instances
    assert len(pred) > 0
    for backend in BACKENDS:
        detector = BackendDetector(onnx_file, backend)
        sample = DetDataSample(metainfo=meta)
        got = detector(x, [sample])[0].pred_instances
        assert torch.equal(got.labels, pred.labels), backend
        assert torch.allclose(got.bboxes, pred.bboxes, rtol=1e-4, atol=1e-3)
        assert got.masks.shape == pred.masks.shape
        # Pixels where the logit is within float noise of the threshold may
        # flip; none did in practice.
        assert (got.masks != pred.masks).float().mean() < 1e-3, backend


def test_unexportable_module_is_named(tmp_path):

    class Eigen(torch.nn.Module):

        def forward(self, x):
            return x + torch.linalg.eigvals(x[0, 0, :2, :2]).real.sum()

    model = FasterNet(arch='t0', out_indices=(3, )).eval()
    model.stages[2].blocks[1].spatial_mixing = Eigen()
    with pytest.raises(ExportError) as info:
        export_onnx(model, str(tmp_path / 'x.onnx'), input_shape=(64, 64))
    message = str(info.value)
    assert 'stages.2.blocks.1.spatial_mixing (Eigen' in message
    assert 'aten::linalg_eigvals' in message
    assert 'Traceback' not in message and '\n' not in message


def test_unsupported_detector_end2end_is_refused(tmp_path):
    """A detector with no end-to-end wrapper (RetinaNet) is refused with
    the head's name and a pointer to --mode features."""
    cfg = Config.fromfile(
        str(REPO / 'configs' / 'demo' / 'mask_rcnn_fasternet_t0_fpn_toy.py'))
    init_default_scope('mmdet')
    retina = dict(
        type='RetinaNet',
        data_preprocessor=cfg.model.data_preprocessor,
        backbone=cfg.model.backbone,
        neck=dict(cfg.model.neck, add_extra_convs='on_input', num_outs=5),
        bbox_head=dict(
            type='RetinaHead',
            num_classes=3,
            in_channels=cfg.model.neck.out_channels,
            feat_channels=32,
            anchor_generator=dict(
                type='AnchorGenerator',
                octave_base_scale=4,
                scales_per_octave=3,
                ratios=[0.5, 1.0, 2.0],
                strides=[8, 16, 32, 64, 128]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder')),
        test_cfg=dict(
            nms_pre=100,
            score_thr=0.05,
            nms=dict(type='nms', iou_threshold=0.5),
            max_per_img=10))
    model = MODELS.build(retina).eval()
    with pytest.raises(ExportError, match='RetinaHead.*--mode features'):
        export_onnx(model, str(tmp_path / 'x.onnx'), mode='end2end')


def test_mask_rcnn_features_mode_exports_backbone_neck_rpn(tmp_path):
    cfg = Config.fromfile(
        str(REPO / 'configs' / 'demo' / 'mask_rcnn_fasternet_t0_fpn_toy.py'))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    # --mode features: backbone, neck and the RPN head's outputs.
    onnx_file = str(tmp_path / 'mask_rcnn.onnx')
    wrapper = export_onnx(
        model, onnx_file, mode='features', input_shape=(64, 96))
    runner = build_backend('onnxruntime', onnx_file)
    assert runner.output_names[5:7] == ['rpn_cls0', 'rpn_cls1']
    x = example_inputs('features', 1, (64, 96), seed=4)
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(*x)]
    assert len(expected) == 15
    assert compare_outputs(expected, runner([x[0].numpy()])) < 1e-4


def test_tools_test_backend_gives_pytorch_map(toy_coco_root, tmp_path):
    """export_onnx.py, then tools/test.py with PyTorch and ONNX Runtime on
    the same random-weight checkpoint: same predictions, same mAP."""
    ckpt = tmp_path / 'rtmdet.pth'
    torch.save({'state_dict': build_rtmdet(seed=1).state_dict()}, ckpt)
    options = [
        o for o in toy_options(DET_CONFIG, toy_coco_root)
        if o.startswith(('test_', 'model.'))
    ]
    onnx_file = tmp_path / 'rtmdet.onnx'
    output = run_tool('deploy/export_onnx.py', DET_CONFIG, str(ckpt), '--out',
                      str(onnx_file), '--cfg-options', *options)
    assert re.search(
        r'onnxruntime vs PyTorch: max relative error \S+ '
        r'\(within', output)
    results = {}
    for name, extra in (('pytorch', []), ('onnxruntime',
                                          ['--backend', 'onnxruntime'])):
        model_file = onnx_file if extra else ckpt
        out = tmp_path / f'{name}.pkl'
        output = run_tool('test.py', DET_CONFIG, str(model_file), '--work-dir',
                          str(tmp_path / name), '--out', str(out), *extra,
                          '--cfg-options', *options)
        mean_ap = float(re.search(r'coco/bbox_mAP: ([\d.]+)', output)[1])
        with open(out, 'rb') as f:
            results[name] = (mean_ap, pickle.load(f))
    (map_pt, preds_pt), (map_ort, preds_ort) = results.values()
    assert abs(map_pt - map_ort) <= 0.005
    assert len(preds_pt) == len(preds_ort) == 4
    for a, b in zip(preds_pt, preds_ort):
        a, b = a['pred_instances'], b['pred_instances']
        assert len(a['labels']) > 0
        assert torch.equal(a['labels'], b['labels'])
        assert torch.allclose(a['bboxes'], b['bboxes'], rtol=1e-4, atol=1e-3)
