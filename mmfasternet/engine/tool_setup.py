"""What ``tools/train.py`` and ``tools/test.py`` share: options, config,
runner and process-group teardown."""
import argparse
import os
import os.path as osp
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..checkpoint_loading import safe_checkpoint_loaders, trusted_checkpoint
from ..mmcv_ops import log_backend_once
from .cpu_distributed import setup_cpu_distributed


def add_common_tool_args(parser: argparse.ArgumentParser,
                         cfg_example: str) -> None:
    """Options every tool takes: trusted checkpoints, config overrides and
    the launcher (``--local-rank`` too, as torch.distributed.launch passes).

    Args:
        parser (ArgumentParser): The tool's parser.
        cfg_example (str): An example for the ``--cfg-options`` help.
    """
    parser.add_argument(
        '--trust-checkpoint',
        nargs='+',
        default=[],
        metavar='PATH',
        help='checkpoint files or URLs whose full pickle content you trust '
        '(only for legacy files the safe loader refuses)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help=f'override config entries, key=value pairs, e.g. {cfg_example}')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_tool_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, and export ``--local-rank`` as ``LOCAL_RANK`` unless set."""
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


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
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    log_backend_once()
    return runner


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


@contextmanager
def tool_job(trusted_paths: Sequence[str] = ()) -> Iterator[None]:
    """Run a tool's job: checkpoints read by mmfasternet's safe loaders
    (:func:`~mmfasternet.safe_checkpoint_loaders`, whatever torch's
    version), ``--trust-checkpoint`` files opted in for its duration, and
    the process group (if any) closed when it ends.

    Args:
        trusted_paths (Sequence[str]): Checkpoints whose full pickle content
            the user trusts. Default: ().
    """
    try:
        with safe_checkpoint_loaders(), trusted_checkpoint(*trusted_paths):
            yield
    except BaseException:
        close_distributed(succeeded=False)
        raise
    close_distributed()
