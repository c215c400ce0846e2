"""Run a detection or segmentation config on one image and save the picture.

The task comes from the config's ``default_scope``: ``mmdet`` configs go
through MMDetection's ``DetInferencer`` (boxes, masks, labels drawn), ``mmseg``
configs through MMSegmentation's ``MMSegInferencer`` (class overlay).

Example::

    python demo/image_demo.py data/toy_coco/val/000000.jpg \
        configs/demo/mask_rcnn_fasternet_t0_fpn_toy.py \
        --weights work_dirs/demo/det/iter_200.pth --out-dir work_dirs/vis
"""
import argparse
import os.path as osp

from mmengine.config import Config

from mmfasternet.inference import build_inferencer, framework_of


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Visualise a FasterNet detector or segmentor on an image')
    parser.add_argument('image', help='image file (or a folder of images)')
    parser.add_argument('config', help='an mmdet or mmseg config file')
    parser.add_argument(
        '--weights',
        help='checkpoint file; without it the model is randomly initialised'
        ' (with --backend: the end-to-end .onnx file, or an OpenVINO IR .xml'
        ' from tools/deploy/quantize.py)')
    parser.add_argument(
        '--backend',
        choices=['onnxruntime', 'openvino'],
        help='run the exported file given as --weights with this engine '
        '(tools/deploy/export_onnx.py or quantize.py; same pre- and '
        'post-processing)')
    parser.add_argument(
        '--out-dir',
        default='work_dirs/image_demo',
        help='the picture is written to OUT_DIR/vis/<image name>')
    parser.add_argument(
        '--device', default=None, help='e.g. cpu or cuda:0 (default: auto)')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='detection: hide boxes scoring below this')
    parser.add_argument(
        '--opacity',
        type=float,
        default=0.5,
        help='segmentation: opacity of the class overlay')
    return parser.parse_args(argv)


def run(image,
        config,
        weights=None,
        out_dir='work_dirs/image_demo',
        device=None,
        score_thr=0.3,
        opacity=0.5,
        backend=None) -> list:
    """Visualise ``config`` on ``image``; return the written picture paths.

    With ``backend`` (``'onnxruntime'`` / ``'openvino'``), ``weights`` is an
    end-to-end detector file (ONNX, or an OpenVINO IR for OpenVINO) run by
    that engine.
    """
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    if backend is not None:
        if not weights or framework_of(cfg) != 'mmdet':
            raise ValueError('--backend needs an mmdet config and the .onnx '
                             'file as --weights')
        from mmfasternet.deploy import backend_model_config
        backend_model_config(cfg, weights, backend)
        weights = None
    inferencer = build_inferencer(cfg, weights=weights, device=device)
    if framework_of(cfg) == 'mmdet':
        inferencer(image, out_dir=out_dir, pred_score_thr=score_thr)
    else:
        inferencer(image, out_dir=out_dir, opacity=opacity)
    vis_dir = osp.join(out_dir, 'vis')
    if osp.isdir(image):
        from mmengine.utils import scandir
        names = sorted(
            scandir(image, suffix=('.jpg', '.jpeg', '.png', '.bmp')))
    else:
        names = [osp.basename(image)]
    return [osp.join(vis_dir, name) for name in names]


def main(argv=None) -> None:
    args = parse_args(argv)
    from mmfasternet.deploy import ModelFileError
    try:
        paths = run(
            args.image,
            args.config,
            weights=args.weights,
            out_dir=args.out_dir,
            device=args.device,
            score_thr=args.score_thr,
            opacity=args.opacity,
            backend=args.backend)
    except ModelFileError as exc:  # one line, no traceback
        raise SystemExit(f'error: {exc}')
    for path in paths:
        print(f'Saved {path}')


if __name__ == '__main__':
    main()
