"""FasterNet against GhostNetV2 (and two well-known references) on a CPU.

One process builds every candidate with random weights and random BN
statistics and times it on the same inputs in interleaved rounds (A B C ...
A B C ...), so that machine noise hits all of them alike:

* backbones: FasterNet-T0/T1/T2, GhostNetV2-1.0/1.3/1.6, mmdet's
  MobileNetV2 (1.0) and RTMDet's CSPNeXt-tiny; params, MACs, latency at
  224x224 and 640x640, batch 1, on one thread and on all threads, and the
  achieved GFLOP/s (2 FLOPs per multiply-add of the convolutions);
* whole detectors: the Mask R-CNN configs of both families at 800x1344
  (``predict`` with 100 detections, so the mask head sees 100 RoIs for
  every backbone) and their RTMDet configs at 640x640 (``mode='tensor'``:
  backbone, neck and head without box decoding and NMS, as RTMDet's
  published latencies), all threads.

Every backbone runs in its inference form with BN folded and in
channels-last memory format (oneDNN convolutions): FasterNet in its deploy
mode (``switch_to_deploy()``), the others with their conv-BN pairs fused by
``mmcv.cnn.fuse_conv_bn`` and wrapped in :class:`ChannelsLast`. Outputs are
checked against the eager model before timing (relative error at most
``FOLD_TOLERANCE``, or the run stops). Outputs at strides 4, 8, 16 and 32,
each at the end of its resolution; FasterNet, GhostNetV2 and CSPNeXt run no
classification head or final 1x1 conv. MobileNetV2 is mmdet's as a detector
backbone runs it: its forward runs every layer, the 1280-channel ``conv2``
included (in the params, MACs and latency), although no output is taken
from it.

Writes JSON, a markdown table and a chart (latency against MACs, one point
per model) to ``work_dirs/benchmarks/``. A benchmark, not a test: numbers
vary with the machine and its load.

Examples::

    python benchmarks/backbone_comparison.py           # about 5 minutes
    python benchmarks/backbone_comparison.py --quick   # a smoke test
"""
import argparse
import copy
import json
import math
import os
import os.path as osp
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import MMLogger
from mmengine.registry import MODELS, init_default_scope
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mmfasternet.benchmarking import (add_timing_arguments, build_random_model,
                                      calls_per_sample, cpu_banner, cpu_info,
                                      detector_runner, equal_roi_work,
                                      gemm_peak_gflops, max_relative_error,
                                      randomize_bn, summarize,
                                      time_interleaved)
from mmfasternet.device_options import (DeviceOptions, gpu_banner,
                                        parse_device_args)
from mmfasternet.inference import switch_fasternet_to_deploy

