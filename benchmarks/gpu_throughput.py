"""The paper's GPU throughput protocol (Table 3), and batch-1 latency, on
this machine's GPU: FasterNet T0-L at 224x224, eager against deploy mode in
fp32, fp16 and bf16.

Per variant and precision, every candidate runs interleaved (A B C A B C
...) on the same input, timed with CUDA events after warm-up:

    timm          timm's FasterNet classifier with the same weights (the
                  paper's model, head included: the reference)
    eager         our backbone (stage outputs), the training code path
    deploy        after ``switch_to_deploy()``: BN folded, fused blocks, the
                  memory format chosen by precision
    deploy-nchw   deploy forced to NCHW            (``--layout-study``)
    deploy-nhwc   deploy forced to channels-last   (``--layout-study``)
    graph         deploy replayed from a CUDA graph (``--cuda-graph``)
    compile       deploy under ``torch.compile``   (``--compile``)

Reported: images/s (batch / median time), the spread of the rounds, and
per-round speed ratios (eager time / candidate time) with their min-max.
The paper's column (2080Ti, batch 32, fp32 throughput of the classifier) is
printed beside timm's for reference; different GPUs do not compare in
absolute terms, the ratios between variants and candidates do.

    python benchmarks/gpu_throughput.py --device cuda              # Table 3
    python benchmarks/gpu_throughput.py --device cuda --batch-size 1 \\
        --cuda-graph                                        # real time
"""
import argparse
import copy
import json
import os
import os.path as osp
from typing import Any, Callable, Dict

import torch

from mmfasternet.benchmarking import (cpu_banner, randomize_bn, ratio_spread,
                                      summarize, time_interleaved)
from mmfasternet.device_options import DeviceOptions, check_device, gpu_banner
from mmfasternet.fast_inference import (CUDAGraphRunner, autocast,
                                        compile_for_inference)
from mmfasternet.models.backbones import FasterNet

#: Table 3 of the paper: GPU throughput (images/s) at 224x224, batch 32.
PAPER_IMG_S = {
    't0': 6807,
    't1': 3782,
    't2': 1991,
    's': 1029,
    'm': 500,
    'l': 323
}
PRECISIONS = ('fp32', 'fp16', 'bf16')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--archs', nargs='+', default=list(PAPER_IMG_S))
    parser.add_argument(
        '--precisions', nargs='+', choices=PRECISIONS, default=PRECISIONS)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--repeat', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument(
        '--number', type=int, default=10, help='calls per timed sample')
    parser.add_argument(
        '--layout-study',
        action='store_true',
        help='also time deploy forced to NCHW and to channels-last')
    parser.add_argument('--cuda-graph', action='store_true')
    parser.add_argument('--compile', action='store_true')
    parser.add_argument('--out-dir', default='work_dirs/gpu')
    parser.add_argument(
        '--quick', action='store_true', help='T0 only, 2 rounds (smoke)')
    args = parser.parse_args()
    try:
        DeviceOptions(
            device=args.device,
            cuda_graph=args.cuda_graph,
            compile=args.compile)
        if check_device(args.device).type != 'cuda':
            raise ValueError('this is the GPU protocol: use --device cuda '
                             '(tools/benchmark.py measures CPUs)')
    except ValueError as e:
        parser.error(str(e))
    if args.quick:
        args.archs, args.repeat, args.warmup = ['t0'], 2, 1
    return args


def timm_classifier(backbone: FasterNet) -> torch.nn.Module:
    """timm's FasterNet classifier holding our backbone's weights."""
    import timm
    ref = timm.create_model(f'fasternet_{backbone.arch_name}')
    state = {
        k: v
        for k, v in backbone.state_dict().items() if not k.startswith('norm')
    }
    ref.load_state_dict(state, strict=False)
    return ref.eval()


