"""Post-training INT8 quantization of an end-to-end file.

:func:`quantize_model_file` takes the fp32 file of
:func:`~mmfasternet.deploy.export_onnx` and a calibration set
(:class:`~.calibration.CalibrationSet`) and writes, by the output's
suffix:

* ``.xml``: an OpenVINO IR (``openvino.convert_model`` of the file,
  ``nncf.quantize`` on the ``openvino.Model``: FakeQuantize nodes, which
  OpenVINO's CPU plugin runs as int8 kernels), weights kept in fp32;
* ``.onnx``: a QDQ ONNX file by ONNX Runtime's own static quantizer
  (``onnxruntime.quantization.quantize_static``, per-channel int8 weights,
  uint8 activations): QuantizeLinear / DequantizeLinear pairs around every
  quantizable node's inputs *and* outputs, which ONNX Runtime fuses into
  int8 kernels (QLinearConv ...; NNCF's ONNX backend leaves the convs that
  feed an Add or Concat without an output quantizer, and ONNX Runtime then
  runs them in float: slower than fp32). OpenVINO runs it too.

The output layers and what follows them stay in float
(:mod:`.float_layers`), and the end-to-end metadata is carried over (ONNX
``metadata_props``, IR ``rt_info``).
"""
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .float_layers import (FloatScope, find_float_scope, layer_names,
                           layers_after_nms, onnx_graph, openvino_graph)
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
#: ONNX Runtime's calibration method for each ``activation_ranges`` it
#: takes (``.onnx``): the min and max over all calibration images. Its
#: histogram methods (Entropy, Percentile) keep every activation of every
#: image in memory: on the toy Mask R-CNN at 192x256, killed at 23 GB after
#: 185 images.
ORT_CALIBRATION = {'mean_minmax': 'MinMax'}
#: The default ``activation_ranges`` of each kind.
DEFAULT_RANGES = {OPENVINO_IR: 'histogram', ONNX: 'mean_minmax'}
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
    #: How it was quantized, in words (quantizer, ranges, bias correction).
    settings: str
    #: The output layers and the tail after them.
    scope: FloatScope
    #: Which of them stayed in float (one of :data:`KEEP_FLOAT`).
    keep_float: str
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
                        activation_ranges: Optional[str] = None,
                        fast_bias_correction: Optional[bool] = None,
                        log: Callable[[str], None] = print) -> QuantizedFile:
    """Quantize an fp32 ONNX file to INT8: with NNCF for an OpenVINO IR,
    with ONNX Runtime's static quantizer for a QDQ ONNX file.

    Args:
        onnx_file (str): The fp32 ``.onnx`` file (end to end, or any).
        out_file (str): ``.xml`` (OpenVINO IR) or ``.onnx`` (QDQ).
        calibration (Sized, Iterable): Lists of the graph's input arrays
            (:class:`~.calibration.CalibrationSet`); all are used.
        preset (str): ``'mixed'`` (asymmetric activations, symmetric
            weights) or ``'performance'`` (symmetric both). Default:
            'mixed'.
        keep_float (str): ``'output_layers'``: the output layers and the
            tail after them stay in float (:mod:`.float_layers`);
            ``'tail'``: the tail only; ``'nothing'``. Default:
            'output_layers'.
        activation_ranges (str, optional): ``'histogram'`` or
            ``'mean_minmax'`` (:data:`ACTIVATION_RANGES`; for ONNX, ONNX
            Runtime's methods of :data:`ORT_CALIBRATION`). Default:
            'histogram' for an OpenVINO IR, 'mean_minmax' (MinMax) for ONNX.
        fast_bias_correction (bool, optional): NNCF's fast bias
            correction (from the float statistics) instead of the full one
            (each layer's bias re-fitted on its quantized inputs). Default:
            full, fast where layers follow NMS
            (:func:`choose_bias_correction`). An OpenVINO IR only: ONNX
            Runtime's quantizer has none.
        log (Callable[[str], None]): Where the layers kept in float are
            reported. Default: print.

    Returns:
        QuantizedFile: The file written, its float scope and quantizer
        count.

    Raises:
        QuantizationError: Unknown suffix, preset or ``keep_float``, an
            option ONNX Runtime's quantizer lacks asked of ONNX
            (:func:`check_options`), or the full bias correction asked of
            a graph it cannot run on (:func:`choose_bias_correction`).
    """
    kind = check_options(out_file, fast_bias_correction, activation_ranges)
    if activation_ranges is None:
        activation_ranges = DEFAULT_RANGES[kind]
    for value, allowed in ((preset, PRESETS), (keep_float, KEEP_FLOAT),
                           (activation_ranges, ACTIVATION_RANGES)):
        if value not in allowed:
            raise QuantizationError(f'{value!r} is not one of {allowed}')
    metadata = read_model_file(onnx_file).metadata
    if kind == ONNX:
        return _quantize_onnx(onnx_file, out_file, calibration, preset,
                              keep_float, activation_ranges, metadata, log)
    import nncf
    import openvino as ov
    model = ov.convert_model(onnx_file)
    scope, names = _float_scope(model, kind, keep_float, log)
    fast_bias_correction = choose_bias_correction(model, names,
                                                  fast_bias_correction, log)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(calibration),
        preset=getattr(nncf.QuantizationPreset, preset.upper()),
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(calibration),
        # NNCF's graph leaves some tail nodes out (constant-only Casts):
        # a name it lacks is not an error. tests/test_quantize.py checks
        # that the output layers did stay unquantized.
        ignored_scope=nncf.IgnoredScope(names=names, validate=False),
        fast_bias_correction=fast_bias_correction,
        advanced_parameters=_advanced_parameters(activation_ranges))
    set_ir_metadata(quantized, metadata)
    # fp32 weights: fp16 compression would round the float layers.
    ov.save_model(quantized, out_file, compress_to_fp16=False)
    count = sum(op.get_type_name() == QUANTIZER_TYPES[kind]
                for op in quantized.get_ops())
    correction = 'fast' if fast_bias_correction else 'full'
    return QuantizedFile(
        out_file, kind,
        f'NNCF, preset {preset}, {activation_ranges} ranges, {correction} '
        'bias correction', scope, keep_float, count)


