"""Synthetic FasterNet checkpoints in every public weight layout.

No weights can be downloaded here, so the tests build timm's FasterNet with
random weights and non-trivial BN statistics and rewrite its state dict into
the other layouts, following their published key names.
"""
import re

import timm
import torch
from torch.nn.modules.batchnorm import _BatchNorm

VARIANTS = ('t0', 't1', 't2', 's', 'm', 'l')


def randomize_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial affine parameters and running statistics in every BN."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def random_timm_fasternet(arch: str, seed: int = 0) -> torch.nn.Module:
    """timm's FasterNet with random weights and randomized BN statistics."""
    torch.manual_seed(seed)
    return randomize_bn(timm.create_model(f'fasternet_{arch}'))


def timm_to_official(state_dict: dict) -> dict:
    """timm layout -> the official classification release's layout."""
    out = {}
    for key, value in state_dict.items():
        down = re.match(r'^stages\.(\d+)\.downsample\.(.*)$', key)
        blocks = re.match(r'^stages\.(\d+)\.blocks\.(.*)$', key)
        if down:
            key = f'stages.{2 * int(down.group(1)) - 1}.{down.group(2)}'
        elif blocks:
            key = f'stages.{2 * int(blocks.group(1))}.blocks.{blocks.group(2)}'
        elif key.startswith('conv_head.'):
            key = key.replace('conv_head.', 'avgpool_pre_head.1.')
        elif key.startswith('classifier.'):
            key = key.replace('classifier.', 'head.')
        out[key] = value
    return out


def random_out_norms(channels, seed: int = 1) -> dict:
    """Random BN states for output norms, keyed by stage index."""
    gen = torch.Generator().manual_seed(seed)
    norms = {}
    for i, c in enumerate(channels):
        norms[i] = dict(
            weight=torch.rand(c, generator=gen) + 0.5,
            bias=torch.rand(c, generator=gen) - 0.5,
            running_mean=torch.rand(c, generator=gen) - 0.5,
            running_var=torch.rand(c, generator=gen) + 0.5,
            num_batches_tracked=torch.tensor(7))
    return norms


def official_detection_checkpoint(timm_state: dict,
                                  out_norms: dict,
                                  extra: dict = None) -> dict:
    """The official mmdet-2.25 Mask R-CNN release layout (backbone part)."""
    official = {
        k: v
        for k, v in timm_to_official(timm_state).items()
        if not k.startswith(('avgpool_pre_head.', 'head.'))
    }
    state = {f'backbone.{k}': v for k, v in official.items()}
    for i, norm in out_norms.items():
        for name, value in norm.items():
            state[f'backbone.norm{2 * i}.{name}'] = value
    state.update(extra or {})
    return dict(
        meta=dict(
            mmcv_version='1.7.1',
            mmdet_version='2.25.0',
            CLASSES=('person', 'bicycle'),
            epoch=12,
            iter=87960),
        state_dict=state)
