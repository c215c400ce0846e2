"""mmcv's compiled ops from torchvision, for an mmcv that has none.

Why this exists: ``mmcv-lite``, and OneDL's ``onedl-mmcv`` installed with
build isolation, ship ``mmcv.ops``' Python code but not its compiled
extension ``mmcv._ext``. Every module of ``mmcv.ops`` loads that extension
when it is imported, so ``import mmcv.ops`` fails, and with it mmdet's
detectors and mmseg's decode heads. Building mmcv with its ops takes a
C++ (and for GPUs a CUDA) compiler and, on 2 cores, minutes.

The configs of this project reach only two of mmcv's compiled ops: NMS
(Mask R-CNN's RPN and both heads' post-processing, RTMDet's
post-processing) and RoIAlign (Mask R-CNN's RoI extractors and its mask
targets). torchvision ships both kernels, for CPU and CUDA, with every
PyTorch build. :func:`use_torchvision_ops` puts a stand-in for
``mmcv._ext`` into ``sys.modules`` that serves them from torchvision:

* ``nms`` with ``offset`` 0 and 1, keeping the boxes in the order of
  mmcv's own sort, so that tied scores keep the same boxes;
* ``roi_align_forward`` / ``roi_align_backward``, ``aligned`` True and
  False, any ``sampling_ratio``, average pooling.

Any other op of ``mmcv._ext`` raises :class:`MissingMmcvOpError` when it
is called, naming the op and how to get compiled ops. Where mmcv has its
compiled ops, nothing is replaced and they are always used.

``import mmfasternet`` (which configs do through ``custom_imports``) calls
:func:`use_torchvision_ops`; it must come before the first
``import mmcv.ops`` in a process (mmdet's and mmseg's tools read the
config, and so import mmfasternet, before they build a model).
``python -m mmfasternet`` prints which backend is in use.
"""
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
import types
from typing import Callable

import torch
from mmengine.logging import print_log

__all__ = [
    'MissingMmcvOpError', 'TorchvisionMismatchError', 'describe',
    'log_backend_once', 'mmcv_ops_backend', 'use_torchvision_ops'
]

EXT_NAME = 'mmcv._ext'
HOW_TO_COMPILE = ('install mmcv with compiled ops (`MMCV_OPS=compiled make '
                  'setup` in mmfasternet, or an mmcv wheel built for your '
                  'torch and CUDA)')


class MissingMmcvOpError(RuntimeError):
    """An mmcv op that needs mmcv's compiled extension was called."""


class TorchvisionMismatchError(RuntimeError):
    """torchvision's compiled ops do not load with the installed torch."""


#: The distributions that install the ``mmcv`` package.
MMCV_DISTRIBUTIONS = ('mmcv', 'mmcv-lite', 'onedl-mmcv')


def _mmcv_distribution() -> str:
    """The installed mmcv distribution and its version, for messages."""
    for name in MMCV_DISTRIBUTIONS:
        try:
            return f'{name} {importlib.metadata.version(name)}'
        except importlib.metadata.PackageNotFoundError:
            continue
    return 'mmcv (unknown distribution)'


def _torchvision_ops():
    """torchvision's op namespace, or one clear error if it cannot load."""
    try:
        import torchvision  # noqa: F401  (registers torch.ops.torchvision)
        return torch.ops.torchvision
    except (ImportError, RuntimeError) as exc:
        torch_version = torch.__version__.split('+')[0]
        major, minor = (int(x) for x in torch_version.split('.')[:2])
        try:
            vision = importlib.metadata.version('torchvision')
        except importlib.metadata.PackageNotFoundError:
            vision = 'not installed'
        # torchvision 0.(minor + 15) is the release paired with torch 2.minor
        pair = (f'torch=={torch_version} torchvision==0.{minor + 15}.*'
                if major == 2 else f'the torchvision release for torch '
                f'{torch_version}')
        raise TorchvisionMismatchError(
            f'mmcv ops need torchvision\'s kernels, which do not load '
            f'(torch {torch.__version__}, torchvision {vision}: '
            f'{str(exc).splitlines()[0]}); install the matching pair: '
            f'pip install {pair}') from None


_logged = False


def log_backend_once() -> None:
    """Log, once per process, which kernels mmcv's ops run on (the first
    torchvision-backed op call does it, and so do our tools' runners)."""
    global _logged
    if not _logged:
        _logged = True
        backend = mmcv_ops_backend()
        mmcv_dist = _mmcv_distribution()
        if backend == 'torchvision':
            message = ('mmcv ops (NMS, RoIAlign) run on torchvision\'s '
                       f'kernels: {mmcv_dist} has no compiled ops')
        else:
            message = f'mmcv ops: {backend} ({mmcv_dist})'
        print_log(message, logger='current')


def nms(boxes: torch.Tensor,
        scores: torch.Tensor,
        iou_threshold: float,
        offset: int = 0) -> torch.Tensor:
    """Indices of the boxes NMS keeps, highest score first (``mmcv._ext``'s
    signature).

    Args:
        boxes (Tensor): ``(N, 4)`` boxes ``x1, y1, x2, y2``.
        scores (Tensor): ``(N,)`` scores.
        iou_threshold (float): A box whose IoU with a kept box is above
            this is dropped.
        offset (int): 0, or 1 for the legacy ``x2 - x1 + 1`` width.

    Returns:
        Tensor: ``int64`` indices into ``boxes``.
    """
    log_backend_once()
    if boxes.numel() == 0:
        return boxes.new_zeros(0, dtype=torch.long)
    # mmcv sorts the scores itself and walks that order; giving torchvision
    # the same order as strictly decreasing ranks makes tied scores resolve
    # as in mmcv's kernels.
    order = scores.sort(0, descending=True)[1]
    ranked = boxes[order].float()
    if offset:
        ranked = torch.cat([ranked[:, :2], ranked[:, 2:] + offset], dim=1)
    ranks = torch.arange(
        len(order), 0, -1, dtype=torch.float32, device=boxes.device)
    keep = _torchvision_ops().nms(ranked, ranks, float(iou_threshold))
    return order[keep]


