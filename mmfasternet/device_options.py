"""``--device``, ``--amp``, ``--channels-last``, ``--cuda-graph`` and
``--compile`` for the benchmarks and tools: parsing, one clear error per
impossible combination, and the helpers that apply them.

Example:
    >>> parser = argparse.ArgumentParser()
    >>> args, opts = parse_device_args(parser, cuda_graph=True, compile=True)
    >>> model = opts.prepare(model)
    >>> x = opts.rand(1, 3, 224, 224)
    >>> run = opts.with_amp(model)   # autocast when --amp is set
"""
import argparse
import os
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .fast_inference import AMP_DTYPES, autocast
from .models.utils.bf16_support import native_bf16_missing


class DeviceOptionError(ValueError):
    """A device option this machine or mode cannot honour."""


def add_device_arguments(parser: argparse.ArgumentParser,
                         cuda_graph: bool = False,
                         compile: bool = False) -> None:
    """Add the device options to a parser.

    Args:
        parser (ArgumentParser): The script's parser.
        cuda_graph (bool): Also add ``--cuda-graph``. Default: False.
        compile (bool): Also add ``--compile``. Default: False.
    """
    group = parser.add_argument_group('device')
    group.add_argument(
        '--device',
        default='cpu',
        help='cpu, cuda or cuda:N (on CUDA: CUDA-event timing after '
        'warm-up, synchronised). Default: cpu')
    group.add_argument(
        '--amp',
        choices=sorted(AMP_DTYPES),
        default=None,
        help='run under fp16 or bf16 autocast (bf16 needs native support: '
        'Ampere or newer GPUs, AVX512-BF16 / AMX CPUs)')
    group.add_argument(
        '--channels-last',
        action='store_true',
        help='models and inputs in channels-last memory format')
    if cuda_graph:
        group.add_argument(
            '--cuda-graph',
            action='store_true',
            help='also time the deployed network replayed from a CUDA graph '
            '(CUDA only, fixed input shape)')
    if compile:
        group.add_argument(
            '--compile',
            action='store_true',
            help='also time the deployed network under torch.compile (CUDA '
            'only; compiling takes a minute)')


def parse_device_args(
    parser: argparse.ArgumentParser,
    cuda_graph: bool = False,
    compile: bool = False,
    argv: Optional[Sequence[str]] = None
) -> Tuple[argparse.Namespace, 'DeviceOptions']:
    """Add the device options to ``parser``, parse the command line and
    check the device options.

    Args:
        parser (ArgumentParser): The script's parser, with its own options.
        cuda_graph (bool): Also add ``--cuda-graph``. Default: False.
        compile (bool): Also add ``--compile``. Default: False.
        argv (Sequence[str], optional): The arguments to parse. Default:
            the command line's.

    Returns:
        tuple: The parsed arguments, with the checked
        :class:`DeviceOptions` also stored as ``args.device_options``, and
        those options. A combination this machine cannot run exits through
        ``parser.error`` with one line.
    """
    add_device_arguments(parser, cuda_graph=cuda_graph, compile=compile)
    args = parser.parse_args(argv)
    args.device_options = DeviceOptions.from_args(args, parser)
    return args, args.device_options


def check_device(device: str) -> torch.device:
    """Parse ``device`` and make sure it can be used here.

    Args:
        device (str): ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.

    Returns:
        torch.device: The device.

    Raises:
        DeviceOptionError: If it is malformed, or CUDA is asked for where
            no GPU is visible (with what to do instead).
    """
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise DeviceOptionError(f'--device {device!r} is not a device '
                                '(cpu, cuda or cuda:N)') from e
    if dev.type not in ('cpu', 'cuda'):
        raise DeviceOptionError(f'--device {device!r}: only cpu and cuda '
                                'are supported')
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            build = (f'built for CUDA {torch.version.cuda}'
                     if torch.version.cuda else 'a CPU-only build')
            visible = os.environ.get('CUDA_VISIBLE_DEVICES')
            hint = (f' (CUDA_VISIBLE_DEVICES={visible!r})'
                    if visible is not None else '')
            raise DeviceOptionError(
                f'--device {device}: no CUDA GPU is visible{hint}; torch '
                f'{torch.__version__} is {build}. Run with --device cpu, or '
                'install the PyTorch build for your CUDA driver (see '
                'docs/gpu.md)')
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise DeviceOptionError(
                f'--device {device}: only {torch.cuda.device_count()} CUDA '
                f'device(s) are visible (cuda:0..cuda:'
                f'{torch.cuda.device_count() - 1})')
    return dev


def check_amp(amp: Optional[str], device: torch.device) -> None:
    """Refuse an autocast dtype the device does not run natively.

    Args:
        amp (str, optional): ``'fp16'``, ``'bf16'`` or None.
        device (torch.device): From :func:`check_device`.

    Raises:
        DeviceOptionError: With the alternative to use.
    """
    if amp == 'bf16':
        reason = native_bf16_missing(str(device))
        if reason is not None:
            alt = '--amp fp16' if device.type == 'cuda' else 'fp32'
            raise DeviceOptionError(
                f'--amp bf16 refused: {reason}; use {alt} instead')
    if amp == 'fp16' and device.type == 'cpu':
        raise DeviceOptionError(
            '--amp fp16 is for GPUs; on a CPU use fp32 (no --amp) or --amp '
            'bf16 where the CPU has AVX512-BF16 or AMX')


