"""ONNX export of FasterNet, RTMDet, RTMDet-Ins and Mask R-CNN's backbone,
neck and RPN (``--mode features``; its end-to-end graph is in
``test_onnx_mask_rcnn.py``), checked with ONNX Runtime and OpenVINO, and
evaluation of the exported detector through tools/test.py.

Random weights at toy sizes. The features of the backbone must match
PyTorch within 1e-4 relative, the detections of the end-to-end RTMDet
graph (decoding and NMS inside) must be those of mmdet's ``predict``:
same number, same labels, boxes and scores within 1e-4.
"""
import argparse
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, init_default_scope
from PIL import Image
from test_tools_rtmdet import toy_options

from checkpoint_factory import randomize_bn
from mmfasternet.deploy import (ExportError, build_backend, check_sizes,
                                compare_outputs, example_inputs, export_onnx)
from mmfasternet.models import FasterNet
from tool_runner import REPO, run_script, run_tool

pytest.importorskip('onnxruntime')
pytest.importorskip('openvino')

BACKENDS = ('onnxruntime', 'openvino')
DET_CONFIG = str(REPO / 'configs' / 'demo' / 'rtmdet_fasternet_t0_toy.py')
INS_CONFIG = str(REPO / 'configs' / 'demo' / 'rtmdet-ins_fasternet_t0_toy.py')
FEATURE_SHAPE = (96, 128)
DET_SHAPE = (128, 128)

# An image resized to 100x120 from a 200x300 original and padded to
# DET_SHAPE, as a data sample's metainfo.
RESIZED_META = dict(
    img_shape=(100, 120),
    ori_shape=(200, 300),
    scale_factor=(120 / 300, 100 / 200),
    pad_shape=DET_SHAPE,
    batch_input_shape=DET_SHAPE)


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


