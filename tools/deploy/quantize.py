"""Quantize an end-to-end detector to INT8 (post-training).

The model is exported end to end as ``export_onnx.py --mode end2end``
does (BN folded first unless ``--no-deploy``), calibrated on ``--calib-size``
images of the config's ``--calib-split`` dataloader (through the test
pipeline and data preprocessor, padded to the graph's size, as
``tools/test.py --backend`` feeds it), and quantized:

* ``--out FILE.xml``: an OpenVINO IR (``--backend openvino``) by
  ``nncf.quantize``;
* ``--out FILE.onnx``: a QDQ ONNX file (``--backend onnxruntime``, or
  ``openvino``) by ONNX Runtime's static quantizer (``quantize_static``,
  per-channel weights), which ONNX Runtime runs as int8 kernels.

The layers that produce the outputs (box, score, kernel and mask convs /
FCs) and the decoding and NMS after them stay in float; the tool lists
them (``--quantize-head-outputs`` quantizes the layers too). For an IR,
activation ranges come from histograms and biases are corrected on the
quantized model: on the toy detectors NNCF's defaults lost more than 0.02
mAP, these settings at most 0.009. A graph with layers after NMS (Mask
R-CNN's RoI heads, as many rows as NMS keeps) gets the fast bias
correction, which the full one cannot replace there (it is refused in one
line before calibrating). For ONNX, ranges are the min and max over the
calibration images (docs/int8.md). The tool then runs the file
with its engine on the first calibration image and reports.

Examples::

    python tools/deploy/quantize.py configs/demo/rtmdet_fasternet_t0_toy.py \\
        CKPT --out rtmdet_t0_int8.xml
    python tools/test.py configs/demo/rtmdet_fasternet_t0_toy.py \\
        rtmdet_t0_int8.xml --backend openvino
    python tools/deploy/quantize.py \\
        configs/demo/mask_rcnn_fasternet_t0_fpn_toy.py \\
        CKPT --out mask_rcnn_int8.onnx --shape 192 256 --calib-size 100

An empty calibration set, images larger than the graph, a checkpoint that
does not fit or a model without an end-to-end graph end the tool with one
``error:`` line (exit code 1).
"""
import argparse
import logging
import os
import os.path as osp
import sys
import tempfile
import time

import torch

from mmfasternet.benchmarking import int8_banner
from mmfasternet.deploy import END2END_MODE, build_backend, export_onnx
from mmfasternet.deploy.calibration import (SPLITS, CalibrationError,
                                            CalibrationSet)
from mmfasternet.deploy.model_files import OPENVINO_IR
from mmfasternet.deploy.quantization import (ACTIVATION_RANGES, PRESETS,
                                             QuantizationError, check_options,
                                             output_kind, quantize_model_file)
from mmfasternet.deploy.tool_helpers import (MODEL_ERRORS, add_model_args,
                                             build_tool_model, default_shape,
                                             end2end_problem, fail,
                                             load_config, shape_problem)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Quantize an end-to-end detector to INT8 (NNCF for '
        '.xml, ONNX Runtime\'s quantizer for .onnx)')
    add_model_args(parser)
    parser.add_argument(
        '--out',
        required=True,
        help='FILE.xml: OpenVINO IR; FILE.onnx: QDQ ONNX (ONNX Runtime)')
    parser.add_argument(
        '--calib-split',
        choices=SPLITS,
        default='train',
        help='the dataloader whose images calibrate (through the test '
        'pipeline; default: train)')
    parser.add_argument(
        '--calib-size',
        type=int,
        default=300,
        help='calibration images (default: 300, NNCF\'s default)')
    parser.add_argument(
        '--preset',
        choices=PRESETS,
        default='mixed',
        help='mixed (asymmetric activations, symmetric weights; default) or '
        'performance (symmetric both): NNCF\'s presets, and the same for '
        'ONNX Runtime\'s quantizer')
    parser.add_argument(
        '--activation-ranges',
        choices=ACTIVATION_RANGES,
        help='.xml: histogram (default: better toy mAP), the range that '
        'minimises the quantization error on a histogram of each '
        'activation, or mean_minmax (NNCF\'s default), the mean of each '
        'image\'s min and max; .onnx: mean_minmax only (default), ONNX '
        'Runtime\'s MinMax, the min and max over all images (its histogram '
        'methods keep every activation in memory)')
    parser.add_argument(
        '--bias-correction',
        choices=['full', 'fast'],
        help='.xml only (NNCF\'s; ONNX Runtime\'s quantizer has none): bias '
        'correction after quantizing, full (each layer\'s bias re-fitted on '
        'its quantized inputs; default, better toy mAP) or fast (from the '
        'float statistics, quicker; the default for graphs with layers '
        'after NMS, such as Mask R-CNN\'s RoI heads, where full cannot run)')
    parser.add_argument(
        '--quantize-head-outputs',
        action='store_true',
        help='also quantize the layers that produce the outputs (kept in '
        'float by default; docs/int8.md measures what it costs)')
    parser.add_argument(
        '--deploy',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='switch FasterNet to deploy mode (BN folded) before export '
        '(default: on)')
    return parser.parse_args(argv)


