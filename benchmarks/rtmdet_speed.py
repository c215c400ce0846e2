"""RTMDet with FasterNet-T0/T1/T2 against stock RTMDet-tiny and RTMDet-s.

Whole-detector latency at 1x3x640x640, fp32, CPU, batch 1: backbone, neck
and head, ``model(inputs, mode='tensor')``. Like RTMDet's published
latencies, the time excludes the box decoding and NMS, whose cost depends on
how many boxes the weights score above the threshold (with random weights,
all of them). Every candidate is built in this one process with random
weights and random BN statistics, runs on the same input, and is timed in
interleaved rounds (A B C ... A B C ...) so that machine noise hits all of
them alike. Reported: median and min-max seconds, and ratios of medians:
FasterNet-T0 against RTMDet-tiny, T1 and T2 against RTMDet-s.

Two modes per model:

* eager: the training code path in eval mode;
* deploy: for our configs, ``switch_to_deploy()`` on the FasterNet backbone
  (BN folded, fused blocks, channels-last); for stock RTMDet, the same
  re-parameterisation available to CSPNeXt, its conv-BN pairs fused
  (``mmcv.cnn.fuse_conv_bn``). Neck and head run unchanged in both, so a
  deploy ratio compares backbones folded alike.

If FasterNet-T0 RTMDet is slower than RTMDet-tiny in either mode, a profile
by module (backbone stages, neck, head) of the two follows, so the table
shows where the time goes.

Results (JSON and a markdown table) go to ``work_dirs/benchmarks/``. It is a
benchmark, not a test: numbers vary with the machine and its load.

Examples::

    python benchmarks/rtmdet_speed.py              # ~15 rounds, a few minutes
    python benchmarks/rtmdet_speed.py --quick      # 2 rounds at 320x320
    python benchmarks/rtmdet_speed.py --device cuda --amp fp16 --cuda-graph

On a GPU (``--device cuda``) the candidates are timed with CUDA events, and
``--cuda-graph`` adds a third mode per model: the deployed network replayed
from a CUDA graph (batch 1 is launch-bound on a GPU). The module profile is
CPU-only.
"""
import argparse
import copy
import functools
import json
import os
import os.path as osp
import statistics
import time
import warnings
from typing import Dict, List

import torch
from mmengine.logging import MMLogger
from torch import nn

from mmfasternet.benchmarking import (add_timing_arguments, build_random_model,
                                      calls_per_sample, cpu_banner,
                                      max_relative_error, time_interleaved)
from mmfasternet.device_options import gpu_banner, parse_device_args
from mmfasternet.fast_inference import CUDAGraphRunner
from mmfasternet.inference import switch_fasternet_to_deploy

# mmengine / mmcv import pkg_resources; its deprecation notice is noise here.
warnings.filterwarnings('ignore', 'pkg_resources is deprecated', UserWarning)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
STOCK = 'mmdet::rtmdet/rtmdet_{}_8xb32-300e_coco.py'
OURS = osp.join(REPO, 'configs', 'rtmdet_fasternet_{}_8xb32-300e_coco.py')
# (label, config, stock reference label)
MODELS_UNDER_TEST = (
    ('RTMDet-tiny', STOCK.format('tiny'), None),
    ('FasterNet-T0', OURS.format('t0'), 'RTMDet-tiny'),
    ('RTMDet-s', STOCK.format('s'), None),
    ('FasterNet-T1', OURS.format('t1'), 'RTMDet-s'),
    ('FasterNet-T2', OURS.format('t2'), 'RTMDet-s'),
)
MODES = ('eager', 'deploy')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='RTMDet FasterNet vs stock RTMDet: CPU latency')
    parser.add_argument(
        '--size', type=int, default=640, help='square input side')
    add_timing_arguments(parser, repeat=15, warmup=2, number_on_cuda=10)
    parser.add_argument(
        '--threads', type=int, default=None, help='torch intra-op threads')
    parser.add_argument(
        '--profile',
        choices=['auto', 'always', 'never'],
        default='auto',
        help='profile T0 and tiny by module (auto: if T0 is slower)')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='2 rounds at 320x320, to check that it runs')
    parser.add_argument('--out-dir', default='work_dirs/benchmarks')
    args, opts = parse_device_args(parser, cuda_graph=True)
    args.number = calls_per_sample(args.number, opts.is_cuda)
    if args.quick:
        args.size, args.repeat, args.warmup = 320, 2, 1
    return args