def choose_bias_correction(model,
                           float_names: List[str],
                           fast: Optional[bool] = None,
                           log: Callable[[str], None] = print) -> bool:
    """Whether NNCF's bias correction of ``model`` is the fast one.

    NNCF's full bias correction re-runs the graph between consecutive
    layers, feeding each piece tensors it stored from different runs: the
    float model's and the partly quantized one's. Where NMS decides how
    many rows a tensor has (Mask R-CNN's RoI heads, after the RPN's NMS),
    those runs keep different numbers of proposals, and a piece that
    takes two such tensors fails in OpenVINO on their mismatched sizes,
    after minutes of calibration. So such a graph gets the fast one
    (each layer corrected from its own float statistics, nothing
    re-run), and asking for the full one is refused before calibrating.

    Args:
        model (openvino.Model): The fp32 model.
        float_names (List[str]): The nodes kept in float.
        fast (bool, optional): Asked for: True (fast), False (full) or
            None (the default: full, fast for a graph with quantized
            layers after NMS).
        log (Callable[[str], None]): Where the choice of the default is
            reported. Default: print.

    Returns:
        bool: True for the fast one.

    Raises:
        QuantizationError: ``fast`` is False and quantized layers follow
            NMS.
    """
    after_nms = layers_after_nms(openvino_graph(model)[0], float_names)
    if not after_nms:
        return bool(fast)
    if fast is False:
        raise QuantizationError(
            f'--bias-correction full cannot run on this graph: '
            f'{len(after_nms)} quantized layers ({after_nms[0]}, ...) take '
            'as many rows as NMS keeps, which NNCF\'s full bias correction '
            'mixes from different runs; use --bias-correction fast (the '
            'default here)')
    if fast is None:
        log(f'bias correction: fast ({len(after_nms)} quantized layers '
            'take as many rows as NMS keeps, which the full one cannot '
            're-run)')
    return True


