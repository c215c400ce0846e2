"""Numeric checks of an exported file against the PyTorch wrapper."""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from ..benchmarking import max_relative_error
from .detection_matching import DetectionMatch, compare_end2end_outputs
from .export_modes import END2END_MODE, example_inputs


def compare_outputs(expected: Sequence[np.ndarray],
                    actual: Sequence[np.ndarray]) -> float:
    """The error of an engine's outputs against PyTorch's:
    :func:`~mmfasternet.benchmarking.max_relative_error` (largest element
    error relative to each output's largest magnitude; ``inf`` for another
    shape or other integer values)."""
    return max_relative_error(actual, expected)


class BackendCheck(NamedTuple):
    """What :func:`check_with_backend` compared and found."""
    #: Largest relative error (``inf``: detections differ in number,
    #: labels or batch index).
    error: float
    #: Detections compared (end2end; None for features). With 0 the check
    #: compared nothing but the graph's running.
    detections: Optional[int]
    #: End to end: how the detections paired up (None for features).
    match: Optional[DetectionMatch] = None


def check_with_backend(wrapper: nn.Module,
                       onnx_file: str,
                       mode: str,
                       input_shape: Sequence[int],
                       batch: int = 1,
                       backend: str = 'onnxruntime',
                       seed: int = 1,
                       tolerance: float = 1e-4) -> BackendCheck:
    """Run the file and the PyTorch wrapper on the same random input.

    Args:
        wrapper (nn.Module): What :func:`export_onnx` returned.
        onnx_file (str): The exported file.
        mode (str): ``'features'`` or ``'end2end'``.
        input_shape (Sequence[int]): (H, W) of the input to check with
            (another than the export size only for a dynamic-shape file).
        batch (int): Its batch size. Default: 1.
        backend (str): ``'onnxruntime'`` or ``'openvino'``.
            Default: 'onnxruntime'.
        seed (int): Seed of the random input. Default: 1.
        tolerance (float): End to end, the relative tolerance within which
            detections pair up (:func:`compare_end2end_outputs`: as sets,
            in any order). Default: 1e-4.

    Returns:
        BackendCheck: The largest relative error and, end to end, the
        number of detections compared and how they paired up.
    """
    from .backends import build_backend
    inputs = example_inputs(mode, batch, input_shape, seed=seed)
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(*inputs)]
    runner = build_backend(backend, onnx_file)
    actual = runner([t.numpy() for t in inputs])
    if mode != END2END_MODE:
        return BackendCheck(compare_outputs(expected, actual), None)
    score_thr = getattr(wrapper, 'score_thr', None)
    max_per_img = getattr(wrapper, 'max_per_img', None)
    error, match = compare_end2end_outputs(expected, actual, batch, tolerance,
                                           score_thr, max_per_img)
    return BackendCheck(error, len(expected[0]), match)


def check_sizes(
        input_shape: Sequence[int],
        batch: int,
        dynamic_batch: bool = False,
        dynamic_shape: bool = False) -> List[Tuple[Tuple[int, int], int]]:
    """The (H, W) and batch sizes to check a file at: the export's, and
    for free dimensions one more, (H + 32, W + 64) and ``batch + 1``.

    Args:
        input_shape (Sequence[int]): (H, W) of the export.
        batch (int): Batch size of the export.
        dynamic_batch (bool): The batch is free. Default: False.
        dynamic_shape (bool): H and W are free. Default: False.

    Returns:
        list[tuple]: ``((H, W), batch)`` pairs, the export's first.
    """
    shape = (int(input_shape[0]), int(input_shape[1]))
    sizes = [(shape, batch)]
    if dynamic_batch or dynamic_shape:
        other = (shape[0] + 32, shape[1] + 64) if dynamic_shape else shape
        sizes.append((other, batch + 1 if dynamic_batch else batch))
    return sizes
