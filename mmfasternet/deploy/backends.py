"""Run a model file with ONNX Runtime or OpenVINO, one call per batch."""
from typing import List, Optional, Sequence

import numpy as np

from .model_files import check_engine

BACKENDS = ('onnxruntime', 'openvino')


class ORTRunner:
    """ONNX Runtime on the CPU (``onnxruntime``; ``onnxruntime-gpu`` users
    pass their providers, e.g. ``['CUDAExecutionProvider']``).

    Args:
        onnx_file (str): The model (fp32 or INT8 QDQ ONNX; an OpenVINO IR
            or any other file is a
            :class:`~.model_files.ModelFileError`).
        providers (Sequence[str], optional): Execution providers.
            Default: CPU.
        num_threads (int, optional): Intra-op threads. Default: the
            runtime's choice.
    """

    def __init__(self,
                 onnx_file: str,
                 providers: Optional[Sequence[str]] = None,
                 num_threads: Optional[int] = None) -> None:
        check_engine(onnx_file, 'onnxruntime')
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError(
                'the onnxruntime backend needs '
                '`pip install -r requirements/deploy.txt`') from exc
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(
            onnx_file,
            sess_options=options,
            providers=list(providers or ['CPUExecutionProvider']))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        feed = dict(zip(self.input_names, inputs))
        return self.session.run(self.output_names, feed)


class OpenVINORunner:
    """OpenVINO, compiled for the CPU.

    The precision hint is f32 by default: on CPUs with bf16 instructions
    (AMX, AVX512-BF16) OpenVINO's own default is bf16 for the float
    layers. The hint does not touch an INT8
    model's quantized layers, which still run in int8 (their
    ``FakeQuantize`` nodes decide), only the layers kept in float.

    Args:
        onnx_file (str): The model: an ONNX file (read directly, no
            conversion step) or an OpenVINO IR ``.xml``.
        device (str): OpenVINO device name. Default: 'CPU'.
        num_threads (int, optional): Inference threads. Default: the
            runtime's choice.
        precision (str, optional): ``INFERENCE_PRECISION_HINT`` of the
            float layers (``'f32'``, ``'bf16'``, ``'f16'``); None leaves
            the device's default (:attr:`precision` says which it chose).
            Default: 'f32'.
    """

    def __init__(self,
                 onnx_file: str,
                 device: str = 'CPU',
                 num_threads: Optional[int] = None,
                 precision: Optional[str] = 'f32') -> None:
        check_engine(onnx_file, 'openvino')
        try:
            import openvino as ov
        except ImportError as exc:
            raise ImportError(
                'the openvino backend needs '
                '`pip install -r requirements/deploy.txt`') from exc
        core = ov.Core()
        config = {}
        if precision:
            config['INFERENCE_PRECISION_HINT'] = precision
        if num_threads:
            config['INFERENCE_NUM_THREADS'] = num_threads
        self.model = core.compile_model(
            core.read_model(onnx_file), device, config)
        self.request = self.model.create_infer_request()
        self.input_names = [port_name(i) for i in self.model.inputs]
        self.output_names = [port_name(o) for o in self.model.outputs]

    @property
    def precision(self) -> str:
        """The float layers' inference precision the device compiled for
        (``'f32'``, ``'bf16'`` ...)."""
        hint = self.model.get_property('INFERENCE_PRECISION_HINT')
        return hint.get_type_name()

    def __call__(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        result = self.request.infer(list(inputs))
        return [np.array(result[out]) for out in self.model.outputs]


def port_name(port) -> str:
    """The ONNX name of an OpenVINO port: OpenVINO also gives the tensor
    the name of the node that made it (``/Gather_13_output_0``)."""
    names = sorted(port.get_names(), key=lambda n: (n.startswith('/'), n))
    return names[0] if names else port.get_any_name()


def build_backend(backend: str, onnx_file: str, **kwargs):
    """An :class:`ORTRunner` or :class:`OpenVINORunner` for ``onnx_file``
    (ONNX, or for OpenVINO also an IR ``.xml``)."""
    if backend == 'onnxruntime':
        return ORTRunner(onnx_file, **kwargs)
    if backend == 'openvino':
        return OpenVINORunner(onnx_file, **kwargs)
    raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
