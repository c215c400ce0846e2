"""Export FasterNet models to ONNX and check the file against PyTorch."""
import re
from contextlib import contextmanager
from typing import (Any, Callable, Dict, Iterator, List, NamedTuple, Optional,
                    Sequence, Tuple)

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from ..checkpoint_loading import trusted_checkpoint
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


def load_export_checkpoint(model: nn.Module,
                           filename: str,
                           trust: bool = False) -> None:
    """Load ``filename``'s weights into ``model``, every one of them.

    Unlike ``load_checkpoint(strict=False)``, which only warns, a
    checkpoint that does not fit the model (another variant or config) is
    an error: exporting partly random weights would still "succeed". The
    file is read through mmengine's ``CheckpointLoader``, i.e. mmfasternet's
    safe (``weights_only``) loader, and loaded by the model's own
    ``load_state_dict`` (FasterNet maps the public weight layouts).

    Args:
        model (nn.Module): The model the config builds.
        filename (str): The checkpoint (``state_dict`` inside or the dict
            itself; a ``module.`` prefix is dropped, as mmengine does).
        trust (bool): Unpickle the whole file (a trusted legacy
            checkpoint). Default: False.

    Raises:
        ExportError: Keys are missing or unexpected, or shapes differ; the
            message names the first keys and the modules they belong to.
    """
    with trusted_checkpoint(*([filename] if trust else [])):
        checkpoint = CheckpointLoader.load_checkpoint(
            filename, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint)
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    does_not_fit = (f'checkpoint {filename} does not fit the '
                    f'{type(model).__name__} of the config')
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ExportError(f'{does_not_fit}: {_load_problem(exc)}') from exc
    problems = [
        _key_summary(keys, kind)
        for kind, keys in (('missing', result.missing_keys),
                           ('unexpected', result.unexpected_keys)) if keys
    ]
    if problems:
        raise ExportError(f'{does_not_fit}: {"; ".join(problems)}. Is it '
                          'another variant or config?')


def _load_problem(exc: RuntimeError) -> str:
    """One line for an error of ``load_state_dict``: torch's size
    mismatches summarised, or a module's own refusal with its path."""
    message = str(exc)
    resized = re.findall(
        r'size mismatch for (\S+): copying a param with shape '
        r'torch.Size\(\[(.*?)\]\) from checkpoint, the shape in current '
        r'model is torch.Size\(\[(.*?)\]\)', message)
    if resized:
        key, theirs, ours = resized[0]
        return _key_summary(
            [k for k, _, _ in resized], 'of another shape',
            f'{key}: ({theirs}) in the file, ({ours}) in the model'
        ) + '. Is it another variant or config?'
    # The innermost module whose _load_from_state_dict raised.
    where, tb = '', exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if (frame.f_code.co_name == '_load_from_state_dict'
                and 'prefix' in frame.f_locals and 'self' in frame.f_locals):
            module = frame.f_locals['self']
            where = (f'in module {frame.f_locals["prefix"].rstrip(".")} '
                     f'({type(module).__name__}): ')
        tb = tb.tb_next
    lines = message.strip().splitlines()
    return where + (lines[0] if lines else type(exc).__name__)


def _key_summary(keys: Sequence[str],
                 kind: str,
                 example: str = '',
                 shown: int = 3) -> str:
    """"N <kind> keys", the first few (or ``example``), and their modules:
    a key's first three parts (``backbone.stages.0``).

    Args:
        keys (Sequence[str]): The state dict keys.
        kind (str): What is wrong with them ('missing').
        example (str): Shown instead of the first keys. Default: ''.
        shown (int): How many keys to name. Default: 3.
    """
    plural = 's' if len(keys) > 1 else ''
    count = (f'{len(keys)} key{plural} {kind}'
             if kind.startswith('of ') else f'{len(keys)} {kind} key{plural}')
    names = example or ', '.join(keys[:shown])
    more = ', ...' if len(keys) > (1 if example else shown) else ''
    modules = list(dict.fromkeys('.'.join(k.split('.')[:3]) for k in keys))
    rest = ', ...' if len(modules) > 6 else ''
    return f'{count} ({names}{more}) in {", ".join(modules[:6])}{rest}'


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
    """Keep the names of the modules being run (outermost first).

    When a forward pass raises, the modules it was in stay on the stack
    (their forward hooks never ran): its last entry is the innermost one.
    """
    stack: List[str] = []
    handles = []
    for name, module in model.named_modules():
        label = f'{_module_path(name)} ({type(module).__name__})'

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
    return f'{_module_path(path)} ({module_type}, {match.group(1)})'


