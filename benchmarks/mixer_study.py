"""FasterNet built with each spatial mixer: the whole-network study.

The paper compares PConv with DWConv / GConv only as isolated operators
(its Table 1). This builds FasterNet-T0, T1, T2 and S with every mixer of
``FasterNet(spatial_mixer=...)`` -- ``pconv`` (the paper's), ``dwconv``,
``gconv`` (16 groups; 8 for T0, whose 40 channels 16 does not divide),
``conv`` and ``identity`` (no spatial mixing, the lower bound) -- plus PConv
with ``n_div`` 2 and 8 (the partial-ratio sweep; 4 is the default), and
reports for each:

* backbone parameters and FLOPs at 224x224 (multiply-adds, counted by
  mmengine's FlopAnalyzer);
* latency at 1x3x224x224 on one thread and on all threads, and at
  1x3x800x1344 on all threads (fewer rounds: it is the slow part).

Models run in deploy mode (``switch_to_deploy()``: BN folded, fused blocks),
fp32, random weights. The variants of one architecture are timed
interleaved. Writes ``mixer_study.json``, ``.md`` and ``.png`` to
``--out-dir`` (default ``work_dirs/operators``).

    python benchmarks/mixer_study.py           # about 4 minutes on 2 cores
    python benchmarks/mixer_study.py --quick   # T0 only, small inputs

On a GPU (``--device cuda``, optionally ``--amp``, ``--channels-last``) the
columns are 224x224 at batch 1 and at batch 32 (the paper's GPU batch) and
800x1344 at batch 1, timed with CUDA events; outputs are named
``mixer_study_cuda*``.
"""
import argparse
import os.path as osp
from typing import Dict, List

import torch
from mmengine.logging import MMLogger

from mmfasternet.benchmarking import (add_timing_arguments, calls_per_sample,
                                      cpu_banner, grouped_bar_chart,
                                      summarize_ms, time_interleaved,
                                      write_report)
from mmfasternet.device_options import (DeviceOptions, gpu_banner,
                                        parse_device_args)
from mmfasternet.models import FasterNet

MIXERS = ('pconv', 'dwconv', 'gconv', 'conv', 'identity')
N_DIVS = (2, 8)


def variants(arch: str) -> Dict[str, dict]:
    """Name -> FasterNet keyword arguments, for one architecture."""
    embed = FasterNet.arch_settings[arch]['embed_dims']
    out = {}
    for mixer in MIXERS:
        kwargs = dict(spatial_mixer=mixer)
        if mixer == 'gconv':
            kwargs['gconv_groups'] = 16 if embed % 16 == 0 else 8
        out[mixer] = kwargs
    for n_div in N_DIVS:
        out[f'pconv_n{n_div}'] = dict(spatial_mixer='pconv', n_div=n_div)
    return out


def build(arch: str, kwargs: dict) -> FasterNet:
    torch.manual_seed(0)
    model = FasterNet(arch=arch, **kwargs)
    model.init_weights()
    return model.eval()


def count(model: FasterNet, shape) -> dict:
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(model, torch.rand(*shape))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        macs_224=int(analyzer.total()))


def time_group(models: Dict[str, FasterNet], shape, threads: int, repeat: int,
               warmup: int, opts: DeviceOptions,
               number: int) -> Dict[str, dict]:
    torch.set_num_threads(threads)
    x = opts.rand(*shape)
    runners = {
        name: opts.with_amp(lambda m=m: m(x))
        for name, m in models.items()
    }
    times = time_interleaved(
        runners,
        rounds=repeat,
        warmup=warmup,
        device=opts.device,
        number=number)
    return {name: summarize_ms(v) for name, v in times.items()}