# mmengine / mmcv import pkg_resources; its deprecation notice is noise here.
warnings.filterwarnings('ignore', 'pkg_resources is deprecated', UserWarning)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Largest relative error of the folded (timed) form against the eager model:
# fp32 on a CPU; on a GPU cuDNN computes fp32 convolutions in TF32 (10-bit
# mantissa); under autocast in fp16 / bf16.
FOLD_TOLERANCE = 1e-4
FOLD_TOLERANCE_TF32 = 5e-3
FOLD_TOLERANCE_AMP = 5e-2
# label: (family, backbone config, published ImageNet top-1 in %, source)
BACKBONES: Dict[str, Tuple[str, dict, float, str]] = {
    'FasterNet-T0': ('FasterNet', dict(type='FasterNet', arch='t0'), 71.9,
                     'FasterNet paper'),
    'FasterNet-T1': ('FasterNet', dict(type='FasterNet', arch='t1'), 76.2,
                     'FasterNet paper'),
    'FasterNet-T2': ('FasterNet', dict(type='FasterNet', arch='t2'), 78.9,
                     'FasterNet paper'),
    'GhostNetV2-1.0': ('GhostNetV2', dict(type='GhostNetV2', arch='1.0'),
                       75.3, 'GhostNetV2 paper'),
    'GhostNetV2-1.3': ('GhostNetV2', dict(type='GhostNetV2', arch='1.3'),
                       76.9, 'GhostNetV2 paper'),
    'GhostNetV2-1.6': ('GhostNetV2', dict(type='GhostNetV2', arch='1.6'),
                       77.8, 'GhostNetV2 paper'),
    # Layers 2, 3, 5 and 7 end strides 4, 8, 16 and 32.
    'MobileNetV2': ('reference',
                    dict(type='mmdet.MobileNetV2', out_indices=(1, 2, 4, 6)),
                    72.0, 'MobileNetV2 paper'),
    # RTMDet-tiny's backbone; stages 1-4 end strides 4 to 32.
    'CSPNeXt-tiny': ('reference',
                     dict(
                         type='mmdet.CSPNeXt',
                         deepen_factor=0.167,
                         widen_factor=0.375,
                         out_indices=(1, 2, 3, 4)), 69.44,
                     'mmdet RTMDet ImageNet pre-training'),
}  # yapf: disable
DETECTORS = {
    'mask_rcnn': [(label, osp.join(REPO, 'configs', name)) for label, name in (
        ('FasterNet-T0', 'mask_rcnn_fasternet_t0_fpn_1x_coco.py'),
        ('FasterNet-T1', 'mask_rcnn_fasternet_t1_fpn_1x_coco.py'),
        ('FasterNet-T2', 'mask_rcnn_fasternet_t2_fpn_1x_coco.py'),
        ('GhostNetV2-1.0', 'mask_rcnn_ghostnetv2_100_fpn_1x_coco.py'),
        ('GhostNetV2-1.3', 'mask_rcnn_ghostnetv2_130_fpn_1x_coco.py'),
        ('GhostNetV2-1.6', 'mask_rcnn_ghostnetv2_160_fpn_1x_coco.py'),
    )],
    'rtmdet': [(label, osp.join(REPO, 'configs', name)) for label, name in (
        ('FasterNet-T0', 'rtmdet_fasternet_t0_8xb32-300e_coco.py'),
        ('FasterNet-T1', 'rtmdet_fasternet_t1_8xb32-300e_coco.py'),
        ('FasterNet-T2', 'rtmdet_fasternet_t2_8xb32-300e_coco.py'),
        ('GhostNetV2-1.0', 'rtmdet_ghostnetv2_100_8xb32-300e_coco.py'),
        ('GhostNetV2-1.3', 'rtmdet_ghostnetv2_130_8xb32-300e_coco.py'),
        ('GhostNetV2-1.6', 'rtmdet_ghostnetv2_160_8xb32-300e_coco.py'),
    )],
}  # yapf: disable
# Chart labels of the models whose points sit close together.
LABEL_OFFSETS = {
    'FasterNet-T0': (5, -8),
    'MobileNetV2': (-30, 7),
    'CSPNeXt-tiny': (6, 0),
}
FAMILY_COLORS = dict(
    FasterNet='tab:blue', GhostNetV2='tab:orange', reference='tab:gray')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='FasterNet vs GhostNetV2 vs references: CPU latency')
    parser.add_argument(
        '--sizes',
        type=int,
        nargs='+',
        default=[224, 640],
        help='square backbone input sides')
    add_timing_arguments(
        parser,
        repeat=10,
        warmup=2,
        repeat_help='timed rounds per backbone candidate')
    parser.add_argument(
        '--detector-repeat',
        type=int,
        default=3,
        help='timed rounds per whole detector')
    parser.add_argument(
        '--detector-shape',
        type=int,
        nargs=2,
        default=[800, 1344],
        metavar=('H', 'W'),
        help='Mask R-CNN input')
    parser.add_argument(
        '--rtmdet-size', type=int, default=640, help='RTMDet input side')
    parser.add_argument(
        '--no-detectors', action='store_true', help='time the backbones only')
    parser.add_argument(
        '--out-dir', default=osp.join(REPO, 'work_dirs', 'benchmarks'))
    parser.add_argument(
        '--quick',
        action='store_true',
        help='smoke test: small inputs, 1 round, no warm-up')
    args, opts = parse_device_args(parser)
    args.detectors = [label for label, _ in DETECTORS['mask_rcnn']]
    args.name = opts.report_name('backbone_comparison')
    args.fold_tolerance = (
        FOLD_TOLERANCE_AMP if opts.amp else
        FOLD_TOLERANCE_TF32 if opts.is_cuda else FOLD_TOLERANCE)
    if args.quick:
        args.sizes, args.repeat, args.detector_repeat = [64], 1, 1
        args.warmup, args.detector_shape, args.rtmdet_size = 0, [128, 160], 64
        args.detectors = ['FasterNet-T1', 'GhostNetV2-1.0']
        args.name += '_quick'
    return args