def _check_avg_pool(pool_mode: int) -> None:
    if pool_mode != 1:
        raise MissingMmcvOpError(
            'mmcv op roi_align with pool_mode="max" needs mmcv\'s compiled '
            f'ops (torchvision has only average pooling); {HOW_TO_COMPILE}')


def roi_align_forward(input: torch.Tensor, rois: torch.Tensor,
                      output: torch.Tensor, argmax_y: torch.Tensor,
                      argmax_x: torch.Tensor, aligned_height: int,
                      aligned_width: int, spatial_scale: float,
                      sampling_ratio: int, pool_mode: int,
                      aligned: bool) -> None:
    """RoIAlign into ``output`` (``mmcv._ext``'s signature; average pooling
    only, so ``argmax_y`` / ``argmax_x`` are unused)."""
    log_backend_once()
    _check_avg_pool(pool_mode)
    if rois.numel() == 0:
        return
    pooled = _torchvision_ops().roi_align(input, rois.to(input.dtype),
                                          float(spatial_scale),
                                          int(aligned_height),
                                          int(aligned_width),
                                          int(sampling_ratio), bool(aligned))
    output.copy_(pooled)


def roi_align_backward(grad_output: torch.Tensor, rois: torch.Tensor,
                       argmax_y: torch.Tensor, argmax_x: torch.Tensor,
                       grad_input: torch.Tensor, aligned_height: int,
                       aligned_width: int, spatial_scale: float,
                       sampling_ratio: int, pool_mode: int,
                       aligned: bool) -> None:
    """Add RoIAlign's input gradient into ``grad_input`` (``mmcv._ext``'s
    signature; average pooling only)."""
    _check_avg_pool(pool_mode)
    if rois.numel() == 0:
        return
    batch, channels, height, width = grad_input.shape
    grad = _torchvision_ops()._roi_align_backward(grad_output,
                                                  rois.to(grad_output.dtype),
                                                  float(spatial_scale),
                                                  int(aligned_height),
                                                  int(aligned_width), batch,
                                                  channels, height, width,
                                                  int(sampling_ratio),
                                                  bool(aligned))
    grad_input.add_(grad)


def get_compiler_version() -> str:
    """What mmcv's environment report shows for the ops' compiler."""
    return 'none (mmcv ops from torchvision)'


def get_compiling_cuda_version() -> str:
    """mmcv's value for an extension built without CUDA."""
    return 'not available'


class _TorchvisionExt(types.ModuleType):
    """The stand-in ``mmcv._ext``: the ops above, and for every other name
    a function that raises :class:`MissingMmcvOpError` when called (mmcv's
    op modules check at import that their names exist)."""

    def __getattr__(self, name: str) -> Callable:
        if name.startswith('__'):
            raise AttributeError(name)

        def missing(*args, **kwargs):
            raise MissingMmcvOpError(
                f'mmcv op {name!r} needs mmcv\'s compiled ops, which '
                f'{_mmcv_distribution()} does '
                f'not have (only nms and roi_align run on torchvision); '
                f'{HOW_TO_COMPILE}')

        missing.__name__ = name
        return missing


def _build_ext() -> types.ModuleType:
    ext = _TorchvisionExt(
        EXT_NAME, 'mmcv ops served by torchvision (mmfasternet.mmcv_ops)')
    ext.torchvision_backed = True
    # A spec without a loader: mmengine's mmcv_full_available() (which
    # gates DCN and mmcv SyncBN checks) then says False, as for mmcv-lite.
    ext.__spec__ = importlib.machinery.ModuleSpec(
        EXT_NAME, None, origin=__name__)
    for func in (nms, roi_align_forward, roi_align_backward,
                 get_compiler_version, get_compiling_cuda_version):
        setattr(ext, func.__name__, func)
    return ext


def mmcv_ops_backend() -> str:
    """Which kernels mmcv's ops run on.

    Returns:
        str: ``'compiled'`` (mmcv's own extension), ``'torchvision'`` (the
        stand-in of this module is installed) or ``'none'`` (mmcv has no
        compiled ops and the stand-in is not installed yet).
    """
    ext = sys.modules.get(EXT_NAME)
    if ext is not None and vars(ext).get('torchvision_backed'):
        return 'torchvision'
    if ext is not None:
        return 'compiled'
    try:
        found = importlib.util.find_spec(EXT_NAME) is not None
    except ImportError:  # an import hook that hides the extension
        found = False
    return 'compiled' if found else 'none'


def use_torchvision_ops() -> str:
    """Serve ``mmcv._ext`` from torchvision if mmcv has no compiled ops.

    Idempotent. Compiled ops, where mmcv has them, are left in place and
    used. The extension is only located here, not loaded.

    Returns:
        str: The backend now in use (see :func:`mmcv_ops_backend`).
    """
    backend = mmcv_ops_backend()
    if backend == 'none':
        sys.modules[EXT_NAME] = _build_ext()
        backend = 'torchvision'
    return backend


def describe() -> str:
    """One line: the backend, mmcv's distribution and torch's version."""
    return (f'mmcv ops backend: {mmcv_ops_backend()} '
            f'({_mmcv_distribution()}, '
            f'torch {torch.__version__})')
