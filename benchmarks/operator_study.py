"""The paper's operator study (Table 1), measured on this machine.

Ten stacked layers of one 3x3 operator, channels kept, at the four feature
maps of FasterNet's stages (96x56x56, 192x28x28, 384x14x14, 768x7x7):

    conv            dense 3x3 conv
    gconv16         3x3 conv in 16 groups
    dwconv          3x3 depthwise conv
    pconv_split     PConv r=1/4, split + conv + concatenate (training form)
    pconv_slicing   PConv r=1/4, copy + conv into the copied slice (the
                    official inference form; the copy keeps a residual
                    input intact)
    pconv_inplace   PConv r=1/4 written into its input without the copy
                    (faster, but only valid where nothing else reads the
                    input, i.e. not at the start of a FasterNet block)

For every cell: FLOPs (multiply-adds, the paper's unit) computed
analytically and counted by mmengine's FlopAnalyzer (they must agree), the
paper's memory-access estimate, median latency with min-max over the
rounds, and the achieved FLOPS (multiply-adds per second, the paper's
unit). Three settings: batch 1 on one thread (the official CPU protocol of
``measure_latency``), batch 1 on all threads, and a throughput batch on all
threads. Every candidate of a setting runs interleaved (A B C A B C ...) so
machine noise hits them alike.

Writes ``operator_study.json``, ``operator_study.md`` and
``operator_study.png`` to ``--out-dir`` (default ``work_dirs/operators``).
Timed numbers vary with the machine; they are never test assertions.

    python benchmarks/operator_study.py            # about 2 minutes on 2 cores
    python benchmarks/operator_study.py --quick    # smoke test, seconds

On a GPU (``--device cuda``, optionally ``--amp`` and ``--channels-last``)
it runs the paper's GPU protocol instead: batch 32 (and batch 1 beside it),
timed with CUDA events, and prints the PConv / DWConv FLOPS ratio beside the
paper's 10.5x (2080Ti). Outputs are then named ``operator_study_cuda*``.
"""
import argparse
import os.path as osp
import statistics
from typing import Callable, Dict, List

import torch
import torch.nn as nn

from mmfasternet.benchmarking import (add_timing_arguments, calls_per_sample,
                                      cpu_banner, grouped_bar_chart,
                                      summarize_ms, time_interleaved,
                                      write_report)
from mmfasternet.device_options import (DeviceOptions, gpu_banner,
                                        parse_device_args)
from mmfasternet.models.backbones.fasternet import (PartialConv,
                                                    build_spatial_mixer)
from operator_costs import mixer_copy_elements, mixer_macs, mixer_memory_access

FEATURE_MAPS = ((96, 56, 56), (192, 28, 28), (384, 14, 14), (768, 7, 7))
#: The paper's PConv / DWConv FLOPS multiples (Sec. 4.1, Table 1).
PAPER_PCONV_OVER_DWCONV = {'gpu': 10.5, 'cpu': 6.2, 'arm': 22.8}
LAYERS = 10
#: Calls per timed sample on a GPU, where one call of a layer stack is short.
NUMBER_ON_CUDA = 20
# name -> (spatial mixer, PConv forward, label)
OPERATORS = {
    'conv': ('conv', None, 'Conv 3x3'),
    'gconv16': ('gconv', None, 'GConv 3x3 (16 groups)'),
    'dwconv': ('dwconv', None, 'DWConv 3x3'),
    'pconv_split': ('pconv', 'split_cat', 'PConv r=1/4, split-cat'),
    'pconv_slicing': ('pconv', 'slicing', 'PConv r=1/4, slicing (copy)'),
    'pconv_inplace': ('pconv', 'inplace', 'PConv r=1/4, slicing in place'),
}


