"""INT8 post-training quantization (tools/deploy/quantize.py: NNCF for
an IR, ONNX Runtime's quantizer for QDQ ONNX).

The toy RTMDet-T0 at 128x128 on the fixture's toy set, random weights
with random BN statistics and ``score_thr`` 0 (so that every image has
detections to compare), calibrated on 4 train images:

* the OpenVINO IR runs through ``tools/test.py --backend openvino``: its
  mAP is within 0.02 of PyTorch's and most of PyTorch's best detections
  are found again (same label, IoU >= 0.5), image by image; and through
  ``demo/image_demo.py --backend openvino``;
* the QDQ ONNX file runs in ONNX Runtime and OpenVINO, its output convs
  with float weights;
* the layers that produce the outputs are found, kept in float and carry
  no quantizer in either file;
* bad input ends a tool with one ``error:`` line.

The demo Mask R-CNN, trained for a few iterations by ``tools/train.py``,
is quantized with the default settings: its RoI heads take as many rows
as the RPN's NMS keeps, which NNCF's full bias correction cannot re-run,
so the tool picks the fast one for it (and refuses the full one in one
line, before calibrating).
"""
import argparse
import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from test_onnx_export import tools_test_predictions
from test_tools_rtmdet import toy_options

from checkpoint_factory import randomize_bn
from mmfasternet.benchmarking import int8_banner, int8_instructions
from mmfasternet.deploy import build_backend
from mmfasternet.deploy.float_layers import (GraphNode, find_float_scope,
                                             layers_after_nms)
from tool_runner import REPO, load_script, run_tool
from toy_configs import DEMO_DETECTOR, toy_coco_data

pytest.importorskip('nncf')
pytest.importorskip('openvino')
pytest.importorskip('onnxruntime')

DET_CONFIG = str(REPO / 'configs' / 'demo' / 'rtmdet_fasternet_t0_toy.py')
CALIB = ('--calib-size', '4')
#: Training iterations of the toy Mask R-CNN checkpoint.
MASK_RCNN_ITERS = 4
#: The toy RTMDet's output convs (class scores and boxes, 3 levels) by
#: the activation before them.
OUTPUT_LAYER_INPUTS = {
    f'/bbox_head/{kind}_convs.{level}.1/activate/Mul'
    for kind in ('cls', 'reg')
    for level in range(3)
}


@pytest.fixture(scope='module')
def rtmdet_case(toy_coco_root, tmp_path_factory):
    """The toy RTMDet at half size on the fixture's data (a dumped config),
    a random-weight checkpoint and the INT8 IR quantize.py made of it (its
    ``main``, in this process: a tool's start-up is ~10 s here):
    (config, checkpoint, IR, quantize.py's output).

    tools/test.py runs as a subprocess, as users run it.
    """
    from mmengine.registry import MODELS, init_default_scope
    root = tmp_path_factory.mktemp('int8')
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = [
        o for o in toy_options(DET_CONFIG, toy_coco_root)
        if o.startswith(('test_', 'train_dataloader.dataset', 'model.'))
    ]
    cfg = Config.fromfile(DET_CONFIG)
    cfg.merge_from_dict(
        parser.parse_args(['--cfg-options', *options]).cfg_options)
    config = str(root / 'rtmdet_toy.py')
    cfg.dump(config)
    init_default_scope('mmdet')
    torch.manual_seed(1)
    model = randomize_bn(MODELS.build(cfg.model))
    ckpt = root / 'rtmdet.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    xml = root / 'rtmdet_int8.xml'
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert quantize_tool().main(
            [config, str(ckpt), '--out',
             str(xml), *CALIB]) == 0
    return config, ckpt, xml, stdout.getvalue()


@pytest.fixture(scope='module')
def mask_rcnn_case(toy_coco_info, tmp_path_factory):
    """The demo Mask R-CNN on the fixture's images at 128x96, trained for
    :data:`MASK_RCNN_ITERS` iterations by tools/train.py: (config,
    checkpoint).

    Its RPN keeps every proposal that NMS leaves (``max_per_img`` above
    their number), so that how many it keeps depends on the scores, as
    with the demo's own checkpoint at 800x1344.
    """
    root = tmp_path_factory.mktemp('int8_mask_rcnn')
    cfg = Config.fromfile(DEMO_DETECTOR)
    cfg.merge_from_dict(
        dict(
            **toy_coco_data(toy_coco_info, (128, 96), 2),
            model=dict(test_cfg=dict(rpn=dict(max_per_img=3000))),
            train_cfg=dict(
                max_iters=MASK_RCNN_ITERS, val_interval=MASK_RCNN_ITERS),
            default_hooks=dict(checkpoint=dict(interval=MASK_RCNN_ITERS))))
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    config = str(root / 'mask_rcnn_toy.py')
    cfg.dump(config)
    run_tool('train.py', config, '--work-dir', str(root))
    return config, root / f'iter_{MASK_RCNN_ITERS}.pth'


