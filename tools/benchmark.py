"""Inference speed of a config's model, side by side with its references.

Every candidate runs in one process, on the same random input, with
interleaved repetitions (A B C A B C ...) so that machine noise hits all of
them alike. Reported: median and min-max seconds per image, images/s, the
ratio to each reference (per-round ratios, median [min-max]), and the
achieved GFLOP/s with its fraction of a same-run fp32 peak: the best round
of a ``torch.mm`` GEMM and of the same GEMM as a oneDNN 1x1 convolution,
timed interleaved with the candidates (see :mod:`mmfasternet.benchmarking`).

Candidates:
    ours-eager    the config's model, eval mode, training code path
    ours-deploy   after ``switch_to_deploy()`` (BN folded, fused blocks)
    ours-bf16     deploy + bfloat16 autocast in the backbone (``--bf16``;
                  marked "no native bf16" and not timed on CPUs without
                  AVX512-BF16 / AMX, where it is emulated)
    ours-graph    deploy, replayed from a CUDA graph (``--cuda-graph``;
                  detector mode: backbone, neck and a single-stage head
                  captured, decoding / NMS / RoI heads eager)
    ours-compile  deploy under ``torch.compile`` (``--compile``)
    timm-ref      timm's FasterNet with the same weights (backbone mode)
    resnet50      ResNet-50 with conv-BN fused (``mmcv.cnn.fuse_conv_bn``),
                  alone (backbone mode) or in the same detector
                  (detector mode; neck input channels adapted)

On a GPU (``--device cuda``) every candidate is timed with CUDA events after
warm-up and synchronisation; ``--amp fp16|bf16`` runs all of them under
autocast and ``--channels-last`` in channels-last memory format. The peak
kernels are then a cuBLAS GEMM and a cuDNN 1x1 convolution in the run's
precision.

Examples:
    python tools/benchmark.py configs/mask_rcnn_fasternet_s_fpn_1x_coco.py
    python tools/benchmark.py configs/mask_rcnn_fasternet_s_fpn_1x_coco.py \
        --mode detector --repeat 3 --json work_dirs/bench_s.json
    python tools/benchmark.py configs/rtmdet_fasternet_t0_8xb32-300e_coco.py \
        --mode detector --shape 640 640 --device cuda --amp fp16 --cuda-graph
"""
import argparse
import copy
import json
import sys
import warnings
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope, init_default_scope

from mmfasternet import benchmarking
from mmfasternet.benchmarking import (best_gflops, cpu_banner, cpu_info,
                                      detector_runner, equal_roi_work,
                                      fraction_of_peak, has_native_bf16,
                                      peak_candidates, peak_candidates_gflop,
                                      randomize_bn, ratio_spread, summarize,
                                      time_interleaved)
from mmfasternet.device_options import (DeviceOptions, gpu_banner,
                                        parse_device_args)
from mmfasternet.fast_inference import (CUDAGraphRunner, GraphedDetector,
                                        compile_for_inference)
from mmfasternet.inference import switch_fasternet_to_deploy

# mmengine / mmcv import pkg_resources; its deprecation notice is noise here.
warnings.filterwarnings('ignore', 'pkg_resources is deprecated', UserWarning)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark a FasterNet config against its references')
    parser.add_argument('config', help='detection or segmentation config')
    parser.add_argument(
        '--mode',
        choices=['backbone', 'detector'],
        default='backbone',
        help='time the backbone alone or the whole model (detector mode '
        'needs a detection config)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[800, 1344],
        metavar=('H', 'W'),
        help='input height and width')
    parser.add_argument('--batch-size', type=int, default=1)
    benchmarking.add_timing_arguments(
        parser,
        repeat=None,
        warmup=1,
        repeat_help='timed rounds per candidate (default: 7 for backbone '
        'mode, 15 for detector mode, where per-round ratios spread more)',
        number_on_cuda=10)
    parser.add_argument(
        '--bf16',
        action='store_true',
        help='also time deploy mode under bfloat16 autocast')
    parser.add_argument(
        '--no-reference',
        action='store_true',
        help='skip timm and ResNet-50 (only our candidates)')
    parser.add_argument(
        '--threads', type=int, default=None, help='torch intra-op threads')
    parser.add_argument('--json', help='write the results to this file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as in tools/train.py')
    args, _ = parse_device_args(
        parser, cuda_graph=True, compile=True, argv=argv)
    if args.bf16 and args.device_options.is_cuda:
        parser.error('--bf16 is the CPU deploy candidate; on CUDA use '
                     '--amp bf16, which runs every candidate in bf16')
    return args