def candidates_for(arch: str, precision: str, args,
                   device: torch.device) -> Dict[str, Callable[[], Any]]:
    """The candidates of one variant at one precision, bound to an input."""
    amp = None if precision == 'fp32' else precision
    torch.manual_seed(0)
    eager = randomize_bn(FasterNet(arch)).to(device).eval()
    deploy = copy.deepcopy(eager)
    deploy.switch_to_deploy()
    x = torch.rand(args.batch_size, 3, args.size, args.size, device=device)

    def under_amp(model):

        def run():
            with autocast(device, amp):
                return model(x)

        return run

    runs = {}
    try:
        runs['timm'] = under_amp(timm_classifier(eager).to(device))
    except RuntimeError as e:  # a timm without FasterNet
        print(f'timm reference left out: {e}', flush=True)
    runs.update(eager=under_amp(eager), deploy=under_amp(deploy))
    if args.layout_study:
        for name, channels_last in (('deploy-nchw', False), ('deploy-nhwc',
                                                             True)):
            forced = copy.deepcopy(eager)
            forced.switch_to_deploy(channels_last=channels_last)
            runs[name] = under_amp(forced)
    if args.cuda_graph:
        graph = CUDAGraphRunner(deploy, x, amp=amp, clone_outputs=False)
        runs['graph'] = lambda: graph(x)
    if args.compile:
        runs['compile'] = under_amp(
            compile_for_inference(copy.deepcopy(deploy), device))
    return runs


def measure(arch: str, precision: str, args, device) -> Dict[str, Any]:
    runs = candidates_for(arch, precision, args, device)
    times = time_interleaved(
        runs, args.repeat, args.warmup, device=device, number=args.number)
    rows = {}
    for name, samples in times.items():
        row = summarize(samples)
        row['images_per_s'] = args.batch_size / row['median_s']
        if name != 'eager':
            speed = ratio_spread(times['eager'], samples)
            row.update(
                speedup_vs_eager=speed['median'],
                speedup_vs_eager_min=speed['min'],
                speedup_vs_eager_max=speed['max'])
        rows[name] = row
    return rows


def write_markdown(path: str, result: Dict[str, Any]) -> None:
    names = list(next(iter(next(iter(result['rows'].values())).values())))
    lines = [
        f'FasterNet GPU throughput, {result["batch_size"]}x3x'
        f'{result["size"]}x{result["size"]}, {result["repeat"]} interleaved '
        f'rounds of {result["number"]} calls; {result["gpu"]}', '',
        '| variant | precision | paper img/s (2080Ti, fp32) | ' +
        ' | '.join(f'{n} img/s' for n in names) + ' | ' +
        ' | '.join(f'{n}/eager speed' for n in names if n != 'eager') + ' |',
        '|---' * (3 + 2 * len(names) - 1) + '|'
    ]
    for arch, by_precision in result['rows'].items():
        for precision, rows in by_precision.items():
            speeds = [
                f'{rows[n]["speedup_vs_eager"]:.2f} '
                f'[{rows[n]["speedup_vs_eager_min"]:.2f}-'
                f'{rows[n]["speedup_vs_eager_max"]:.2f}]' for n in names
                if n != 'eager'
            ]
            lines.append(f'| {arch.upper()} | {precision} | '
                         f'{PAPER_IMG_S.get(arch, "-")} | ' +
                         ' | '.join(f'{rows[n]["images_per_s"]:.0f}'
                                    for n in names) + ' | ' +
                         ' | '.join(speeds) + ' |')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    banner = gpu_banner(device)
    print(cpu_banner())
    print(banner, flush=True)
    result = dict(
        gpu=banner,
        batch_size=args.batch_size,
        size=args.size,
        repeat=args.repeat,
        number=args.number,
        rows={})
    for arch in args.archs:
        result['rows'][arch] = {}
        for precision in args.precisions:
            rows = measure(arch, precision, args, device)
            result['rows'][arch][precision] = rows
            print(
                f'{arch.upper():>2} {precision}: ' +
                ', '.join(f'{n} {r["images_per_s"]:.0f} img/s' +
                          (f' ({r["speedup_vs_eager"]:.2f}x eager)'
                           if 'speedup_vs_eager' in r else '')
                          for n, r in rows.items()),
                flush=True)
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.join(args.out_dir,
                    f'gpu_throughput_b{args.batch_size}_{args.size}')
    with open(stem + '.json', 'w') as f:
        json.dump(result, f, indent=2)
    write_markdown(stem + '.md', result)
    with open(stem + '.md') as f:
        print(f.read())
    print(f'wrote {stem}.json, .md')


if __name__ == '__main__':
    main()