# --------------------------------------------------------------------------
# models


class ChannelsLast(nn.Module):
    """Run a backbone in channels-last memory format, as FasterNet's deploy
    mode does: the input is converted on entry, the outputs back to NCHW.

    PyTorch sends channels-last convolutions to oneDNN; in NCHW it computes
    1x1 convolutions with its slower native kernel (measured here: 20-25%
    slower for GhostNetV2, MobileNetV2 and CSPNeXt on one thread).
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor):
        outs = self.backbone(x.contiguous(memory_format=torch.channels_last))
        return tuple(
            o.contiguous(memory_format=torch.contiguous_format) for o in outs)


def folded(model: nn.Module) -> nn.Module:
    """The inference form: FasterNet's deploy mode; any other backbone with
    its conv-BN pairs fused, in channels-last (:class:`ChannelsLast`)."""
    from mmcv.cnn import fuse_conv_bn
    model = copy.deepcopy(model)
    model.eval()
    if switch_fasternet_to_deploy(model) == 0:
        if hasattr(model, 'backbone'):
            model.backbone = ChannelsLast(fuse_conv_bn(model.backbone))
        else:
            model = ChannelsLast(fuse_conv_bn(model))
    model.eval()
    return model


def build_backbone(cfg: dict) -> nn.Module:
    init_default_scope('mmdet')
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    return randomize_bn(model)


def build_detector(config: str) -> Tuple[nn.Module, float]:
    """The detector in inference form, and its params (in M) as built."""
    model = build_random_model(config)
    # The same RoI-head work for every backbone, whatever the random
    # weights make of the proposals and scores.
    equal_roi_work(model)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return folded(randomize_bn(model)), params


def check_folded(label: str,
                 model: Callable,
                 eager: Callable,
                 x: torch.Tensor,
                 tolerance: float = FOLD_TOLERANCE) -> float:
    """The relative error of the folded ``model`` against ``eager`` on
    ``x``.

    Raises:
        AssertionError: If it is above ``tolerance``: a wrong fold would
            otherwise be timed.
    """
    with torch.no_grad():
        error = max_relative_error(model(x), eager(x))
    if not error <= tolerance:  # also NaN
        raise AssertionError(
            f'{label}: the folded model differs from the eager one by '
            f'{error:.2e} (relative), above the tolerance {tolerance:g}')
    return error


def gmacs(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds of the convolutions and matmuls, in G (torch's flop
    counter counts 2 FLOPs per multiply-add)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 2e9


def rtmdet_runner(model: nn.Module) -> Callable:
    return lambda x: model(x, mode='tensor')


# --------------------------------------------------------------------------
# measurement


def stats(times: List[float]) -> dict:
    return dict(summarize(times), rounds=len(times))


def thread_settings_for(opts: DeviceOptions) -> List[int]:
    """Torch threads to time: 1 and all on a CPU; all on a GPU, whose
    kernels do not use them."""
    all_threads = torch.get_num_threads()
    return [all_threads] if opts.is_cuda else sorted({1, all_threads})


def time_backbones(models: Dict[str, nn.Module], sizes: List[int], repeat: int,
                   warmup: int, opts: DeviceOptions) -> Dict[str, dict]:
    """Interleave every (model, size, threads) triple within each round."""
    all_threads = torch.get_num_threads()
    thread_settings = thread_settings_for(opts)
    inputs = {s: opts.rand(1, 3, s, s) for s in sizes}
    candidates = {}
    for threads in thread_settings:
        for size in sizes:
            for label, model in models.items():
                key = f'{label}|{size}|{threads}'
                candidates[key] = (threads, model, inputs[size])
    times = time_interleaved(
        {
            key: opts.with_amp(_with_threads(threads, model, x))
            for key, (threads, model, x) in candidates.items()
        },
        rounds=repeat,
        warmup=warmup,
        device=opts.device,
        number=calls_per_sample(None, opts.is_cuda))
    torch.set_num_threads(all_threads)
    return {key: stats(values) for key, values in times.items()}


def _with_threads(threads: int, model: nn.Module,
                  x: torch.Tensor) -> Callable[[], object]:

    def run():
        torch.set_num_threads(threads)
        return model(x)

    return run


def time_detectors(kind: str, shape, repeat: int, warmup: int,
                   labels: Sequence[str], log: Callable,
                   opts: DeviceOptions) -> Dict[str, dict]:
    runs, params, x = {}, {}, opts.rand(1, 3, *shape)
    for label, config in DETECTORS[kind]:
        if label not in labels:
            continue
        if not osp.isfile(config):
            log(f'  {kind}: {osp.basename(config)} not found, skipped')
            continue
        model, params[label] = build_detector(config)
        model.to(opts.device)
        runs[label] = opts.with_amp(
            detector_runner(model, 1, shape) if kind ==
            'mask_rcnn' else rtmdet_runner(model))
        log(f'  {kind} {label}: {params[label]:.2f}M params')
    times = time_interleaved({
        k: (lambda r=r: r(x))
        for k, r in runs.items()
    },
                             rounds=repeat,
                             warmup=warmup,
                             device=opts.device)
    return {
        k:
        dict(
            stats(v),
            params_m=params[k],
            config=osp.relpath(dict(DETECTORS[kind])[k], REPO))
        for k, v in times.items()
    }


# --------------------------------------------------------------------------
# report


def ratio(a: Optional[dict], b: Optional[dict]) -> Optional[float]:
    if not a or not b:
        return None
    return a['median_s'] / b['median_s']


def fmt_time(row: dict) -> str:
    ms = 1e3
    return (f'{row["median_s"] * ms:.1f} '
            f'({row["min_s"] * ms:.1f}-{row["max_s"] * ms:.1f})')


def markdown(result: dict) -> str:
    sizes, threads = result['sizes'], result['thread_settings']
    lines = [
        result['cpu'], '', 'Backbones, batch 1, ms: median (min-max) of '
        f'{result["repeat"]} interleaved rounds; GFLOP/s = 2 x MACs / median.'
        ' MACs: convolutions and matmuls.', ''
    ]
    head = ['backbone', 'ImageNet top-1', 'params']
    head += [f'GMACs {s}' for s in sizes]
    for s in sizes:
        for t in threads:
            head.append(f'{s}² {t}T ms')
    head += [f'GFLOP/s {sizes[-1]}² {t}T' for t in threads]
    lines += ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for label, row in result['backbones'].items():
        cells = [
            label, f'{row["top1"]}', f'{row["params_m"]:.2f}M',
            *[f'{row["gmacs"][str(s)]:.3f}' for s in sizes]
        ]
        for s in sizes:
            for t in threads:
                cells.append(fmt_time(row['latency'][f'{s}|{t}']))
        for t in threads:
            cells.append(f'{row["gflops_per_s"][f"{sizes[-1]}|{t}"]:.0f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    peak = result['peak']
    lines += [
        '', f'Same-run fp32 peak (all threads, best round): '
        f'{peak["peak_gflops"]:.0f} GFLOP/s ({peak["kernel"]}; median '
        f'{peak["median_gflops"]:.0f})'
    ]
    for kind, shape in (('mask_rcnn', result['detector_shape']),
                        ('rtmdet', [result['rtmdet_size']] * 2)):
        rows = result['detectors'].get(kind)
        if not rows:
            continue
        rounds = sorted({row['rounds'] for row in rows.values()})
        lines += [
            '', f'Whole {kind} at {shape[0]}x{shape[1]}, '
            f'{result["all_threads"]} threads, ms: median (min-max) of '
            f'{"/".join(map(str, rounds))} rounds', '',
            '| backbone | params | latency ms |', '|---|---|---|'
        ]
        for label, row in rows.items():
            lines.append(f'| {label} | {row["params_m"]:.2f}M | '
                         f'{fmt_time(row)} |')
    lines += ['', 'Headline ratios (FasterNet-T1 / GhostNetV2-1.0 latency):']
    for key, value in result['headline'].items():
        if value is not None:
            lines.append(f'* {key}: {value:.2f}')
    return '\n'.join(lines) + '\n'


def log_axis(values: Sequence[float]) -> Tuple[Tuple[float, float], list]:
    """A log-scale range around ``values``, with room for the labels right
    of the points, and its power-of-two ticks (at least one)."""
    low, high = min(values) / 1.3, max(values) * 1.55
    first, last = math.floor(math.log2(low)), math.ceil(math.log2(high))
    ticks = [2.**e for e in range(first, last + 1) if low <= 2.**e <= high]
    return (low, high), ticks


def chart(result: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    size = result['sizes'][-1]
    threads = result['thread_settings']
    fig, axes = plt.subplots(
        1, len(threads), figsize=(4.2 * len(threads), 3.4), dpi=90)
    axes = axes if len(threads) > 1 else [axes]
    x_range, ticks = log_axis(
        [row['gmacs'][str(size)] for row in result['backbones'].values()])
    for ax, t in zip(axes, threads):
        for label, row in result['backbones'].items():
            x = row['gmacs'][str(size)]
            y = row['latency'][f'{size}|{t}']['median_s'] * 1e3
            ax.scatter(x, y, color=FAMILY_COLORS[row['family']], s=28)
            ax.annotate(
                label.replace('GhostNetV2', 'GNv2').replace('FasterNet', 'FN'),
                (x, y),
                fontsize=7,
                xytext=LABEL_OFFSETS.get(label, (4, 2)),
                textcoords='offset points')
        ax.set_xscale('log')
        ax.set_xlim(*x_range)
        ax.set_xticks(ticks, [f'{t:.3g}' for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f'GMACs at {size}x{size} (log scale)')
        ax.set_ylabel('latency, ms (median)')
        ax.set_title(f'{t} thread{"s" if t > 1 else ""}', fontsize=9)
        ax.grid(alpha=0.3)
    handles = [
        plt.Line2D([], [], marker='o', ls='', color=c, label=f)
        for f, c in FAMILY_COLORS.items()
    ]
    axes[0].legend(handles=handles, fontsize=7, loc='upper left')
    fig.suptitle(
        f'Backbone latency against MACs, batch 1, {size}x{size}, '
        'CPU fp32',
        fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    MMLogger.get_instance('backbone_comparison', log_level='WARNING')
    os.makedirs(args.out_dir, exist_ok=True)
    torch.manual_seed(0)
    started = time.time()

    def log(msg: str) -> None:
        print(f'[{time.time() - started:6.1f} s] {msg}', flush=True)

    opts = args.device_options
    print(cpu_banner(), flush=True)
    if opts.is_cuda:
        torch.backends.cudnn.benchmark = True
        print(f'{gpu_banner(opts.device)}; {opts.describe()}', flush=True)
    all_threads = torch.get_num_threads()
    eager, models = {}, {}
    backbones = {}
    probe = opts.rand(1, 3, 96, 128)
    for label, (family, cfg, top1, source) in BACKBONES.items():
        eager[label] = opts.prepare(build_backbone(cfg))
        models[label] = folded(eager[label])
        with opts.autocast():
            error = check_folded(label, models[label], eager[label], probe,
                                 args.fold_tolerance)
        backbones[label] = dict(
            family=family,
            top1=top1,
            top1_source=source,
            params_m=sum(p.numel() for p in eager[label].parameters()) / 1e6,
            gmacs={
                str(s): gmacs(eager[label], opts.rand(1, 3, s, s))
                for s in args.sizes
            },
            folded_rel_error=error)
        log(f'{label}: {backbones[label]["params_m"]:.2f}M params, '
            f'{backbones[label]["gmacs"][str(args.sizes[0])]:.3f} GMACs at '
            f'{args.sizes[0]}, folded vs eager rel. error {error:.1e}')
    # On a GPU: cuBLAS and cuDNN in the run's precision.
    dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16}.get(opts.amp)
    peak = gemm_peak_gflops(
        rounds=max(args.repeat // 3, 1),
        device=opts.device,
        dtype=dtype or torch.float32)
    log(f'timing backbones; fp32 peak {peak["peak_gflops"]:.0f} GFLOP/s '
        f'({peak["kernel"]}, best round)')
    timed = time_backbones(models, args.sizes, args.repeat, args.warmup, opts)
    thread_settings = thread_settings_for(opts)
    for label, row in backbones.items():
        row['latency'] = {
            f'{s}|{t}': timed[f'{label}|{s}|{t}']
            for s in args.sizes
            for t in thread_settings
        }
        row['gflops_per_s'] = {
            key: 2 * row['gmacs'][key.split('|')[0]] / value['median_s']
            for key, value in row['latency'].items()
        }
    log('backbones done')

    detectors = {}
    if not args.no_detectors:
        for kind, shape, repeat in (
            ('mask_rcnn', args.detector_shape, args.detector_repeat),
            ('rtmdet', [args.rtmdet_size] * 2, args.repeat // 2 or 1),
        ):
            log(f'timing whole {kind} at {shape[0]}x{shape[1]}')
            detectors[kind] = time_detectors(kind, shape, repeat,
                                             min(args.warmup, 1),
                                             args.detectors, log, opts)

    size = args.sizes[-1]
    t1, g1 = backbones['FasterNet-T1'], backbones['GhostNetV2-1.0']
    headline = {
        f'backbone {size}x{size}, {t} thread(s)':
        ratio(t1['latency'][f'{size}|{t}'], g1['latency'][f'{size}|{t}'])
        for t in thread_settings
    }
    for kind, rows in detectors.items():
        headline[f'whole {kind}'] = ratio(
            rows.get('FasterNet-T1'), rows.get('GhostNetV2-1.0'))
    families = {}
    for label, row in backbones.items():
        families.setdefault(row['family'], {})[label] = row['gflops_per_s']
    result = dict(
        cpu=cpu_banner(),
        cpu_info=cpu_info(),
        device=opts.info(),
        torch=torch.__version__,
        all_threads=all_threads,
        thread_settings=thread_settings,
        sizes=args.sizes,
        repeat=args.repeat,
        detector_repeat=args.detector_repeat,
        detector_shape=args.detector_shape,
        rtmdet_size=args.rtmdet_size,
        peak=peak,
        backbones=backbones,
        detectors=detectors,
        achieved_gflops_per_s_by_family=families,
        headline=headline,
        seconds=time.time() - started)
    stem = osp.join(args.out_dir, args.name)
    with open(stem + '.json', 'w') as f:
        json.dump(result, f, indent=2)
    table = markdown(result)
    with open(stem + '.md', 'w') as f:
        f.write(table)
    chart(result, stem + '.png')
    print('\n' + table)
    print(f'wrote {stem}.json, .md and .png in {time.time() - started:.0f} s')


if __name__ == '__main__':
    main()
