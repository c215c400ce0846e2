"""PyTorch against ONNX Runtime and OpenVINO on FasterNet, in one run.

Models (random weights, random BN statistics, fp32, batch 1):

* FasterNet-T0 and FasterNet-S backbones at 1x3x800x1344 (the four stage
  outputs, with their norms), and FasterNet-T0 at 1x3x640x640 (``t0-640``);
* the whole RTMDet-T0 network at 1x3x640x640 (backbone, neck, head; like
  RTMDet's published latencies, without box decoding and NMS, whose cost
  with random weights depends only on how many boxes pass the threshold).

Engines, every one timed in the same interleaved rounds (A B C ... A B C):
PyTorch eager, our deploy mode (``switch_to_deploy()``), ONNX Runtime and
OpenVINO on the ONNX file of the eager model (``pconv_forward='split_cat'``),
and both engines again on the file exported with ``pconv_forward='slicing'``
(the official code's PConv), and, for S, T0 at 640x640 and RTMDet-T0,
both engines on the INT8 version of the
split_cat file (as ``tools/deploy/quantize.py`` quantizes, ``mixed``
preset: OpenVINO IR with FakeQuantize by NNCF, QDQ ONNX for ONNX Runtime
by ONNX Runtime's static quantizer; RTMDet's
output convs kept in float as ``tools/deploy/quantize.py`` keeps them,
the backbones quantized whole). INT8 is calibrated on random inputs:
enough to time it, not to judge its accuracy (see docs/int8.md for
that). OpenVINO runs the fp32 file twice: forced to f32 (the
``OpenVINO`` rows, as ``--backend openvino`` runs it) and at the CPU
plugin's default precision (``OpenVINO (default precision)``: bf16 on
CPUs with AMX or AVX512-BF16), the precision a user gets without a
hint. The banner names the CPU and its integer dot-product instructions
(AMX, AVX512-VNNI, AVX-VNNI); each engine's INT8 speed-up is printed
against its default precision and against f32 (ONNX Runtime's CPU
default is f32). Two compute-bound references run in the same
rounds: ``torch.mm`` (the GEMM peak) and the same GEMM as a channels-last
1x1 convolution (oneDNN); each peak is its best round. Reported: medians
with min-max, ratios against PyTorch eager, GFLOP/s and its fraction of the
peak: the best round of the faster reference kernel (median against it;
the JSON also has best round against it), ONNX file sizes (FLOPs counted
on the eager model). JSON and a markdown table go
to ``work_dirs/benchmarks/``.

Examples::

    python benchmarks/deploy_speed.py            # 7 rounds, ~4 minutes here
    python benchmarks/deploy_speed.py --quick    # toy sizes, 2 rounds
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import tempfile
import warnings
from typing import Dict, List, Tuple

import torch
import torch.nn as nn

from mmfasternet.benchmarking import (best_gflops, build_random_model,
                                      cpu_banner, fraction_of_peak,
                                      max_relative_error, peak_candidates,
                                      peak_candidates_gflop, randomize_bn,
                                      summarize, time_interleaved)
from mmfasternet.deploy import build_backend
from mmfasternet.deploy.quantization import quantize_model_file
from mmfasternet.models import FasterNet
from mmfasternet.models.backbones.fasternet import PartialConv

RTMDET_CONFIG = 'configs/rtmdet_fasternet_t0_8xb32-300e_coco.py'
#: build_backend's engine names and their row labels.
ENGINE_LABELS = {'onnxruntime': 'ONNX Runtime', 'openvino': 'OpenVINO'}
#: The row of OpenVINO on the fp32 file without a precision hint.
OPENVINO_DEFAULT = 'OpenVINO (default precision)'
#: The rows each engine's INT8 row is compared with: the fp32 file
#: forced to f32, and at the engine's default precision (ONNX Runtime's
#: CPU default is f32: the same row).
INT8_BASELINES = {
    'ONNX Runtime': dict(f32='ONNX Runtime', default='ONNX Runtime'),
    'OpenVINO': dict(f32='OpenVINO', default=OPENVINO_DEFAULT),
}
#: The INT8 file each engine runs (tools/deploy/quantize.py's suffixes).
INT8_SUFFIXES = {'onnxruntime': '.onnx', 'openvino': '.xml'}
#: The models with INT8 rows: S at 800x1344, T0 at 640x640, the whole
#: RTMDet-T0 network.
INT8_MODELS = ('s', 't0-640', 'rtmdet-t0')
#: Random calibration inputs of the INT8 rows (speed only).
CALIBRATION_INPUTS = 8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=7, help='rounds')
    parser.add_argument('--warmup', type=int, default=2, help='rounds')
    parser.add_argument(
        '--models',
        nargs='+',
        default=['t0', 's', 'rtmdet-t0', 't0-640'],
        choices=['t0', 's', 'rtmdet-t0', 't0-640'])
    parser.add_argument(
        '--quick', action='store_true', help='toy sizes, 2 rounds, 1 warmup')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='also print where ONNX Runtime spends its time (by module and '
        'by operator type, from its profiler; a separate, untimed pass)')
    parser.add_argument(
        '--out-dir', default='work_dirs/benchmarks', help='JSON + markdown')
    return parser.parse_args()


class RTMDetNetwork(nn.Module):
    """Backbone, neck and head outputs (``mode='tensor'``), flattened."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        cls_scores, bbox_preds = self.detector(x, mode='tensor')[:2]
        return tuple(cls_scores) + tuple(bbox_preds)