def deployed(model: nn.Module) -> nn.Module:
    """Ours: FasterNet deploy mode; stock: CSPNeXt's conv-BN pairs fused."""
    from mmcv.cnn import fuse_conv_bn
    model = copy.deepcopy(model)
    if switch_fasternet_to_deploy(model) == 0:
        model.backbone = fuse_conv_bn(model.backbone)
    return model.eval()


def profiled_parts(model: nn.Module) -> Dict[str, nn.Module]:
    """The modules a profile times: the backbone's parts (the layers of a
    ModuleList one by one), the backbone as a whole, and the neck."""
    parts = {}
    for name, child in model.backbone.named_children():
        if isinstance(child, nn.ModuleList):
            for i, layer in enumerate(child):
                parts[f'backbone.{name}.{i}'] = layer
        elif any(True for _ in child.parameters()):
            parts[f'backbone.{name}'] = child
    parts.update(backbone=model.backbone, neck=model.neck)
    return parts


def module_profile(models: Dict[str, nn.Module], batch: torch.Tensor,
                   repeat: int) -> Dict[str, Dict[str, float]]:
    """Median milliseconds per module of each model, eager.

    Forward hooks time the backbone's parts and the neck; the head, which
    RTMDet calls as ``bbox_head.forward`` (no hooks run), is the rest of the
    whole forward. The models run interleaved, ``repeat`` rounds after one
    untimed round.
    """
    samples: Dict[str, Dict[str, List[float]]] = {}
    handles = []
    for label, model in models.items():
        parts = profiled_parts(model)
        samples[label] = {name: [] for name in [*parts, 'total']}
        for name, module in parts.items():
            started = {}

            def pre(_m, _i, started=started):
                started['t'] = time.perf_counter()

            def post(_m, _i, _o, times=samples[label][name], started=started):
                times.append(time.perf_counter() - started['t'])

            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(post))
    try:
        with torch.no_grad():
            for _ in range(repeat + 1):
                for label, model in models.items():
                    start = time.perf_counter()
                    model(batch, mode='tensor')
                    samples[label]['total'].append(time.perf_counter() - start)
    finally:
        for handle in handles:
            handle.remove()
    profile = {}
    for label, parts in samples.items():
        medians = {
            name: statistics.median(v[1:]) * 1e3
            for name, v in parts.items()
        }
        medians['bbox_head (total - backbone - neck)'] = (
            medians['total'] - medians['backbone'] - medians['neck'])
        profile[label] = medians
    return profile


def summarize(times: Dict[str, List[float]], modes=MODES) -> Dict[str, dict]:
    medians = {k: statistics.median(v) for k, v in times.items()}
    rows = {}
    for label, _, reference in MODELS_UNDER_TEST:
        for mode in modes:
            name = f'{label} {mode}'
            row = dict(
                median_s=medians[name],
                min_s=min(times[name]),
                max_s=max(times[name]))
            if reference is not None:
                row['reference'] = f'{reference} {mode}'
                row['ratio'] = medians[name] / medians[row['reference']]
            rows[name] = row
    return rows


def markdown(rows: Dict[str, dict], header: str) -> str:
    lines = [
        header, '', '| model | mode | median s | min-max s | vs stock |',
        '|---|---|---|---|---|'
    ]
    for name, row in rows.items():
        label, mode = name.rsplit(' ', 1)
        ratio = (f"{row['ratio']:.2f}x {row['reference'].rsplit(' ', 1)[0]}"
                 if 'ratio' in row else '-')
        lines.append(f"| {label} | {mode} | {row['median_s']:.4f} | "
                     f"{row['min_s']:.4f}-{row['max_s']:.4f} | {ratio} |")
    return '\n'.join(lines) + '\n'


