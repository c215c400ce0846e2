"""Post-training INT8 quantization of an end-to-end file with NNCF.

:func:`quantize_model_file` takes the fp32 file of
:func:`~mmfasternet.deploy.export_onnx` and a calibration set
(:class:`~.calibration.CalibrationSet`) and writes, by the output's
suffix:

* ``.xml``: an OpenVINO IR (``openvino.convert_model`` of the file,
  ``nncf.quantize`` on the ``openvino.Model``: FakeQuantize nodes, which
  OpenVINO's CPU plugin runs as int8 kernels), weights kept in fp32;
* ``.onnx``: a QDQ ONNX file (``nncf.quantize`` on the ``onnx.ModelProto``:
  QuantizeLinear / DequantizeLinear pairs, which ONNX Runtime fuses into
  int8 kernels; OpenVINO runs it too).

The output layers and what follows them stay in float
(:mod:`.float_layers`), and the end-to-end metadata is carried over (ONNX
``metadata_props``, IR ``rt_info``).
"""
from typing import Callable, List, NamedTuple, Optional

import numpy as np

from .float_layers import (FloatScope, find_float_scope, layer_names,
                           onnx_graph, openvino_graph)
from .model_files import (ONNX, OPENVINO_IR, add_onnx_metadata,
                          read_model_file, set_ir_metadata)

#: NNCF presets: ``mixed`` (symmetric weights, asymmetric activations)
#: and ``performance`` (symmetric both).
PRESETS = ('mixed', 'performance')
#: Output suffix -> the kind of file written.
OUTPUT_KINDS = {'.xml': OPENVINO_IR, '.onnx': ONNX}
#: The node type that marks a quantized tensor in each kind.
QUANTIZER_TYPES = {OPENVINO_IR: 'FakeQuantize', ONNX: 'QuantizeLinear'}
#: How activation ranges are set: NNCF's default (the mean over the
#: calibration images of each image's min and max) or the range that
#: minimises the quantization error on a histogram of the values.
ACTIVATION_RANGES = ('mean_minmax', 'histogram')
#: What stays in float: the output layers and the tail after them (the
#: default), the tail only (``--quantize-head-outputs``), or nothing (a
#: backbone's features, for speed).
KEEP_FLOAT = ('output_layers', 'tail', 'nothing')


class QuantizationError(ValueError):
    """The output cannot be written as asked (unknown suffix or preset)."""


class QuantizedFile(NamedTuple):
    """What :func:`quantize_model_file` wrote."""
    path: str
    kind: str
    #: NNCF's bias correction: ``'full'`` or ``'fast'``.
    bias_correction: str
    #: The output layers and the tail after them.
    scope: FloatScope
    #: Which of them stayed in float (one of :data:`KEEP_FLOAT`).
    keep_float: str
    #: Names of the nodes kept in float.
    float_names: List[str]
    #: Quantizer nodes in the written model.
    quantizers: int


def output_kind(out_file: str) -> str:
    """:data:`~.model_files.OPENVINO_IR` for ``.xml``,
    :data:`~.model_files.ONNX` for ``.onnx``.

    Raises:
        QuantizationError: Another suffix.
    """
    for suffix, kind in OUTPUT_KINDS.items():
        if out_file.endswith(suffix):
            return kind
    raise QuantizationError(
        f'--out {out_file}: write an OpenVINO IR (.xml) or a QDQ ONNX file '
        '(.onnx)')


