"""End-to-end ONNX export of Mask R-CNN (and Faster R-CNN), checked
against mmdet's predict.

The toy demo config (``configs/demo/mask_rcnn_fasternet_t0_fpn_toy.py``)
with random weights, its RPN objectness and box classifier weights spread
out so that scores differ clearly from each other. The graph's detections,
run with ONNX Runtime and OpenVINO and turned into ``DetDataSample`` s by
``BackendDetector`` (which pastes the 28x28 masks), must be mmdet's: same
number, same labels, boxes within 1e-3, scores within 1e-4, binary masks
equal on at least 99.9% of the pixels.
"""
import pickle
import re

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from checkpoint_factory import randomize_bn
from mmfasternet.deploy import BackendDetector, export_onnx
from tool_runner import run_tool
from toy_configs import DEMO_DETECTOR, toy_coco_data

pytest.importorskip('onnxruntime')
pytest.importorskip('openvino')

BACKENDS = ('onnxruntime', 'openvino')
SHAPE = (128, 160)
# Two images of different resized and original sizes in one padded batch.
METAS = [
    dict(img_shape=(120, 160), ori_shape=(240, 320), scale_factor=(0.5, 0.5)),
    dict(
        img_shape=(128, 100),
        ori_shape=(192, 150),
        scale_factor=(100 / 150, 128 / 192)),
]


def build_mask_rcnn(cfg: Config, seed: int = 0) -> torch.nn.Module:
    init_default_scope('mmdet')
    torch.manual_seed(seed)
    model = randomize_bn(MODELS.build(cfg.model))
    with torch.no_grad():
        # Default init gives every anchor and class nearly the same score.
        model.rpn_head.rpn_cls.weight.normal_(std=0.1)
        model.roi_head.bbox_head.fc_cls.weight.normal_(std=0.5)
    return model.eval()


def samples(metas=METAS) -> list:
    from mmdet.structures import DetDataSample
    return [
        DetDataSample(
            metainfo=dict(m, pad_shape=SHAPE, batch_input_shape=SHAPE))
        for m in metas
    ]


@pytest.mark.parametrize('sampling_ratio, with_mask', [(2, True), (0, True),
                                                       (2, False)])
def test_mask_rcnn_end_to_end_matches_predict(tmp_path, sampling_ratio,
                                              with_mask):
    """sampling_ratio 2: the toy config's; 0: mmdet's default (adaptive).
    Without the mask head: Faster R-CNN (boxes rescaled before NMS)."""
    cfg = Config.fromfile(str(DEMO_DETECTOR))
    roi_head = cfg.model.roi_head
    if not with_mask:
        cfg.model.type = 'FasterRCNN'
        roi_head.mask_head = roi_head.mask_roi_extractor = None
    for key in ('bbox_roi_extractor', 'mask_roi_extractor'):
        if roi_head[key] is not None:
            roi_head[key].roi_layer.sampling_ratio = sampling_ratio
            # RoIs of this small input on all four levels, not only one.
            roi_head[key].finest_scale = 8
    model = build_mask_rcnn(cfg)
    onnx_file = str(tmp_path / 'mask_rcnn.onnx')
    export_onnx(
        model,
        onnx_file,
        mode='end2end',
        input_shape=SHAPE,
        batch=2,
        dynamic_batch=True)
    x = torch.randn(2, 3, *SHAPE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = [p.pred_instances for p in model.predict(x, samples())]
    # The detections' RoIs must come from several FPN levels.
    rois = torch.cat([
        torch.cat([
            p.bboxes.new_zeros(len(p), 1),
            p.bboxes * p.bboxes.new_tensor(m['scale_factor']).repeat(2)
        ], 1) for p, m in zip(expected, METAS)
    ])
    levels = model.roi_head.bbox_roi_extractor.map_roi_levels(rois, 4)
    assert len(levels.unique()) >= 3
    for backend in BACKENDS:
        detector = BackendDetector(onnx_file, backend, mask_thr_binary=0.5)
        got = [p.pred_instances for p in detector(x, samples())]
        for want, have in zip(expected, got):
            assert len(want) > 0
            assert len(have) == len(want), backend
            assert torch.equal(have.labels, want.labels), backend
            assert (have.bboxes - want.bboxes).abs().max() <= 1e-3, backend
            assert (have.scores - want.scores).abs().max() <= 1e-4, backend
            assert ('masks' in have) == with_mask
            if with_mask:
                assert have.masks.shape == want.masks.shape, backend
                agree = (have.masks == want.masks).float().mean()
                assert agree >= 0.999, (backend, agree)
                assert want.masks.any()


def test_tools_test_backend_gives_pytorch_segm_map(toy_coco_info, tmp_path):
    """export_onnx.py --mode end2end, then tools/test.py with PyTorch and
    ONNX Runtime on one random-weight checkpoint: same predictions, same
    bbox and segm mAP."""
    cfg = Config.fromfile(DEMO_DETECTOR)
    cfg.merge_from_dict(toy_coco_data(toy_coco_info, (128, 96), 2))
    config = str(tmp_path / 'mask_rcnn_toy.py')
    cfg.dump(config)
    ckpt = tmp_path / 'mask_rcnn.pth'
    torch.save({'state_dict': build_mask_rcnn(cfg, seed=1).state_dict()}, ckpt)
    onnx_file = tmp_path / 'mask_rcnn.onnx'
    output = run_tool('deploy/export_onnx.py', config, str(ckpt), '--out',
                      str(onnx_file), '--mode', 'end2end', '--shape', '96',
                      '128')
    check = re.search(
        r'onnxruntime vs PyTorch at 1x3x96x128: .* \(within .*\), '
        r'(\d+) detections compared', output)
    assert check and int(check[1]) > 0, output
    results = {}
    for name, extra in (('pytorch', []), ('onnxruntime',
                                          ['--backend', 'onnxruntime'])):
        out = tmp_path / f'{name}.pkl'
        output = run_tool('test.py', config,
                          str(onnx_file if extra else ckpt), '--work-dir',
                          str(tmp_path / name), '--out', str(out), *extra)
        maps = [
            float(re.search(rf'coco/{kind}_mAP: ([\d.]+)', output)[1])
            for kind in ('bbox', 'segm')
        ]
        with open(out, 'rb') as f:
            results[name] = (maps, pickle.load(f))
    (maps_pt, preds_pt), (maps_ort, preds_ort) = results.values()
    print(f'bbox, segm mAP: PyTorch {maps_pt}, ONNX Runtime {maps_ort}')
    assert np.allclose(maps_pt, maps_ort, atol=0.005)
    assert len(preds_pt) == len(preds_ort) == 4
    insts = [[p['pred_instances'] for p in preds]
             for preds in (preds_pt, preds_ort)]
    counts = [[len(i['labels']) for i in per_image] for per_image in insts]
    assert counts[0] == counts[1] and min(counts[0]) > 0
    # Labels exactly (integers), boxes within 1e-3.
    for key in ('labels', 'bboxes'):
        pt, ort = (
            torch.cat([i[key] for i in per_image]).double()
            for per_image in insts)
        assert torch.allclose(pt, ort, rtol=1e-4, atol=1e-3), key
    masks_pt, masks_ort = (
        np.concatenate([mask_util.decode(i['masks']) for i in per_image],
                       axis=-1) for per_image in insts)
    assert masks_pt.any()
    assert (masks_pt == masks_ort).mean() >= 0.999
