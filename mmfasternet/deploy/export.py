"""Export a model's graph to ONNX with the TorchScript exporter.

The wrapper and inputs of each mode are :mod:`.export_modes`'; loading the
weights strictly is :mod:`.loading`'s, naming the module a failure came
from :mod:`.diagnostics`', and comparing the file with PyTorch
:mod:`.checks`'.
"""
import io
from functools import partial
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .diagnostics import run_tracked
from .export_modes import (END2END_MODE, FEATURE_MODE, build_export_module,
                           example_inputs)
from .model_files import add_onnx_metadata


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
    wrapper = run_tracked(
        model, lambda: build_export_module(model, mode, input_shape),
        f'building the {mode} graph of {type(model).__name__}').eval()
    inputs = example_inputs(mode, batch, input_shape)
    size = 'x'.join(str(d) for d in inputs[0].shape)
    num_outputs = len(
        run_tracked(wrapper, lambda: wrapper(*inputs),
                    f'the PyTorch forward pass at input {size}'))
    input_names, output_names = io_names(wrapper, mode, num_outputs)
    dynamic_axes = _dynamic_axes(mode, input_names, output_names,
                                 dynamic_batch, dynamic_shape)

    run_tracked(
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
        rerun=partial(_export_to_memory, opset=opset),
        inputs=inputs)
    metadata = getattr(wrapper, 'onnx_metadata', None)
    if metadata:
        add_onnx_metadata(out_file, metadata)
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


def _export_to_memory(module: nn.Module, args: tuple, kwargs: dict,
                      opset: int) -> None:
    """Export ``module`` alone, to a buffer: :func:`run_tracked` runs it
    on submodules to find the one the exporter cannot convert."""
    torch.onnx.export(
        module,
        args,
        io.BytesIO(),
        kwargs=kwargs or None,
        opset_version=opset,
        do_constant_folding=True,
        dynamo=False)


def io_names(wrapper: nn.Module, mode: str,
             num_outputs: int) -> Tuple[List[str], List[str]]:
    """Input and output names of the exported graph."""
    if mode == FEATURE_MODE:
        return ['input'], wrapper.output_names(num_outputs)
    outputs = ['batch_index', 'boxes', 'scores', 'labels', 'masks']
    return ['input', 'img_shape', 'rescale'], outputs[:num_outputs]