# --------------------------------------------------------------------------
# candidates


def timm_reference(backbone, opts: DeviceOptions) -> Callable:
    """timm's FasterNet, loaded with our backbone's weights."""
    import timm
    ref = timm.create_model(f'fasternet_{backbone.arch_name}')
    state = {
        k: v
        for k, v in backbone.state_dict().items() if not k.startswith('norm')
    }
    missing, unexpected = ref.load_state_dict(state, strict=False)
    assert not unexpected and all(
        k.startswith(('conv_head', 'classifier')) for k in missing)
    opts.prepare(ref).eval()
    return lambda x: ref.forward_intermediates(x, intermediates_only=True)


def resnet50(cfg: Config, mode: str) -> torch.nn.Module:
    from mmcv.cnn import fuse_conv_bn

    cfg = copy.deepcopy(cfg)
    r50 = dict(
        type='mmdet.ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch')
    if mode == 'backbone':
        from mmengine.registry import MODELS
        model = MODELS.build(r50)
    else:
        cfg.model.backbone = r50
        cfg.model.neck.in_channels = [256, 512, 1024, 2048]
        model = equal_roi_work(benchmarking.build_random_model(cfg))
    randomize_bn(model)
    model.eval()  # mmdet's ResNet.train() does not return the module
    return fuse_conv_bn(model)


def make_candidates(
    cfg: Config, args: argparse.Namespace
) -> Tuple[Dict[str, Callable[[torch.Tensor], Any]], torch.Tensor,
           torch.nn.Module, Dict[str, str]]:
    """Build the candidates, their shared input and our backbone.

    Returns:
        tuple: Candidates (callables of the batch) by name, the batch, our
        backbone (for FLOP counting), and the candidates not timed with
        the reason (``ours-bf16`` where bf16 is not native).
    """
    # The options parse_args validated (CPU defaults for a bare namespace).
    opts = getattr(args, 'device_options', None) or DeviceOptions()
    ours = benchmarking.build_random_model(
        cfg, backbone_only=args.mode == 'backbone')
    randomize_bn(ours)
    if args.mode == 'detector':
        # The same RoI-head work for every backbone, whatever the random
        # weights make of the proposals and scores.
        equal_roi_work(ours)
        if opts.channels_last and hasattr(ours, 'roi_head'):
            sys.exit('--channels-last: mmcv\'s RoIAlign reads NCHW memory, '
                     'so two-stage detectors cannot run channels-last; the '
                     'deploy candidate already runs its backbone that way')
    opts.prepare(ours)
    backbone = ours if args.mode == 'backbone' else ours.backbone
    batch = opts.rand(args.batch_size, 3, *args.shape)

    def wrap(m):
        run = m if args.mode == 'backbone' else detector_runner(
            m, batch.shape[0], batch.shape[-2:])
        return opts.with_amp(run)

    candidates = {'ours-eager': wrap(ours)}
    deploy = copy.deepcopy(ours)
    switch_fasternet_to_deploy(deploy)
    candidates['ours-deploy'] = wrap(deploy)
    if opts.cuda_graph:
        if args.mode == 'backbone':
            candidates['ours-graph'] = CUDAGraphRunner(
                deploy, batch, amp=opts.amp)
        else:
            candidates['ours-graph'] = detector_runner(
                GraphedDetector(deploy, batch, amp=opts.amp), batch.shape[0],
                batch.shape[-2:])
    if opts.compile:
        compiled = copy.deepcopy(deploy)
        if args.mode == 'backbone':
            compiled = compile_for_inference(compiled, opts.device)
        else:  # the network part; decoding and NMS stay eager
            compiled.backbone = compile_for_inference(compiled.backbone,
                                                      opts.device)
            compiled.neck = compile_for_inference(compiled.neck, opts.device)
        candidates['ours-compile'] = wrap(compiled)
    skipped = {}
    if args.bf16 and not has_native_bf16('cpu'):
        skipped['ours-bf16'] = 'no native bf16'
    elif args.bf16:
        bf16 = copy.deepcopy(ours)
        switch_fasternet_to_deploy(bf16, bf16=True)
        candidates['ours-bf16'] = wrap(bf16)
    if not args.no_reference:
        if args.mode == 'backbone':
            candidates['timm-ref'] = opts.with_amp(
                timm_reference(backbone, opts))
        candidates['resnet50'] = wrap(opts.prepare(resnet50(cfg, args.mode)))
    return candidates, batch, backbone, skipped