def check_options(out_file: str,
                  fast_bias_correction: Optional[bool],
                  activation_ranges: Optional[str] = None) -> str:
    """The kind of ``out_file`` (:func:`output_kind`).

    Raises:
        QuantizationError: Bias correction, or ranges ONNX Runtime's
            quantizer does not take, asked of an ONNX output.
    """
    kind = output_kind(out_file)
    if kind == ONNX and fast_bias_correction is not None:
        raise QuantizationError(
            'bias correction is NNCF\'s (--out x.xml); ONNX Runtime\'s '
            'quantizer (--out x.onnx) has none')
    if (kind == ONNX and activation_ranges is not None
            and activation_ranges not in ORT_CALIBRATION):
        raise QuantizationError(
            f'--activation-ranges {activation_ranges} is NNCF\'s (--out '
            f'x.xml); for --out x.onnx, one of {tuple(ORT_CALIBRATION)} '
            '(ONNX Runtime\'s histogram calibration keeps every activation '
            'in memory)')
    return kind


def _float_scope(model, kind: str, keep_float: str,
                 log: Callable[[str], None]) -> Tuple[FloatScope, List[str]]:
    """The model's float scope and the names kept in float; reported."""
    graph = openvino_graph if kind == OPENVINO_IR else onnx_graph
    scope = find_float_scope(*graph(model))
    names = []
    if keep_float != 'nothing':
        _report_scope(scope, keep_float == 'output_layers', log)
        names = layer_names(scope, keep_float == 'output_layers')
    return scope, names


def _quantize_onnx(onnx_file: str, out_file: str, calibration, preset: str,
                   keep_float: str, activation_ranges: str,
                   metadata: Dict[str,
                                  str], log: Callable[[str],
                                                      None]) -> QuantizedFile:
    """A QDQ file by ONNX Runtime's static quantizer, the float scope's
    nodes excluded."""
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    model = onnx.load(onnx_file)
    scope, names = _float_scope(model, ONNX, keep_float, log)
    initializers = {init.name for init in model.graph.initializer}
    input_names = [
        i.name for i in model.graph.input if i.name not in initializers
    ]
    quantize_static(
        onnx_file,
        out_file,
        _CalibrationReader(calibration, input_names),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=names,
        calibrate_method=getattr(CalibrationMethod,
                                 ORT_CALIBRATION[activation_ranges]),
        extra_options={
            # ``performance``: symmetric activations too.
            'ActivationSymmetric': preset == 'performance',
        })
    # The output layers keep float weights and compute in float, on the
    # activations their quantized producers rounded (ONNX Runtime's
    # quantizer quantizes a quantized node's output whatever its
    # consumers).
    quantized = onnx.load(out_file)
    if metadata:
        add_onnx_metadata(out_file, metadata)
    count = sum(node.op_type == QUANTIZER_TYPES[ONNX]
                for node in quantized.graph.node)
    return QuantizedFile(
        out_file, ONNX, f'ONNX Runtime quantize_static, preset {preset}, '
        f'{ORT_CALIBRATION[activation_ranges]} ranges, per-channel weights',
        scope, keep_float, count)


class _CalibrationReader:
    """The calibration set as ONNX Runtime's ``CalibrationDataReader``:
    one ``{input name: array}`` feed per image, then None."""

    def __init__(self, calibration, input_names: List[str]) -> None:
        self._feeds = iter(calibration)
        self._names = input_names

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        inputs = next(self._feeds, None)
        return None if inputs is None else dict(zip(self._names, inputs))


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