def write_markdown(path: str, result: dict) -> None:
    cols = result['columns']
    lines = [
        '# FasterNet with each spatial mixer (deploy mode, fp32)', '',
        result['banner'], '',
        'FLOPs are multiply-adds at 224x224 (counted); latency is the median '
        '[min-max] in ms; `vs pconv` is the ratio of medians to the PConv '
        'model of the same arch in the same run.', '',
        '| arch | mixer | params (M) | GFLOPs 224 | ' +
        ' | '.join(f'{c} ms | vs pconv'
                   for c in cols) + ' |', '|' + '---|' * (4 + 2 * len(cols))
    ]
    for arch, rows in result['archs'].items():
        for name, row in rows.items():
            line = (f'| {arch.upper()} | {name} | {row["params"] / 1e6:.2f} '
                    f'| {row["macs_224"] / 1e9:.2f} |')
            for c in cols:
                t = row['latency'][c]
                ref = rows['pconv']['latency'][c]['median_ms']
                line += (f' {t["median_ms"]:.1f} [{t["min_ms"]:.1f}-'
                         f'{t["max_ms"]:.1f}] | '
                         f'{t["median_ms"] / ref:.2f} |')
            lines.append(line)
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_chart(path: str, result: dict) -> None:
    archs = list(result['archs'])
    names = list(next(iter(result['archs'].values())))

    def ratios(col, name):
        return [
            result['archs'][a][name]['latency'][col]['median_ms'] /
            result['archs'][a]['pconv']['latency'][col]['median_ms']
            for a in archs
        ]

    panels = {
        col: {
            name: ratios(col, name)
            for name in names
        }
        for col in result['columns']
    }
    grouped_bar_chart(
        path,
        panels, [a.upper() for a in archs],
        'latency / PConv model\'s (medians)',
        reference=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', default=['t0', 't1', 't2', 's'])
    parser.add_argument('--out-dir', default='work_dirs/operators')
    add_timing_arguments(
        parser,
        repeat=10,
        warmup=1,
        repeat_help='rounds at 224x224',
        number_on_cuda=10)
    parser.add_argument(
        '--repeat-large', type=int, default=3, help='rounds at 800x1344')
    parser.add_argument(
        '--large-shape', type=int, nargs=2, default=[800, 1344])
    parser.add_argument(
        '--quick',
        action='store_true',
        help='T0 only, 2 rounds, 256x320 instead of 800x1344')
    args, opts = parse_device_args(parser)
    number = calls_per_sample(args.number, opts.is_cuda)
    if args.quick:
        args.archs, args.repeat, args.repeat_large = ['t0'], 2, 1
        args.large_shape = [256, 320]
    # Quiet: init_weights() reports every parameter at INFO level.
    MMLogger.get_instance('mixer_study', log_level='WARNING')
    all_threads = torch.get_num_threads()
    h, w = args.large_shape
    small, large = (1, 3, 224, 224), (1, 3, h, w)
    # column: (input shape, threads, rounds); on a 1-thread machine the two
    # 224x224 columns are one.
    groups = {
        '224 1t': (small, 1, args.repeat),
        f'224 {all_threads}t': (small, all_threads, args.repeat),
        f'{h}x{w} {all_threads}t': (large, all_threads, args.repeat_large),
    }
    if opts.is_cuda:  # threads do not matter: the GPU runs the kernels
        torch.backends.cudnn.benchmark = True
        groups = {
            '224 b1': (small, all_threads, args.repeat),
            '224 b32': ((32, 3, 224, 224), all_threads, args.repeat),
            f'{h}x{w} b1': (large, all_threads, args.repeat_large),
        }
    columns: List[str] = list(groups)
    banner = cpu_banner()
    if opts.is_cuda:
        banner = f'{gpu_banner(opts.device)}; {opts.describe()}'
    print(banner, flush=True)
    result = dict(
        banner=banner,
        torch=torch.__version__,
        quick=args.quick,
        device=opts.info(),
        columns=columns,
        archs={})
    with torch.no_grad():
        for arch in args.archs:
            specs = variants(arch)
            rows, models = {}, {}
            for name, kwargs in specs.items():
                model = build(arch, kwargs)
                rows[name] = dict(
                    kwargs=kwargs, **count(model, (1, 3, 224, 224)))
                model.switch_to_deploy()
                models[name] = opts.prepare(model)
            print(f'{arch.upper()}: timing {len(models)} variants', flush=True)
            timed = [
                time_group(models, shape, threads, rounds, args.warmup, opts,
                           number)
                for shape, threads, rounds in groups.values()
            ]
            for name in rows:
                rows[name]['latency'] = {
                    col: t[name]
                    for col, t in zip(columns, timed)
                }
            result['archs'][arch] = rows
    torch.set_num_threads(all_threads)
    write_report(
        osp.join(args.out_dir, opts.report_name('mixer_study')), result,
        write_markdown, write_chart)


if __name__ == '__main__':
    main()
