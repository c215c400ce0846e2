"""Fast GPU inference: CUDA graphs and ``torch.compile`` for FasterNet
models, with the checks that turn misuse into one clear error.

At batch 1 a FasterNet backbone is launch-bound on a GPU: its hundreds of
small kernels take longer to launch than to run, so T0 and L take about the
same time. A CUDA graph records the kernels once and replays them with one
launch. :class:`CUDAGraphRunner` captures any module (or function of one
tensor) at a fixed input shape; :class:`GraphedDetector` captures the
network part of an mmdet detector (backbone and neck, plus the dense head
of a single-stage detector such as RTMDet) and runs the data-dependent rest
(box decoding, NMS, RoI heads) eagerly, as the detector's own ``predict``
would.

Example:
    >>> model = FasterNet('t0').cuda().eval()
    >>> model.switch_to_deploy()
    >>> graphed = CUDAGraphRunner(model, torch.rand(1, 3, 640, 640).cuda())
    >>> feats = graphed(image)  # same shape as captured
"""
import contextlib
from typing import Any, Callable, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

#: ``--amp`` names and their dtypes.
AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def amp_dtype(amp: Optional[str]) -> Optional[torch.dtype]:
    """The autocast dtype of an ``--amp`` name (None: full precision).

    Args:
        amp (str, optional): ``'fp16'``, ``'bf16'`` or None.

    Returns:
        torch.dtype | None: The dtype.

    Raises:
        ValueError: For another name.
    """
    if amp is None:
        return None
    if amp not in AMP_DTYPES:
        raise ValueError(f'amp must be one of {sorted(AMP_DTYPES)} or None, '
                         f'got {amp!r}')
    return AMP_DTYPES[amp]


def autocast(device: Union[str, torch.device],
             amp: Optional[str],
             cache_enabled: bool = True):
    """``torch.autocast`` for ``amp``, or a no-op context without it.

    A no-op context, not ``autocast(enabled=False)``: the latter would turn
    off an autocast that the caller entered.

    Args:
        device (str | torch.device): Where the model runs.
        amp (str, optional): ``'fp16'``, ``'bf16'`` or None.
        cache_enabled (bool): Autocast's weight-cast cache; it must be off
            while a CUDA graph is captured. Default: True.

    Returns:
        A context manager.
    """
    dtype = amp_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(
        torch.device(device).type, dtype=dtype, cache_enabled=cache_enabled)


