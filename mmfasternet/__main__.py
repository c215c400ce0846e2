"""``python -m mmfasternet``: the version and which kernels mmcv's ops use."""
import mmfasternet
from mmfasternet.mmcv_ops import describe

print(f'mmfasternet {mmfasternet.__version__}')
print(describe())