def build(name: str) -> Tuple[nn.Module, nn.Module]:
    """(model to run, its FasterNet backbone)."""
    torch.manual_seed(0)
    if name == 'rtmdet-t0':
        detector = build_random_model(RTMDET_CONFIG)
        model = randomize_bn(RTMDetNetwork(detector))
        return model, detector.backbone
    backbone = randomize_bn(FasterNet(arch=name.split('-')[0]))
    return backbone, backbone


def set_pconv_forward(model: nn.Module, mode: str) -> nn.Module:
    for m in model.modules():
        if isinstance(m, PartialConv):
            m.pconv_forward = mode
    return model


def export(model: nn.Module, x: torch.Tensor, path: str) -> float:
    """Export with the TorchScript exporter; return the file size in MiB."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (x, ), path, opset_version=17, dynamo=False)
    return osp.getsize(path) / 2**20


def gflop(model: nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 1e9


def candidates_for(name: str, shape, tmp: str) -> Tuple[dict, dict]:
    """Callables to time, and the facts to report about them."""
    model, _ = build(name)
    x = torch.randn(1, 3, *shape)
    facts = dict(input=f'1x3x{shape[0]}x{shape[1]}', gflop=gflop(model, x))
    deploy = copy.deepcopy(model)
    for m in deploy.modules():
        if isinstance(m, FasterNet):
            m.switch_to_deploy()
    runs = {
        'PyTorch eager': lambda: model(x),
        'PyTorch deploy': lambda: deploy(x),
    }
    with torch.no_grad():
        ref = [t for t in model(x)]
    facts['rel_error'] = {}
    facts['onnx_mib'] = {}
    engine_runs = {}
    for pconv in ('split_cat', 'slicing'):
        path = osp.join(tmp, f'{name}_{pconv}.onnx')
        exported = set_pconv_forward(copy.deepcopy(model), pconv)
        facts['onnx_mib'][pconv] = export(exported, x, path)
        for engine, label in ENGINE_LABELS.items():
            if pconv == 'slicing':
                label += ' (slicing)'
            engine_runs[label] = build_backend(engine, path)
        if pconv == 'split_cat':
            runner = build_backend('openvino', path, precision=None)
            engine_runs[OPENVINO_DEFAULT] = runner
            facts['openvino_default_precision'] = runner.precision
    if name in INT8_MODELS:
        engine_runs.update(
            int8_runners(name, osp.join(tmp, f'{name}_split_cat.onnx'),
                         x.shape))
    x_np = x.numpy()
    for label, runner in engine_runs.items():
        runs[label] = lambda r=runner: r([x_np])
        facts['rel_error'][label] = max_relative_error(runner([x_np]), ref)
    with torch.no_grad():
        facts['rel_error']['PyTorch deploy'] = max_relative_error(
            deploy(x), ref)
    return runs, facts


def int8_runners(name: str, onnx_file: str, shape) -> Dict[str, object]:
    """Runners of ``onnx_file`` quantized to INT8 for each engine, by row
    label, calibrated on :data:`CALIBRATION_INPUTS` random inputs. The
    detector keeps its output convs in float (as deployed); a backbone is
    quantized whole."""
    gen = torch.Generator().manual_seed(1)
    calibration = [[torch.randn(*shape, generator=gen).numpy()]
                   for _ in range(CALIBRATION_INPUTS)]
    keep_float = 'output_layers' if name == 'rtmdet-t0' else 'nothing'
    runners = {}
    for engine, suffix in INT8_SUFFIXES.items():
        out = onnx_file[:-len('.onnx')] + f'_int8{suffix}'
        # The quicker calibration options: speed does not depend on them
        # (bias correction is NNCF's, the IR's only).
        quantize_model_file(
            onnx_file,
            out,
            calibration,
            keep_float=keep_float,
            activation_ranges='mean_minmax',
            fast_bias_correction=True if suffix == '.xml' else None)
        runners[f'{ENGINE_LABELS[engine]} INT8'] = build_backend(engine, out)
    return runners


def int8_speedups(result: dict) -> Dict[str, Dict[str, float]]:
    """Each engine's fp32 time over its INT8 time (medians), against
    the fp32 file at the engine's default precision and forced to f32:
    ``{engine: {'default': x, 'f32': x}}``."""
    rows = result['rows']
    return {
        label: {
            kind:
            rows[baseline]['median_s'] / rows[f'{label} INT8']['median_s']
            for kind, baseline in baselines.items()
        }
        for label, baselines in INT8_BASELINES.items()
        if f'{label} INT8' in rows
    }


HEAD_KEYS = ('bbox_head', 'cls_convs', 'reg_convs', 'rtm_cls', 'rtm_reg')


def module_group(node: str) -> str:
    """'backbone/stages.2', 'neck', 'bbox_head', a bare backbone's
    'stages.2', or 'unscoped' (nodes ONNX Runtime made by fusion)."""
    parts = [p for p in node.split('/') if p]
    if any(k in node for k in HEAD_KEYS):
        return 'bbox_head'
    if 'neck' in parts:
        return 'neck'
    if 'backbone' in parts:
        i = parts.index('backbone')
        return '/'.join(parts[i:i + 2])
    if len(parts) > 1:
        return parts[0]
    return 'unscoped'


def ort_profile(path: str, x, rounds: int = 3) -> Dict[str, dict]:
    """ONNX Runtime's own per-node times, summed by module and op type."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = path[:-5] + '_ort_profile'
    session = ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    for _ in range(rounds):
        session.run(None, {name: x})
    with open(session.end_profiling()) as f:
        events = json.load(f)
    by_module: Dict[str, float] = {}
    by_op: Dict[str, float] = {}
    for event in events:
        kernel = event['name'].endswith('_kernel_time')
        if event.get('cat') != 'Node' or not kernel:
            continue
        node = event['name'][:-len('_kernel_time')]
        module = module_group(node)
        op = event['args'].get('op_name', '?')
        by_module[module] = by_module.get(module, 0.0) + event['dur']
        by_op[op] = by_op.get(op, 0.0) + event['dur']
    total = sum(by_op.values())
    return {
        'by_module': {
            k: v / total
            for k, v in sorted(by_module.items(), key=lambda i: -i[1])
        },
        'by_op': {
            k: v / total
            for k, v in sorted(by_op.items(), key=lambda i: -i[1])
        },
        'total_ms_per_run': total / rounds / 1e3,
    }


