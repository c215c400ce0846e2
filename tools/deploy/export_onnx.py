"""Export a FasterNet detector / segmentor (or its backbone) to ONNX.

Two graphs:

* ``--mode end2end`` (RTMDet, RTMDet-Ins, Mask R-CNN, Faster R-CNN):
  image to final detections, box decoding and NMS inside (ONNX
  ``NonMaxSuppression``; Mask R-CNN's proposals and RoIAlign too); inputs
  ``input``, ``img_shape``, ``rescale``, outputs ``batch_index``,
  ``boxes``, ``scores``, ``labels`` (and ``masks``: RTMDet-Ins's logits at
  input size, Mask R-CNN's 28x28 probabilities, pasted outside).
  ``tools/test.py CONFIG FILE --backend onnxruntime|openvino`` evaluates
  it, ``demo/image_demo.py --backend`` draws it.
* ``--mode features``: backbone + neck outputs, for any config.

The file is then run with ONNX Runtime (and ``--check-backend openvino``)
on a new random input and compared with PyTorch (with ``--dynamic-batch``
/ ``--dynamic-shape`` also at batch + 1 / H + 32, W + 64); the tool fails if
the relative error exceeds ``--tolerance``, and says "exported" only once
every check has passed. End to end, it prints the number of detections
compared.

Examples::

    python tools/deploy/export_onnx.py \\
        configs/rtmdet_fasternet_t0_8xb32-300e_coco.py \\
        work_dirs/rtmdet_t0/epoch_300.pth --out rtmdet_t0.onnx
    python tools/deploy/export_onnx.py \\
        configs/mask_rcnn_fasternet_t0_fpn_1x_coco.py CKPT \\
        --out mask_rcnn_t0.onnx --mode end2end --shape 1344 1344
    python tools/deploy/export_onnx.py \\
        configs/mask_rcnn_fasternet_s_fpn_1x_coco.py CKPT \\
        --out s_features.onnx --shape 800 1344 --deploy --mode features

A checkpoint that does not fit the config, an input size the model cannot
run, or a module the exporter cannot convert ends the tool with one
``error:`` line naming the module (exit code 1).
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import List

import torch

from mmfasternet.deploy import (END2END_MODE, FEATURE_MODE, ExportError,
                                check_sizes, check_with_backend,
                                compare_on_images, end2end_supported,
                                export_onnx)
from mmfasternet.deploy.tool_helpers import (MODEL_ERRORS, add_model_args,
                                             build_tool_model, default_shape,
                                             fail, load_config, shape_problem)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a model to ONNX')
    add_model_args(parser)
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument(
        '--mode',
        choices=['auto', END2END_MODE, FEATURE_MODE],
        default='auto',
        help='end2end: final detections (RTMDet, RTMDet-Ins, Mask / Faster '
        'R-CNN); features: backbone + neck; auto: end2end where supported '
        '(default)')
    parser.add_argument('--batch', type=int, default=1, help='batch size')
    parser.add_argument(
        '--dynamic-batch', action='store_true', help='free batch dimension')
    parser.add_argument(
        '--dynamic-shape',
        action='store_true',
        help='free height and width (features mode)')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset')
    parser.add_argument(
        '--deploy',
        action='store_true',
        help='switch FasterNet to deploy mode (BN folded) before export')
    parser.add_argument(
        '--pconv-forward',
        choices=['split_cat', 'slicing'],
        help='override the backbone\'s PConv implementation')
    parser.add_argument(
        '--check-backend',
        nargs='*',
        default=['onnxruntime'],
        choices=['onnxruntime', 'openvino'],
        help='engines to compare with PyTorch (default: onnxruntime; none '
        'to skip)')
    parser.add_argument(
        '--check-image',
        nargs='+',
        default=[],
        metavar='IMAGE',
        help='end2end only: also predict these images through the config\'s '
        'test pipeline with PyTorch and with each --check-backend engine, and '
        'require the same detections (the random-input check may see none '
        'from a trained model)')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-4,
        help='largest accepted error, relative to each output\'s largest '
        'magnitude')
    return parser.parse_args(argv)


def check(args, cfg, model, wrapper, mode: str, shape: tuple):
    """Compare the file with PyTorch on every ``--check-backend`` engine
    (at a second size/batch too when dimensions are free), print each.

    Returns:
        str | None: What failed, None when every check passed.
    """
    failed = []
    sizes = check_sizes(shape, args.batch, args.dynamic_batch,
                        args.dynamic_shape)
    for backend in args.check_backend:
        for (h, w), batch in sizes:
            where = f'{batch}x3x{h}x{w}'
            try:
                err, detections, match = check_with_backend(
                    wrapper, args.out, mode, (h, w), batch, backend, 1,
                    args.tolerance)
            except Exception as exc:  # the engine's message, one line
                first = (str(exc).strip().splitlines() or [''])[0]
                return (f'{backend} could not run {args.out} at {where}: '
                        f'{type(exc).__name__}: {first}')
            ok = err <= args.tolerance
            if not ok:
                failed.append(f'{backend} at {where}')
            compared = ''
            if detections is not None:
                compared = (f', {detections} detections compared as sets: '
                            f'{match.describe()}')
                if detections == 0:
                    compared += (' (none scored above the test_cfg '
                                 'threshold on this random input: only '
                                 'the graph\'s running was compared)')
                elif 2 * match.matched < detections:
                    compared += (' (most scores tie within --tolerance at '
                                 'the max_per_img cut, as when random '
                                 'weights give every box the head\'s prior '
                                 'score: a checkpoint or --check-image '
                                 'pairs more)')
            print(f'{backend} vs PyTorch at {where}: max relative error '
                  f'{err:.2e} ({"within" if ok else "EXCEEDS"} tolerance '
                  f'{args.tolerance:g}){compared}')
    if args.check_image:  # end2end: main refuses it for features
        failed += check_images(args, cfg, model)
    if failed:
        return (f'{args.out} differs from PyTorch beyond --tolerance '
                f'{args.tolerance:g} ({", ".join(failed)}); the file is '
                'left for inspection')
    return None


def check_images(args, cfg, model) -> List[str]:
    """``--check-image``: the same detections from PyTorch and each engine
    on real images, as sets (same labels, boxes within 0.01 px, scores
    within ``--tolerance``, in any order; at the score threshold or the
    max_per_img cut on one side only), the masks of the pairs differing on
    at most 0.1% of pixels; print each engine's result.

    Returns:
        list[str]: The engines that failed.
    """
    failed = []
    checks = compare_on_images(
        model,
        cfg,
        args.out,
        args.check_image,
        args.check_backend,
        box_tol=0.01,
        score_tol=args.tolerance)
    for backend, found in checks.items():
        ok = found.match.ok and found.mask_disagreement <= 1e-3
        if not ok:
            failed.append(f'{backend} on --check-image')
        print(f'{backend} vs PyTorch on {found.images} image(s) through the '
              f'test pipeline: {found.detections} detections, as sets '
              f'{found.match.describe()}, masks '
              f'{found.mask_disagreement:.3%} pixels differ '
              f'({"OK" if ok else "MISMATCH"})')
    return failed


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = [f for f in args.check_image if not osp.isfile(f)]
    if missing:
        return fail(f'--check-image: no such file {missing[0]}')
    cfg = load_config(args)
    if args.pconv_forward:
        cfg.model.backbone.pconv_forward = args.pconv_forward
    try:
        model = build_tool_model(cfg, args)
    except MODEL_ERRORS as exc:
        return fail(exc)
    mode = args.mode
    if mode == 'auto':
        mode = END2END_MODE if end2end_supported(model) else FEATURE_MODE
    if args.check_image and mode == FEATURE_MODE:
        return fail('--check-image compares the detections of an end2end '
                    'graph; a features graph has none (its random-input '
                    'check compares the features)')
    shape = tuple(args.shape) if args.shape else default_shape(cfg)
    problem = shape_problem(model, shape)
    if problem:
        return fail(problem)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    start = time.time()
    try:
        wrapper = export_onnx(
            model,
            args.out,
            mode=mode,
            input_shape=shape,
            batch=args.batch,
            dynamic_batch=args.dynamic_batch,
            dynamic_shape=args.dynamic_shape,
            opset=args.opset)
    except (ExportError, ValueError) as exc:
        return fail(exc)
    seconds = time.time() - start
    problem = check(args, cfg, model, wrapper, mode, shape)
    if problem:
        return fail(problem)
    size_mb = osp.getsize(args.out) / 2**20
    checked = ' and '.join(args.check_backend) or 'no engine (not checked)'
    print(f'exported {mode} graph, input {args.batch}x3x{shape[0]}x'
          f'{shape[1]}, opset {args.opset}: {args.out} ({size_mb:.2f} MiB, '
          f'{seconds:.1f} s), checked with {checked}')
    return 0


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    sys.exit(main())
