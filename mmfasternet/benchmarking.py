"""What ``tools/benchmark.py`` and the studies in ``benchmarks/`` share:
interleaved timing and its summaries, the fp32 peak, random-weight models
(:func:`build_random_model`), one relative error
(:func:`max_relative_error`), and the reports they write.

Candidates are timed interleaved (A B C A B C ...) so that machine noise
hits all of them alike; each keeps its per-round samples, summarized as
median and min-max. The fp32 peak a model is compared against is measured
the same way (see :func:`peak_candidates`): its best round is the ceiling,
so a fraction of peak above 100% can only come from noise, which the
spreads report.

Example:
    >>> samples = time_interleaved({'a': f, 'b': g}, rounds=5, warmup=1)
    >>> peaks = time_interleaved(peak_candidates(), rounds=5, warmup=1)
    >>> peak = best_gflops(peaks, peak_candidates_gflop())
    >>> print(cpu_banner()); print(summarize(samples['a']))
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch

from .models.utils.bf16_support import cpu_flags, native_bf16_missing

#: CPU flags that matter for these benchmarks, in the banner's order.
BANNER_FLAGS = ('avx2', 'avx512f', 'avx512_bf16', 'amx_tile', 'amx_bf16')
#: Integer dot-product instructions that INT8 kernels use, fastest first:
#: (``/proc/cpuinfo`` flag, name).
INT8_DOT_PRODUCTS = (('amx_int8', 'AMX'), ('avx512_vnni', 'AVX512-VNNI'),
                     ('avx_vnni', 'AVX-VNNI'))


def time_interleaved(candidates: Mapping[str, Callable[[], Any]],
                     rounds: int = 5,
                     warmup: int = 1,
                     progress: bool = False,
                     device: Optional[Any] = None,
                     number: int = 1) -> Dict[str, List[float]]:
    """Time candidates in interleaved rounds, each round running each once.

    Runs under ``torch.no_grad()``. On a CUDA device each sample is the time
    between two CUDA events around the calls, after the device finished the
    previous candidate's work (synchronised), so queued kernels are counted
    where they run.

    Args:
        candidates (Mapping[str, Callable[[], Any]]): Zero-argument callables
            by name (bind inputs with a lambda or ``functools.partial``).
        rounds (int): Timed rounds. Default: 5.
        warmup (int): Untimed rounds first. Default: 1.
        progress (bool): Show an mmengine progress bar on stderr.
            Default: False.
        device (str | torch.device, optional): Where the candidates run;
            CUDA selects event timing. Default: None (CPU, wall clock).
        number (int): Calls per sample, averaged (short GPU calls need
            several). Default: 1.

    Returns:
        Dict[str, List[float]]: Seconds per call, one sample per round.
    """
    on_cuda = device is not None and torch.device(device).type == 'cuda'
    clock = _cuda_event_clock(device) if on_cuda else _wall_clock
    samples = {name: [] for name in candidates}
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar((rounds + warmup) * len(candidates), file=sys.stderr)
    with torch.no_grad():
        for r in range(warmup + rounds):
            for name, run in candidates.items():
                elapsed = clock(run, number)
                if r >= warmup:
                    samples[name].append(elapsed)
                if bar is not None:
                    bar.update()
    if bar is not None:
        sys.stderr.write('\n')
    return samples


def add_timing_arguments(parser: argparse.ArgumentParser,
                         repeat: Optional[int],
                         warmup: int,
                         repeat_help: str = 'timed rounds per candidate',
                         number_on_cuda: Optional[int] = None) -> None:
    """Add the timing options of the benchmarks: ``--repeat``, ``--warmup``
    and, with ``number_on_cuda``, ``--number``.

    Args:
        parser (argparse.ArgumentParser): The script's parser.
        repeat (int, optional): Default timed rounds (None: the script
            picks one, as ``repeat_help`` says).
        warmup (int): Default untimed rounds first.
        repeat_help (str): What ``--repeat`` counts.
            Default: 'timed rounds per candidate'.
        number_on_cuda (int, optional): Add ``--number``, the calls per
            timed sample, whose default is 1 on a CPU and this on a GPU
            (:func:`calls_per_sample`). Default: None (no ``--number``).
    """
    parser.add_argument('--repeat', type=int, default=repeat, help=repeat_help)
    parser.add_argument(
        '--warmup', type=int, default=warmup, help='untimed rounds first')
    if number_on_cuda:
        parser.add_argument(
            '--number',
            type=int,
            default=None,
            help='calls per timed sample (default: 1 on CPU, '
            f'{number_on_cuda} on CUDA)')


def calls_per_sample(number: Optional[int],
                     is_cuda: bool,
                     number_on_cuda: int = 10) -> int:
    """Calls per timed sample: ``number`` if given, else 1 on a CPU (one
    call is long enough to time) and ``number_on_cuda`` on a GPU (one
    launch is too short)."""
    return number or (number_on_cuda if is_cuda else 1)


def _wall_clock(run: Callable[[], Any], number: int) -> float:
    """Seconds per call of ``run`` on the CPU's wall clock."""
    start = time.perf_counter()
    for _ in range(number):
        run()
    return (time.perf_counter() - start) / number