def _module_path(name: str) -> str:
    """A submodule's name as the model (not the export wrapper) names it."""
    if name.startswith('model.'):
        return name[len('model.'):]  # the wrapper's attribute
    return '<model>' if name in ('', 'model') else name


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
            end-to-end graph's priors are those of ``input_shape``); each
            output gets its own symbols (``feat0_h``, ``feat0_w``, ...).
            Default: False.
        opset (int): ONNX opset (NonMaxSuppression needs >= 11).
            Default: 17.

    Returns:
        nn.Module: The exported wrapper (to compare outputs with).

    Raises:
        ExportError: The model cannot be built into the export wrapper,
            run at ``input_shape`` or exported; the message names the
            module that failed and why.
    """
    if dynamic_shape and mode == END2END_MODE:
        raise ValueError('end2end graphs have the export size built in; '
                         'export one per input size instead')
    wrapper = _run_tracked(
        model, lambda: build_export_module(model, mode, input_shape),
        f'building the {mode} graph of {type(model).__name__}').eval()
    inputs = example_inputs(mode, batch, input_shape)
    size = 'x'.join(str(d) for d in inputs[0].shape)
    num_outputs = len(
        _run_tracked(wrapper, lambda: wrapper(*inputs),
                     f'the PyTorch forward pass at input {size}'))
    input_names, output_names = io_names(mode, num_outputs)
    if mode == FEATURE_MODE:
        output_names = wrapper.output_names(num_outputs)
    dynamic_axes = _dynamic_axes(mode, input_names, output_names,
                                 dynamic_batch, dynamic_shape)
    _run_tracked(
        wrapper,
        lambda: torch.onnx.export(
            wrapper,
            inputs,
            out_file,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes or None,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False),
        f'ONNX export (opset {opset})',
        inputs=inputs)
    metadata = getattr(wrapper, 'onnx_metadata', None)
    if metadata:
        _add_metadata(out_file, metadata)
    print_log(
        f'wrote the {mode} graph of {type(model).__name__} to {out_file}',
        logger='current')
    return wrapper


def _dynamic_axes(mode: str, input_names: Sequence[str],
                  output_names: Sequence[str], dynamic_batch: bool,
                  dynamic_shape: bool) -> Dict[str, Dict[int, str]]:
    """``torch.onnx.export``'s ``dynamic_axes``: a shared ``batch``, and
    for a free size, the input's ``height``/``width`` and every output's
    own ``<name>_h``/``<name>_w`` (their sizes differ: H/4, H/8, ...)."""
    if not (dynamic_batch or dynamic_shape):
        return {}
    batch = {0: 'batch'} if dynamic_batch else {}
    if mode != FEATURE_MODE:  # end2end: outputs are per detection
        return {name: {0: 'batch'} for name in input_names}
    axes = {'input': dict(batch)}
    if dynamic_shape:
        axes['input'].update({2: 'height', 3: 'width'})
    for name in output_names:
        axes[name] = dict(batch)
        if dynamic_shape:
            axes[name].update({2: f'{name}_h', 3: f'{name}_w'})
    return axes


def _add_metadata(onnx_file: str, props: Dict[str, str]) -> None:
    """Store ``props`` in the file's ``metadata_props`` (what the graph's
    outputs mean to :class:`~mmfasternet.deploy.BackendDetector`)."""
    import onnx
    model = onnx.load(onnx_file)
    onnx.helper.set_model_props(model, props)
    onnx.save(model, onnx_file)


def _run_tracked(module: nn.Module,
                 step: Callable[[], Any],
                 what: str,
                 inputs: Optional[Sequence[torch.Tensor]] = None) -> Any:
    """``step()`` without gradients, its exceptions turned into an
    :class:`ExportError` that names the module running when it raised.

    Args:
        module (nn.Module): The model or wrapper whose modules to track.
        step (Callable): What to run.
        what (str): The step, for the message ("ONNX export (opset 17)").
        inputs (Sequence[Tensor], optional): ``module``'s inputs: when the
            error arose outside any forward (in the exporter's conversion),
            a scoped trace with them finds the module of the operator the
            error names. Default: None (no such search).
    """
    with module_tracker(module) as stack, torch.no_grad():
        try:
            return step()
        except ExportError:
            raise
        except Exception as exc:  # turned into a message naming the module
            failure, failed_in = exc, list(stack)
    raise _export_error(module, inputs, failed_in, failure, what) from failure


def _export_error(wrapper: nn.Module, inputs: Optional[Sequence],
                  stack: List[str], exc: Exception, what: str) -> ExportError:
    lines = str(exc).strip().splitlines()
    first_line = lines[0] if lines else repr(exc)
    if stack:
        return ExportError(f'{what} failed in module {stack[-1]} '
                           f'(inside {" > ".join(stack[:-1]) or "-"}): '
                           f'{type(exc).__name__}: {first_line}')
    culprit = None
    if inputs is not None and isinstance(exc,
                                         torch.onnx.errors.OnnxExporterError):
        # The exporter's message has no module; a plain trace has scopes.
        culprit = module_of_op(str(exc), scoped_trace(wrapper, inputs))
    if culprit:
        where = f' in module {culprit}'
    elif inputs is not None:
        where = ' while converting the traced graph'
    else:
        where = ''
    return ExportError(f'{what} failed{where}: '
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


class BackendCheck(NamedTuple):
    """What :func:`check_with_backend` compared and found."""
    #: Largest relative error (``inf``: detections differ in number,
    #: labels or batch index).
    error: float
    #: Detections compared (end2end; None for features). With 0 the check
    #: compared nothing but the graph's running.
    detections: Optional[int]


def check_with_backend(wrapper: nn.Module,
                       onnx_file: str,
                       mode: str,
                       input_shape: Sequence[int],
                       batch: int = 1,
                       backend: str = 'onnxruntime',
                       seed: int = 1) -> BackendCheck:
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

    Returns:
        BackendCheck: The largest relative error and, end to end, the
        number of detections compared.
    """
    from .backends import build_backend
    inputs = example_inputs(mode, batch, input_shape, seed=seed)
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(*inputs)]
    runner = build_backend(backend, onnx_file)
    actual = runner([t.numpy() for t in inputs])
    detections = len(expected[0]) if mode == END2END_MODE else None
    return BackendCheck(compare_outputs(expected, actual), detections)


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