def refused(script: str, *args) -> str:
    """Run a tool expecting failure; return its single ``error:`` line."""
    output = run_tool(script, *args, expect_failure=True)
    assert 'Traceback' not in output, output
    errors = [line for line in output.splitlines() if 'error:' in line]
    assert len(errors) == 1 and errors[0].startswith('error: '), output
    return errors[0]


def quantize_tool():
    """tools/deploy/quantize.py as a module (its ``main`` in-process)."""
    return load_script('tools/deploy/quantize.py')


def found_fraction(expected: dict, actual: dict, top: int = 10) -> float:
    """Of ``expected``'s ``top`` best detections, the fraction that
    ``actual`` has too (same label, IoU >= 0.5)."""
    order = expected['scores'].argsort(descending=True)[:top]
    from mmdet.structures.bbox import bbox_overlaps
    iou = bbox_overlaps(expected['bboxes'][order], actual['bboxes'])
    same = expected['labels'][order][:, None] == actual['labels'][None]
    return float(((iou >= 0.5) & same).any(1).float().mean())


def test_quantize_reports_float_layers(rtmdet_case):
    """The tool names the CPU's int8 instructions and the six output convs
    it kept in float, and ran the IR once."""
    output = rtmdet_case[3]
    assert re.search(r'^int8 dot products: ', output, re.M)
    kept = re.findall(r'^  \S+ \(Convolution, after (\S+)\) -> (.+)$', output,
                      re.M)
    assert {after for after, _ in kept} == OUTPUT_LAYER_INPUTS
    assert all(outputs == 'batch_index, boxes, scores, labels'
               for _, outputs in kept)
    assert re.search(
        r'^openvino ran \S+ on the first calibration image: '
        r'[1-9]\d* detections$', output, re.M)
    assert re.search(
        r'^quantized \S+\.xml .* [1-9]\d* quantizers, 6 '
        r'output layers and \d+ tail nodes in float, calibrated '
        r'on 4 train images$', output, re.M)


def test_int8_openvino_matches_pytorch_through_tools_test(
        rtmdet_case, tmp_path):
    """tools/test.py --backend openvino on the IR: mAP within 0.02 of
    PyTorch's, and most of PyTorch's best detections found again."""
    config, ckpt, xml, _ = rtmdet_case
    map_pt, preds_pt = tools_test_predictions(config, ckpt, tmp_path / 'pt')
    map_q, preds_q = tools_test_predictions(config, xml, tmp_path / 'int8',
                                            '--backend', 'openvino')
    assert abs(map_pt - map_q) <= 0.02
    assert len(preds_pt) == len(preds_q) == 4
    found = [
        found_fraction(a['pred_instances'], b['pred_instances'])
        for a, b in zip(preds_pt, preds_q)
    ]
    assert np.mean(found) >= 0.7, found


def test_image_demo_draws_int8_ir(rtmdet_case, toy_coco_root, tmp_path):
    """demo/image_demo.py's ``run`` with ``--backend openvino`` and the IR
    as weights draws the image."""
    from PIL import Image
    config, _, xml, _ = rtmdet_case
    image = sorted((Path(toy_coco_root) / 'val').glob('*.jpg'))[0]
    demo = load_script('demo/image_demo.py')
    paths = demo.run(
        str(image),
        config,
        weights=str(xml),
        out_dir=str(tmp_path),
        score_thr=0,
        backend='openvino')
    with Image.open(paths[0]) as drawn, Image.open(image) as original:
        assert drawn.size == original.size
        assert np.abs(
            np.asarray(drawn, np.int64) -
            np.asarray(original.convert('RGB'), np.int64)).max() > 100


def test_output_layers_carry_no_quantizer(rtmdet_case):
    """In the IR, the output convs take float inputs and weights (no
    FakeQuantize before them) while the backbone's convs are quantized."""
    import openvino as ov
    model = ov.Core().read_model(str(rtmdet_case[2]))
    heads, quantized = {}, 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != 'Convolution':
            continue
        sources = [op.input_value(i).get_node() for i in range(2)]
        fake = [s.get_type_name() == 'FakeQuantize' for s in sources]
        quantized += any(fake)
        data = sources[0].input_value(0).get_node() if fake[0] else sources[0]
        if data.get_friendly_name() in OUTPUT_LAYER_INPUTS:
            heads[data.get_friendly_name()] = any(fake)
    assert set(heads) == OUTPUT_LAYER_INPUTS
    assert not any(heads.values())
    assert quantized > 20