def quantize(args, model, shape, calibration, onnx_file: str) -> None:
    """Export, quantize and run the file once; print what was done."""
    if output_kind(args.out) == OPENVINO_IR:  # NNCF's (slow to import)
        import nncf
        nncf.set_log_level(logging.WARNING)  # not a line per node
    start = time.time()
    export_onnx(model, onnx_file, mode=END2END_MODE, input_shape=shape)
    result = quantize_model_file(
        onnx_file,
        args.out,
        calibration,
        preset=args.preset,
        keep_float='tail' if args.quantize_head_outputs else 'output_layers',
        activation_ranges=args.activation_ranges,
        fast_bias_correction=_fast_bias_correction(args))
    seconds = time.time() - start
    engine = 'openvino' if result.kind == OPENVINO_IR else 'onnxruntime'
    outputs = build_backend(engine, args.out)(calibration.first())
    size_mb = sum(
        osp.getsize(f) for f in (args.out, osp.splitext(args.out)[0] + '.bin')
        if osp.isfile(f)) / 2**20
    kept = len(result.scope.output_layers) * (
        result.keep_float == 'output_layers')
    print(f'{engine} ran {args.out} on the first calibration image: '
          f'{len(outputs[0])} detections')
    print(f'quantized {args.out} ({size_mb:.2f} MiB, {seconds:.1f} s): '
          f'input 1x3x{shape[0]}x{shape[1]}, {result.settings}, '
          f'{result.quantizers} quantizers, {kept} output layers and '
          f'{len(result.scope.tail)} tail nodes in float, calibrated on '
          f'{len(calibration)} {args.calib_split} images')


def _fast_bias_correction(args):
    return None if args.bias_correction is None else (args.bias_correction
                                                      == 'fast')


def main(argv=None) -> int:
    args = parse_args(argv)
    print(int8_banner())
    try:
        check_options(args.out, _fast_bias_correction(args),
                      args.activation_ranges)
    except QuantizationError as exc:
        return fail(exc)
    cfg = load_config(args)
    try:
        model = build_tool_model(cfg, args)
    except MODEL_ERRORS as exc:
        return fail(exc)
    shape = tuple(args.shape) if args.shape else default_shape(cfg)
    problem = end2end_problem(model) or shape_problem(model, shape)
    if problem:
        return fail(problem)
    try:
        calibration = CalibrationSet(cfg, args.calib_split, args.calib_size,
                                     model.data_preprocessor, shape)
        calibration.first()  # before the export: fail early
    except (CalibrationError, FileNotFoundError) as exc:
        return fail(exc)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            quantize(args, model, shape, calibration,
                     osp.join(tmp, 'fp32.onnx'))
        except (CalibrationError, QuantizationError) + MODEL_ERRORS as exc:
            return fail(exc)
    return 0


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    sys.exit(main())