class DeviceOptions:
    """Where and how models run: device, autocast, memory format, and the
    fast-inference paths, validated together.

    Args:
        device (str): ``'cpu'``, ``'cuda'`` or ``'cuda:N'``. Default: 'cpu'.
        amp (str, optional): ``'fp16'`` or ``'bf16'`` autocast.
            Default: None.
        channels_last (bool): Channels-last models and inputs.
            Default: False.
        cuda_graph (bool): Use CUDA graphs. Default: False.
        compile (bool): Use ``torch.compile``. Default: False.

    Raises:
        DeviceOptionError: For a combination this machine cannot run (see
            :func:`check_device`, :func:`check_amp`), or a CUDA graph /
            compile on a CPU.
    """

    def __init__(self,
                 device: str = 'cpu',
                 amp: Optional[str] = None,
                 channels_last: bool = False,
                 cuda_graph: bool = False,
                 compile: bool = False) -> None:
        self.device = check_device(device)
        check_amp(amp, self.device)
        for flag, wanted in (('--cuda-graph', cuda_graph), ('--compile',
                                                            compile)):
            if wanted and self.device.type != 'cuda':
                raise DeviceOptionError(
                    f'{flag} needs --device cuda (a CUDA GPU); on a CPU the '
                    'fastest paths are the deploy mode and the ONNX Runtime '
                    '/ OpenVINO engines of tools/deploy')
        self.amp = amp
        self.channels_last = channels_last
        self.cuda_graph = cuda_graph
        self.compile = compile

    @classmethod
    def from_args(
            cls,
            args: argparse.Namespace,
            parser: Optional[argparse.ArgumentParser] = None
    ) -> 'DeviceOptions':
        """Build from parsed :func:`add_device_arguments` options.

        Args:
            args (Namespace): Parsed arguments.
            parser (ArgumentParser, optional): When given, an error exits
                through ``parser.error`` (usage and one line, exit code 2)
                instead of raising. Default: None.

        Returns:
            DeviceOptions: The validated options.
        """
        try:
            return cls(
                device=args.device,
                amp=args.amp,
                channels_last=args.channels_last,
                cuda_graph=getattr(args, 'cuda_graph', False),
                compile=getattr(args, 'compile', False))
        except DeviceOptionError as e:
            if parser is None:
                raise
            parser.error(str(e))

    @property
    def is_cuda(self) -> bool:
        return self.device.type == 'cuda'

    @property
    def memory_format(self) -> torch.memory_format:
        return (torch.channels_last
                if self.channels_last else torch.contiguous_format)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move a model to the device (and memory format), in place.

        Args:
            model (nn.Module): Any model.

        Returns:
            nn.Module: The same model.
        """
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def rand(self, *shape: int, generator=None) -> torch.Tensor:
        """A uniform random input on the device, in the memory format.

        Args:
            *shape (int): ``N, C, H, W``.
            generator (torch.Generator, optional): A CPU generator.

        Returns:
            Tensor: The input.
        """
        x = torch.rand(*shape, generator=generator)
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    def autocast(self, cache_enabled: bool = True):
        """Autocast for ``amp`` (a no-op context without it)."""
        return autocast(self.device, self.amp, cache_enabled)

    def with_amp(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` wrapped to run under :meth:`autocast`."""

        def run(*args, **kwargs):
            with self.autocast():
                return fn(*args, **kwargs)

        return run

    def synchronize(self) -> None:
        """Wait for the device's queued work (no-op on a CPU)."""
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    def describe(self) -> str:
        """One line: device, autocast, memory format."""
        parts = [str(self.device), self.amp or 'fp32']
        if self.channels_last:
            parts.append('channels-last')
        return ', '.join(parts)

    def report_name(self, stem: str) -> str:
        """``stem`` with the device and autocast that a report was measured
        with, so that CPU, CUDA and autocast runs keep apart files:
        ``'mixer_study'``, ``'mixer_study_cuda'``,
        ``'mixer_study_cuda_bf16'``.

        Args:
            stem (str): The report's base name.

        Returns:
            str: The file name stem.
        """
        suffixes = ['cuda'] if self.is_cuda else []
        if self.amp:
            suffixes.append(self.amp)
        return '_'.join([stem] + suffixes)

    def info(self) -> Dict[str, Any]:
        """The options and the GPU's facts, for JSON outputs."""
        out = dict(
            device=str(self.device),
            amp=self.amp,
            channels_last=self.channels_last)
        if self.is_cuda:
            out['gpu'] = gpu_info(self.device)
        return out


def gpu_info(device: torch.device) -> Dict[str, Any]:
    """The GPU's name and facts.

    Args:
        device (torch.device): A CUDA device.

    Returns:
        dict: ``name``, ``capability`` (``'9.0'``), ``multiprocessors``,
        ``memory_gib``, ``bf16``, ``cuda`` (torch's CUDA version),
        ``cudnn`` and ``torch``.
    """
    props = torch.cuda.get_device_properties(device)
    return dict(
        name=props.name,
        capability=f'{props.major}.{props.minor}',
        multiprocessors=props.multi_processor_count,
        memory_gib=round(props.total_memory / 2**30, 1),
        bf16=torch.cuda.is_bf16_supported(),
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        torch=torch.__version__)


def gpu_banner(device: torch.device) -> str:
    """One line naming the GPU, e.g. ``'GPU: NVIDIA H200 (sm_90, 132 SMs,
    139.8 GiB), torch 2.11.0, CUDA 13.0, cuDNN 91000, native bf16: yes'``.

    Args:
        device (torch.device): A CUDA device.

    Returns:
        str: The banner.
    """
    g = gpu_info(device)
    return (f'GPU: {g["name"]} (sm_{g["capability"].replace(".", "")}, '
            f'{g["multiprocessors"]} SMs, {g["memory_gib"]} GiB), torch '
            f'{g["torch"]}, CUDA {g["cuda"]}, cuDNN {g["cudnn"]}, native '
            f'bf16: {"yes" if g["bf16"] else "no"}')
