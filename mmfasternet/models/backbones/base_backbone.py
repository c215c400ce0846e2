"""What FasterNet and GhostNetV2 share as dense-prediction backbones:
freezing, ``train()`` with ``norm_eval``, and checked checkpoint loading."""
import logging
from abc import abstractmethod
from typing import Dict, List, Mapping, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from ...checkpoint_loading import safe_checkpoint_loaders


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's weights do not fit the backbone that loads them.

    Raised from the backbone's ``_load_from_state_dict``, so that a caller
    loading a whole detector learns which module refused the weights
    without reading the traceback.

    Args:
        message (str): What does not fit, and what to do about it.
        module_path (str): The backbone's name in the model being loaded
            (``'backbone'`` in a detector; ``''`` when the backbone itself
            is loaded). Default: ''.
        module_type (str): The backbone's class name. Default: ''.
        foreign (bool): The weights are not this backbone's at all (most
            of its tensors are absent), rather than another variant's.
            Default: False.
    """

    def __init__(self,
                 message: str,
                 module_path: str = '',
                 module_type: str = '',
                 foreign: bool = False) -> None:
        super().__init__(message)
        self.module_path = module_path
        self.module_type = module_type
        self.foreign = foreign


def shape_mismatches(state: Mapping[str, object],
                     expected: Mapping[str, object]) -> Dict[str, tuple]:
    """The keys of ``state`` whose tensors have another shape than in
    ``expected``: ``{key: (shape in state, shape in expected)}``."""
    return {
        k: (tuple(v.shape), tuple(expected[k].shape))
        for k, v in state.items() if k in expected and hasattr(v, 'shape')
        and tuple(v.shape) != tuple(expected[k].shape)
    }


class DenseBackbone(BaseModule):
    """Base of the backbones: a stem, ``num_stages`` output stages, an
    output norm ``norm{i}`` for each index in ``out_indices``.

    * ``frozen_stages``: -1 freezes nothing, 0 the stem, ``i`` the stem and
      stages ``0 .. i-1`` with their output norms (eval mode, no
      gradients), as mmdet's backbones do;
    * ``train()`` keeps them frozen and, with ``norm_eval``, every BN in
      eval mode;
    * loading: the backbone's part of a state dict is mapped to its own
      layout and checked (:meth:`_checkpoint_weights`) before
      ``nn.Module`` loads it; output norms that the checkpoint lacks (an
      ImageNet one) keep their initialisation instead of being reported
      missing (logged; as a warning when the backbone is part of the model
      being loaded, whose checkpoint should have them). A checkpoint that
      does not fit raises :class:`CheckpointMismatchError` naming the
      backbone's path, with one exception: another model's checkpoint
      (most backbone tensors absent, e.g. a ResNet-50 detector's) loaded
      into a model that contains the backbone (a detector) leaves the
      backbone as it is, with a warning, so that the rest of the model
      loads; the backbone's keys are reported missing and the foreign ones
      unexpected, so ``strict=True`` still raises. (The backbone cannot
      see the caller's ``strict``: torch and mmengine pass ``True`` to every
      ``_load_from_state_dict``.) An ``init_cfg`` checkpoint of the
      backbone itself always raises, since nothing else would load;
    * ``init_weights`` reads an ``init_cfg`` checkpoint with mmfasternet's
      safe loaders (:func:`~mmfasternet.safe_checkpoint_loaders`).

    A subclass calls :meth:`_set_freezing` in its ``__init__`` (after
    ``num_stages`` and ``out_indices``) and :meth:`_freeze_stages` once
    built, and defines :meth:`stem_modules`, :meth:`stage_modules`,
    :meth:`_describe` and :meth:`_checkpoint_weights`.
    """

    num_stages: int
    out_indices: Tuple[int, ...]

    def _set_freezing(self, frozen_stages: int, norm_eval: bool) -> None:
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, '
                             f'{self.num_stages}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

    @abstractmethod
    def stem_modules(self) -> List[nn.Module]:
        """The modules before the first output stage."""

    @abstractmethod
    def stage_modules(self, i: int) -> List[nn.Module]:
        """The modules of output stage ``i``."""

    @abstractmethod
    def _describe(self) -> str:
        """The backbone's name in messages (``'FasterNet-T0'``)."""

    @abstractmethod
    def _checkpoint_weights(
            self, weights: Dict[str, object]) -> Tuple[dict, List[str]]:
        """The backbone's weights from a checkpoint, in its own layout.

        Args:
            weights (dict): The checkpoint's keys below the backbone's
                prefix, the prefix removed.

        Returns:
            tuple: The weights to load, and notes to log (what was
            converted or dropped).

        Raises:
            CheckpointMismatchError: The weights are another variant's, or
                not this backbone's.
        """

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = self.stem_modules()
        for i in range(self.frozen_stages):
            frozen.extend(self.stage_modules(i))
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'DenseBackbone':
        """Set train mode, keeping frozen stages and (optionally) norms in
        eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def init_weights(self) -> None:
        """Initialise the weights; an ``init_cfg`` checkpoint is read by
        mmfasternet's safe loaders (``weights_only``, ``.safetensors``,
        the Hugging Face cache names), whichever loaders the process has
        registered with mmengine."""
        with safe_checkpoint_loaders():
            super().init_weights()

    @property
    def _maps_checkpoints(self) -> bool:
        """Whether loading goes through :meth:`_checkpoint_weights`."""
        return True

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys,
                              error_msgs) -> None:
        if self._maps_checkpoints:
            own_keys = [k for k in state_dict if k.startswith(prefix)]
            local = {k[len(prefix):]: state_dict[k] for k in own_keys}
            try:
                weights, notes = self._checkpoint_weights(local)
            except CheckpointMismatchError as exc:
                exc.module_path = prefix.rstrip('.')
                exc.module_type = type(self).__name__
                if not (exc.foreign and prefix):
                    raise
                self._skip_foreign_weights(prefix, own_keys,
                                           unexpected_keys if strict else [])
                weights, notes = {}, []
            else:
                kept_init = self._fill_absent_out_norms(weights)
                kept = (f'output norms {", ".join(kept_init)} are not in the '
                        'checkpoint and keep their initialisation')
                if kept_init and prefix:
                    print_log(
                        f'{self._describe()} at {prefix.rstrip(".")!r}: '
                        f'{kept} (a strict load does not report them '
                        'missing)',
                        logger='current',
                        level=logging.WARNING)
                elif kept_init:
                    notes.append(kept)
            for key in own_keys:
                del state_dict[key]
            state_dict.update({prefix + k: v for k, v in weights.items()})
            if notes:
                print_log(
                    f'{self._describe()}: ' + '; '.join(notes),
                    logger='current',
                    level=logging.INFO)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _skip_foreign_weights(self, prefix: str, own_keys: List[str],
                              unexpected_keys: List[str]) -> None:
        """Leave the backbone as it is: its part of the checkpoint is
        reported unexpected (as ``nn.Module`` would), and not loaded, so
        that its own keys are reported missing; one warning says so."""
        if own_keys:
            found = (f'its {len(own_keys)} {prefix!r} tensors are another '
                     f'backbone\'s (e.g. {own_keys[0]})')
        else:
            found = f'it has no {prefix!r} tensors'
        print_log(
            f'{self._describe()} at {prefix.rstrip(".")!r} is not loaded '
            f'from this checkpoint: {found}. It keeps its current weights; '
            'the rest of the model is loaded.',
            logger='current',
            level=logging.WARNING)
        unexpected_keys.extend(own_keys)

    def _fill_absent_out_norms(self, weights: Dict[str, object]) -> List[str]:
        """Give the output norms that ``weights`` lacks their current
        values (ImageNet checkpoints have none); return their names."""
        kept = []
        for i in self.out_indices:
            norm_state = getattr(self, f'norm{i}').state_dict()
            names = [f'norm{i}.{n}' for n in norm_state]
            if not any(n in weights for n in names):
                weights.update(zip(names, norm_state.values()))
                kept.append(f'norm{i}')
        return kept

    def _body_keys(self) -> List[str]:
        """The state dict keys a checkpoint must have: all but the output
        norms' and BN's batch counters."""
        return [
            k for k in self.state_dict()
            if not k.startswith('norm') and 'num_batches_tracked' not in k
        ]

    def _mismatch_examples(self, weights: Dict[str, object]) -> List[str]:
        """``'key (checkpoint shape vs model shape)'`` for each tensor of
        ``weights`` whose shape differs from the model's."""
        resized = shape_mismatches(weights, self.state_dict())
        return [
            f'{k} (checkpoint {shapes[0]} vs model {shapes[1]})'
            for k, shapes in resized.items()
        ]