# --------------------------------------------------------------------------
# measurement


def backbone_gflop(backbone, batch) -> float:
    """FLOPs (2 x MACs of convs and GEMMs) of one eager backbone forward."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        backbone(batch)
    return counter.get_total_flops() / 1e9


def check_agreement(candidates, batch, mode) -> Dict[str, float]:
    """Relative feature error of the deploy candidates
    (:func:`~mmfasternet.benchmarking.max_relative_error`).

    timm's parity (before our output norms) is pinned by the test suite.
    """
    if mode != 'backbone':
        return {}
    out = {}
    with torch.no_grad():
        ref = candidates['ours-eager'](batch)
        for name in ('ours-deploy', 'ours-bf16', 'ours-graph', 'ours-compile'):
            if name in candidates:
                got = candidates[name](batch)
                out[name] = benchmarking.max_relative_error(got, ref)
    return out


def tabulate(
    times: Dict[str, list],
    batch_size: int,
    gflop: Optional[float],
    agreement: Dict[str, float],
    skipped: Dict[str, str],
    device: torch.device = torch.device('cpu')
) -> Dict[str, Any]:
    """Rows of the table, with the peak taken from the same rounds.

    ``gflop`` is the FasterNet backbone's work per call; ``None`` (detector
    mode, where the time is the whole detector's) leaves GFLOP/s out.
    """
    gflop_per_call = peak_candidates_gflop(device=device)
    peak = best_gflops(times, gflop_per_call)
    for name in gflop_per_call:
        times.pop(name)
    rows = {}
    for name, values in times.items():
        row = summarize(values)
        row['images_per_s'] = batch_size / row['median_s']
        for ref in ('timm-ref', 'resnet50', 'ours-eager'):
            if ref in times and ref != name:
                ratio = ratio_spread(values, times[ref])
                row[f'ratio_vs_{ref}'] = ratio['median']
                row[f'ratio_vs_{ref}_min'] = ratio['min']
                row[f'ratio_vs_{ref}_max'] = ratio['max']
        # The same FasterNet work in every row but ResNet-50's.
        if gflop is not None and name != 'resnet50':
            row['gflops_per_s'] = gflop / row['median_s']
        # The peak is fp32's: a bf16 row can pass it (AVX512-BF16 and AMX
        # run bf16 faster than fp32), so only fp32 rows get a fraction.
        if gflop is not None and name not in ('resnet50', 'ours-bf16'):
            # Best round against the best round: both are ceilings.
            row['fraction_of_peak'] = fraction_of_peak(gflop, row['min_s'],
                                                       peak)
            row['fraction_of_peak_median'] = fraction_of_peak(
                gflop, row['median_s'], peak)
        if name in agreement:
            row['rel_error_vs_eager'] = agreement[name]
        rows[name] = row
    for name, reason in skipped.items():
        rows[name] = dict(skipped=reason)
    return dict(peak=peak, backbone_gflop=gflop, rows=rows)


def print_table(result: Dict[str, Any], args: argparse.Namespace,
                arch: str) -> None:
    print(f'\nFasterNet-{arch.upper()} {args.mode}, input '
          f'{args.batch_size}x3x{args.shape[0]}x{args.shape[1]}, '
          f'{torch.get_num_threads()} threads, {args.repeat} rounds '
          f'(median [min-max]; ratios are per round)')
    peak = result['peak']
    kernels = ', '.join(f'{k} {v:.0f}' for k, v in peak['kernels'].items())
    if result['backbone_gflop'] is None:
        work = ('GFLOP/s left out: the backbone\'s work over the whole '
                'detector\'s time would mean nothing')
    else:
        work = f'backbone work: {result["backbone_gflop"]:.1f} GFLOP'
    print(f'{work}; fp32 peak '
          f'this run: {peak["peak_gflops"]:.0f} GFLOP/s (best round of '
          f'{peak["kernel"]}; its rounds {peak["min_gflops"]:.0f}-'
          f'{peak["peak_gflops"]:.0f}, median {peak["median_gflops"]:.0f}; '
          f'best per kernel: {kernels}). "of peak" is the median against '
          'the best peak round, "best" the best round against it')
    header = (f'{"candidate":<12} {"median s":>9} {"min-max s":>15} '
              f'{"img/s":>7} {"vs timm":>16} {"vs R50":>16} '
              f'{"GFLOP/s":>8} {"of peak":>8} {"best":>5}')
    print(header)
    print('-' * len(header))

    def fmt(value, spec):
        return format(value, spec) if value is not None else '-'

    def ratio(row, ref):
        if f'ratio_vs_{ref}' not in row:
            return '-'
        return (f'{row[f"ratio_vs_{ref}"]:.2f} '
                f'[{row[f"ratio_vs_{ref}_min"]:.2f}-'
                f'{row[f"ratio_vs_{ref}_max"]:.2f}]')

    for name, row in result['rows'].items():
        if 'skipped' in row:
            print(f'{name:<12} {row["skipped"]} (not timed)')
            continue
        print(f'{name:<12} {row["median_s"]:>9.3f} '
              f'{row["min_s"]:>7.3f}-{row["max_s"]:<7.3f} '
              f'{row["images_per_s"]:>7.2f} '
              f'{ratio(row, "timm-ref"):>16} {ratio(row, "resnet50"):>16} '
              f'{fmt(row.get("gflops_per_s"), ">8.0f"):>8} '
              f'{fmt(row.get("fraction_of_peak_median"), ">8.0%"):>8} '
              f'{fmt(row.get("fraction_of_peak"), ">5.0%"):>5}')
        if 'rel_error_vs_eager' in row:
            print(f'{"":<12} relative feature error vs eager: '
                  f'{row["rel_error_vs_eager"]:.2e}')


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeat is None:
        args.repeat = 15 if args.mode == 'detector' else 7
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if args.mode == 'detector' and DefaultScope.get_current_instance(
    ).scope_name != 'mmdet':
        sys.exit('--mode detector needs a detection (mmdet) config')

    opts = args.device_options
    print(cpu_banner())
    if opts.is_cuda:
        print(gpu_banner(opts.device))
        # Fixed shapes: let cuDNN pick its fastest kernels once.
        torch.backends.cudnn.benchmark = True
    number = benchmarking.calls_per_sample(args.number, opts.is_cuda)
    # Quiet: init_weights() reports every parameter at INFO level.
    MMLogger.get_instance('benchmark', log_level='WARNING')
    torch.manual_seed(0)
    candidates, batch, backbone, skipped = make_candidates(cfg, args)
    gflop = backbone_gflop(backbone, batch)
    agreement = check_agreement(candidates, batch, args.mode)
    # The peak kernels run in the same interleaved rounds as the models.
    runs = {
        name: (lambda run=run: run(batch))
        for name, run in candidates.items()
    }
    peak_dtype = getattr(torch, {
        'fp16': 'float16',
        'bf16': 'bfloat16'
    }.get(opts.amp, 'float32'))
    runs.update(peak_candidates(device=opts.device, dtype=peak_dtype))
    times = time_interleaved(
        runs,
        args.repeat,
        args.warmup,
        progress=True,
        device=opts.device,
        number=number)
    result = tabulate(times, args.batch_size,
                      gflop if args.mode == 'backbone' else None, agreement,
                      skipped, opts.device)
    result.update(
        config=args.config,
        mode=args.mode,
        shape=[args.batch_size, 3, *args.shape],
        threads=torch.get_num_threads(),
        repeat=args.repeat,
        number=number,
        cpu=cpu_info(),
        device=opts.info(),
        torch=torch.__version__)
    print_table(result, args, backbone.arch_name)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'\nwrote {args.json}')


if __name__ == '__main__':
    main()
