"""ONNX export and ONNX Runtime / OpenVINO inference (``tools/deploy``).

Importing this package registers :class:`BackendDetector`; the engines
themselves are imported only when a runner is built.
"""
from .backend_detector import BackendDetector, backend_model_config
from .backends import BACKENDS, OpenVINORunner, ORTRunner, build_backend
from .export import (END2END_MODE, FEATURE_MODE, ExportError,
                     build_export_module, check_with_backend, compare_outputs,
                     end2end_supported, example_inputs, export_onnx)

__all__ = [
    'BACKENDS', 'BackendDetector', 'END2END_MODE', 'ExportError',
    'FEATURE_MODE', 'ORTRunner', 'OpenVINORunner', 'backend_model_config',
    'build_backend', 'build_export_module', 'check_with_backend',
    'compare_outputs', 'end2end_supported', 'example_inputs', 'export_onnx'
]