def _cuda_event_clock(
        device: Any) -> Callable[[Callable[[], Any], int], float]:
    """A clock like :func:`_wall_clock` that times the GPU's work with CUDA
    events on the current stream of ``device``."""
    device = torch.device(device)

    def clock(run: Callable[[], Any], number: int) -> float:
        torch.cuda.synchronize(device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        stream = torch.cuda.current_stream(device)
        start.record(stream)
        for _ in range(number):
            run()
        end.record(stream)
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / number

    return clock


def summarize(samples: List[float]) -> Dict[str, float]:
    """Median and min-max of one candidate's samples.

    Args:
        samples (List[float]): Seconds per call.

    Returns:
        Dict[str, float]: ``median_s``, ``min_s``, ``max_s`` and
        ``spread`` ((max - min) / median).
    """
    median = statistics.median(samples)
    return dict(
        median_s=median,
        min_s=min(samples),
        max_s=max(samples),
        spread=(max(samples) - min(samples)) / median)


def summarize_ms(samples: List[float]) -> Dict[str, float]:
    """:func:`summarize` in milliseconds, as the studies report it.

    Returns:
        Dict[str, float]: ``median_ms``, ``min_ms`` and ``max_ms``.
    """
    summary = summarize(samples)
    return {
        f'{k}_ms': 1e3 * summary[f'{k}_s']
        for k in ('median', 'min', 'max')
    }


def ratio_spread(num: List[float], den: List[float]) -> Dict[str, float]:
    """Ratio of two interleaved candidates, round by round.

    Args:
        num (List[float]): Samples of the numerator, one per round.
        den (List[float]): Samples of the denominator, same rounds.

    Returns:
        Dict[str, float]: ``median``, ``min`` and ``max`` of the per-round
        ratios (the rounds share the machine's state, so their ratio is
        steadier than the ratio of medians of noisy samples).
    """
    ratios = [a / b for a, b in zip(num, den)]
    return dict(
        median=statistics.median(ratios), min=min(ratios), max=max(ratios))


def peak_size(device: Optional[Any] = None) -> int:
    """The peak kernels' GEMM size: 2048 on a CPU, 8192 on a GPU (where a
    2048 GEMM is too short to reach the device's rate).

    Args:
        device (str | torch.device, optional): Default: None (CPU).

    Returns:
        int: ``n``.
    """
    on_cuda = device is not None and torch.device(device).type == 'cuda'
    return 8192 if on_cuda else 2048


def peak_candidates(
        n: Optional[int] = None,
        device: Optional[Any] = None,
        dtype: torch.dtype = torch.float32) -> Dict[str, Callable[[], Any]]:
    """Compute-bound fp32 kernels whose best rate is the same-run peak.

    ``gemm`` is an ``n x n`` ``torch.mm`` (MKL / OpenBLAS); ``conv1x1`` is
    a GEMM of the same kind run as a channels-last 1x1 convolution, i.e.
    through oneDNN, the library every FasterNet convolution uses. On some
    CPUs the two differ by 2x; the faster one is the ceiling. Time them
    with :func:`time_interleaved`, beside the candidates or in their own
    rounds, and turn the samples into GFLOP/s with :func:`best_gflops`.

    On a GPU they are a cuBLAS GEMM and a cuDNN 1x1 convolution in
    ``dtype`` (the run's precision).

    Args:
        n (int, optional): GEMM size. Default: :func:`peak_size`.
        device (str | torch.device, optional): Default: None (CPU).
        dtype (torch.dtype): Default: torch.float32.

    Returns:
        Dict[str, Callable[[], Any]]: ``'gemm'`` and ``'conv1x1'``.
    """
    n = n or peak_size(device)
    kw = dict(device=device, dtype=dtype)
    a, b = torch.rand(n, n, **kw), torch.rand(n, n, **kw)
    x = torch.rand(1, n // 2, 64, 64,
                   **kw).contiguous(memory_format=torch.channels_last)
    w = torch.rand(n // 2, n // 2, 1, 1,
                   **kw).contiguous(memory_format=torch.channels_last)
    return {
        'gemm': lambda: torch.mm(a, b),
        'conv1x1': lambda: torch.nn.functional.conv2d(x, w),
    }


def peak_candidates_gflop(n: Optional[int] = None,
                          device: Optional[Any] = None) -> Dict[str, float]:
    """GFLOP of one call of each :func:`peak_candidates` kernel.

    Args:
        n (int, optional): The same GEMM size. Default:
            :func:`peak_size` of ``device``.
        device (str | torch.device, optional): Default: None (CPU).

    Returns:
        Dict[str, float]: GFLOP by kernel name.
    """
    n = n or peak_size(device)
    return {'gemm': 2 * n**3 / 1e9, 'conv1x1': 2 * 64 * 64 * (n // 2)**2 / 1e9}


def best_gflops(samples: Mapping[str, List[float]],
                gflop: Mapping[str, float]) -> Dict[str, Any]:
    """The peak from timed kernels: the best round of the fastest kernel.

    Args:
        samples (Mapping[str, List[float]]): Samples that include the
            kernels named in ``gflop`` (other names are ignored).
        gflop (Mapping[str, float]): GFLOP per call of each kernel.

    Returns:
        dict: ``peak_gflops`` (best round, the ceiling), ``median_gflops``
        and ``min_gflops`` of the kernel that reached it, ``kernel`` (its
        name) and ``kernels`` (each kernel's best GFLOP/s).
    """
    best = {name: work / min(samples[name]) for name, work in gflop.items()}
    kernel = max(best, key=best.get)
    return dict(
        peak_gflops=best[kernel],
        median_gflops=gflop[kernel] / statistics.median(samples[kernel]),
        min_gflops=gflop[kernel] / max(samples[kernel]),
        kernel=kernel,
        kernels=best)


def gemm_peak_gflops(rounds: int = 5,
                     warmup: int = 1,
                     n: Optional[int] = None,
                     device: Optional[Any] = None,
                     dtype: torch.dtype = torch.float32) -> Dict[str, Any]:
    """Same-run peak measured in its own interleaved rounds.

    Use it when the candidates cannot share rounds with the peak kernels;
    otherwise add :func:`peak_candidates` to the candidates.

    Args:
        rounds (int): Timed rounds. Default: 5.
        warmup (int): Untimed rounds first. Default: 1.
        n (int, optional): GEMM size. Default: :func:`peak_size`.
        device (str | torch.device, optional): Default: None (CPU).
        dtype (torch.dtype): The kernels' precision. Default: float32.

    Returns:
        dict: As :func:`best_gflops`.
    """
    n = n or peak_size(device)
    samples = time_interleaved(
        peak_candidates(n, device, dtype), rounds, warmup, device=device)
    return best_gflops(samples, peak_candidates_gflop(n))


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (else ``platform``).

    Returns:
        str: E.g. ``'AMD EPYC 7B13'``.
    """
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def has_native_bf16(device: str = 'cpu') -> bool:
    """Whether ``device`` runs bf16 natively (AMX / AVX512-BF16, or CUDA).

    Args:
        device (str): ``'cpu'`` or a CUDA device. Default: 'cpu'.

    Returns:
        bool: See :func:`~mmfasternet.models.utils.bf16_support.\
native_bf16_missing`.
    """
    return native_bf16_missing(device) is None


def cpu_banner() -> str:
    """One line: CPU model, cores, torch threads, ISA flags, bf16 support.

    Returns:
        str: E.g. ``'CPU: AMD EPYC 7B13, 2 cores, 2 torch threads; torch
        dispatch AVX2; flags avx2 (no avx512f avx512_bf16 amx_tile
        amx_bf16); native bf16: no; int8 dot products: none (...)'``.
    """
    flags = cpu_flags()
    present = [f for f in BANNER_FLAGS if f in flags]
    absent = [f for f in BANNER_FLAGS if f not in flags]
    flag_text = ' '.join(present) or 'none'
    if absent:
        flag_text += f' (no {" ".join(absent)})'
    native = 'yes' if has_native_bf16('cpu') else 'no'
    return (f'CPU: {cpu_model()}, {os.cpu_count()} cores, '
            f'{torch.get_num_threads()} torch threads; torch dispatch '
            f'{torch.backends.cpu.get_cpu_capability()}; flags {flag_text}; '
            f'native bf16: {native}; {int8_banner()}')


def int8_instructions(flags: Optional[Sequence[str]] = None) -> List[str]:
    """The CPU's integer dot-product instructions, fastest first.

    The INT8 convolutions and matrix products of OpenVINO and ONNX
    Runtime are built on these where the CPU has them.

    Args:
        flags (Sequence[str], optional): ISA flags. Default: this CPU's
            (``/proc/cpuinfo``).

    Returns:
        list[str]: Names among ``'AMX'`` (``amx_int8``), ``'AVX512-VNNI'``
        and ``'AVX-VNNI'``; empty when the CPU has none.
    """
    flags = cpu_flags() if flags is None else frozenset(flags)
    return [name for flag, name in INT8_DOT_PRODUCTS if flag in flags]


def int8_banner(flags: Optional[Sequence[str]] = None) -> str:
    """E.g. ``'int8 dot products: AMX, AVX512-VNNI, AVX-VNNI'`` or
    ``'int8 dot products: none (no amx_int8, avx512_vnni or avx_vnni)'``
    (``flags`` as in :func:`int8_instructions`)."""
    found = int8_instructions(flags)
    if found:
        return 'int8 dot products: ' + ', '.join(found)
    names = [flag for flag, _ in INT8_DOT_PRODUCTS]
    return (f'int8 dot products: none (no {", ".join(names[:-1])} or '
            f'{names[-1]})')


def cpu_info() -> Dict[str, Any]:
    """The banner's facts as a dict, for JSON outputs.

    Returns:
        dict: ``model``, ``cores``, ``threads``, ``capability``, ``flags``
        (the :data:`BANNER_FLAGS` present), ``native_bf16``,
        ``int8_dot_products`` (:func:`int8_instructions`) and ``torch``.
    """
    flags = cpu_flags()
    return dict(
        model=cpu_model(),
        cores=os.cpu_count(),
        threads=torch.get_num_threads(),
        capability=torch.backends.cpu.get_cpu_capability(),
        flags=[f for f in BANNER_FLAGS if f in flags],
        native_bf16=has_native_bf16('cpu'),
        int8_dot_products=int8_instructions(flags),
        torch=torch.__version__)


def fraction_of_peak(gflop: float, seconds: float,
                     peak: Dict[str, Any]) -> Optional[float]:
    """Achieved GFLOP/s as a fraction of :func:`best_gflops`'s peak.

    Args:
        gflop (float): Work of one call.
        seconds (float): Time of one call (e.g. a median).
        peak (dict): From :func:`best_gflops` / :func:`gemm_peak_gflops`.

    Returns:
        float | None: The fraction, None when ``gflop`` is unknown (0).
    """
    if not gflop:
        return None
    return gflop / seconds / peak['peak_gflops']


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BN layer non-trivial statistics and affine terms.

    Random-weight models keep BN at its identity initialisation, which
    makes folding BN into the convs a no-op; benchmarks randomize it so
    that folded and unfolded models really differ.

    Args:
        model (nn.Module): Modified in place.
        seed (int): Seed of the generator. Default: 0.

    Returns:
        nn.Module: ``model``, in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                shape = m.running_var.shape
                m.running_var.copy_(torch.rand(shape, generator=gen) + 0.5)
                m.running_mean.copy_(torch.rand(shape, generator=gen) - 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(shape, generator=gen) + 0.5)
                    m.bias.copy_(torch.rand(shape, generator=gen) - 0.5)
    model.eval()  # some mmdet backbones' train() returns None
    return model


def equal_roi_work(model: torch.nn.Module) -> torch.nn.Module:
    """Give a two-stage detector the same test work whatever its backbone
    and (random) weights, so that backbones compare on equal RoI work.

    With random weights the proposals and boxes depend on the backbone's
    feature scale: a random ResNet-50 Mask R-CNN (no output norms) decoded
    huge deltas into boxes clipped to nothing and kept 18 proposals where
    FasterNet-S kept 1000, and with an adaptive RoIAlign grid
    (``sampling_ratio=0``) a box's cost grows with its area. Here the RPN's
    and the box head's classification and regression layers are zeroed:
    every anchor scores alike and stays itself, so every backbone gets the
    same ``max_per_img`` proposals (the RPN's NMS keeps them whatever they
    overlap: IoU threshold 1.0), the same boxes out of the box head (score
    threshold 0) and the same RoIs into the mask head. Only for timing.

    Args:
        model (nn.Module): An mmdet detector; modified in place where it
            has an ``rpn_head`` / ``roi_head``.

    Returns:
        nn.Module: The same model.
    """
    rpn = getattr(model, 'rpn_head', None)
    if rpn is not None:
        rpn.test_cfg.nms.iou_threshold = 1.0
        layers = [rpn.rpn_cls, rpn.rpn_reg]
        roi = getattr(model, 'roi_head', None)
        if roi is not None:
            roi.test_cfg.score_thr = 0.
            layers += [roi.bbox_head.fc_cls, roi.bbox_head.fc_reg]
        for layer in layers:
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    return model


def build_random_model(config: Any,
                       backbone_only: bool = False,
                       random_bn: bool = False) -> torch.nn.Module:
    """The model a config describes, with random weights, in eval mode.

    Nothing is downloaded or read: the ``init_cfg`` that would load
    pretrained weights (the model's and its backbone's) is dropped, so
    ``init_weights()`` runs only the initializers. The config's
    ``default_scope`` becomes the default scope, its ``custom_imports``
    are imported, and SyncBN becomes BN (one process, CPU).

    Args:
        config (str | Config): A config file, an ``mmdet::...`` name, or
            a loaded config (copied, not changed).
        backbone_only (bool): Build the backbone alone. Default: False.
        random_bn (bool): Give every BN random statistics and affine
            terms (:func:`randomize_bn`), so that folding BN into the
            convs is not a no-op. Default: False.

    Returns:
        nn.Module: The model (or backbone).
    """
    import copy

    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings
    if not isinstance(config, str):
        cfg = copy.deepcopy(config)
    elif '::' in config:
        from mmengine.hub import get_config
        cfg = get_config(config)
    else:
        cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    model_cfg = cfg.model.backbone if backbone_only else cfg.model
    for part in (model_cfg, model_cfg.get('backbone', {})):
        part.pop('pretrained', None)
        part.pop('init_cfg', None)
    model = revert_sync_batchnorm(MODELS.build(model_cfg))
    model.init_weights()
    if random_bn:
        randomize_bn(model)
    model.eval()  # some mmdet backbones' train() returns None
    return model


def max_relative_error(output: Any, reference: Any) -> float:
    """How far ``output`` is from ``reference``, relative to its scale.

    For each tensor (or numpy array) of the outputs, which may be nested
    in tuples and lists, the largest absolute difference of any element
    divided by the largest magnitude of the reference tensor; the result
    is the largest over the tensors. 1e-4 thus means that no element is off
    by more than 1e-4 of the largest value of its output. Every element
    counts: a ratio of norms would let a few wrong elements hide among many
    right ones.

    Integer and bool tensors must be equal (0, else ``inf``); another
    number of tensors, another shape, or a NaN difference is ``inf``; an
    empty tensor adds nothing.

    Args:
        output (Tensor | ndarray | Sequence): What is checked.
        reference (Tensor | ndarray | Sequence): What it should be.

    Returns:
        float: The error, 0 for equal outputs.
    """
    import numpy as np
    outs, refs = _leaf_arrays(output), _leaf_arrays(reference)
    if len(outs) != len(refs):
        return float('inf')
    worst = 0.0
    for out, ref in zip(outs, refs):
        if out.shape != ref.shape:
            return float('inf')
        if ref.size == 0:
            continue
        if not np.issubdtype(ref.dtype, np.floating):
            if not np.array_equal(out, ref):
                return float('inf')
            continue
        ref = ref.astype(np.float64)
        diff = float(np.abs(out.astype(np.float64) - ref).max())
        if diff != diff:  # NaN
            return float('inf')
        worst = max(worst, diff / max(float(np.abs(ref).max()), 1e-12))
    return worst


def _leaf_arrays(outputs: Any) -> list:
    """The tensors and arrays of possibly nested outputs, as numpy arrays
    (floating tensors in float64: bf16 has no numpy type)."""
    import numpy as np
    if isinstance(outputs, torch.Tensor):
        tensor = outputs.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.double()
        return [tensor.numpy()]
    if isinstance(outputs, np.ndarray):
        return [outputs]
    return [leaf for item in outputs for leaf in _leaf_arrays(item)]


def detector_runner(model: torch.nn.Module, batch_size: int,
                    shape: Sequence[int]) -> Callable[[torch.Tensor], Any]:
    """Whole-detector inference on a batch, as ``DetInferencer`` runs it.

    Args:
        model (nn.Module): An mmdet detector in eval mode.
        batch_size (int): Images per batch.
        shape (Sequence[int]): ``(h, w)`` of the (already padded) input.

    Returns:
        Callable: ``f(x)`` runs ``model.predict`` on ``x`` with matching
        data samples, results rescaled to the input size.
    """
    from mmdet.structures import DetDataSample
    h, w = shape
    samples = []
    for _ in range(batch_size):
        sample = DetDataSample()
        sample.set_metainfo(
            dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                pad_shape=(h, w),
                batch_input_shape=(h, w),
                scale_factor=(1., 1.)))
        samples.append(sample)
    return lambda x: model.predict(x, samples, rescale=True)


def grouped_bar_chart(path: str,
                      panels: Mapping[str, Mapping[str, Sequence[float]]],
                      groups: Sequence[str],
                      ylabel: str,
                      log_scale: bool = False,
                      reference: Optional[float] = None) -> None:
    """Draw grouped bars, one panel a setting, and save them as a PNG.

    Args:
        path (str): The ``.png`` to write.
        panels (Mapping): Panel title -> series label -> one value per
            group; every panel has the same series.
        groups (Sequence[str]): The x-axis labels.
        ylabel (str): The y-axis label (of the first panel).
        log_scale (bool): A logarithmic y axis, shared by the panels.
            Default: False.
        reference (float, optional): Draw a horizontal line at this value
            (1 for ratios). Default: None.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(3.6 * len(panels), 3.3),
        squeeze=False,
        sharey=log_scale)
    for ax, (title, series) in zip(axes[0], panels.items()):
        width = 0.8 / len(series)
        for i, (label, values) in enumerate(series.items()):
            offset = (i - len(series) / 2 + 0.5) * width
            ax.bar([j + offset for j in range(len(groups))],
                   values,
                   width,
                   label=label)
        if log_scale:
            ax.set_yscale('log')
        if reference is not None:
            ax.axhline(reference, color='black', linewidth=0.5)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, fontsize=7)
        ax.set_title(title, fontsize=8)
        ax.tick_params(axis='y', labelsize=7)
    axes[0][0].set_ylabel(ylabel, fontsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=4, fontsize=6)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(
    stem: str,
    result: Dict[str, Any],
    write_markdown: Callable[[str, Dict[str, Any]], None],
    write_chart: Optional[Callable[[str, Dict[str, Any]],
                                   None]] = None) -> None:
    """Write a benchmark's JSON, markdown and chart, and print the markdown.

    Args:
        stem (str): Output path without extension; its folder is created.
        result (dict): What the benchmark measured (JSON-serializable).
        write_markdown (Callable): ``f(path, result)`` writes the table.
        write_chart (Callable, optional): ``f(path, result)`` draws the PNG.
            Default: None (no chart).
    """
    os.makedirs(os.path.dirname(stem) or '.', exist_ok=True)
    with open(stem + '.json', 'w') as f:
        json.dump(result, f, indent=2)
    write_markdown(stem + '.md', result)
    if write_chart is not None:
        write_chart(stem + '.png', result)
    with open(stem + '.md') as f:
        print(f.read())
    outputs = '.json, .md' + (', .png' if write_chart is not None else '')
    print(f'wrote {stem}{outputs}')
