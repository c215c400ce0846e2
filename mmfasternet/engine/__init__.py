"""Runtime helpers: distributed training without CUDA, deploy at test."""
from .cpu_distributed import (CPUDistributedDataParallel, init_cpu_dist,
                              setup_cpu_distributed)
from .deploy_hook import FasterNetDeployHook

__all__ = [
    'CPUDistributedDataParallel', 'FasterNetDeployHook', 'init_cpu_dist',
    'setup_cpu_distributed'
]