class InPlacePartialConv(PartialConv):
    """PConv that overwrites its input's first channels (no copy).

    Only valid where no other op reads the input afterwards; the study
    stacks plain layers, so it is valid here and shows what the copy costs.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x[:, :self.conv_channels] = self.partial_conv3(
            x[:, :self.conv_channels])
        return x


def build_stack(name: str, channels: int) -> nn.Module:
    """Ten layers of one operator, eval mode, random weights."""
    mixer, forward, _ = OPERATORS[name]
    layers = []
    for _ in range(LAYERS):
        if forward == 'inplace':
            layers.append(InPlacePartialConv(channels, 4))
        else:
            layers.append(
                build_spatial_mixer(
                    mixer, channels, pconv_forward=forward or 'split_cat'))
    return nn.Sequential(*layers).eval().requires_grad_(False)


def counted_macs(model: nn.Module, shape) -> int:
    """Multiply-adds counted by mmengine's FlopAnalyzer (fvcore's rules)."""
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(model, torch.rand(*shape))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return int(analyzer.total())


def describe_cell(name: str, fmap) -> dict:
    """Analytic and counted costs of one (operator, feature map) cell."""
    mixer, forward, label = OPERATORS[name]
    c, h, w = fmap
    macs = LAYERS * mixer_macs(mixer, c, h, w)
    cell = dict(
        operator=name,
        label=label,
        feature_map=f'{c}x{h}x{w}',
        macs_analytic=macs,
        macs_counted=counted_macs(build_stack(name, c), (1, c, h, w)),
        memory_access_elements=LAYERS * mixer_memory_access(mixer, c, h, w))
    if forward:
        cell['copy_elements'] = LAYERS * mixer_copy_elements(forward, c, h, w)
    if cell['macs_counted'] != macs:
        raise RuntimeError(f'{name} at {cell["feature_map"]}: analytic '
                           f'{macs} vs counted {cell["macs_counted"]} MACs')
    return cell


def make_runner(name: str, fmap, batch: int, opts: DeviceOptions) -> Callable:
    stack = opts.prepare(build_stack(name, fmap[0]))
    x = opts.rand(batch, *fmap)
    if OPERATORS[name][1] == 'inplace':
        # It writes into its input: feed it a fresh copy (one copy of the
        # map per ten layers, included in its time).
        return opts.with_amp(lambda: stack(x.clone()))
    return opts.with_amp(lambda: stack(x))


def run_setting(setting: dict, cells: List[dict], args,
                opts: DeviceOptions) -> Dict[str, dict]:
    torch.set_num_threads(setting['threads'])
    batch = setting['batch']
    runners = {
        f'{cell["operator"]}@{cell["feature_map"]}':
        make_runner(cell['operator'],
                    tuple(int(v) for v in cell['feature_map'].split('x')),
                    batch, opts)
        for cell in cells
    }
    times = time_interleaved(
        runners,
        rounds=setting['repeat'],
        warmup=args.warmup,
        device=opts.device,
        number=args.number)
    results = {}
    for cell in cells:
        key = f'{cell["operator"]}@{cell["feature_map"]}'
        summary = summarize_ms(times[key])
        results[key] = dict(
            summary,
            gflops=batch * cell['macs_analytic'] / summary['median_ms'] / 1e6)
    return results


def summarize(cells, settings, measured) -> dict:
    """Per setting: the paper's 'average FLOPS' per operator and ratios."""
    summary = {}
    for setting in settings:
        rows = measured[setting['name']]
        avg = {}
        for name in OPERATORS:
            rates = [
                rows[f'{name}@{c["feature_map"]}']['gflops'] for c in cells
                if c['operator'] == name
            ]
            avg[name] = statistics.mean(rates)
        latency_ratio = [
            rows[f'pconv_split@{c["feature_map"]}']['median_ms'] /
            rows[f'dwconv@{c["feature_map"]}']['median_ms'] for c in cells
            if c['operator'] == 'dwconv'
        ]
        summary[setting['name']] = dict(
            average_gflops=avg,
            pconv_over_dwconv_flops=avg['pconv_split'] / avg['dwconv'],
            pconv_over_dwconv_latency=latency_ratio,
            slicing_over_split_latency=[
                rows[f'pconv_slicing@{c["feature_map"]}']['median_ms'] /
                rows[f'pconv_split@{c["feature_map"]}']['median_ms']
                for c in cells if c['operator'] == 'dwconv'
            ])
    return summary


