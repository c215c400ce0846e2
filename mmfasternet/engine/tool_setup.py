"""What ``tools/train.py`` and ``tools/test.py`` share: config and runner."""
import os.path as osp
from typing import Optional

import torch.distributed as torch_dist

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .cpu_distributed import setup_cpu_distributed


def load_tool_config(config: str,
                     launcher: str = 'none',
                     cfg_options: Optional[dict] = None,
                     work_dir: Optional[str] = None) -> Config:
    """Load a config the way OpenMMLab's tools do.

    Args:
        config (str): Config file path.
        launcher (str): Job launcher. Default: 'none'.
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        work_dir (str, optional): ``--work-dir``; else the config's
            ``work_dir``, else ``./work_dirs/<config name>``.

    Returns:
        Config: The config, ready for :func:`build_runner`.
    """
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    return cfg


def build_runner(cfg: Config) -> Runner:
    """Build the config's runner, with a gloo group first if CUDA is absent."""
    setup_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def close_distributed(succeeded: bool = True) -> None:
    """Destroy the process group, if any, before the interpreter exits.

    A gloo group left open can abort a process at exit ("terminate called
    without an active exception") after the job itself succeeded. After a
    successful job the ranks first meet at a barrier, so that none tears
    the group down while another still uses it; after a failure they do
    not wait for each other.

    Args:
        succeeded (bool): Whether the job finished without an exception.
            Default: True.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        if succeeded:
            torch_dist.barrier()
        torch_dist.destroy_process_group()