def test_openvino_runs_the_quantized_convs_in_int8(rtmdet_case):
    """OpenVINORunner's f32 precision hint leaves the INT8 IR's quantized
    convs in int8 (compiled model's runtime precisions); only the six
    output convs run in f32."""
    from collections import Counter

    from mmfasternet.deploy import OpenVINORunner
    runtime = OpenVINORunner(str(rtmdet_case[2])).model.get_runtime_model()
    precisions = Counter(
        op.get_rt_info()['runtimePrecision'].astype(str)
        for op in runtime.get_ordered_ops()
        if op.get_rt_info()['layerType'].astype(str) == 'Convolution')
    assert precisions['f32'] == len(OUTPUT_LAYER_INPUTS)
    assert precisions['u8'] + precisions['i8'] > 20


def test_int8_instructions():
    """The CPU flags that name each integer dot-product instruction."""
    assert int8_instructions(['avx2', 'avx512_vnni',
                              'amx_int8']) == ['AMX', 'AVX512-VNNI']
    assert int8_instructions(['avx2']) == []
    assert int8_banner(['avx_vnni']) == 'int8 dot products: AVX-VNNI'
    assert int8_banner([]).startswith('int8 dot products: none (no amx_int8')


def test_qdq_onnx_runs_on_both_engines(rtmdet_case, tmp_path, capsys):
    """--out .onnx writes a QDQ file (ONNX Runtime's quantizer) with the
    output convs' weights unquantized; ONNX Runtime and OpenVINO both run
    it to the same detections count; --bias-correction (NNCF's) is
    refused for it."""
    import onnx
    config, ckpt = rtmdet_case[:2]
    out = tmp_path / 'rtmdet_int8.onnx'
    assert quantize_tool().main([config,
                                 str(ckpt), '--out',
                                 str(out), *CALIB]) == 0
    assert 'onnxruntime ran ' in capsys.readouterr().out
    model = onnx.load(str(out))
    dequantized = {
        o
        for node in model.graph.node if node.op_type == 'DequantizeLinear'
        for o in node.output
    }
    convs = [n for n in model.graph.node if n.op_type == 'Conv']
    heads = [n for n in convs if re.search(r'rtm_(cls|reg)\.\d', n.name)]
    assert len(heads) == len(OUTPUT_LAYER_INPUTS)
    assert not any(set(n.input[1:]) & dequantized for n in heads)
    assert sum(n.input[1] in dequantized for n in convs) > 20
    inputs = [
        np.random.default_rng(0).normal(size=(1, 3, 128,
                                              128)).astype(np.float32),
        np.array([[128, 128]], np.float32),
        np.ones((1, 2), np.float32)
    ]
    counts = {
        b: len(build_backend(b, str(out))(inputs)[0])
        for b in ('onnxruntime', 'openvino')
    }
    assert counts['onnxruntime'] == counts['openvino'] > 0
    assert quantize_tool().main([
        config,
        str(ckpt), '--out',
        str(tmp_path / 'x.onnx'), '--bias-correction', 'full'
    ]) == 1
    assert capsys.readouterr().err.strip() == (
        'error: bias correction is NNCF\'s (--out x.xml); ONNX Runtime\'s '
        'quantizer (--out x.onnx) has none')


def test_float_scope_walk():
    """The walk stops at weighted layers, follows every other node back,
    and skips RoIAlign's feature input: on a small two-stage graph the
    output layers are the RPN conv and the box FC, not the FPN conv."""
    nodes = {
        n.name: n
        for n in [
            GraphNode('fpn', 'Conv', (), True),
            GraphNode('rpn', 'Conv', ((0, 'fpn'), ), True),
            GraphNode('decode', 'Add', ((0, 'rpn'), ), False),
            GraphNode('roi', 'RoiAlign', ((0, 'fpn'), (1, 'decode')), False),
            GraphNode('fc', 'Gemm', ((0, 'roi'), ), True),
            GraphNode('nms', 'NonMaxSuppression', ((0, 'fc'),
                                                   (1, 'decode')), False),
            GraphNode('gather', 'Gather', ((0, 'fc'), (1, 'nms')), False),
        ]
    }
    scope = find_float_scope(nodes, {'boxes': 'gather', 'labels': 'nms'})
    assert set(scope.output_layers) == {'rpn', 'fc'}
    assert scope.output_layers['fc'] == ('Gemm', ['boxes', 'labels'], 'roi')
    assert set(scope.tail) == {'gather', 'nms', 'decode'}
    assert scope.tail_types['NonMaxSuppression'] == 1