def tabulate(name: str, times, facts, peak_gflop: Dict[str, float]) -> dict:
    """Rows of one model's table. The peak is the best round of the faster
    reference kernel, timed in the same rounds (``torch.mm`` and oneDNN's
    1x1 conv differ by 2x on some CPUs; the faster is the ceiling), so a
    fraction passes 100% only by the noise the min-max shows."""
    peak = best_gflops(times, peak_gflop)
    eager = statistics.median(times['PyTorch eager'])
    gflop = facts['gflop']
    rows = {}
    for k, values in times.items():
        if k in peak_gflop:
            continue
        row = summarize(values)
        rows[k] = dict(
            row,
            ratio_vs_eager=row['median_s'] / eager,
            gflops_per_s=gflop / row['median_s'],
            # As tools/benchmark.py: median, and best round, against the
            # best peak round.
            fraction_of_peak_median=fraction_of_peak(gflop, row['median_s'],
                                                     peak),
            fraction_of_peak=fraction_of_peak(gflop, row['min_s'], peak),
            rel_error_vs_eager=facts['rel_error'].get(k, 0.0))
    return dict(
        model=name,
        peaks_gflops_per_s={
            'gemm (torch.mm)': peak['kernels']['gemm'],
            'conv1x1 (oneDNN)': peak['kernels']['conv1x1']
        },
        peak_kernel=peak['kernel'],
        rows=rows,
        **{
            k: v
            for k, v in facts.items() if k != 'rel_error'
        })