def profile_markdown(profile: Dict[str, Dict[str, float]]) -> str:
    lines = ['| model | module | median ms |', '|---|---|---|']
    for label, parts in profile.items():
        for name, ms in parts.items():
            lines.append(f'| {label} | {name} | {ms:.1f} |')
    return '\n'.join(lines) + '\n'


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    # Quiet: init_weights() reports every parameter at INFO level.
    MMLogger.get_instance('rtmdet_speed', log_level='WARNING')
    opts = args.device_options
    banner = cpu_banner()
    if opts.is_cuda:
        torch.backends.cudnn.benchmark = True
        banner += f'; {gpu_banner(opts.device)}'
    print(banner, flush=True)
    modes = MODES + (('graph', ) if opts.cuda_graph else ())

    batch = torch.rand(1, 3, args.size, args.size) * 4 - 2
    batch = batch.to(opts.device).contiguous(memory_format=opts.memory_format)
    candidates, errors, eager_models = {}, {}, {}
    for label, config, _ in MODELS_UNDER_TEST:
        model = opts.prepare(build_random_model(config, random_bn=True))
        fast = deployed(model)
        with torch.no_grad(), opts.autocast():
            errors[label] = max_relative_error(
                fast(batch, mode='tensor'), model(batch, mode='tensor'))
        eager_models[label] = model
        for mode, net in zip(MODES, (model, fast)):
            candidates[f'{label} {mode}'] = opts.with_amp(
                lambda x, net=net: net(x, mode='tensor'))
        if opts.cuda_graph:
            candidates[f'{label} graph'] = CUDAGraphRunner(
                lambda x, net=fast: net(x, mode='tensor'),
                batch,
                amp=opts.amp,
                clone_outputs=False)
    for label, error in errors.items():
        print(f'{label}: deploy vs eager relative error {error:.1e}')

    print(
        f'timing {len(candidates)} candidates, {args.repeat} rounds at '
        f'1x3x{args.size}x{args.size} ...',
        flush=True)
    runs = {
        name: functools.partial(run, batch)
        for name, run in candidates.items()
    }
    rows = summarize(
        time_interleaved(
            runs,
            rounds=args.repeat,
            warmup=args.warmup,
            device=opts.device,
            number=args.number), modes)
    header = (f'RTMDet whole detector (network, no NMS), 1x3x{args.size}x'
              f'{args.size}, {opts.describe()}, {args.repeat} interleaved '
              f'rounds; {banner}')
    table = markdown(rows, header)
    print('\n' + table)

    slower = any(rows[f'FasterNet-T0 {m}']['ratio'] > 1 for m in MODES)
    profile = None
    if opts.is_cuda:
        pass  # the module profile times CPU wall clock only
    elif args.profile == 'always' or (args.profile == 'auto' and slower):
        print('FasterNet-T0 vs RTMDet-tiny by module (eager, median ms):')
        profile = module_profile(
            {k: eager_models[k]
             for k in ('RTMDet-tiny', 'FasterNet-T0')}, batch, args.repeat)
        table += '\n' + profile_markdown(profile)
        print(profile_markdown(profile))

    out_dir = osp.join(REPO, args.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    stem = osp.join(
        out_dir,
        opts.report_name('rtmdet_speed' + ('_quick' if args.quick else '')))
    result = dict(
        banner=banner,
        shape=[1, 3, args.size, args.size],
        repeat=args.repeat,
        warmup=args.warmup,
        threads=torch.get_num_threads(),
        device=opts.info(),
        number=args.number,
        deploy_rel_error=errors,
        rows=rows,
        profile_median_ms=profile)
    with open(stem + '.json', 'w') as f:
        json.dump(result, f, indent=2)
    with open(stem + '.md', 'w') as f:
        f.write(table)
    print(f'wrote {stem}.json and {stem}.md')


if __name__ == '__main__':
    main()
