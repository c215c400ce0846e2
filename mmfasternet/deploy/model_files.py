"""Which kind of model file a path is, which engine reads it, and what it
says about itself.

Two kinds: ONNX (``.onnx``, from ``tools/deploy/export_onnx.py``, or the
QDQ file of ``tools/deploy/quantize.py``), which ONNX Runtime and OpenVINO
both run, and OpenVINO IR (``.xml`` beside its ``.bin``, from
``quantize.py``), which only OpenVINO reads. Both carry the end-to-end
graph's metadata (:data:`~.mask_rcnn.MASKS_PROP`): ONNX in its
``metadata_props``, the IR in its ``rt_info``.
"""
import os.path as osp
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

ONNX = 'onnx'
OPENVINO_IR = 'openvino_ir'
#: The engines that read each kind of file.
ENGINES = {ONNX: ('onnxruntime', 'openvino'), OPENVINO_IR: ('openvino', )}
_NAMES = {ONNX: 'an ONNX file', OPENVINO_IR: 'an OpenVINO IR (.xml + .bin)'}
_ENGINE_NAMES = {'onnxruntime': 'ONNX Runtime', 'openvino': 'OpenVINO'}


class ModelFileError(ValueError):
    """A path that is not a model file, or not one the engine reads."""


class ModelFile(NamedTuple):
    """What :func:`read_model_file` found."""
    path: str
    kind: str  # ONNX or OPENVINO_IR
    #: Dims of the first input; None for a free dimension.
    input_shape: List[Optional[int]]
    #: The file's string metadata (ONNX ``metadata_props``, IR ``rt_info``
    #: entries that hold a string).
    metadata: Dict[str, str]


def model_kind(path: str) -> str:
    """:data:`ONNX` or :data:`OPENVINO_IR`, by the file's content.

    Raises:
        ModelFileError: No such file, or neither kind (a text file, a
            checkpoint, an IR without its ``.bin``).
    """
    return _identify(path)[0]


def _identify(path: str) -> Tuple[str, Optional[Any]]:
    """:func:`model_kind`, with the ``onnx.ModelProto`` it parsed to tell
    (None for an IR)."""
    if not osp.isfile(path):
        raise ModelFileError(f'no such model file: {path}')
    with open(path, 'rb') as f:
        head = f.read(4096)
    if head.lstrip().startswith(b'<'):
        if b'<net' not in head:
            raise ModelFileError(f'{path} is XML but not an OpenVINO IR '
                                 '(no <net> element)')
        weights = osp.splitext(path)[0] + '.bin'
        if not osp.isfile(weights):
            raise ModelFileError(f'{path} is an OpenVINO IR without its '
                                 f'weights file {weights}')
        return OPENVINO_IR, None
    return ONNX, _load_onnx(path)  # raises when it is not ONNX


def check_engine(path: str, backend: str) -> str:
    """The kind of ``path`` (:func:`model_kind`), checked against the
    engine that is to run it.

    Args:
        path (str): The model file.
        backend (str): ``'onnxruntime'`` or ``'openvino'``.

    Returns:
        str: :data:`ONNX` or :data:`OPENVINO_IR`.

    Raises:
        ModelFileError: ``path`` is not a model file, or ``backend``
            cannot read it (an OpenVINO IR given to ONNX Runtime); the
            message names the engine that can.
    """
    kind = model_kind(path)
    if backend not in ENGINES[kind]:
        right = ' or '.join(ENGINES[kind])
        raise ModelFileError(
            f'{path} is {_NAMES[kind]}, which '
            f'{_ENGINE_NAMES.get(backend, backend)} cannot read; run it '
            f'with --backend {right}')
    return kind


def read_model_file(path: str) -> ModelFile:
    """The kind, first input's dims and metadata of a model file.

    Raises:
        ModelFileError: ``path`` is not a model file.
    """
    kind, model = _identify(path)
    if kind == ONNX:
        dims = model.graph.input[0].type.tensor_type.shape.dim
        shape = [d.dim_value or None for d in dims]
        metadata = {p.key: p.value for p in model.metadata_props}
        return ModelFile(path, kind, shape, metadata)
    import openvino as ov
    model = ov.Core().read_model(path)
    shape = [
        d.get_length() if d.is_static else None
        for d in model.inputs[0].get_partial_shape()
    ]
    return ModelFile(path, kind, shape, ir_metadata(model))


def set_ir_metadata(model, props: Dict[str, str]) -> None:
    """Store ``props`` in an ``openvino.Model``'s ``rt_info`` (saved with
    the IR), as ONNX files keep them in ``metadata_props``."""
    for key, value in props.items():
        model.set_rt_info(str(value), key)


def ir_metadata(model) -> Dict[str, str]:
    """The string entries of an ``openvino.Model``'s ``rt_info``."""
    return {
        key: value.astype(str)
        for key, value in model.get_rt_info().items()
        if not isinstance(value, dict)  # nested maps: NNCF's, conversion's
    }


def add_onnx_metadata(onnx_file: str, props: Dict[str, str]) -> None:
    """Store ``props`` in the file's ``metadata_props`` (what the graph's
    outputs mean to :class:`~mmfasternet.deploy.BackendDetector`)."""
    import onnx
    model = onnx.load(onnx_file)
    onnx.helper.set_model_props(model, props)
    onnx.save(model, onnx_file)


def _load_onnx(path: str):
    """The ``onnx.ModelProto`` of ``path`` (external data not loaded).

    Raises:
        ModelFileError: The file does not parse as ONNX, or parses into
            a model with no graph (protobuf reads some other bytes as an
            empty message).
    """
    import onnx
    from google.protobuf.message import DecodeError
    try:
        model = onnx.load(path, load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f'{path} is not a model file (not ONNX: '
                             f'{type(exc).__name__}; nor an OpenVINO IR '
                             '.xml)') from exc
    if not model.graph.node or not model.graph.input:
        raise ModelFileError(f'{path} is not a model file (no ONNX graph '
                             'in it; nor an OpenVINO IR .xml)')
    return model
