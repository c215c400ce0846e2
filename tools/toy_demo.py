"""The `make demo` driver: FasterNet trained and evaluated end to end on toy
data, on a CPU, with no downloads (for inference on your own image with a
trained model, see ``demo/image_demo.py``).

1. generates the toy shapes datasets under ``--data-root`` (COCO format and
   ADE20K layout, see :mod:`mmfasternet.datasets.toy_data`);
2. trains a FasterNet-T0 Mask R-CNN from scratch with ``tools/train.py`` and
   evaluates it with ``tools/test.py`` (``coco/bbox_mAP``, ``coco/segm_mAP``);
3. trains and evaluates a FasterNet Semantic FPN the same way (``mIoU``);
4. draws predictions on a few val images, the segmentation overlay and the
   training loss curves under ``--work-dir``.

Examples::

    python tools/toy_demo.py            # the full run, minutes on a CPU
    python tools/toy_demo.py --quick    # a few iterations, to check it works
    python tools/toy_demo.py --rtmdet   # instead: FasterNet-T0 RTMDet
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmfasternet.datasets import make_toy_ade, make_toy_coco
from mmfasternet.inference import build_inferencer

# mmengine imports pkg_resources; its deprecation notice is just noise here.
PKG_RESOURCES_WARNING = 'pkg_resources is deprecated'
warnings.filterwarnings('ignore', PKG_RESOURCES_WARNING, UserWarning)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_CONFIG = osp.join('configs', 'demo', 'mask_rcnn_fasternet_t0_fpn_toy.py')
SEG_CONFIG = osp.join('configs', 'demo', 'fpn_fasternet_t0_ade20k_toy.py')
RTMDET_CONFIG = osp.join('configs', 'demo', 'rtmdet_fasternet_t0_toy.py')
# --rtmdet --quick: 2 epochs, stage 2's pipeline in the second.
RTMDET_QUICK_EPOCHS = 2

# (train images, val images) of each toy set, and iterations of each model
# (None: the config's own schedule).
SETTINGS = dict(
    full=dict(coco=(200, 50), ade=(200, 50), det_iters=None, seg_iters=None),
    quick=dict(coco=(8, 4), ade=(8, 4), det_iters=2, seg_iters=2))
NUM_PICTURES = 4


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train, evaluate and show FasterNet on toy data (CPU)')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='tiny datasets and 2 iterations per model (a smoke test)')
    parser.add_argument(
        '--data-root',
        default='data',
        help='where the toy datasets are written (toy_coco/, toy_ade/)')
    parser.add_argument(
        '--work-dir',
        default=osp.join('work_dirs', 'demo'),
        help='checkpoints, logs and pictures')
    parser.add_argument(
        '--device',
        default=None,
        help='cpu, cuda or cuda:N for training, testing and drawing '
        '(default: cuda if available, else cpu)')
    parser.add_argument(
        '--amp',
        choices=['fp16', 'bf16'],
        default=None,
        help='train with automatic mixed precision (needs a CUDA GPU; '
        'tools/train.py --amp)')
    parser.add_argument(
        '--rtmdet',
        action='store_true',
        help='instead of the default demo: train, evaluate and draw a '
        'FasterNet-T0 RTMDet (one-stage, real-time) on the toy COCO set')
    args = parser.parse_args(argv)
    try:
        args.train_args = device_train_args(args.device, args.amp)
    except ValueError as e:
        parser.error(str(e))
    return args


def device_train_args(device: Optional[str], amp: Optional[str]) -> List[str]:
    """Check ``--device`` / ``--amp`` and pin the tools' device.

    ``--device cpu`` hides any GPU from the training and test processes
    (mmengine picks CUDA whenever it sees one).

    Returns:
        list[str]: Extra ``tools/train.py`` arguments (``--amp DTYPE``).

    Raises:
        ValueError: For a device that is not there or an AMP dtype it does
            not run (see :class:`~mmfasternet.device_options.DeviceOptions`).
    """
    import torch

    from mmfasternet.device_options import DeviceOptions
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if amp is not None and not device.startswith('cuda'):
        raise ValueError('--amp trains on a CUDA GPU (mmengine\'s '
                         'AmpOptimWrapper); on a CPU leave it out')
    DeviceOptions(device=device, amp=amp)
    if device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    elif ':' in device:
        os.environ['CUDA_VISIBLE_DEVICES'] = device.split(':', 1)[1]
    return ['--amp', amp] if amp else []


def banner(text: str) -> None:
    print(f'\n===== {text} =====', flush=True)


def run_tool(args: List[str]) -> None:
    """Run ``python <args>`` in the repository root; output streams through."""
    cmd = [sys.executable] + args
    print('$ ' + ' '.join(cmd), flush=True)
    env = dict(os.environ)
    env.setdefault('PYTHONWARNINGS',
                   f'ignore:{PKG_RESOURCES_WARNING}:UserWarning')
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def read_json_lines(path: str) -> List[Dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_test_metrics(work_dir: str) -> Dict:
    """The metrics logged by the newest ``tools/test.py`` run in work_dir."""
    # mmengine's LoggerHook dumps them to <work_dir>/<time>/<time>.json
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', '*.json')),
            key=osp.getmtime,
            reverse=True):
        records = read_json_lines(path)
        if records:
            return records[-1]
    return {}


def read_train_log(work_dir: str) -> List[Dict]:
    """The training records (one per logging interval) of the newest run."""
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', '*.json')),
            key=osp.getmtime,
            reverse=True):
        if osp.basename(path) == 'scalars.json':
            continue
        records = [r for r in read_json_lines(path) if 'loss' in r]
        if records:
            return records
    return []


def data_options(root: str, ann_file: Optional[str] = None) -> List[str]:
    """``--cfg-options`` that point a toy config's dataloaders at the toy
    set in ``root`` (and its evaluators at ``ann_file`` inside it)."""
    options = [
        f'{loader}.dataset.data_root={root}/'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    if ann_file is not None:
        options += [
            f'{evaluator}.ann_file={root}/{ann_file}'
            for evaluator in ('val_evaluator', 'test_evaluator')
        ]
    return options


def train_and_test(config: str,
                   work_dir: str,
                   data_options: List[str],
                   iters: Optional[int],
                   train_args: Sequence[str] = ()
                   ) -> Dict:  # yapf: disable
    """``tools/train.py`` then ``tools/test.py`` on the final checkpoint.

    ``iters`` replaces the config's number of iterations (and logs each one);
    ``train_args`` go to ``tools/train.py`` (e.g. ``--amp fp16``).
    """
    # tools/test.py evaluates once training is over.
    train_options = data_options + [
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None'
    ]
    if iters is not None:
        train_options += [
            f'train_cfg.max_iters={iters}',
            f'default_hooks.checkpoint.interval={iters}',
            'default_hooks.logger.interval=1'
        ]
    run_tool([
        osp.join('tools', 'train.py'), config, '--work-dir', work_dir,
        *train_args, '--cfg-options'
    ] + train_options)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    run_tool([
        osp.join('tools', 'test.py'), config, checkpoint, '--work-dir',
        work_dir, '--cfg-options'
    ] + data_options)
    return dict(checkpoint=checkpoint, metrics=read_test_metrics(work_dir))


def timed_stage(title: str, config: str, work_dir: str,
                data_options: List[str], iters: Optional[int],
                train_args: Sequence[str]) -> Tuple[Dict, float]:
    """One stage of the demo: its banner (``title``, with the number of
    iterations), then :func:`train_and_test`.

    Returns:
        tuple: :func:`train_and_test`'s result and the seconds it took.
    """
    banner(f'{title}: train {max_iters(config, iters)} iterations, then test')
    tic = time.time()
    result = train_and_test(config, work_dir, data_options, iters, train_args)
    return result, time.time() - tic


def max_iters(config: str, override: Optional[int]) -> int:
    if override is not None:
        return override
    from mmengine.config import Config
    return Config.fromfile(osp.join(ROOT, config)).train_cfg.max_iters


def first_val_images(root: str, info: Dict) -> List[str]:
    """The first :data:`NUM_PICTURES` val images of a toy set (``info`` as
    its ``make_toy_*`` returned it)."""
    count = min(NUM_PICTURES, info['val']['num_images'])
    return [
        osp.join(root, info['val']['img_dir'], f'{i:06d}.jpg')
        for i in range(count)
    ]


def grid(images: List[np.ndarray], cols: int = 2) -> np.ndarray:
    """Tile same-sized RGB images into rows of ``cols``, with white gaps."""
    h = max(img.shape[0] for img in images)
    w = max(img.shape[1] for img in images)
    rows = -(-len(images) // cols)
    gap = 4
    canvas = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3),
                     255,
                     dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        y, x = r * (h + gap), c * (w + gap)
        canvas[y:y + img.shape[0], x:x + img.shape[1]] = img
    return canvas


def draw_predictions(config: str,
                     checkpoint: str,
                     images: List[str],
                     out_file: str,
                     device: Optional[str],
                     with_inputs: bool = False,
                     **kwargs) -> None:
    """Draw a checkpoint's predictions on ``images`` into one picture.

    With ``with_inputs`` each drawing is shown next to its input image.
    """
    from PIL import Image
    inferencer = build_inferencer(
        osp.join(ROOT, config), weights=checkpoint, device=device)
    vis = inferencer(images, return_vis=True, **kwargs)['visualization']
    if with_inputs:
        inputs = [np.asarray(Image.open(p).convert('RGB')) for p in images]
        vis = [img for pair in zip(inputs, vis) for img in pair]
    Image.fromarray(grid(vis)).save(out_file)


def plot_losses(logs: Dict[str, List[Dict]], out_file: str) -> None:
    """Training loss curves, one panel per model, from mmengine's json log."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(logs), figsize=(6 * len(logs), 4))
    for ax, (title, records) in zip(np.atleast_1d(axes), logs.items()):
        steps = [r['iter'] for r in records]
        keys = sorted({
            k
            for r in records
            for k in r if k.startswith('loss') or '.loss' in k
        })
        if len(keys) == 2:  # the total and its only term: one curve
            keys = ['loss']
        for key in keys:
            values = [r.get(key, np.nan) for r in records]
            ax.plot(
                steps,
                values,
                label=key,
                linewidth=2.5 if key == 'loss' else 1.2,
                marker='o' if len(steps) < 10 else None)
        ax.set(title=title, xlabel='iteration', ylabel='loss')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)


