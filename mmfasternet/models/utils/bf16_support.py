"""Whether a device runs bfloat16 natively (where bf16 autocast pays off).

On a CPU without AVX512-BF16 or AMX, oneDNN emulates bf16 with fp32
arithmetic plus conversions: FasterNet's bf16 deploy backbone then runs
several times slower than fp32 (6.5-8.1x measured on an AVX2 EPYC).
"""
from typing import FrozenSet, Optional

import torch

#: CPU features (as torch and ``/proc/cpuinfo`` name them) that compute in
#: bf16 natively: AVX512-BF16 and AMX-BF16 on x86, BF16 and SVE-BF16 on Arm.
NATIVE_BF16_CPU_FLAGS = frozenset(
    {'avx512_bf16', 'amx_bf16', 'bf16', 'sve_bf16'})


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


def cpu_features() -> FrozenSet[str]:
    """The CPU features that torch detects (its cpuinfo library).

    ``torch.cpu.get_capabilities()`` where torch has it (x86 and Arm);
    before that, torch's AVX512-BF16 / AMX queries (x86 only); on a torch
    without either, ``/proc/cpuinfo``'s flags, as torch offers no query.

    Returns:
        frozenset[str]: The names of the features present.
    """
    capabilities = getattr(torch.cpu, 'get_capabilities', None)
    if capabilities is not None:
        return frozenset(k for k, v in capabilities().items() if v is True)
    avx512_bf16 = getattr(torch.cpu, '_is_avx512_bf16_supported', None)
    if avx512_bf16 is None:
        return cpu_flags()
    amx = getattr(torch.cpu, '_is_amx_tile_supported', lambda: False)
    present = dict(avx512_bf16=avx512_bf16(), amx_bf16=amx())  # AMX has bf16
    return frozenset(name for name, found in present.items() if found)


def native_bf16_missing(device: str = 'cpu') -> Optional[str]:
    """Why ``device`` does not run bf16 natively, or None when it does.

    A CPU counts as native when torch's dispatch level is an AMX one
    (``torch.backends.cpu.get_cpu_capability()``) or it has one of
    :data:`NATIVE_BF16_CPU_FLAGS` (:func:`cpu_features`); a CUDA device
    from Ampere (compute capability 8.0) on, where bf16 runs on the tensor
    cores (``torch.cuda.is_bf16_supported()`` also says yes to older GPUs,
    which emulate it), and every ROCm device.

    Args:
        device (str): ``'cpu'``, ``'cuda'`` or ``'cuda:N'``. Default: 'cpu'.

    Returns:
        str | None: A one-line reason, or None where bf16 is native.
    """
    device = torch.device(device)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            return 'no CUDA device is available'
        if torch.version.hip:
            return None
        major, minor = torch.cuda.get_device_capability(device)
        if major >= 8:
            return None
        return (f'this CUDA device (compute capability {major}.{minor}) '
                'emulates bfloat16; native bfloat16 needs 8.0 (Ampere) or '
                'newer')
    if device.type != 'cpu':
        return f'native bfloat16 support is unknown on {device.type!r} devices'
    capability = torch.backends.cpu.get_cpu_capability()
    if 'AMX' in capability.upper() or (cpu_features() & NATIVE_BF16_CPU_FLAGS):
        return None
    return ('this CPU has neither AVX512-BF16 nor AMX (nor Arm BF16; torch '
            f'dispatch level {capability}), so bfloat16 is emulated and runs '
            'several times slower than fp32')


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
