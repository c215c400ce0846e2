"""What the commands of ``tools/deploy/`` share: their model arguments, the
config and model they build from them, the input size, and the single
``error:`` line they end with."""
import argparse
import sys
from typing import Optional, Tuple

import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from ..benchmarking import build_random_model
from ..checkpoint_loading import (UnreadableCheckpointError,
                                  UnsafeCheckpointError)
from ..inference import switch_fasternet_to_deploy
from .export_modes import (END2END_MODE, ExportError, end2end_supported,
                           size_divisor)
from .loading import load_export_checkpoint

#: What :func:`build_model` raises for a checkpoint that cannot be used.
MODEL_ERRORS = (ExportError, UnsafeCheckpointError, UnreadableCheckpointError,
                FileNotFoundError)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``config``, ``checkpoint``, ``--shape``, ``--trust-checkpoint`` and
    ``--cfg-options``."""
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint file (without it: random weights, for testing)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input size (default: the test pipeline\'s padded size, else '
        '800 1344)')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='the checkpoint\'s whole pickle content is trusted (legacy '
        'files the safe loader refuses)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, key=value pairs')


def load_config(args: argparse.Namespace) -> Config:
    """``args.config`` with ``args.cfg_options`` merged in."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def default_shape(cfg: Config) -> Tuple[int, int]:
    """The padded size of the config's test pipeline, else 800x1344."""
    pipeline = cfg.get('test_dataloader', {}).get('dataset',
                                                  {}).get('pipeline', [])
    for transform in pipeline:
        if transform.get('type') == 'Pad' and transform.get('size'):
            w, h = transform['size']
            return h, w
    return 800, 1344


def build_model(cfg: Config, checkpoint=None, trust: bool = False):
    """The config's model in eval mode, with every weight of
    ``checkpoint`` (:func:`~mmfasternet.deploy.load_export_checkpoint`:
    one that does not fit is an :class:`ExportError`)."""
    model = build_random_model(cfg)  # the checkpoint has the weights
    if checkpoint:
        load_export_checkpoint(model, checkpoint, trust)
    else:
        print_log('no checkpoint: exporting random weights', logger='current')
    return model


def build_tool_model(cfg: Config, args: argparse.Namespace) -> nn.Module:
    """:func:`build_model` with the tool's ``checkpoint`` and
    ``trust_checkpoint``, switched to deploy mode with ``args.deploy``
    (raises one of :data:`MODEL_ERRORS`)."""
    model = build_model(cfg, args.checkpoint, args.trust_checkpoint)
    if args.deploy:
        switched = switch_fasternet_to_deploy(model)
        print(f'deploy mode: {switched} FasterNet backbone(s) switched')
    return model


def shape_problem(model: nn.Module, shape: Tuple[int, int]) -> Optional[str]:
    """Why ``model`` cannot take an input of ``shape`` (H, W): a size that
    its :func:`~.export_modes.size_divisor` does not divide, with the
    sizes that would do; None when it can."""
    divisor = size_divisor(model)
    if not (shape[0] % divisor or shape[1] % divisor):
        return None
    fitting = ' '.join(str(-(-d // divisor) * divisor) for d in shape)
    return (f'input size {shape[0]}x{shape[1]}: {type(model).__name__} '
            f'needs a height and width that {divisor} divides (its '
            'backbone\'s last stride or its data preprocessor\'s padding); '
            f'try --shape {fitting}')


def end2end_problem(model: nn.Module) -> Optional[str]:
    """Why ``model`` has no end-to-end graph; None when it has one."""
    if end2end_supported(model):
        return None
    return (f'{type(model).__name__} has no {END2END_MODE} graph (RTMDet, '
            'RTMDet-Ins and Mask / Faster R-CNN have one); export its '
            'features with tools/deploy/export_onnx.py --mode features')


def fail(message) -> int:
    """Print ``error: <message>`` (one line) and return the exit code."""
    print(f'error: {message}', file=sys.stderr)
    return 1
