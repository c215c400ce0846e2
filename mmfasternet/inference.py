"""Inference helpers: the mmdet or mmseg inferencer of a config, and
deploy mode for the FasterNet backbones inside any model."""
import warnings
from typing import Optional, Union

import torch.nn as nn
from mmengine.config import Config
from mmengine.infer import BaseInferencer

from .models.backbones import FasterNet

#: The ``default_scope`` values that :func:`build_inferencer` can run.
INFERENCE_SCOPES = ('mmdet', 'mmseg')


def framework_of(cfg: Config) -> str:
    """The framework that runs ``cfg``: its ``default_scope``, checked.

    Args:
        cfg (Config): A detection or segmentation config.

    Returns:
        str: ``'mmdet'`` or ``'mmseg'``.

    Raises:
        ValueError: If the config's ``default_scope`` is missing or another.
    """
    scope = cfg.get('default_scope')
    if scope not in INFERENCE_SCOPES:
        raise ValueError(f'{cfg.filename}: default_scope must be one of '
                         f'{INFERENCE_SCOPES} to pick a task, got {scope!r}')
    return scope


def build_inferencer(config: Union[str, Config],
                     weights: Optional[str] = None,
                     device: Optional[str] = None) -> BaseInferencer:
    """mmdet's ``DetInferencer`` or mmseg's ``MMSegInferencer`` for a config.

    The config's ``default_scope`` picks the framework. Without ``weights``
    the model is randomly initialised, and instead of the COCO / ADE20K
    class names that the inferencers fall back to, the names and palette of
    the config's test set label the pictures, as a trained model's would.

    Args:
        config (str | Config): Config file path or a loaded config.
        weights (str, optional): Checkpoint file. Default: None.
        device (str, optional): E.g. ``'cpu'`` or ``'cuda:0'``; None picks
            CUDA when available. Default: None.

    Returns:
        BaseInferencer: The inferencer, ready to be called on images.
    """
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    if framework_of(cfg) == 'mmdet':
        from mmdet.apis import DetInferencer as Inferencer
    else:
        from mmseg.apis import MMSegInferencer as Inferencer
    with warnings.catch_warnings():
        if weights is None:
            # They warn of falling back to COCO / ADE20K classes: see below.
            warnings.filterwarnings('ignore', message='.*weights.*')
        inferencer = Inferencer(model=cfg, weights=weights, device=device)
    metainfo = cfg.get('test_dataloader', {}).get('dataset',
                                                  {}).get('metainfo')
    if weights is None and metainfo and 'classes' in metainfo:
        meta = dict(classes=tuple(metainfo['classes']))
        if 'palette' in metainfo:
            meta['palette'] = [tuple(c) for c in metainfo['palette']]
        inferencer.model.dataset_meta = meta
        inferencer.visualizer.dataset_meta = meta
    return inferencer


def switch_fasternet_to_deploy(model: nn.Module, bf16: bool = False) -> int:
    """Call :meth:`FasterNet.switch_to_deploy` on every FasterNet in a model.

    Args:
        model (nn.Module): A detector, segmentor or bare backbone (model
            wrappers are unwrapped through ``.modules()``).
        bf16 (bool): Run the backbones under bfloat16 autocast.
            Default: False.

    Returns:
        int: How many FasterNet backbones were switched.
    """
    backbones = [m for m in model.modules() if isinstance(m, FasterNet)]
    for backbone in backbones:
        backbone.switch_to_deploy(bf16=bf16)
    return len(backbones)