def _map_tensors(fn: Callable[[torch.Tensor], Any], value: Any) -> Any:
    """Apply ``fn`` to every tensor in nested tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(fn, v) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(fn, v) for k, v in value.items()}
    return value


def _refuse_training(module: Any, what: str) -> None:
    """Refuse a module in training mode: its own flag, or any norm or
    dropout layer (whose training behaviour a graph would freeze)."""
    if not isinstance(module, nn.Module):
        return
    stateful = (_BatchNorm, nn.Dropout, nn.Dropout2d, nn.Dropout3d)
    if module.training or any(
            m.training for m in module.modules() if isinstance(m, stateful)):
        raise ValueError(
            f'{what} is for inference: call .eval() first (a graph or a '
            'compiled model cannot train here; train in eager mode with '
            'tools/train.py, --amp for speed)')


def _describe(x: torch.Tensor) -> str:
    shape = 'x'.join(str(s) for s in x.shape)
    return f'{shape} {str(x.dtype).replace("torch.", "")} on {x.device}'


class CUDAGraphRunner:
    """Capture ``fn(x)`` in a CUDA graph once; replay it for new inputs.

    The input is copied into the graph's static input buffer and the graph
    replayed: outputs equal eager outputs (same kernels, same order). Only
    an input of the captured shape, dtype and device can be replayed.

    Args:
        fn (Callable[[Tensor], Any]): A module in eval mode, or a function
            of one tensor returning tensors in tuples, lists or dicts.
        example (Tensor): An input of the shape to capture, on a CUDA
            device (its values are only used for warm-up).
        amp (str, optional): Capture under ``'fp16'`` or ``'bf16'``
            autocast. Default: None.
        warmup (int): Eager runs on a side stream before the capture (cuDNN
            picks its kernels there). Default: 3.
        clone_outputs (bool): Return copies of the graph's static outputs.
            Without copies the next replay overwrites the tensors returned
            by the previous call. Default: True.

    Raises:
        ValueError: If ``example`` is not on a CUDA device, CUDA is not
            available, or ``fn`` is a module in training mode.
    """

    def __init__(self,
                 fn: Callable[[torch.Tensor], Any],
                 example: torch.Tensor,
                 amp: Optional[str] = None,
                 warmup: int = 3,
                 clone_outputs: bool = True) -> None:
        if not torch.cuda.is_available():
            raise ValueError('CUDA graphs need a CUDA GPU, and none is '
                             'visible; run eagerly (or with the deploy mode) '
                             'on this machine')
        if not isinstance(example, torch.Tensor):
            raise ValueError('example must be a tensor, got '
                             f'{type(example).__name__}')
        if example.device.type != 'cuda':
            raise ValueError('CUDA graphs need the input on a CUDA device, '
                             f'got {example.device}; move the model and '
                             'input there (e.g. --device cuda)')
        _refuse_training(fn, 'a CUDA graph')
        amp_dtype(amp)  # validate the name before any work
        self.fn = fn
        self.amp = amp
        self.clone_outputs = clone_outputs
        self.static_input = example.detach().clone()
        self.graph = torch.cuda.CUDAGraph()
        device = example.device
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.no_grad(), torch.cuda.stream(stream):
            for _ in range(warmup):
                with autocast(device, amp, cache_enabled=False):
                    fn(self.static_input)
        torch.cuda.current_stream(device).wait_stream(stream)
        with torch.no_grad(), torch.cuda.graph(self.graph):
            with autocast(device, amp, cache_enabled=False):
                self.static_output = fn(self.static_input)

    def __call__(self, x: torch.Tensor) -> Any:
        """Replay the graph on ``x``.

        Args:
            x (Tensor): Same shape, dtype and device as the captured input.

        Returns:
            The outputs, structured as ``fn``'s.

        Raises:
            ValueError: If ``x`` differs from the captured input's shape,
                dtype or device.
        """
        ref = self.static_input
        if not isinstance(x, torch.Tensor) or x.shape != ref.shape or \
                x.dtype != ref.dtype or x.device != ref.device:
            got = _describe(x) if isinstance(x, torch.Tensor) else type(x)
            raise ValueError(
                f'this CUDA graph was captured for input {_describe(ref)}, '
                f'got {got}; capture another graph for that shape (one per '
                'input size) or run the model eagerly')
        self.static_input.copy_(x)
        self.graph.replay()
        if not self.clone_outputs:
            return self.static_output
        return _map_tensors(torch.Tensor.clone, self.static_output)


def _detector_network(detector: nn.Module) -> Callable:
    """The part of ``detector``'s predict that depends only on the input's
    shape: features, and the dense head's raw outputs where the detector is
    single-stage."""
    if hasattr(detector, 'rpn_head') or not hasattr(detector, 'bbox_head'):
        return detector.extract_feat
    return lambda x: detector.bbox_head(detector.extract_feat(x))


class GraphedDetector:
    """An mmdet detector whose network part runs as a CUDA graph.

    Single-stage detectors (RTMDet, RTMDet-Ins, RetinaNet...): backbone,
    neck and dense head are captured; box decoding and NMS
    (``bbox_head.predict_by_feat``) run eagerly. Two-stage detectors (Mask
    R-CNN...): backbone and neck are captured; the RPN and the RoI heads,
    whose work depends on the proposals, run eagerly.

    Args:
        detector (nn.Module): An mmdet detector in eval mode on a GPU.
        example (Tensor): A batch of the shape to capture (``N x 3 x H x
            W``, already padded), on the detector's device.
        amp (str, optional): Capture under ``'fp16'`` or ``'bf16'``
            autocast. Default: None.

    Raises:
        ValueError: As :class:`CUDAGraphRunner`.
    """

    def __init__(self,
                 detector: nn.Module,
                 example: torch.Tensor,
                 amp: Optional[str] = None) -> None:
        _refuse_training(detector, 'a CUDA graph')
        self.detector = detector
        self.amp = amp
        self.network = CUDAGraphRunner(
            _detector_network(detector), example, amp=amp, clone_outputs=False)

    def predict(self,
                batch_inputs: torch.Tensor,
                batch_data_samples: Sequence[Any],
                rescale: bool = True) -> List[Any]:
        """Like the detector's ``predict``, with the network replayed.

        Args:
            batch_inputs (Tensor): The preprocessed batch.
            batch_data_samples (list[DetDataSample]): Their meta info.
            rescale (bool): Rescale results to the original image size.
                Default: True.

        Returns:
            list[DetDataSample]: With ``pred_instances`` filled in.
        """
        det = self.detector
        outs = self.network(batch_inputs)
        with torch.no_grad(), autocast(batch_inputs.device, self.amp):
            if hasattr(det, 'rpn_head'):
                proposals = det.rpn_head.predict(
                    outs, batch_data_samples, rescale=False)
                results = det.roi_head.predict(
                    outs, proposals, batch_data_samples, rescale=rescale)
            else:
                metas = [s.metainfo for s in batch_data_samples]
                results = det.bbox_head.predict_by_feat(
                    *outs, batch_img_metas=metas, rescale=rescale)
        return det.add_pred_to_datasample(batch_data_samples, results)

    def network_outputs(self, batch_inputs: torch.Tensor) -> Any:
        """The captured part's outputs (the graph's own buffers: read them
        before the next call)."""
        return self.network(batch_inputs)


def compile_for_inference(module: nn.Module,
                          device: Union[str, torch.device],
                          mode: Optional[str] = None) -> Callable:
    """``torch.compile`` a model for inference at fixed input shapes.

    Args:
        module (nn.Module): In eval mode (a deployed FasterNet compiles
            best: no BN, fused blocks).
        device (str | torch.device): Where it runs; must be CUDA (on a CPU
            use the deploy mode or the ONNX engines of tools/deploy).
        mode (str, optional): ``torch.compile``'s mode, e.g.
            ``'max-autotune'``. Default: None (its default).

    Returns:
        Callable: The compiled module (compiles on its first call).

    Raises:
        ValueError: On a CPU, or for a module in training mode.
    """
    if torch.device(device).type != 'cuda':
        raise ValueError('--compile is supported here on CUDA only; on a '
                         'CPU use the deploy mode (--deploy) or an exported '
                         'ONNX Runtime / OpenVINO model (tools/deploy)')
    if not torch.cuda.is_available():
        raise ValueError('--compile needs a CUDA GPU, and none is visible')
    _refuse_training(module, 'torch.compile here')
    return torch.compile(module, mode=mode, dynamic=False)
