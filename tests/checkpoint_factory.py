"""Synthetic FasterNet checkpoints in every public weight layout.

No weights can be downloaded here, so the tests build them with random
values:

* timm's layout: timm's FasterNet with random weights and non-trivial BN
  statistics;
* the official releases' layout: tensors under the key names and shapes of
  ``reference/official_fasternet_keys.json``, which the official
  repository's own model code produced (see ``reference/README.md``), so
  these checkpoints do not depend on how mmfasternet maps layouts. What
  they load to is checked against the official model's own outputs for
  :func:`deterministic_state`, stored beside the key list. (timm's
  ``checkpoint_filter_fn`` for FasterNet passes state dicts through
  unchanged, its hub files being in timm's layout already, so it is no
  reference for the official layout.)
"""
import json
import math
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

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


KEY_FILE = Path(__file__).resolve().parent / 'reference' / \
    'official_fasternet_keys.json'
#: The official BatchNorm2d's eps (PyTorch's default).
OFFICIAL_BN_EPS = 1e-5


@lru_cache()
def official_variants() -> Dict[str, dict]:
    """The key file: variant -> config, key lists and reference outputs."""
    return json.loads(KEY_FILE.read_text())


def official_shapes(arch: str, detection: bool = False) -> Dict[str, list]:
    """Key -> shape of the official classification model, or of the
    official detection backbone (``fork_feat=True``), in state-dict
    order."""
    entry = official_variants()[arch]
    shapes = dict(entry['backbone'])
    shapes.update(
        entry['detection_norms' if detection else 'classification_head'])
    return shapes


def out_norm_keys(arch: str) -> List[str]:
    """The detection backbone's output norm keys (``norm0`` ... ``norm6``)."""
    return list(official_variants()[arch]['detection_norms'])


def random_official_state(arch: str,
                          detection: bool = False,
                          seed: int = 0) -> Dict[str, torch.Tensor]:
    """Random tensors under the official names: every float value is
    distinct, so a tensor that lands under a wrong name is caught; BN
    statistics are non-trivial."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_shapes(arch, detection).items():
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(len(state))
        elif key.endswith('running_var'):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif len(shape) > 1:
            fan_in = math.prod(shape[1:])
            state[key] = (torch.rand(shape, generator=gen) * 2 - 1) / \
                math.sqrt(fan_in)
        else:
            state[key] = torch.rand(shape, generator=gen) - 0.5
            if key.endswith('.weight'):
                state[key] += 1
    return state


def deterministic_value(key: str, shape: List[int]) -> torch.Tensor:
    """The tensor the stored reference outputs were computed with."""
    numel = math.prod(shape)
    checksum = zlib.crc32(key.encode())
    if key.endswith('num_batches_tracked'):
        return torch.tensor(checksum % 9973)
    phase = checksum / 2**32 * 1000
    base = torch.sin(torch.arange(numel, dtype=torch.float64) * 0.618 + phase)
    if key.endswith('running_var'):
        value = 0.75 + 0.25 * base
    elif len(shape) > 1:
        value = base / math.sqrt(numel / shape[0])
    elif key.endswith('.weight'):
        value = 1 + 0.25 * base
    else:
        value = 0.1 * base
    return value.float().reshape(shape)


def deterministic_state(arch: str,
                        detection: bool = True) -> Dict[str, torch.Tensor]:
    """The official detection backbone's weights behind the stored
    reference outputs, or (``detection=False``) the same backbone tensors
    in the classification model's state dict."""
    return {
        key: deterministic_value(key, shape)
        for key, shape in official_shapes(arch, detection).items()
    }


def reference_input() -> torch.Tensor:
    """The input of the stored reference outputs, 1x3x64x96."""
    x = torch.arange(3 * 64 * 96, dtype=torch.float64) * 0.37
    return (0.5 + 0.5 * torch.sin(x)).float().reshape(1, 3, 64, 96)


def reference_outputs(arch: str) -> dict:
    """What the official model computed on :func:`deterministic_state`:
    ``{'stages': [...], 'outputs': [...]}`` (before and after the output
    norms)."""
    return official_variants()[arch]['reference_outputs']


def summary_matches(tensor: torch.Tensor,
                    summary: dict,
                    tol: float = 1e-4) -> bool:
    """Whether ``tensor`` has the stored shape, mean, mean absolute value
    and sampled values, within ``tol`` of the stage's mean magnitude."""
    if list(tensor.shape) != summary['shape']:
        return False
    flat = tensor.flatten()
    index = torch.linspace(0, flat.numel() - 1, 8).long()
    scale = summary['abs_mean']
    got = torch.cat([
        tensor.mean().reshape(1),
        tensor.abs().mean().reshape(1), flat[index]
    ]).double()
    want = torch.tensor(
        [summary['mean'], summary['abs_mean']] + summary['samples'],
        dtype=torch.float64)
    return bool(((got - want).abs() <= tol * scale).all())


def stage_outputs(model: torch.nn.Module, x: torch.Tensor) -> list:
    """A FasterNet's stage outputs before the output norms (hooks)."""
    captured = []
    hooks = [
        s.register_forward_hook(lambda m, i, o: captured.append(o))
        for s in model.stages
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return captured


def assert_official_outputs(model: torch.nn.Module, arch: str,
                            with_norms: bool) -> None:
    """``model`` (loaded with :func:`deterministic_state`) computes what the
    official model did: its stage outputs, and with ``with_norms`` its
    outputs after the output norms too."""
    model.eval()
    reference, x = reference_outputs(arch), reference_input()
    for i, out in enumerate(stage_outputs(model, x)):
        assert summary_matches(out, reference['stages'][i]), f'stage {i}'
    if with_norms:
        with torch.no_grad():
            outs = model(x)
        assert len(outs) == len(reference['outputs'])
        for i, out in enumerate(outs):
            assert summary_matches(out, reference['outputs'][i]), f'out {i}'


def official_detection_checkpoint(arch: str,
                                  backbone: Dict[str, torch.Tensor],
                                  extra: Optional[dict] = None) -> dict:
    """An mmdet-2.25 detector checkpoint of the official release: the
    detection backbone's weights under ``backbone.``, mmcv-1 meta."""
    state = {f'backbone.{k}': v for k, v in backbone.items()}
    state.update(extra or {})
    return dict(
        meta=dict(
            mmcv_version='1.7.1',
            mmdet_version='2.25.0',
            CLASSES=('person', 'bicycle'),
            epoch=12,
            iter=87960),
        state_dict=state)
