"""What each export mode traces: the wrapper module and its inputs.

* ``'features'``: :class:`~.wrappers.FeatureWrapper`, backbone + neck (and
  a two-stage detector's RPN head) of any model.
* ``'end2end'``: the final detections, box decoding and NMS inside the
  graph: :class:`~.wrappers.RTMDetEnd2End` (RTMDet, RTMDet-Ins) or
  :class:`~.mask_rcnn.MaskRCNNEnd2End` (Mask / Faster R-CNN).
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn

from .mask_rcnn import MaskRCNNEnd2End, mask_rcnn_supported
from .wrappers import RTMDET_HEADS, FeatureWrapper, RTMDetEnd2End

FEATURE_MODE = 'features'
END2END_MODE = 'end2end'


class ExportError(RuntimeError):
    """A model could not be exported; the message names the module."""


def end2end_supported(model: nn.Module) -> bool:
    """Whether :func:`build_export_module` can export ``model`` whole."""
    return _is_rtmdet(model) or mask_rcnn_supported(model)


def _is_rtmdet(model: nn.Module) -> bool:
    head = getattr(model, 'bbox_head', None)
    return head is not None and type(head).__name__ in RTMDET_HEADS


def build_export_module(model: nn.Module, mode: str,
                        input_shape: Sequence[int]) -> nn.Module:
    """The module to trace for ``mode`` (``'features'`` or ``'end2end'``).

    Args:
        model (nn.Module): A detector, segmentor or backbone in eval mode.
        mode (str): ``'features'``: backbone + neck outputs;
            ``'end2end'``: final detections (RTMDet, RTMDet-Ins, Mask
            R-CNN and Faster R-CNN).
        input_shape (Sequence[int]): (H, W) of the exported input.

    Returns:
        nn.Module: The wrapper to export.
    """
    if mode == FEATURE_MODE:
        return FeatureWrapper(model)
    if mode != END2END_MODE:
        raise ValueError(f'mode must be {FEATURE_MODE!r} or '
                         f'{END2END_MODE!r}, got {mode!r}')
    if not end2end_supported(model):
        head = getattr(model, 'bbox_head', None)
        if head is None:
            head = getattr(model, 'roi_head', model)
        raise ExportError(
            f'end-to-end export supports RTMDet heads {RTMDET_HEADS} and '
            'Mask / Faster R-CNN (RPNHead, StandardRoIHead); '
            f'{type(model).__name__} has {type(head).__name__}: export the '
            f'backbone, neck (and RPN) with --mode {FEATURE_MODE}')
    if _is_rtmdet(model):
        return RTMDetEnd2End(model, input_shape)
    return MaskRCNNEnd2End(model, input_shape)


def size_divisor(model: nn.Module) -> int:
    """The multiple that the model's input height and width must be: 32
    (the stride of the backbones' last stage, which the necks' upsampled
    maps must meet), or more where the data preprocessor pads to a larger
    multiple (``pad_size_divisor`` in mmdet, ``size_divisor`` in mmseg)."""
    preprocessor = getattr(model, 'data_preprocessor', None)
    padded = [
        getattr(preprocessor, name, None) or 1
        for name in ('pad_size_divisor', 'size_divisor')
    ]
    return max([32] + [int(p) for p in padded])


def example_inputs(mode: str,
                   batch: int,
                   input_shape: Sequence[int],
                   seed: int = 0) -> Tuple[torch.Tensor, ...]:
    """Inputs to trace and check with: a random image batch (and for
    ``end2end`` the whole padded area as ``img_shape``, no rescaling)."""
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn(batch, 3, *input_shape, generator=gen)
    if mode == FEATURE_MODE:
        return (img, )
    img_shape = torch.tensor([list(input_shape)] * batch, dtype=torch.float32)
    return img, img_shape, torch.ones(batch, 2)
