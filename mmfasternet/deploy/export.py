"""Export FasterNet models to ONNX and check the file against PyTorch."""
import re
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import print_log

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


def io_names(mode: str, num_outputs: int) -> Tuple[List[str], List[str]]:
    """Input and output names of the exported graph."""
    if mode == FEATURE_MODE:
        return ['input'], [f'feat{i}' for i in range(num_outputs)]
    outputs = ['batch_index', 'boxes', 'scores', 'labels', 'masks']
    return ['input', 'img_shape', 'rescale'], outputs[:num_outputs]


@contextmanager
def module_tracker(model: nn.Module) -> Iterator[List[str]]:
    """Keep the names of the modules being run (outermost first)."""
    stack: List[str] = []
    handles = []
    for name, module in model.named_modules():
        label = f'{name or "<model>"} ({type(module).__name__})'

        def push(_mod, _args, label=label):
            stack.append(label)

        def pop(_mod, _args, _out):
            if stack:
                stack.pop()

        handles.append(module.register_forward_pre_hook(push))
        handles.append(module.register_forward_hook(pop))
    try:
        yield stack
    finally:
        for handle in handles:
            handle.remove()


def scoped_trace(wrapper: nn.Module, inputs: Sequence[torch.Tensor]) -> str:
    """The traced graph as text, each node with the ``Type::path`` of its
    module (the scopes the ONNX exporter records); '' if tracing fails."""
    trace = torch.jit._trace
    previous = trace._trace_module_map
    trace._trace_module_map = {
        module: f'{type(module).__name__}::{name}'
        for name, module in wrapper.named_modules()
    }
    try:
        with torch.no_grad():
            return str(torch.jit._get_trace_graph(wrapper, inputs)[0])
    except Exception:  # the export error's own message is enough then
        return ''
    finally:
        trace._trace_module_map = previous


def module_of_op(message: str, graph: str) -> Optional[str]:
    """The module that called the operator an export error names.

    Each node of a traced graph carries its module scope
    (``Type::name/Type::name/...``); the first node of the operator named
    in ``message`` gives the module's path and type.
    """
    match = re.search(r"operator '?((?:aten|prim|onnx)::\w+)", message)
    if not match:
        return None
    op = re.escape(match.group(1))
    node = re.search(rf'= {op}\(.*?scope: (\S+)', graph)
    if not node:
        return None
    module_type, path = node.group(1).split('/')[-1].split('::', 1)
    if path.startswith('model.'):
        path = path[len('model.'):]  # the wrapper's attribute
    elif path in ('', 'model'):
        path = '<model>'
    return f'{path} ({module_type}, {match.group(1)})'