def fmt(metrics: Dict, key: str, spec: str = '.3f') -> str:
    value = metrics.get(key)
    return 'n/a' if value is None else format(value, spec)


def shown(path: str) -> str:
    """``path`` relative to the current folder when it lies inside it."""
    rel = osp.relpath(path)
    return path if rel.startswith('..') else rel


def rtmdet_demo(args: argparse.Namespace) -> None:
    """``--rtmdet``: FasterNet-T0 RTMDet on the toy COCO set.

    Trained by epochs with RTMDet's recipe (mosaic and mix-up, then the
    pipeline switch, EMA), evaluated by ``tools/test.py`` on the EMA
    checkpoint; its predictions and loss curve are drawn under
    ``<work-dir>/rtmdet/``.
    """
    start = time.time()
    num_train, num_val = SETTINGS['quick' if args.quick else 'full']['coco']
    coco_root = osp.join(osp.abspath(args.data_root), 'toy_coco')
    work_dir = osp.join(osp.abspath(args.work_dir), 'rtmdet')
    os.makedirs(work_dir, exist_ok=True)

    banner('1/3 toy dataset')
    coco = make_toy_coco(coco_root, num_train=num_train, num_val=num_val)
    print(f"instances: {shown(coco['root'])} ({num_train} train / "
          f'{num_val} val)')
    options = data_options(coco_root, coco['val']['ann_file'])
    if args.quick:
        epochs = RTMDET_QUICK_EPOCHS
        options += [
            f'train_cfg.max_epochs={epochs}',
            f'custom_hooks.1.switch_epoch={epochs - 1}',
            f'default_hooks.checkpoint.interval={epochs}',
            'default_hooks.logger.interval=1'
        ]
    else:
        from mmengine.config import Config
        epochs = Config.fromfile(osp.join(ROOT,
                                          RTMDET_CONFIG)).train_cfg.max_epochs
    banner(f'2/3 RTMDet FasterNet-T0: train {epochs} epochs, then test')
    det = train_and_test(RTMDET_CONFIG, work_dir, options, None,
                         args.train_args)

    banner('3/3 pictures')
    pictures = dict(
        det=osp.join(work_dir, 'rtmdet_predictions.png'),
        loss=osp.join(work_dir, 'rtmdet_loss_curve.png'))
    images = first_val_images(coco_root, coco)
    # RTMDet's scores are IoU-aware (quality focal loss), lower than a
    # two-stage detector's for the same boxes.
    draw_predictions(
        RTMDET_CONFIG,
        det['checkpoint'],
        images,
        pictures['det'],
        args.device,
        pred_score_thr=0.45)
    plot_losses({'RTMDet FasterNet-T0': read_train_log(work_dir)},
                pictures['loss'])

    banner(f'RTMDet demo finished in {(time.time() - start) / 60:.1f} min')
    print('RTMDet FasterNet-T0 on toy val (EMA weights): '
          f"bbox mAP {fmt(det['metrics'], 'coco/bbox_mAP')}")
    print(f'Checkpoints and logs: {shown(work_dir)}')
    print(f'Pictures are in {shown(work_dir)}:')
    print(f"  {shown(pictures['det'])}  (predicted boxes)")
    print(f"  {shown(pictures['loss'])}  (training loss curve)")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.rtmdet:
        rtmdet_demo(args)
        return
    settings = SETTINGS['quick' if args.quick else 'full']
    data_root = osp.abspath(args.data_root)
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    timings = {}
    from mmfasternet.benchmarking import cpu_banner
    print(cpu_banner(), flush=True)

    banner('1/4 toy datasets')
    coco_root = osp.join(data_root, 'toy_coco')
    ade_root = osp.join(data_root, 'toy_ade')
    num_train, num_val = settings['coco']
    coco = make_toy_coco(coco_root, num_train=num_train, num_val=num_val)
    num_train, num_val = settings['ade']
    ade = make_toy_ade(ade_root, num_train=num_train, num_val=num_val)
    for name, info in (('instances', coco), ('semantic', ade)):
        print(f"{name}: {shown(info['root'])} "
              f"({info['train']['num_images']} train / "
              f"{info['val']['num_images']} val, "
              f"{', '.join(info['classes'])})")
    timings['data'] = time.time() - start

    det_dir = osp.join(work_dir, 'det')
    det, timings['detection'] = timed_stage(
        '2/4 Mask R-CNN FasterNet-T0', DET_CONFIG, det_dir,
        data_options(coco_root, coco['val']['ann_file']),
        settings['det_iters'], args.train_args)
    seg_dir = osp.join(work_dir, 'seg')
    seg, timings['segmentation'] = timed_stage('3/4 Semantic FPN FasterNet-T0',
                                               SEG_CONFIG, seg_dir,
                                               data_options(ade_root),
                                               settings['seg_iters'],
                                               args.train_args)

    banner('4/4 pictures')
    tic = time.time()
    pictures = dict(
        det=osp.join(work_dir, 'det_predictions.png'),
        seg=osp.join(work_dir, 'seg_overlay.png'),
        loss=osp.join(work_dir, 'loss_curve.png'))
    draw_predictions(
        DET_CONFIG,
        det['checkpoint'],
        first_val_images(coco_root, coco),
        pictures['det'],
        args.device,
        pred_score_thr=0.5)
    draw_predictions(
        SEG_CONFIG,
        seg['checkpoint'],
        first_val_images(ade_root, ade),
        pictures['seg'],
        args.device,
        with_inputs=True,
        opacity=0.5)
    plot_losses(
        {
            'Mask R-CNN FasterNet-T0': read_train_log(det_dir),
            'Semantic FPN FasterNet-T0': read_train_log(seg_dir)
        }, pictures['loss'])
    timings['pictures'] = time.time() - tic

    total = time.time() - start
    banner(f'demo finished in {total / 60:.1f} min (' +
           ', '.join(f'{k} {v:.0f}s' for k, v in timings.items()) + ')')
    print('Mask R-CNN FasterNet-T0 on toy val: '
          f"bbox mAP {fmt(det['metrics'], 'coco/bbox_mAP')}, "
          f"segm mAP {fmt(det['metrics'], 'coco/segm_mAP')}")
    # mmseg reports IoU in percent.
    print('Semantic FPN FasterNet-T0 on toy val: '
          f"mIoU {fmt(seg['metrics'], 'mIoU', '.1f')}%")
    print(f'Checkpoints and logs: {shown(det_dir)}, {shown(seg_dir)}')
    print(f'Pictures are in {shown(work_dir)}:')
    print(f"  {shown(pictures['det'])}  (predicted boxes and masks)")
    print(f"  {shown(pictures['seg'])}  (val images, predicted classes)")
    print(f"  {shown(pictures['loss'])}  (training loss curves)")


if __name__ == '__main__':
    main()
