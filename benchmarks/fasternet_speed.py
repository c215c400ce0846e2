"""The project's speed benchmark: FasterNet T0 / S / M at 800x1344 on CPU.

Runs ``tools/benchmark.py`` (one process per configuration, every candidate
interleaved inside it) and prints a summary of the ratios docs/speed.md
quotes: deploy vs timm's reference, eager vs the reference, bf16 vs the fp32
reference (only where the CPU runs bf16 natively), achieved GFLOP/s vs a
same-run GEMM peak timed in the same rounds, and the whole Mask R-CNN in
deploy mode vs Mask R-CNN ResNet-50 with conv-BN fused (per-round ratio,
median [min-max]).

It is a benchmark, not a test: numbers vary with the machine and its load.
Run it with ``make benchmark``; JSON results go to ``work_dirs/benchmarks/``.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/mask_rcnn_fasternet_{}_fpn_1x_coco.py'


def run(arch: str, mode: str, repeat: Optional[int], out_dir: str) -> dict:
    out = osp.join(out_dir, f'{arch}_{mode}.json')
    cmd = [
        sys.executable, '-W', 'ignore::UserWarning', 'tools/benchmark.py',
        CONFIG.format(arch), '--mode', mode, '--json', out
    ]
    if repeat is not None:
        cmd += ['--repeat', str(repeat)]
    if mode == 'backbone':
        cmd.append('--bf16')
    print('$', ' '.join(cmd[1:]), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    with open(out) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', default=['t0', 's', 'm'])
    parser.add_argument(
        '--repeat',
        type=int,
        default=None,
        help="rounds per run (default: tools/benchmark.py's, per mode)")
    parser.add_argument(
        '--detector-arch',
        default='s',
        help='variant for the whole-detector comparison ("" to skip)')
    parser.add_argument('--out-dir', default='work_dirs/benchmarks')
    args = parser.parse_args()
    out_dir = osp.join(REPO, args.out_dir)
    os.makedirs(out_dir, exist_ok=True)

    results = {a: run(a, 'backbone', args.repeat, out_dir) for a in args.archs}
    detector = run(args.detector_arch, 'detector', args.repeat,
                   out_dir) if args.detector_arch else None

    print('\nSummary (medians of per-round ratios, measured side by side in '
          'one run; "of peak": median against the best peak round)')
    print(f'{"backbone":<10} {"deploy/timm":>11} {"eager/timm":>10} '
          f'{"bf16/timm":>9} {"deploy/R50":>10} {"deploy GFLOP/s":>14} '
          f'{"of peak":>7}')
    for arch, res in results.items():
        rows = res['rows']
        deploy, eager = rows['ours-deploy'], rows['ours-eager']
        bf16 = rows.get('ours-bf16', {})
        bf16_text = (f'{bf16["ratio_vs_timm-ref"]:.2f}'
                     if 'ratio_vs_timm-ref' in bf16 else 'not native')
        print(f'{arch.upper():<10} {deploy["ratio_vs_timm-ref"]:>11.2f} '
              f'{eager["ratio_vs_timm-ref"]:>10.2f} {bf16_text:>9} '
              f'{deploy["ratio_vs_resnet50"]:>10.2f} '
              f'{deploy["gflops_per_s"]:>14.0f} '
              f'{deploy["fraction_of_peak_median"]:>7.0%}')
    print('fp32 peak (best round, [min-max of its rounds]) GFLOP/s: ' +
          ', '.join(f'{a.upper()} {r["peak"]["peak_gflops"]:.0f} '
                    f'[{r["peak"]["min_gflops"]:.0f}-'
                    f'{r["peak"]["peak_gflops"]:.0f}]'
                    for a, r in results.items()))
    if detector:
        rows = detector['rows']
        print(f'\nMask R-CNN {args.detector_arch.upper()} whole detector: '
              f'deploy {rows["ours-deploy"]["median_s"]:.2f} s, eager '
              f'{rows["ours-eager"]["median_s"]:.2f} s, ResNet-50 (fused) '
              f'{rows["resnet50"]["median_s"]:.2f} s -> deploy/R50 '
              f'{rows["ours-deploy"]["ratio_vs_resnet50"]:.2f} '
              f'[{rows["ours-deploy"]["ratio_vs_resnet50_min"]:.2f}-'
              f'{rows["ours-deploy"]["ratio_vs_resnet50_max"]:.2f}] over '
              f'{detector["repeat"]} rounds')


if __name__ == '__main__':
    main()