def write_markdown(path: str, result: dict) -> None:
    cells, measured = result['cells'], result['measured']
    lines = [
        f'# Operator study ({LAYERS} stacked layers)', '',
        f'{result["banner"]}', '',
        'FLOPs are multiply-adds (the paper\'s unit), analytic = counted by '
        'mmengine\'s FlopAnalyzer; memory is the paper\'s estimate in '
        'million elements (PConv: convolved channels only; `+copy` is what '
        'the implementation moves on top); latency is the median '
        '[min-max] of the rounds; GFLOPS = multiply-adds / median.', ''
    ]
    names = [s['name'] for s in result['settings']]
    header = '| operator | feature map | MFLOPs | memory (M) | ' + ' | '.join(
        f'{n} ms | {n} GFLOPS' for n in names) + ' |'
    lines += [header, '|' + '---|' * (4 + 2 * len(names))]
    for cell in cells:
        key = f'{cell["operator"]}@{cell["feature_map"]}'
        memory = f'{cell["memory_access_elements"] / 1e6:.2f}'
        if 'copy_elements' in cell:
            memory += f' (+copy {cell["copy_elements"] / 1e6:.1f})'
        row = (f'| {cell["label"]} | {cell["feature_map"]} | '
               f'{cell["macs_analytic"] / 1e6:.1f} | {memory} |')
        for n in names:
            m = measured[n][key]
            row += (f' {m["median_ms"]:.2f} [{m["min_ms"]:.2f}-'
                    f'{m["max_ms"]:.2f}] | {m["gflops"]:.1f} |')
        lines.append(row)
    lines += [
        '', '| average GFLOPS | ' + ' | '.join(names) + ' |',
        '|---|' + '---|' * len(names)
    ]
    for name, (_, _, label) in OPERATORS.items():
        lines.append(f'| {label} | ' + ' | '.join(
            f'{result["summary"][n]["average_gflops"][name]:.1f}'
            for n in names) + ' |')
    lines.append('| PConv / DWConv FLOPS | ' + ' | '.join(
        f'{result["summary"][n]["pconv_over_dwconv_flops"]:.1f}x'
        for n in names) + ' |')
    paper = PAPER_PCONV_OVER_DWCONV[result['paper_column']]
    lines += [
        '', f'The paper\'s PConv / DWConv FLOPS multiple on '
        f'{result["paper_column"].upper()}: {paper}x.'
    ]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_chart(path: str, result: dict) -> None:
    fmaps = [f'{c}x{h}x{w}' for c, h, w in FEATURE_MAPS]
    panels = {}
    for setting in result['settings']:
        rows = result['measured'][setting['name']]
        panels[setting['title']] = {
            label: [rows[f'{name}@{f}']['gflops'] for f in fmaps]
            for name, (_, _, label) in OPERATORS.items()
        }
    grouped_bar_chart(
        path,
        panels, [f.split('x', 1)[0] + 'ch' for f in fmaps],
        'achieved GFLOPS (multiply-adds/s)',
        log_scale=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default='work_dirs/operators')
    parser.add_argument(
        '--batch', type=int, default=16, help='throughput batch')
    add_timing_arguments(
        parser,
        repeat=15,
        warmup=2,
        repeat_help='rounds at batch 1',
        number_on_cuda=NUMBER_ON_CUDA)
    parser.add_argument(
        '--repeat-batch', type=int, default=5, help='rounds at --batch')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='2 rounds and batch 2: checks that it runs, numbers are noise')
    args, opts = parse_device_args(parser)
    if opts.is_cuda and args.batch == 16:
        args.batch = 32  # the paper's GPU protocol
    if args.quick:
        args.batch, args.repeat, args.repeat_batch, args.warmup = 2, 2, 2, 1
    args.number = calls_per_sample(args.number, opts.is_cuda, NUMBER_ON_CUDA)
    all_threads = torch.get_num_threads()
    settings = [
        dict(name='b1_1t', title='batch 1, 1 thread', batch=1, threads=1,
             repeat=args.repeat),
        dict(name=f'b1_{all_threads}t', title=f'batch 1, {all_threads} '
             'threads', batch=1, threads=all_threads, repeat=args.repeat),
        dict(name=f'b{args.batch}_{all_threads}t', title=f'batch '
             f'{args.batch}, {all_threads} threads', batch=args.batch,
             threads=all_threads, repeat=args.repeat_batch),
    ]  # yapf: disable
    if opts.is_cuda:  # threads do not matter: the GPU runs the kernels
        settings = [
            dict(name=f'b{args.batch}', title=f'batch {args.batch}',
                 batch=args.batch, threads=all_threads,
                 repeat=args.repeat_batch),
            dict(name='b1', title='batch 1', batch=1, threads=all_threads,
                 repeat=args.repeat),
        ]  # yapf: disable
    # On a 1-thread machine the two batch-1 settings are one.
    settings = list({s['name']: s for s in settings}.values())
    banner = cpu_banner()
    if opts.is_cuda:
        torch.backends.cudnn.benchmark = True
        banner = f'{gpu_banner(opts.device)}; {opts.describe()}'
    print(banner, flush=True)
    torch.manual_seed(0)
    cells = [
        describe_cell(name, fmap) for name in OPERATORS
        for fmap in FEATURE_MAPS
    ]
    print('FLOPs: analytic == counted for all '
          f'{len(cells)} cells',
          flush=True)
    measured = {}
    with torch.no_grad():
        for setting in settings:
            print(
                f'timing {setting["title"]} ({setting["repeat"]} rounds)',
                flush=True)
            measured[setting['name']] = run_setting(setting, cells, args, opts)
    torch.set_num_threads(all_threads)
    result = dict(
        banner=banner,
        torch=torch.__version__,
        layers=LAYERS,
        quick=args.quick,
        device=opts.info(),
        paper_column='gpu' if opts.is_cuda else 'cpu',
        settings=settings,
        cells=cells,
        measured=measured,
        summary=summarize(cells, settings, measured))
    write_report(
        osp.join(args.out_dir, opts.report_name('operator_study')), result,
        write_markdown, write_chart)


if __name__ == '__main__':
    main()