def test_backbone_dynamic_shape_and_batch(tmp_path):
    """--dynamic-shape --dynamic-batch: every output has its own size
    symbols, and the file runs at another size and batch than the
    export's, matching PyTorch there too."""
    import onnx
    torch.manual_seed(0)
    model = randomize_bn(FasterNet(arch='t0')).eval()
    onnx_file = str(tmp_path / 't0_dynamic.onnx')
    wrapper = export_onnx(
        model,
        onnx_file,
        input_shape=FEATURE_SHAPE,
        dynamic_batch=True,
        dynamic_shape=True)
    graph = onnx.load(onnx_file).graph
    dims = {
        v.name:
        [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(graph.input) + list(graph.output)
    }
    assert dims['input'] == ['batch', 3, 'height', 'width']
    for i in range(4):
        assert dims[f'feat{i}'][::2] == ['batch', f'feat{i}_h']
        assert dims[f'feat{i}'][3] == f'feat{i}_w'
    sizes = check_sizes(FEATURE_SHAPE, 1, True, True)
    assert sizes == [(FEATURE_SHAPE, 1), ((128, 192), 2)]
    for shape, batch in sizes:
        inputs = example_inputs('features', batch, shape, seed=5)
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper(*inputs)]
        assert expected[0].shape == (batch, 40, shape[0] // 4, shape[1] // 4)
        for backend, outputs in run_backends(onnx_file, inputs).items():
            err = compare_outputs(expected, outputs)
            assert err < 1e-4, (backend, shape, batch, err)


def test_rtmdet_end_to_end_detections_match_predict(tmp_path):
    from mmdet.structures import DetDataSample
    model = build_rtmdet()
    onnx_file = str(tmp_path / 'rtmdet.onnx')
    wrapper = export_onnx(
        model, onnx_file, mode='end2end', input_shape=DET_SHAPE)
    x, img_shape, rescale = example_inputs('end2end', 1, DET_SHAPE, seed=2)
    # A resized image smaller than the padded input, and a rescale back to
    # a larger original: clipping and rescaling happen inside the graph.
    img_shape = torch.tensor([[100., 120.]])
    rescale = torch.tensor([[300 / 120, 200 / 100]])
    with torch.no_grad():
        pred = model.predict(x, [DetDataSample(metainfo=RESIZED_META)])[0]
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
    with torch.no_grad():
        pred = model.predict(x, [DetDataSample(metainfo=RESIZED_META)])[0]
    pred = pred.pred_instances
    assert len(pred) > 0
    for backend in BACKENDS:
        detector = BackendDetector(onnx_file, backend)
        sample = DetDataSample(metainfo=RESIZED_META)
        got = detector(x, [sample])[0].pred_instances
        assert torch.equal(got.labels, pred.labels), backend
        assert torch.allclose(got.bboxes, pred.bboxes, rtol=1e-4, atol=1e-3)
        assert got.masks.shape == pred.masks.shape
        # Pixels where the logit is within float noise of the threshold may
        # flip; none did in practice.
        assert (got.masks != pred.masks).float().mean() < 1e-3, backend


def test_rtmdet_ins_exports_and_runs_with_no_detection(tmp_path):
    """A trained model on a random input may keep no instance at all: the
    mask branch must trace and run with zero instances (it once failed on
    a ``reshape(0, -1, ...)``), and the engines return empty outputs."""
    from mmdet.structures import DetDataSample

    from mmfasternet.deploy.backend_detector import BackendDetector
    cfg = Config.fromfile(INS_CONFIG)
    cfg.model.test_cfg.score_thr = 1.0  # sigmoid scores never pass it
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = randomize_bn(MODELS.build(cfg.model)).eval()
    onnx_file = str(tmp_path / 'ins_empty.onnx')
    wrapper = export_onnx(
        model, onnx_file, mode='end2end', input_shape=DET_SHAPE)
    inputs = example_inputs('end2end', 1, DET_SHAPE, seed=2)
    with torch.no_grad():
        masks = wrapper(*inputs)[4]
    assert tuple(masks.shape) == (0, *DET_SHAPE)
    meta = dict(
        img_shape=DET_SHAPE,
        ori_shape=DET_SHAPE,
        scale_factor=(1., 1.),
        pad_shape=DET_SHAPE,
        batch_input_shape=DET_SHAPE)
    for backend in BACKENDS:
        detector = BackendDetector(onnx_file, backend)
        got = detector(inputs[0], [DetDataSample(metainfo=meta)])[0]
        assert len(got.pred_instances) == 0, backend


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


def test_failure_while_tracing_is_named_by_its_path_in_the_model(tmp_path):
    """A module that fails only under the exporter's trace (run inside the
    exporter's own wrapper module) is named by its path in the model."""

    class TraceOnly(torch.nn.Module):

        def forward(self, x):
            if torch.jit.is_tracing():
                raise ValueError('not while tracing')
            return x

    model = FasterNet(arch='t0', out_indices=(3, )).eval()
    model.stages[1].blocks[0].spatial_mixing = TraceOnly()
    with pytest.raises(ExportError) as info:
        export_onnx(model, str(tmp_path / 'x.onnx'), input_shape=(64, 64))
    message = str(info.value)
    assert message.startswith(
        'ONNX export (opset 17) failed in module '
        'stages.1.blocks.0.spatial_mixing (TraceOnly) (inside <model> '
        '(FeatureWrapper) > <model> (FasterNet) > stages.1 (FasterNetStage) '
        '> stages.1.blocks (Sequential) > stages.1.blocks.0 '
        '(FasterNetBlock)): '), message
    assert 'ValueError: not while tracing' in message


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


@pytest.fixture(scope='module')
def exported_rtmdet(toy_coco_root, tmp_path_factory):
    """The toy RTMDet config at half size on the fixture's data (dumped
    with the options, so that every tool reads it alone), a random-weight
    checkpoint with ``score_thr`` 0 (detections to compare), and the file
    ``export_onnx.py`` made of it: (config, checkpoint, onnx file,
    export output)."""
    root = tmp_path_factory.mktemp('rtmdet_export')
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = [
        o for o in toy_options(DET_CONFIG, toy_coco_root)
        if o.startswith(('test_', 'model.'))
    ]
    cfg = Config.fromfile(DET_CONFIG)
    cfg.merge_from_dict(
        parser.parse_args(['--cfg-options', *options]).cfg_options)
    config = str(root / 'rtmdet_toy.py')
    cfg.dump(config)
    ckpt = root / 'rtmdet.pth'
    torch.save({'state_dict': build_rtmdet(seed=1).state_dict()}, ckpt)
    onnx_file = root / 'rtmdet.onnx'
    output = run_tool('deploy/export_onnx.py', config, str(ckpt), '--out',
                      str(onnx_file), '--check-backend', *BACKENDS,
                      '--check-image', *toy_val_images(toy_coco_root))
    return config, ckpt, onnx_file, output


def toy_val_images(root: str, count: int = 2) -> list:
    return [str(Path(root) / 'val' / f'{i:06d}.jpg') for i in range(count)]


def check_lines(lines: list, pattern: str) -> list:
    """Indices of the lines matching ``pattern``, one per engine, each
    with more than 0 detections."""
    found = [i for i, line in enumerate(lines) if re.match(pattern, line)]
    assert len(found) == len(BACKENDS), '\n'.join(lines)
    for i in found:
        assert int(re.search(r'(\d+) detections', lines[i])[1]) > 0
    return found


def test_export_tool_checks_detections_then_reports(exported_rtmdet):
    """The checks compare detections (not 0 against 0), on the random
    input and, with --check-image, on real images through the test
    pipeline; "exported" is printed only after every check passed."""
    lines = exported_rtmdet[3].splitlines()
    checks = check_lines(
        lines, r'\w+ vs PyTorch at 1x3x128x128: max relative error '
        r'\S+ \(within tolerance 0.0001\), (\d+) detections compared as '
        r'sets: \1/\1 matched \(\1 from the engine\), max box error \S+ px, '
        r'max score error \S+$')
    on_images = check_lines(
        lines, r'\w+ vs PyTorch on 2 image\(s\) through the test pipeline: '
        r'(\d+) detections, as sets \1/\1 matched \(\1 from the engine\), '
        r'.* \(OK\)$')
    exported = [
        i for i, line in enumerate(lines) if line.startswith('exported ')
    ]
    assert len(exported) == 1
    assert exported[0] > max(checks + on_images)
    assert 'checked with onnxruntime and openvino' in lines[exported[0]]


def test_image_check_fails_on_other_weights(exported_rtmdet, toy_coco_root):
    """The real-image check can fail: the file against a PyTorch model
    with other weights finds other detections."""
    from mmfasternet.deploy import compare_on_images
    config, _, onnx_file, _ = exported_rtmdet
    cfg = Config.fromfile(config)
    init_default_scope('mmdet')
    torch.manual_seed(7)
    other = randomize_bn(MODELS.build(cfg.model)).eval()
    found = compare_on_images(other, cfg, str(onnx_file),
                              toy_val_images(toy_coco_root),
                              ['onnxruntime'])['onnxruntime']
    assert found.detections > 0
    assert found.match.unmatched > 0 and not found.match.ok


@pytest.fixture(scope='module')
def pytorch_predictions(exported_rtmdet):
    """tools/test.py on the PyTorch checkpoint: (bbox mAP, predictions)."""
    config, ckpt = exported_rtmdet[:2]
    return tools_test_predictions(config, ckpt, ckpt.parent / 'pytorch')


def tools_test_predictions(config: str, model_file, work_dir: Path,
                           *extra) -> tuple:
    """``tools/test.py`` ``--out``: its bbox mAP and pickled predictions."""
    out = work_dir / 'predictions.pkl'
    output = run_tool('test.py', config, str(model_file), '--work-dir',
                      str(work_dir), '--out', str(out), *extra)
    mean_ap = float(re.search(r'coco/bbox_mAP: ([\d.]+)', output)[1])
    with open(out, 'rb') as f:
        return mean_ap, pickle.load(f)


@pytest.mark.parametrize('backend', BACKENDS)
def test_tools_test_backend_gives_pytorch_predictions(exported_rtmdet,
                                                      pytorch_predictions,
                                                      backend, tmp_path):
    """export_onnx.py, then tools/test.py with PyTorch and an engine on
    the same random-weight checkpoint: the same predictions, image by
    image (the real check: with random weights both mAPs are ~0)."""
    config, _, onnx_file, _ = exported_rtmdet
    map_engine, preds_engine = tools_test_predictions(config, onnx_file,
                                                      tmp_path, '--backend',
                                                      backend)
    map_pt, preds_pt = pytorch_predictions
    assert abs(map_pt - map_engine) <= 0.005
    assert len(preds_pt) == len(preds_engine) == 4
    compared = 0
    for a, b in zip(preds_pt, preds_engine):
        a, b = a['pred_instances'], b['pred_instances']
        assert len(a['labels']) > 0
        assert torch.equal(a['labels'], b['labels'])
        assert torch.allclose(a['bboxes'], b['bboxes'], rtol=1e-4, atol=1e-3)
        compared += len(a['labels'])
    assert compared > 0


@pytest.mark.parametrize('backend', BACKENDS)
def test_image_demo_backend_draws_exported_file(exported_rtmdet, toy_coco_root,
                                                backend, tmp_path):
    """``demo/image_demo.py --backend`` runs the exported file and saves the
    picture at the image's size, with the detections (score_thr 0 in the
    graph and for drawing) drawn on it."""
    config, _, onnx_file, _ = exported_rtmdet
    image = sorted((Path(toy_coco_root) / 'val').glob('*.jpg'))[0]
    output = run_script('demo/image_demo.py', image, config, '--weights',
                        onnx_file, '--backend', backend, '--out-dir', tmp_path,
                        '--score-thr', '0')
    picture = tmp_path / 'vis' / image.name
    assert f'Saved {picture}' in output
    with Image.open(picture) as img, Image.open(image) as original:
        assert img.size == original.size
        drawn = np.asarray(img.convert('RGB'), dtype=np.int64)
        plain = np.asarray(original.convert('RGB'), dtype=np.int64)
    assert np.abs(drawn - plain).max() > 100