def markdown(results: List[dict]) -> str:
    lines = [
        '| model | engine | time (min-max) | vs eager | GFLOP/s | '
        'of peak | rel. error |', '|---' * 7 + '|'
    ]
    for res in results:
        for k, r in res['rows'].items():
            lines.append(
                f'| {res["model"]} {res["input"]} | {k} | '
                f'{r["median_s"]:.3f} s ({r["min_s"]:.3f}-{r["max_s"]:.3f})'
                f' | {r["ratio_vs_eager"]:.2f} | {r["gflops_per_s"]:.0f} | '
                f'{r["fraction_of_peak_median"]:.0%} | '
                f'{r["rel_error_vs_eager"]:.1e} |')
    lines.append('')
    lines.append('| model | ONNX split_cat | ONNX slicing | GEMM peak | '
                 'oneDNN 1x1 peak |')
    lines.append('|---|---|---|---|---|')
    for res in results:
        p = res['peaks_gflops_per_s']
        lines.append(f'| {res["model"]} | {res["onnx_mib"]["split_cat"]:.2f}'
                     f' MiB | {res["onnx_mib"]["slicing"]:.2f} MiB | '
                     f'{p["gemm (torch.mm)"]:.0f} GFLOP/s | '
                     f'{p["conv1x1 (oneDNN)"]:.0f} GFLOP/s |')
    lines.append('')
    lines += int8_table(results)
    return '\n'.join(lines)


def int8_table(results: List[dict]) -> List[str]:
    """Markdown lines: each model's INT8 speed-ups (:func:`int8_speedups`)
    against each engine's default precision and f32."""
    lines = [
        '| model | INT8 speed-up, ONNX Runtime (default = f32) | '
        'OpenVINO vs its default | OpenVINO vs f32 |', '|---|---|---|---|'
    ]
    for res in results:
        speedups = res.get('int8_speedup', {})
        ort = speedups.get('ONNX Runtime', {})
        ov = speedups.get('OpenVINO', {})
        default = res.get('openvino_default_precision', '?')
        lines.append(f'| {res["model"]} | {_times(ort.get("f32"))} | '
                     f'{_times(ov.get("default"))} ({default}) | '
                     f'{_times(ov.get("f32"))} |')
    return lines


def _times(speedup) -> str:
    return '-' if speedup is None else f'{speedup:.2f}x'


def main() -> None:
    args = parse_args()
    if args.quick:
        args.repeat, args.warmup = 2, 1
    sizes = {
        't0': (800, 1344),
        's': (800, 1344),
        'rtmdet-t0': (640, 640),
        't0-640': (640, 640)
    }
    if args.quick:
        sizes = {
            't0': (128, 160),
            's': (128, 160),
            'rtmdet-t0': (128, 128),
            't0-640': (128, 128)
        }
    banner = cpu_banner()
    print(banner)
    print(f'torch threads {torch.get_num_threads()}; engines use their '
          'default thread pools')
    gemm_size = 512 if args.quick else 2048
    peak_gflop = peak_candidates_gflop(gemm_size)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            runs, facts = candidates_for(name, sizes[name], tmp)
            runs.update(peak_candidates(gemm_size))
            times = time_interleaved(
                runs, rounds=args.repeat, warmup=args.warmup)
            results.append(tabulate(name, times, facts, peak_gflop))
            if args.profile:
                x = torch.randn(1, 3, *sizes[name]).numpy()
                prof = ort_profile(osp.join(tmp, f'{name}_split_cat.onnx'), x)
                results[-1]['ort_profile'] = prof
                print(f'ONNX Runtime profile of {name} '
                      f'({prof["total_ms_per_run"]:.0f} ms of kernels/run):')
                for key in ('by_module', 'by_op'):
                    top = list(prof[key].items())[:10]
                    print(f'  {key}: ' + ', '.join(f'{k} {v:.0%}'
                                                   for k, v in top))
            results[-1]['int8_speedup'] = int8_speedups(results[-1])
            print(markdown(results[-1:]), flush=True)
    table = markdown(results)
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.join(args.out_dir, 'deploy_speed' + ('_quick' * args.quick))
    with open(stem + '.json', 'w') as f:
        json.dump(
            dict(cpu=banner, repeat=args.repeat, results=results), f, indent=2)
    with open(stem + '.md', 'w') as f:
        f.write(f'{banner}\n\n{table}\n')
    print(f'\n{table}\nwritten {stem}.json, {stem}.md')


if __name__ == '__main__':
    main()
