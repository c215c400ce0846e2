"""Whether a device runs bfloat16 natively (where bf16 autocast pays off).

On a CPU without AVX512-BF16 or AMX, oneDNN emulates bf16 with fp32
arithmetic plus conversions: FasterNet's bf16 deploy backbone then runs
several times slower than fp32 (6.5-8.1x measured on an AVX2 EPYC).
"""
from typing import FrozenSet, Optional

import torch

#: ``/proc/cpuinfo`` flags that mean the CPU computes in bf16 natively.
NATIVE_BF16_CPU_FLAGS = frozenset({'avx512_bf16', 'amx_bf16'})


def cpu_flags() -> FrozenSet[str]:
    """The CPU's ISA flags from ``/proc/cpuinfo`` (empty where unreadable).

    Returns:
        frozenset[str]: Flags of the first processor listed.
    """
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith(('flags', 'Features')):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16_missing(device: str = 'cpu') -> Optional[str]:
    """Why ``device`` does not run bf16 natively, or None when it does.

    A CPU counts as native when torch's dispatch level is an AMX one
    (``torch.backends.cpu.get_cpu_capability()``) or ``/proc/cpuinfo`` lists
    AVX512-BF16 or AMX-BF16; a CUDA device when
    ``torch.cuda.is_bf16_supported()`` says so.

    Args:
        device (str): ``'cpu'``, ``'cuda'`` or ``'cuda:N'``. Default: 'cpu'.

    Returns:
        str | None: A one-line reason, or None where bf16 is native.
    """
    kind = torch.device(device).type
    if kind == 'cuda':
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return None
        return 'this CUDA device has no native bfloat16 support'
    if kind != 'cpu':
        return f'native bfloat16 support is unknown on {kind!r} devices'
    capability = torch.backends.cpu.get_cpu_capability()
    if any(k in capability.upper()
           for k in ('AMX', 'BF16')) or (cpu_flags() & NATIVE_BF16_CPU_FLAGS):
        return None
    return ('this CPU has neither AVX512-BF16 nor AMX (torch dispatch '
            f'level {capability}), so bfloat16 is emulated and runs several '
            'times slower than fp32')


def check_native_bf16(device: str = 'cpu') -> None:
    """Raise unless ``device`` runs bf16 natively.

    Args:
        device (str): As in :func:`native_bf16_missing`. Default: 'cpu'.

    Raises:
        RuntimeError: With the reason and the fp32 alternative.
    """
    reason = native_bf16_missing(device)
    if reason is not None:
        raise RuntimeError(
            f'bf16 deploy refused: {reason}. Use the fp32 deploy mode '
            'instead (switch_to_deploy() / tools/test.py --deploy).')
