"""ONNX export and ONNX Runtime / OpenVINO inference (``tools/deploy``).

One module a job: :mod:`.export_modes` (the wrapper each mode traces),
:mod:`.loading` (strict checkpoint loading), :mod:`.export` (the ONNX
export), :mod:`.diagnostics` (naming the module a failure came from),
:mod:`.checks` (the file against PyTorch), :mod:`.model_files` (which kind
of file, for which engine), :mod:`.backends` and :mod:`.backend_detector`
(running the file), :mod:`.tool_helpers` (what the tools share); INT8:
:mod:`.calibration`, :mod:`.float_layers` and :mod:`.quantization`
(imported on use: NNCF is slow to import).

Importing this package registers :class:`BackendDetector`; the engines
themselves are imported only when a runner is built.
"""
from .backend_detector import (BackendDetector, ImageCheck,
                               backend_model_config, compare_on_images)
from .backends import BACKENDS, OpenVINORunner, ORTRunner, build_backend
from .checks import (BackendCheck, check_sizes, check_with_backend,
                     compare_outputs)
from .export import export_onnx
from .export_modes import (END2END_MODE, FEATURE_MODE, ExportError,
                           build_export_module, end2end_supported,
                           example_inputs, size_divisor)
from .loading import load_export_checkpoint
from .mask_rcnn import MaskRCNNEnd2End, mask_rcnn_supported
from .model_files import ModelFileError, check_engine, read_model_file
from .wrappers import FeatureWrapper, RTMDetEnd2End

__all__ = [
    'BACKENDS', 'BackendCheck', 'BackendDetector', 'END2END_MODE',
    'ImageCheck', 'compare_on_images', 'ExportError', 'FEATURE_MODE',
    'FeatureWrapper', 'MaskRCNNEnd2End', 'ORTRunner', 'OpenVINORunner',
    'RTMDetEnd2End', 'backend_model_config', 'build_backend',
    'build_export_module', 'check_sizes', 'check_with_backend',
    'compare_outputs', 'end2end_supported', 'example_inputs', 'export_onnx',
    'load_export_checkpoint', 'mask_rcnn_supported', 'size_divisor',
    'ModelFileError', 'check_engine', 'read_model_file'
]
