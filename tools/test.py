"""Evaluate a checkpoint of a detector or segmentor on its config's test set.

The config's ``default_scope`` (``mmdet`` or ``mmseg``) selects the
framework; checkpoints of mmdet 2.x (e.g. the official FasterNet Mask R-CNN
release) load too, the backbone maps their layout. Without CUDA, a
distributed launch runs on gloo (see :mod:`mmfasternet.engine`).

Examples::

    python tools/test.py configs/mask_rcnn_fasternet_s_fpn_1x_coco.py \\
        checkpoints/mask_rcnn_fasternet_s_fpn_1x_coco_20221111_063419.pth
    python tools/test.py CONFIG CKPT --out results.pkl --show-dir vis
    python tools/test.py CONFIG CKPT --deploy        # fused inference path
    python tools/test.py CONFIG MODEL.onnx --backend onnxruntime
    python tools/test.py CONFIG MODEL_INT8.xml --backend openvino
    bash tools/dist_test.sh CONFIG CKPT 8
"""
import argparse

from mmengine.config import Config

from mmfasternet.engine.tool_setup import (add_common_tool_args, build_runner,
                                           load_tool_config, parse_tool_args,
                                           tool_job)
from mmfasternet.inference import framework_of


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='where the evaluation log and metrics go (default: '
        './work_dirs/<config name>)')
    parser.add_argument(
        '--out',
        help='dump the predictions to this pickle file (.pkl / .pickle)')
    parser.add_argument(
        '--show', action='store_true', help='show predictions in a window')
    parser.add_argument(
        '--show-dir',
        help='save every test image drawn with its predictions here (mmdet: '
        'relative to <work_dir>/<timestamp>; mmseg: in <show_dir>/vis_data)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='--show interval (s)')
    parser.add_argument(
        '--deploy',
        action='store_true',
        help='switch FasterNet backbones to deploy mode (BN folded, fused '
        'blocks) once the checkpoint is loaded')
    parser.add_argument(
        '--bf16',
        action='store_true',
        help='deploy mode with the backbone under bfloat16 autocast '
        '(implies --deploy; for CPUs with AMX/AVX512-BF16 and recent GPUs)')
    parser.add_argument(
        '--backend',
        choices=['onnxruntime', 'openvino'],
        help='evaluate an end-to-end model file given as CHECKPOINT with '
        'this engine instead of PyTorch: .onnx (tools/deploy/export_onnx.py,'
        ' or quantize.py\'s INT8 QDQ file) or, for openvino, an INT8 IR .xml'
        ' (tools/deploy/quantize.py)')
    add_common_tool_args(parser, 'test_dataloader.batch_size=2')
    args = parse_tool_args(parser)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error('--out must end with .pkl or .pickle')
    return args


def enable_visualization(cfg: Config, args: argparse.Namespace) -> None:
    """Turn on the config's visualization hook for --show / --show-dir."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise RuntimeError('--show/--show-dir need a "visualization" entry '
                           'in the config\'s default_hooks')
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        # mmdet's hook takes an output folder and draws every test image;
        # mmseg's draws every `interval`-th batch into the visualizer's
        # save_dir (<show_dir>/vis_data/vis_image).
        if framework_of(cfg) == 'mmdet':
            hook['test_out_dir'] = args.show_dir
        else:
            cfg.visualizer['save_dir'] = args.show_dir
            hook['interval'] = 1


def dump_metric(scope: str, out_file: str):
    """A metric that pickles the predictions; mmdet's encodes masks as RLE."""
    if scope == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        return DumpDetResults(out_file_path=out_file)
    from mmengine.evaluator import DumpResults
    return DumpResults(out_file_path=out_file)


def main() -> None:
    args = parse_args()
    cfg = load_tool_config(args.config, args.launcher, args.cfg_options,
                           args.work_dir)
    cfg.load_from = args.checkpoint
    if args.backend:
        if args.deploy or args.bf16:
            raise SystemExit('--deploy/--bf16 apply to PyTorch, not to '
                             '--backend')
        from mmfasternet.deploy import ModelFileError, backend_model_config
        try:
            backend_model_config(cfg, args.checkpoint, args.backend)
        except ModelFileError as exc:  # one line, no traceback
            raise SystemExit(f'error: {exc}')
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.bf16:
        # Refused before anything is built: emulated bf16 runs several times
        # slower than fp32 (the backbone's switch_to_deploy checks too).
        import torch

        from mmfasternet.models.utils.bf16_support import native_bf16_missing
        reason = native_bf16_missing(
            'cuda' if torch.cuda.is_available() else 'cpu')
        if reason is not None:
            raise SystemExit(f'--bf16 refused: {reason}. Use --deploy (the '
                             'fused fp32 path) instead.')
    if args.deploy or args.bf16:
        # A hook, so that it runs after the runner has loaded the checkpoint.
        # EMAHook (RTMDet's configs) is left out: it would swap its eager
        # copy's parameters into the deployed model, and the checkpoint's
        # model weights already are the averaged ones (EMAHook saves them
        # there), so testing without it evaluates the same weights.
        cfg.custom_hooks = [
            hook for hook in cfg.get('custom_hooks', [])
            if hook.get('type') != 'EMAHook'
        ] + [dict(type='FasterNetDeployHook', bf16=args.bf16)]

    # Built inside the job: a failure while building still tears the
    # process group down.
    with tool_job(args.trust_checkpoint):
        runner = build_runner(cfg)
        if args.out is not None:
            runner.test_evaluator.metrics.append(
                dump_metric(framework_of(cfg), args.out))
        runner.test()


if __name__ == '__main__':
    main()
