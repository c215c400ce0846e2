"""Train a detector or segmentor from an mmfasternet (or any OpenMMLab) config.

The config's ``default_scope`` (``mmdet`` or ``mmseg``) selects the
framework; the runner is built with ``Runner.from_cfg`` (or the config's
``runner_type``). Without CUDA, a distributed launch runs on gloo (see
:mod:`mmfasternet.engine`).

Examples::

    python tools/train.py configs/mask_rcnn_fasternet_s_fpn_1x_coco.py
    python tools/train.py CONFIG --resume                # latest in work_dir
    python tools/train.py CONFIG --resume work_dirs/x/epoch_3.pth
    python tools/train.py CONFIG --seed 0 --deterministic   # reproducible
    bash tools/dist_train.sh CONFIG 8                    # torchrun, 8 GPUs
"""
import argparse

from mmengine.logging import print_log

from mmfasternet.engine.tool_setup import (add_common_tool_args, build_runner,
                                           load_tool_config, parse_tool_args,
                                           tool_job)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go (default: the config\'s '
        'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a value, from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp',
        nargs='?',
        const='fp16',
        choices=['fp16', 'bf16'],
        help='automatic mixed precision on a GPU (mmengine\'s '
        'AmpOptimWrapper, dynamic loss scale); --amp alone is fp16')
    parser.add_argument(
        '--seed',
        type=int,
        help='random seed of the run (mmengine randomness.seed); the '
        'official FasterNet training uses 0')
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='deterministic cuDNN/torch algorithms (slower; '
        'randomness.deterministic)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual total batch size against the '
        'config\'s auto_scale_lr.base_batch_size')
    add_common_tool_args(
        parser, 'train_dataloader.batch_size=4 or model.backbone.arch=m')
    return parse_tool_args(parser)


def enable_amp(cfg, amp: str) -> None:
    """Switch the config's optimizer wrapper to AMP in ``amp`` precision.

    Raises:
        SystemExit: With what to do instead, where no GPU is visible or it
            does not run ``amp`` natively.
    """
    import torch

    from mmfasternet.device_options import DeviceOptionError, check_amp
    if not torch.cuda.is_available():
        raise SystemExit('--amp trains on a CUDA GPU (mmengine\'s '
                         'AmpOptimWrapper) and none is visible; train in '
                         'fp32 without --amp on this machine')
    try:
        check_amp(amp, torch.device('cuda'))
    except DeviceOptionError as e:
        raise SystemExit(str(e)) from None
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        print_log('AMP is already enabled in the config.', 'current')
        return
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.optim_wrapper.dtype = {'fp16': 'float16', 'bf16': 'bfloat16'}[amp]


def main() -> None:
    args = parse_args()
    cfg = load_tool_config(args.config, args.launcher, args.cfg_options,
                           args.work_dir)

    if args.amp:
        enable_amp(cfg, args.amp)

    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.'
                               'base_batch_size in the config')
        cfg.auto_scale_lr.enable = True

    if args.seed is not None or args.deterministic:
        randomness = dict(cfg.get('randomness') or {})
        if args.seed is not None:
            randomness['seed'] = args.seed
        if args.deterministic:
            randomness['deterministic'] = True
        cfg.randomness = randomness

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    # Built inside the job: a failure while building (e.g. an unreadable
    # checkpoint) still tears the process group down.
    with tool_job(args.trust_checkpoint):
        build_runner(cfg).train()


if __name__ == '__main__':
    main()
