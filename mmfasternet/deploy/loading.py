"""Strict checkpoint loading for export: every weight, or an error."""
import re
from typing import List, Sequence

import torch.nn as nn
from mmengine.runner.checkpoint import CheckpointLoader

from ..checkpoint_loading import safe_checkpoint_loaders, trusted_checkpoint
from ..models.backbones.base_backbone import (CheckpointMismatchError,
                                              shape_mismatches)
from .diagnostics import first_line, module_path
from .export_modes import ExportError


def load_export_checkpoint(model: nn.Module,
                           filename: str,
                           trust: bool = False) -> None:
    """Load ``filename``'s weights into ``model``, every one of them.

    Unlike ``load_checkpoint(strict=False)``, which only warns, a
    checkpoint that does not fit the model (another variant or config) is
    an error: exporting partly random weights would still "succeed". The
    file is read through mmengine's ``CheckpointLoader`` with mmfasternet's
    safe (``weights_only``) loaders in place, and loaded by the model's own
    ``load_state_dict`` (FasterNet maps the public weight layouts); its
    missing and unexpected keys, and the tensors whose shapes differ, are
    found by comparing the two state dicts.

    Args:
        model (nn.Module): The model the config builds.
        filename (str): The checkpoint (``state_dict`` inside or the dict
            itself; a ``module.`` prefix is dropped, as mmengine does).
        trust (bool): Unpickle the whole file (a trusted legacy
            checkpoint). Default: False.

    Raises:
        ExportError: Keys are missing or unexpected, or shapes differ, or
            a backbone refused the weights; the message names the first
            keys and the modules they belong to.
    """
    with safe_checkpoint_loaders(), \
            trusted_checkpoint(*([filename] if trust else [])):
        checkpoint = CheckpointLoader.load_checkpoint(
            filename, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint)
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    does_not_fit = (f'checkpoint {filename} does not fit the '
                    f'{type(model).__name__} of the config')
    another = '. Is it another variant or config?'
    try:
        result = model.load_state_dict(state, strict=False)
    except CheckpointMismatchError as exc:  # the backbone's own check
        raise ExportError(f'{does_not_fit}: in module '
                          f'{module_path(exc.module_path)} '
                          f'({exc.module_type}): {first_line(exc)}') from exc
    except RuntimeError as exc:  # torch refuses tensors of another shape
        resized = shape_mismatches(state, model.state_dict())
        if not resized:
            raise ExportError(f'{does_not_fit}: {type(exc).__name__}: '
                              f'{first_line(exc)}') from exc
        key, (theirs, ours) = next(iter(resized.items()))
        example = (f'{key}: ({", ".join(map(str, theirs))}) in the file, '
                   f'({", ".join(map(str, ours))}) in the model')
        summary = key_summary(list(resized), 'of another shape', example)
        raise ExportError(f'{does_not_fit}: {summary}{another}') from exc
    problems = [
        key_summary(keys, kind)
        for kind, keys in (('missing', result.missing_keys),
                           ('unexpected', result.unexpected_keys)) if keys
    ]
    if problems:
        raise ExportError(f'{does_not_fit}: {"; ".join(problems)}{another}')


def key_summary(keys: Sequence[str],
                kind: str,
                example: str = '',
                shown: int = 3) -> str:
    """"N <kind> keys", the first few (or ``example``), and their modules:
    a key's first three parts (``backbone.stages.0``).

    Args:
        keys (Sequence[str]): The state dict keys.
        kind (str): What is wrong with them ('missing').
        example (str): Shown instead of the first keys. Default: ''.
        shown (int): How many keys to name. Default: 3.
    """
    plural = 's' if len(keys) > 1 else ''
    count = (f'{len(keys)} key{plural} {kind}'
             if kind.startswith('of ') else f'{len(keys)} {kind} key{plural}')
    names = example or ', '.join(keys[:shown])
    more = ', ...' if len(keys) > (1 if example else shown) else ''
    modules: List[str] = list(
        dict.fromkeys('.'.join(k.split('.')[:3]) for k in keys))
    rest = ', ...' if len(modules) > 6 else ''
    return f'{count} ({names}{more}) in {", ".join(modules[:6])}{rest}'
