"""Distributed training and testing without GPUs (gloo), GPUs untouched.

MMEngine 0.10 cannot run ``--launcher pytorch|slurm|mpi`` on a machine
without CUDA, for two reasons:

* ``mmengine.dist.init_dist`` always calls ``torch.cuda.set_device``;
* ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to every
  ``DistributedDataParallel`` wrapper, and DDP refuses ``device_ids`` for a
  module that lives on the CPU.

Neither needs a patch: ``Runner.setup_env`` skips ``init_dist`` when a
process group already exists, so :func:`init_cpu_dist` starts a gloo group
before the runner is built; and :class:`CPUDistributedDataParallel`, a
registered model wrapper, drops ``device_ids`` when the module is on the
CPU. :func:`setup_cpu_distributed` does both, and only when CUDA is absent:
on GPUs the config is left exactly as it was (nccl, ``device_ids`` as
usual).

Example:
    >>> from mmengine.config import Config
    >>> from mmengine.runner import Runner
    >>> from mmfasternet.engine import setup_cpu_distributed
    >>> cfg = Config.fromfile('configs/mask_rcnn_fasternet_s_fpn_1x_coco.py')
    >>> cfg.launcher = 'pytorch'  # run under torchrun
    >>> setup_cpu_distributed(cfg)  # doctest: +SKIP
    >>> Runner.from_cfg(cfg).train()  # doctest: +SKIP
"""
import datetime
import os
import subprocess
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS

__all__ = [
    'CPUDistributedDataParallel', 'init_cpu_dist', 'setup_cpu_distributed'
]

_DEFAULT_PORT = '29500'


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """:class:`MMDistributedDataParallel` that also wraps CPU modules.

    ``Runner.wrap_model`` gives every ``DistributedDataParallel`` subclass
    ``device_ids=[LOCAL_RANK]``. DDP accepts ``device_ids`` only for a module
    on a single GPU, so they are dropped here when the module's parameters
    are on the CPU (where SyncBN layers, which torch only synchronises on
    GPUs, are reverted to BN); everything else (``train_step``,
    ``val_step``, ...) is MMEngine's wrapper unchanged.

    Args:
        module (nn.Module): The model to wrap.
        device_ids (list[int], optional): Kept for a module on a GPU, ignored
            for one on the CPU. Default: None.
        **kwargs: Passed to :class:`MMDistributedDataParallel`, e.g.
            ``broadcast_buffers`` or ``find_unused_parameters``.
    """

    def __init__(self, module: torch.nn.Module, device_ids=None, **kwargs):
        param = next(module.parameters(), None)
        if param is not None and param.device.type == 'cpu':
            device_ids = None
            sync_bns = [
                m for m in module.modules()
                if isinstance(m, torch.nn.SyncBatchNorm)
            ]
            if sync_bns:
                # torch's SyncBatchNorm cannot synchronise CPU tensors.
                module = revert_sync_batchnorm(module)
                print_log(
                    'CPU distributed run: SyncBN layers run as per-process '
                    'BN (SyncBN needs GPUs)',
                    logger='current')
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def _env_from_slurm(port: Optional[int]) -> None:
    """Fill torch's rendezvous variables from SLURM's, like MMEngine does."""
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', _DEFAULT_PORT)


def _env_from_mpi(port: Optional[int]) -> None:
    """Fill torch's rendezvous variables from Open MPI's."""
    os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
    os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
    os.environ['LOCAL_RANK'] = os.environ['OMPI_COMM_WORLD_LOCAL_RANK']
    if 'MASTER_ADDR' not in os.environ:
        raise KeyError('The mpi launcher needs MASTER_ADDR in the environment')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', _DEFAULT_PORT)


def init_cpu_dist(launcher: str,
                  backend: str = 'gloo',
                  timeout: Optional[int] = None,
                  port: Optional[int] = None) -> None:
    """Start a process group without touching CUDA.

    Args:
        launcher (str): ``'pytorch'`` (torchrun already set ``RANK``,
            ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR/PORT``),
            ``'slurm'`` or ``'mpi'`` (those are derived from the scheduler's
            variables, as :func:`mmengine.dist.init_dist` does).
        backend (str): A backend that works on CPU tensors. Default: 'gloo'.
        timeout (int, optional): Collective timeout in seconds; None keeps
            torch's default. Default: None.
        port (int, optional): ``MASTER_PORT`` for slurm/mpi; None keeps the
            environment's value or 29500. Default: None.
    """
    if launcher == 'slurm':
        _env_from_slurm(port)
    elif launcher == 'mpi':
        _env_from_mpi(port)
    elif launcher != 'pytorch':
        raise ValueError(f'Unsupported launcher for CPU training: {launcher!r}'
                         "; choose 'pytorch', 'slurm' or 'mpi'")
    kwargs = {}
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    torch_dist.init_process_group(backend=backend, **kwargs)


def setup_cpu_distributed(cfg: Config) -> bool:
    """Prepare a distributed run of ``cfg`` on a machine without CUDA.

    Does nothing (and returns False) when ``cfg.launcher`` is ``'none'``,
    when CUDA is available, or when a process group already exists.
    Otherwise it starts a gloo process group (taking ``timeout`` from
    ``cfg.env_cfg.dist_cfg``; its ``backend``, usually nccl, cannot run on
    CPU tensors) and, unless the config chose a wrapper itself, sets
    ``cfg.model_wrapper_cfg`` to :class:`CPUDistributedDataParallel` with
    the arguments MMEngine's default wrapper would get.

    Args:
        cfg (Config): The config the runner will be built from; changed in
            place.

    Returns:
        bool: Whether a CPU process group was started.
    """
    launcher = cfg.get('launcher', 'none')
    if (launcher == 'none' or torch.cuda.is_available()
            or (torch_dist.is_available() and torch_dist.is_initialized())):
        return False
    dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg', {})
    init_cpu_dist(
        launcher, timeout=dist_cfg.get('timeout'), port=dist_cfg.get('port'))
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='CPUDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    else:
        print_log(
            'CUDA is absent: started a gloo process group; keeping the '
            f"config's model_wrapper_cfg ({cfg.model_wrapper_cfg.get('type')})"
            ', which must accept a CPU module.',
            logger='current')
    return True