def export_onnx(model: nn.Module,
                out_file: str,
                mode: str = FEATURE_MODE,
                input_shape: Sequence[int] = (800, 1344),
                batch: int = 1,
                dynamic_batch: bool = False,
                dynamic_shape: bool = False,
                opset: int = 17) -> nn.Module:
    """Export ``model`` to ``out_file`` with the TorchScript exporter.

    Args:
        model (nn.Module): The model, in eval mode, weights loaded.
        out_file (str): The ``.onnx`` file to write.
        mode (str): ``'features'`` or ``'end2end'`` (RTMDet, Mask R-CNN).
            Default: 'features'.
        input_shape (Sequence[int]): (H, W). Default: (800, 1344).
        batch (int): Batch size of the traced input. Default: 1.
        dynamic_batch (bool): Leave the batch dimension free.
            Default: False.
        dynamic_shape (bool): Leave H and W free too (features only: the
            end-to-end graph's priors are those of ``input_shape``).
            Default: False.
        opset (int): ONNX opset (NonMaxSuppression needs >= 11).
            Default: 17.

    Returns:
        nn.Module: The exported wrapper (to compare outputs with).

    Raises:
        ExportError: The model cannot be exported; the message names the
            module that failed and why.
    """
    if dynamic_shape and mode == END2END_MODE:
        raise ValueError('end2end graphs have the export size built in; '
                         'export one per input size instead')
    wrapper = build_export_module(model, mode, input_shape).eval()
    inputs = example_inputs(mode, batch, input_shape)
    with torch.no_grad():
        num_outputs = len(wrapper(*inputs))
    input_names, output_names = io_names(mode, num_outputs)
    if mode == FEATURE_MODE:
        output_names = wrapper.output_names(num_outputs)
    dynamic_axes: Dict[str, Dict[int, str]] = {}
    if dynamic_batch or dynamic_shape:
        axes = {0: 'batch'} if dynamic_batch else {}
        if dynamic_shape:
            axes.update({2: 'height', 3: 'width'})
        dynamic_axes['input'] = axes
        if mode == FEATURE_MODE:
            for name in output_names:
                dynamic_axes[name] = dict(axes)
        else:
            dynamic_axes['img_shape'] = {0: 'batch'}
            dynamic_axes['rescale'] = {0: 'batch'}
    failure = None
    with module_tracker(wrapper) as stack, torch.no_grad():
        try:
            torch.onnx.export(
                wrapper,
                inputs,
                out_file,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes or None,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False)
        except Exception as exc:  # turned into a message naming the module
            failure, failed_in = exc, list(stack)
    if failure is not None:
        raise _export_error(wrapper, inputs, failed_in, failure,
                            opset) from failure
    metadata = getattr(wrapper, 'onnx_metadata', None)
    if metadata:
        _add_metadata(out_file, metadata)
    print_log(
        f'exported {type(model).__name__} ({mode}) to {out_file}',
        logger='current')
    return wrapper


def _add_metadata(onnx_file: str, props: Dict[str, str]) -> None:
    """Store ``props`` in the file's ``metadata_props`` (what the graph's
    outputs mean to :class:`~mmfasternet.deploy.BackendDetector`)."""
    import onnx
    model = onnx.load(onnx_file)
    onnx.helper.set_model_props(model, props)
    onnx.save(model, onnx_file)


def _export_error(wrapper: nn.Module, inputs, stack: List[str], exc: Exception,
                  opset: int) -> ExportError:
    first_line = str(exc).strip().splitlines()[0] if str(exc) else repr(exc)
    if stack:
        return ExportError(f'ONNX export failed in module {stack[-1]} '
                           f'(inside {" > ".join(stack[:-1]) or "-"}): '
                           f'{type(exc).__name__}: {first_line}')
    culprit = None
    if isinstance(exc, torch.onnx.errors.OnnxExporterError):
        # The exporter's message has no module; a plain trace has scopes.
        culprit = module_of_op(str(exc), scoped_trace(wrapper, inputs))
    where = (f'in module {culprit}'
             if culprit else 'while converting the traced graph')
    return ExportError(f'ONNX export (opset {opset}) failed {where}: '
                       f'{type(exc).__name__}: {first_line}')


def compare_outputs(expected: Sequence[np.ndarray],
                    actual: Sequence[np.ndarray]) -> float:
    """Largest error relative to each output's largest magnitude."""
    worst = 0.0
    for e, a in zip(expected, actual):
        if e.shape != a.shape:
            return float('inf')
        if e.size == 0:
            continue
        if not np.issubdtype(e.dtype, np.floating):
            if not np.array_equal(e, a):
                return float('inf')
            continue
        scale = max(float(np.abs(e).max()), 1e-12)
        worst = max(worst, float(np.abs(e - a).max()) / scale)
    return worst


def check_with_backend(wrapper: nn.Module,
                       onnx_file: str,
                       mode: str,
                       input_shape: Sequence[int],
                       batch: int = 1,
                       backend: str = 'onnxruntime',
                       seed: int = 1) -> float:
    """Run the file and the PyTorch wrapper on the same input.

    Returns:
        float: The largest relative error (``inf`` when the detections
        differ in number, labels or batch index).
    """
    from .backends import build_backend
    inputs = example_inputs(mode, batch, input_shape, seed=seed)
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(*inputs)]
    runner = build_backend(backend, onnx_file)
    actual = runner([t.numpy() for t in inputs])
    return compare_outputs(expected, actual)