def test_bad_calibration_is_refused(rtmdet_case, tmp_path, capsys):
    """No calibration image (``--calib-size 0``, an annotation file without
    images), and images larger than the graph: exit code 1 and one error
    line each, before any export."""
    config, ckpt = rtmdet_case[:2]
    out = str(tmp_path / 'x.xml')
    empty = tmp_path / 'empty.json'
    empty.write_text(
        json.dumps(
            dict(
                images=[],
                annotations=[],
                categories=[
                    dict(id=i, name=n)
                    for i, n in enumerate(('square', 'circle', 'triangle'))
                ])))
    tool = quantize_tool()
    for extra, expected in (
        (('--calib-size', '0'), r'error: the calibration set is empty '
         r'\(--calib-size 0\)'),
        (('--cfg-options', f'train_dataloader.dataset.ann_file={empty}'),
         r'error: the calibration set is empty: the train_dataloader\'s '
         r'dataset has no image'),
        (('--shape', '64', '64', *CALIB),
         r'error: calibration image \S+\.jpg is 128x128 after the test '
         r'pipeline and data preprocessor, larger than the graph\'s 64x64 '
         r'input'),
    ):
        assert tool.main([config, str(ckpt), '--out', out, *extra]) == 1
        errors = capsys.readouterr().err.strip().splitlines()
        assert len(errors) == 1 and re.match(expected, errors[0]), errors
    assert not Path(out).exists()


def test_files_the_engine_cannot_read_are_refused(rtmdet_case, tmp_path):
    """tools/test.py --backend onnxruntime on an IR: one error line that
    names OpenVINO; a text file is refused alike, by the tools'
    configuration step and by both runners."""
    from mmfasternet.deploy import ModelFileError, backend_model_config
    config, _, xml, _ = rtmdet_case
    error = refused('test.py', config, str(xml), '--backend', 'onnxruntime',
                    '--work-dir', str(tmp_path))
    assert error == (f'error: {xml} is an OpenVINO IR (.xml + .bin), which '
                     'ONNX Runtime cannot read; run it with --backend '
                     'openvino')
    text = tmp_path / 'notes.onnx'
    text.write_text('not a model\n')
    with pytest.raises(ModelFileError, match='is not a model file'):
        backend_model_config(Config.fromfile(config), str(text), 'openvino')
    for backend in ('onnxruntime', 'openvino'):
        with pytest.raises(ModelFileError, match='is not a model file'):
            build_backend(backend, str(text))


def test_quantize_trained_mask_rcnn_with_defaults(mask_rcnn_case, tmp_path,
                                                  capsys):
    """A trained Mask R-CNN checkpoint quantizes with the default settings
    (NNCF's full bias correction failed in OpenVINO on it, on the RoI
    heads' mismatched row counts, after calibrating): the tool picks the
    fast bias correction, says why, and the IR runs; the full one, asked
    for, is refused in one line before any calibration."""
    config, ckpt = mask_rcnn_case
    common = [config, str(ckpt), '--shape', '96', '128', *CALIB]
    xml = tmp_path / 'mask_rcnn_int8.xml'
    assert quantize_tool().main([*common, '--out', str(xml)]) == 0
    output = capsys.readouterr().out
    assert re.search(
        r'^bias correction: fast \(\d+ quantized layers take as many rows '
        r'as NMS keeps', output, re.M), output
    assert re.search(
        r'^openvino ran \S+ on the first calibration image: \d+ '
        r'detections$', output, re.M), output
    assert 'fast bias correction, ' in output
    assert quantize_tool().main([
        *common, '--out',
        str(tmp_path / 'x.xml'), '--bias-correction', 'full'
    ]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(
        'error: --bias-correction full cannot run on this graph: '), errors
    assert 'calibration image' not in captured.out


def test_layers_after_nms():
    """The weighted layers that NMS feeds, through any nodes (RoIAlign,
    other layers), less those kept in float; none before it."""
    nodes = {
        n.name: n
        for n in [
            GraphNode('fpn', 'Convolution', (), True),
            GraphNode('rpn', 'Convolution', ((0, 'fpn'), ), True),
            GraphNode('nms', 'NonMaxSuppression', ((0, 'rpn'), ), False),
            GraphNode('roi', 'ROIAlign', ((0, 'fpn'), (1, 'nms')), False),
            GraphNode('fc1', 'MatMul', ((0, 'roi'), ), True),
            GraphNode('fc2', 'MatMul', ((0, 'fc1'), ), True),
            GraphNode('fc_cls', 'MatMul', ((0, 'fc2'), ), True),
        ]
    }
    assert layers_after_nms(nodes) == ['fc1', 'fc2', 'fc_cls']
    assert layers_after_nms(nodes, ['fc_cls']) == ['fc1', 'fc2']
    del nodes['nms']
    assert layers_after_nms(nodes) == []
