"""GhostNetV2 backbone for dense prediction, built on timm's blocks.

Reference: Tang et al., "GhostNetV2: Enhance Cheap Operation with Long-Range
Attention", NeurIPS 2022 (arXiv:2211.12905).

The bottlenecks are timm's :class:`~timm.models.ghostnet.GhostBottleneck`
(ghost modules, DFC attention, squeeze-excite); this module only arranges
them into four output stages and adds what a detector needs (output norms,
freezing, ``norm_eval``, gradient checkpointing). Module names equal timm's
(``conv_stem``, ``bn1``, ``blocks.G.B``), so timm's ImageNet weights load
without renaming; see :mod:`mmfasternet.models.utils.ghostnetv2_weights`.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils.ghostnetv2_weights import (find_key_prefix, has_dfc_attention,
                                        split_ghostnetv2_head, stem_channels)
from ..utils.out_indices import parse_out_indices
from .base_backbone import CheckpointMismatchError, DenseBackbone

try:
    from timm.layers import make_divisible
    from timm.models.ghostnet import GhostBottleneck
except ImportError:  # pragma: no cover - timm is a declared requirement
    GhostBottleneck = make_divisible = None

# GhostNetV2's bottlenecks at width 1.0, in timm's nine groups ("blocks.G"):
# (kernel, expansion channels, output channels, SE ratio, stride). Each
# group becomes an ``nn.Sequential`` named as in timm.
_GROUPS = (
    ((3, 16, 16, 0., 1), ),
    ((3, 48, 24, 0., 2), ),
    ((3, 72, 24, 0., 1), ),
    ((5, 72, 40, .25, 2), ),
    ((5, 120, 40, .25, 1), ),
    ((3, 240, 80, 0., 2), ),
    ((3, 200, 80, 0., 1), (3, 184, 80, 0., 1), (3, 184, 80, 0., 1),
     (3, 480, 112, .25, 1), (3, 672, 112, .25, 1)),
    ((5, 672, 160, .25, 2), ),
    ((5, 960, 160, 0., 1), (5, 960, 160, .25, 1), (5, 960, 160, 0., 1),
     (5, 960, 160, .25, 1)),
)  # yapf: disable
# The stem runs the stride-2 conv and group 0 (stride 2). Output stage i
# (stride 4 * 2**i) runs the groups listed here: it starts with the group
# that downsamples and ends with the last group at that resolution.
_STAGE_GROUPS = ((1, 2), (3, 4), (5, 6), (7, 8))
# timm's GhostNetV2 keeps the plain ghost module (no DFC attention) in its
# first two bottlenecks.
_PLAIN_BOTTLENECKS = 2
# The norm_cfg types timm's BatchNorm2d layers can take.
_BLOCK_NORMS = ('BN', 'SyncBN')


def _scaled(channels: int, width: float) -> int:
    return make_divisible(channels * width, 4)


@MODELS.register_module()
class GhostNetV2(DenseBackbone):
    """GhostNetV2 backbone.

    A 3x3 stride-2 conv stem and 16 ghost bottlenecks (timm's), grouped into
    four output stages at strides 4, 8, 16 and 32. Each output is taken at
    the **end** of its resolution (timm's ``features_only`` taps right after
    each downsampling bottleneck instead, which would skip, e.g., the five
    stride-16 bottlenecks of ``blocks.6``). Blocks behind each output, in
    timm's names:

    ====== ====== ================================ ===================
    output stride  blocks                           channels (w = 1.0)
    ====== ====== ================================ ===================
    (stem) 2      ``conv_stem``, ``bn1``, blocks.0  16
    0      4      blocks.1 (down), blocks.2         24
    1      8      blocks.3 (down), blocks.4         40
    2      16     blocks.5 (down), blocks.6.0-4     112
    3      32     blocks.7 (down), blocks.8.0-3     160
    ====== ====== ================================ ===================

    Widths 1.3 / 1.6 scale every layer (outputs 32/52/144/208 and
    40/64/180/256 channels). The classification head (``blocks.9``, a 1x1
    conv to ``960 * width`` channels, ``conv_head``, ``classifier``) is not
    built. Output ``i`` goes through its own norm layer ``norm{i}``.

    Args:
        arch (str | dict): ``'1.0'``, ``'1.3'``, ``'1.6'`` (timm's
            ``ghostnetv2_100/130/160``), or ``dict(width=float)``.
            Default: '1.0'.
        in_channels (int): Input image channels. Default: 3.
        out_indices (int | Sequence[int]): Stages whose outputs are
            returned; negative indices count from the last stage.
            Default: (0, 1, 2, 3).
        norm_cfg (dict): Norm for all layers, as FasterNet's: the output
            norms are built from it, and the BN layers of the stem and of
            timm's bottlenecks (``nn.BatchNorm2d`` in timm) follow its type
            and ``requires_grad``. ``type`` must be ``'BN'`` (timm's layers
            unchanged) or ``'SyncBN'`` (every BN converted by
            :meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`, which
            keeps module names, weights and statistics, so loading is
            unchanged; use it for multi-GPU training, and a single process
            or CPU DDP reverts it to BN). Default: dict(type='BN',
            requires_grad=True).
        frozen_stages (int): -1 freezes nothing, 0 the stem (``conv_stem``,
            ``bn1``, ``blocks.0``), ``i`` the stem and stages ``0 .. i-1``
            together with their output norms. Default: -1.
        norm_eval (bool): Keep every norm layer in eval mode during training
            (frozen statistics). Default: False.
        with_cp (bool): Gradient checkpointing in every bottleneck (saves
            memory, costs a recompute). Default: False.
        init_cfg (dict | list[dict], optional): Initialization config, e.g.
            ``dict(type='Pretrained', checkpoint=PATH)`` with timm's
            GhostNetV2 ImageNet weights (``.safetensors`` or ``.bin``), or
            ``prefix='backbone.'`` with a detector's. Default: None
            (PyTorch's default init, as timm's GhostNet).

    Example:
        >>> import torch
        >>> from mmfasternet.models import GhostNetV2
        >>> # Strides 8, 16 and 32, as the RTMDet configs take them.
        >>> model = GhostNetV2(arch='1.3', out_indices=(1, 2, 3)).eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 640, 640))]
        [(1, 52, 80, 80), (1, 144, 40, 40), (1, 208, 20, 20)]
    """

    arch_settings: Dict[str, dict] = {
        '1.0': dict(width=1.0),
        '1.3': dict(width=1.3),
        '1.6': dict(width=1.6),
    }

    def __init__(self,
                 arch: Union[str, dict] = '1.0',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 norm_cfg: Optional[dict] = None,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if GhostBottleneck is None:
            raise ImportError('GhostNetV2 is built on timm\'s blocks: '
                              '`pip install timm`')
        super().__init__(init_cfg=init_cfg)
        self.arch_name, self.width = self._parse_arch(arch)
        self.num_stages = len(_STAGE_GROUPS)
        self.out_indices = parse_out_indices(out_indices, self.num_stages)
        self._set_freezing(frozen_stages, norm_eval)
        norm_cfg = dict(norm_cfg or dict(type='BN', requires_grad=True))
        if norm_cfg['type'] not in _BLOCK_NORMS:
            raise ValueError(
                f'norm_cfg type must be one of {sorted(_BLOCK_NORMS)} '
                '(timm\'s bottlenecks use BatchNorm2d), got '
                f'{norm_cfg["type"]!r}')
        self.with_cp = with_cp

        stem = _scaled(16, self.width)
        self.conv_stem = nn.Conv2d(in_channels, stem, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.act1 = nn.ReLU(inplace=True)
        groups, prev, index = [], stem, 0
        for group in _GROUPS:
            bottlenecks = []
            for kernel, mid, out, se_ratio, stride in group:
                out = _scaled(out, self.width)
                bottlenecks.append(
                    GhostBottleneck(
                        prev,
                        _scaled(mid, self.width),
                        out,
                        kernel,
                        stride,
                        se_ratio=se_ratio,
                        mode='original'
                        if index < _PLAIN_BOTTLENECKS else 'attn'))
                prev = out
                index += 1
            groups.append(nn.Sequential(*bottlenecks))
        self.blocks = nn.Sequential(*groups)
        self._apply_norm_cfg(norm_cfg)
        self.channels = tuple(
            _scaled(_GROUPS[g[-1]][-1][2], self.width) for g in _STAGE_GROUPS)
        for i in self.out_indices:
            self.add_module(f'norm{i}',
                            build_norm_layer(norm_cfg, self.channels[i])[1])
        self._freeze_stages()

    def _apply_norm_cfg(self, norm_cfg: dict) -> None:
        """Give the stem's and timm's BN layers the type and
        ``requires_grad`` of ``norm_cfg`` (names and state unchanged)."""
        for name in ('bn1', 'blocks'):
            if norm_cfg['type'] == 'SyncBN':
                setattr(
                    self, name,
                    nn.SyncBatchNorm.convert_sync_batchnorm(
                        getattr(self, name)))
            for layer in getattr(self, name).modules():
                if isinstance(layer, _BatchNorm):
                    layer.requires_grad_(norm_cfg.get('requires_grad', True))

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> Tuple[str, float]:
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(f'unknown GhostNetV2 arch {arch!r}; choose '
                                 f'from {sorted(cls.arch_settings)} or pass '
                                 'dict(width=...)')
            return arch, cls.arch_settings[arch]['width']
        if isinstance(arch, dict):
            if 'width' not in arch:
                raise ValueError('custom arch dict lacks \'width\'')
            width = float(arch['width'])
            if width <= 0:
                raise ValueError(f'width must be > 0, got {width}')
            return f'{width:g}', width
        raise TypeError(f'arch must be a str or dict, got {type(arch)}')

    def stem_modules(self) -> List[nn.Module]:
        """The modules before stride 4: ``conv_stem``, ``bn1``,
        ``blocks.0``."""
        return [self.conv_stem, self.bn1, self.blocks[0]]

    def stage_modules(self, i: int) -> List[nn.Module]:
        """The groups of bottlenecks (``blocks.G``) of output stage ``i``."""
        return [self.blocks[g] for g in _STAGE_GROUPS[i]]

    def _run(self, group: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        for bottleneck in group:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(bottleneck, x, use_reentrant=False)
            else:
                x = bottleneck(x)
        return x

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the normed outputs of the stages in ``out_indices``."""
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self._run(self.blocks[0], x)
        outs = []
        for i in range(self.num_stages):
            for group in self.stage_modules(i):
                x = self._run(group, x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x))
            if i == self.out_indices[-1]:
                break
        return tuple(outs)

    # ------------------------------------------------------------------
    # loading

    def _describe(self) -> str:
        return f'GhostNetV2-{self.arch_name}'

    def _checkpoint_weights(
            self, weights: Dict[str, object]) -> Tuple[dict, List[str]]:
        """timm's GhostNetV2 layout, the classification head dropped;
        another width or a checkpoint that does not match is refused."""
        split = split_ghostnetv2_head(weights, len(_GROUPS))
        self._check_loadable(split.body)
        notes = []
        if split.dropped:
            notes.append(f'ignored {len(split.dropped)} tensors of the '
                         'classification head (final conv blocks.'
                         f'{len(_GROUPS)}, conv_head, classifier)')
        return split.body, notes

    def _width_of(self, channels: Optional[int]) -> str:
        """Name the released width whose stem has ``channels`` outputs."""
        for name, setting in self.arch_settings.items():
            if _scaled(16, setting['width']) == channels:
                return f'GhostNetV2-{name}'
        return 'another width'

    def _check_loadable(self, weights: Dict[str, object]) -> None:
        """Raise on a wrong prefix or weights that are mostly not
        GhostNetV2's (another model's, ``foreign``), another width's
        weights, or an incomplete GhostNetV2 checkpoint."""
        body = self._body_keys()
        absent = [k for k in body if k not in weights]
        if len(absent) == len(body):
            found = find_key_prefix(weights)
            hint = (f'its stem conv is under the prefix {found!r}: set '
                    f"init_cfg prefix='{found}'" if found else
                    'it has no GhostNet stem conv (conv_stem.weight)')
            raise CheckpointMismatchError(
                f'{self._describe()}: no backbone tensor of the checkpoint '
                f'matches this model ({len(weights)} keys, e.g. '
                f'{", ".join(list(weights)[:3]) or "none"}); {hint}. Is '
                'the init_cfg prefix right?',
                foreign=True)
        if len(absent) > len(body) // 2:
            raise self._incomplete(weights, absent, foreign=True)
        mismatched = self._mismatch_examples(weights)
        if mismatched:
            found = stem_channels(weights)
            raise CheckpointMismatchError(
                f'{self._describe()}: the checkpoint is '
                f'{self._width_of(found)} weights (stem conv with {found} '
                f'channels; this model has {self.conv_stem.out_channels}): '
                f'{len(mismatched)} shape mismatches, e.g. '
                f'{"; ".join(mismatched[:2])}. Build the model with the '
                'checkpoint\'s arch.')
        if absent:
            raise self._incomplete(weights, absent)

    def _incomplete(self,
                    weights: Dict[str, object],
                    absent: List[str],
                    foreign: bool = False) -> CheckpointMismatchError:
        """The error for weights that leave ``absent`` tensors unloaded."""
        kind = ('a GhostNet (v1) checkpoint: it has no DFC attention '
                '(ghost1.short_conv)' if not has_dfc_attention(weights) else
                'not a complete GhostNetV2 checkpoint')
        return CheckpointMismatchError(
            f'{self._describe()}: the checkpoint leaves {len(absent)} of '
            f'{len(self._body_keys())} backbone tensors unloaded (first: '
            f'{", ".join(absent[:3])}); it looks like {kind}.',
            foreign=foreign)