def quantize_model_file(onnx_file: str,
                        out_file: str,
                        calibration,
                        preset: str = 'mixed',
                        keep_float: str = 'output_layers',
                        activation_ranges: str = 'histogram',
                        fast_bias_correction: Optional[bool] = None,
                        log: Callable[[str], None] = print) -> QuantizedFile:
    """Quantize an fp32 ONNX file to INT8 with NNCF.

    Args:
        onnx_file (str): The fp32 ``.onnx`` file (end to end, or any).
        out_file (str): ``.xml`` (OpenVINO IR) or ``.onnx`` (QDQ).
        calibration (Sized, Iterable): Lists of the graph's input arrays
            (:class:`~.calibration.CalibrationSet`); all are used.
        preset (str): ``'mixed'`` or ``'performance'``. Default: 'mixed'.
        keep_float (str): ``'output_layers'``: the output layers and the
            tail after them stay in float (:mod:`.float_layers`);
            ``'tail'``: the tail only; ``'nothing'``. Default:
            'output_layers'.
        activation_ranges (str): ``'histogram'`` or ``'mean_minmax'``
            (:data:`ACTIVATION_RANGES`). Default: 'histogram'.
        fast_bias_correction (bool, optional): NNCF's fast bias
            correction (from the float statistics) instead of the full one
            (each layer's bias re-fitted on its quantized inputs). Default:
            full for an OpenVINO IR, fast for ONNX (NNCF 3.4's full bias
            correction on ONNX fails on RTMDet-Ins: its subgraphs
            redefine a tensor, which ONNX Runtime refuses).
        log (Callable[[str], None]): Where the layers kept in float are
            reported. Default: print.

    Returns:
        QuantizedFile: The file written, its float scope and quantizer
        count.

    Raises:
        QuantizationError: Unknown suffix, preset or ``keep_float``.
    """
    import nncf
    kind = output_kind(out_file)
    for value, allowed in ((preset, PRESETS), (keep_float, KEEP_FLOAT),
                           (activation_ranges, ACTIVATION_RANGES)):
        if value not in allowed:
            raise QuantizationError(f'{value!r} is not one of {allowed}')
    metadata = read_model_file(onnx_file).metadata
    model = _load(onnx_file, kind)
    scope = find_float_scope(*_graph_of(model, kind))
    names = []
    if keep_float != 'nothing':
        _report_scope(scope, keep_float == 'output_layers', log)
        names = layer_names(scope, keep_float == 'output_layers')
    if fast_bias_correction is None:
        fast_bias_correction = kind == ONNX
    input_names = _input_names(model, kind)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(calibration, lambda feed: _feed(feed, input_names)),
        preset=getattr(nncf.QuantizationPreset, preset.upper()),
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(calibration),
        # NNCF's graph leaves some tail nodes out (constant-only Casts):
        # a name it lacks is not an error. tests/test_quantize.py checks
        # that the output layers did stay unquantized.
        ignored_scope=nncf.IgnoredScope(names=names, validate=False),
        fast_bias_correction=fast_bias_correction,
        advanced_parameters=_advanced_parameters(activation_ranges))
    if kind == OPENVINO_IR:
        import openvino as ov
        set_ir_metadata(quantized, metadata)
        # fp32 weights: fp16 compression would round the float layers.
        ov.save_model(quantized, out_file, compress_to_fp16=False)
        count = sum(op.get_type_name() == QUANTIZER_TYPES[kind]
                    for op in quantized.get_ops())
    else:
        import onnx
        onnx.save(quantized, out_file)
        if metadata:
            add_onnx_metadata(out_file, metadata)
        count = sum(node.op_type == QUANTIZER_TYPES[kind]
                    for node in quantized.graph.node)
    return QuantizedFile(out_file, kind,
                         'fast' if fast_bias_correction else 'full', scope,
                         keep_float, names, count)


def _advanced_parameters(activation_ranges: str):
    """NNCF's advanced parameters for ``activation_ranges``."""
    from nncf.quantization.advanced_parameters import \
        AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    if activation_ranges == 'mean_minmax':
        return AdvancedQuantizationParameters()
    return AdvancedQuantizationParameters(
        activations_range_estimator_params=RangeEstimatorParametersSet.
        HISTOGRAM)


def _load(onnx_file: str, kind: str):
    """The model NNCF quantizes for ``kind``."""
    if kind == OPENVINO_IR:
        import openvino as ov
        return ov.convert_model(onnx_file)
    import onnx
    return constants_to_initializers(onnx.load(onnx_file))


def constants_to_initializers(model):
    """Move the tensors of ONNX ``Constant`` nodes into the initializers
    (NNCF's ONNX backend looks a ``Gather``'s data up among the
    initializers only, and fails on the exporter's constant tables)."""
    kept = []
    for node in model.graph.node:
        values = [a for a in node.attribute if a.name == 'value']
        if node.op_type == 'Constant' and values:
            tensor = values[0].t
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def _graph_of(model, kind: str):
    return openvino_graph(model) if kind == OPENVINO_IR else onnx_graph(model)


def _input_names(model, kind: str) -> Optional[List[str]]:
    """ONNX input names (NNCF's ONNX backend takes a dict); None for
    OpenVINO (a list, in input order)."""
    if kind == OPENVINO_IR:
        return None
    initializers = {init.name for init in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def _feed(inputs: List[np.ndarray], input_names: Optional[List[str]]):
    return inputs if input_names is None else dict(zip(input_names, inputs))


def _report_scope(scope: FloatScope, output_layers_float: bool,
                  log: Callable[[str], None]) -> None:
    """Say which layers stay in float, and why."""
    if output_layers_float:
        log(f'kept in float: the {len(scope.output_layers)} layers that '
            'produce the outputs (their values reach boxes, scores and '
            'masks through arithmetic alone, so INT8 rounding there moves '
            'the detections; --quantize-head-outputs quantizes them):')
    else:
        log(f'quantized (--quantize-head-outputs): the '
            f'{len(scope.output_layers)} layers that produce the outputs:')
    lines = scope.describe()
    for line in lines[:-1]:
        log(f'  {line}')
    log(f'kept in float: box decoding, NMS and mask assembly after them '
        f'(no layer with weights): {lines[-1]}')
