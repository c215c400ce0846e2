"""FasterNet backbone for dense prediction.

Reference: Chen et al., "Run, Don't Walk: Chasing Higher FLOPS for Faster
Neural Networks", CVPR 2023 (arXiv:2303.03667).

Module names follow the public weight layout shared by timm and the official
release (``patch_embed``, ``stages.N.downsample``, ``stages.N.blocks.M``
with ``spatial_mixing.partial_conv3`` and ``mlp.{0,1,3}``), so every public
checkpoint maps onto this model by renaming keys only; see
:mod:`mmfasternet.models.utils.weight_layouts`. For ablations the PConv can
be replaced by another 3x3 spatial mixer (``spatial_mixer``); those store
their conv as ``spatial_mixing.weight`` (none for ``'identity'``), so the
mixer a checkpoint was saved with is told by its keys and shapes.
"""
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.registry import MODELS

from ..utils.bf16_support import check_native_bf16
from ..utils.out_indices import parse_out_indices
from ..utils.weight_layouts import convert_to_mmfasternet, detect_spatial_mixer
from .base_backbone import CheckpointMismatchError, DenseBackbone
from .fused_block import FusedFasterNetBlock, fuse_conv_bn

PCONV_FORWARDS = ('split_cat', 'slicing')
SPATIAL_MIXERS = ('pconv', 'dwconv', 'gconv', 'conv', 'identity')
# In place: the BN output it overwrites is not needed by autograd, and an
# out-of-place ReLU costs a full extra pass over the widest tensor (measured:
# ~5% of FasterNet-S's CPU time at 800x1344).
_RELU = dict(type='ReLU', inplace=True)
_GELU = dict(type='GELU')


def check_n_div(n_div: int) -> None:
    """Raise a ValueError unless ``n_div`` is a positive integer."""
    if isinstance(n_div, bool) or not isinstance(n_div, int) or n_div < 1:
        raise ValueError('n_div must be a positive integer (PConv convolves '
                         f'channels // n_div channels), got {n_div!r}')


class PartialConv(nn.Module):
    """Partial convolution (PConv): a 3x3 conv on a slice of the channels.

    The first ``channels // n_div`` channels are convolved; the others pass
    through untouched.

    Args:
        channels (int): Number of input (and output) channels.
        n_div (int): The convolved part is ``channels // n_div``. Default: 4.
        pconv_forward (str): ``'split_cat'`` (split, convolve, concatenate;
            for training and inference) or ``'slicing'`` (copy the input and
            overwrite the convolved channels; inference only, as in the
            official code). Neither writes into its input, so the block's
            residual branch stays intact. Default: 'split_cat'.
    """

    def __init__(self,
                 channels: int,
                 n_div: int = 4,
                 pconv_forward: str = 'split_cat') -> None:
        super().__init__()
        if pconv_forward not in PCONV_FORWARDS:
            raise ValueError(f'pconv_forward must be one of {PCONV_FORWARDS}, '
                             f'got {pconv_forward!r}')
        check_n_div(n_div)
        self.conv_channels = channels // n_div
        if self.conv_channels < 1:
            raise ValueError(f'n_div={n_div} leaves no channel to convolve '
                             f'out of {channels}')
        self.untouched_channels = channels - self.conv_channels
        self.pconv_forward = pconv_forward
        self.partial_conv3 = nn.Conv2d(
            self.conv_channels, self.conv_channels, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pconv_forward == 'slicing':
            if self.training:
                raise RuntimeError("pconv_forward='slicing' is for inference "
                                   "only: call eval() or use 'split_cat'")
            out = x.clone()
            out[:, :self.conv_channels] = self.partial_conv3(
                x[:, :self.conv_channels])
            return out
        x1, x2 = torch.split(
            x, [self.conv_channels, self.untouched_channels], dim=1)
        return torch.cat((self.partial_conv3(x1), x2), dim=1)


def build_spatial_mixer(spatial_mixer: str,
                        channels: int,
                        n_div: int = 4,
                        gconv_groups: int = 16,
                        pconv_forward: str = 'split_cat') -> nn.Module:
    """Build the spatial mixer of a FasterNet block (3x3, channels kept).

    Args:
        spatial_mixer (str): ``'pconv'`` (:class:`PartialConv`, weight key
            ``partial_conv3.weight`` as in the public checkpoints),
            ``'dwconv'`` (depthwise), ``'gconv'`` (``gconv_groups`` groups),
            ``'conv'`` (dense) -- these three are a bias-free ``nn.Conv2d``
            whose only key is ``weight`` -- or ``'identity'`` (no spatial
            mixing and no weights).
        channels (int): Input and output channels.
        n_div (int): PConv's partial ratio is ``1 / n_div``. Default: 4.
        gconv_groups (int): Groups of ``'gconv'``. Default: 16.
        pconv_forward (str): See :class:`PartialConv`. Default: 'split_cat'.

    Returns:
        nn.Module: The mixer.
    """
    if spatial_mixer not in SPATIAL_MIXERS:
        raise ValueError(f'spatial_mixer must be one of {SPATIAL_MIXERS}, '
                         f'got {spatial_mixer!r}')
    if spatial_mixer == 'pconv':
        return PartialConv(channels, n_div, pconv_forward)
    if spatial_mixer == 'identity':
        return nn.Identity()
    groups = dict(dwconv=channels, gconv=gconv_groups, conv=1)[spatial_mixer]
    if groups < 1 or channels % groups:
        raise ValueError(f'gconv_groups={gconv_groups} must divide the '
                         f'{channels} channels of every stage')
    return nn.Conv2d(channels, channels, 3, 1, 1, groups=groups, bias=False)


class FasterNetBlock(nn.Module):
    """A spatial mixer (PConv by default) followed by a pointwise inverted
    bottleneck and a residual.

    ``x + drop_path(scale * conv1x1(act(norm(conv1x1(mixer(x))))))``

    Args:
        channels (int): Input and output channels.
        mlp_ratio (float): Hidden width of the bottleneck relative to
            ``channels``. Default: 2.
        n_div (int): PConv convolves ``channels // n_div`` channels.
            Default: 4.
        drop_path (float): Stochastic depth rate. Default: 0.
        layer_scale_init_value (float): Initial per-channel scale of the
            residual branch; 0 disables layer scale. Default: 0.
        norm_cfg (dict): Norm after the first pointwise conv.
            Default: dict(type='BN').
        act_cfg (dict): Activation. Default: dict(type='ReLU', inplace=True).
        pconv_forward (str): See :class:`PartialConv`. Default: 'split_cat'.
        spatial_mixer (str): See :func:`build_spatial_mixer`.
            Default: 'pconv'.
        gconv_groups (int): Groups of the ``'gconv'`` mixer. Default: 16.
        with_cp (bool): Use gradient checkpointing. Default: False.
    """

    def __init__(self,
                 channels: int,
                 mlp_ratio: float = 2.,
                 n_div: int = 4,
                 drop_path: float = 0.,
                 layer_scale_init_value: float = 0.,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 pconv_forward: str = 'split_cat',
                 spatial_mixer: str = 'pconv',
                 gconv_groups: int = 16,
                 with_cp: bool = False) -> None:
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN')
        act_cfg = act_cfg or _RELU
        hidden = int(channels * mlp_ratio)
        self.with_cp = with_cp
        self.spatial_mixing = build_spatial_mixer(spatial_mixer, channels,
                                                  n_div, gconv_groups,
                                                  pconv_forward)
        # Index 2 (the activation) has no weights: keys are mlp.0, mlp.1 and
        # mlp.3, as in the public checkpoints.
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            build_norm_layer(norm_cfg, hidden)[1],
            build_activation_layer(act_cfg),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )
        if layer_scale_init_value > 0:
            self.layer_scale = nn.Parameter(
                torch.full((channels, ), float(layer_scale_init_value)))
        else:
            self.layer_scale = None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else \
            nn.Identity()

    def _forward_impl(self, x: torch.Tensor) -> torch.Tensor:
        out = self.mlp(self.spatial_mixing(x))
        if self.layer_scale is not None:
            out = self.layer_scale.view(1, -1, 1, 1) * out
        return x + self.drop_path(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward_impl, x, use_reentrant=False)
        return self._forward_impl(x)


class ConvNorm(nn.Sequential):
    """A bias-free strided conv followed by a norm (stem / patch merging).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        patch_size (int): Kernel size and stride.
        norm_cfg (dict): Norm config.
        conv_name (str): Attribute name of the conv, to keep the public key
            names (``proj`` for the stem, ``reduction`` for merging).
    """

    def __init__(self, in_channels: int, out_channels: int, patch_size: int,
                 norm_cfg: dict, conv_name: str) -> None:
        super().__init__()
        self.add_module(
            conv_name,
            nn.Conv2d(
                in_channels,
                out_channels,
                patch_size,
                stride=patch_size,
                bias=False))
        self.add_module('norm', build_norm_layer(norm_cfg, out_channels)[1])


class FasterNetStage(nn.Module):
    """An optional 2x2 patch merging followed by a sequence of blocks.

    Args:
        downsample (nn.Module, optional): Merging layer, None for stage 0.
        blocks (list[nn.Module]): The stage's blocks.
    """

    def __init__(self, downsample: Optional[nn.Module],
                 blocks: List[nn.Module]) -> None:
        super().__init__()
        self.downsample = downsample if downsample is not None else \
            nn.Identity()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


def _is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is laid out channels-last (and not also plain NCHW, as
    a tensor with 1x1 maps or one channel is)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
        memory_format=torch.channels_last)


@MODELS.register_module()
class FasterNet(DenseBackbone):
    """FasterNet backbone.

    A 4x4 stride-4 patch embedding, then four stages of FasterNet blocks;
    stages 1-3 start with a 2x2 stride-2 patch merging that doubles the
    channels. Output ``i`` has ``embed_dims * 2**i`` channels at stride
    ``4 * 2**i`` and goes through its own norm layer (``norm{i}``).

    Args:
        arch (str | dict): ``'t0'``, ``'t1'``, ``'t2'``, ``'s'``, ``'m'``,
            ``'l'``, or a dict with keys ``embed_dims`` (int) and ``depths``
            (sequence of int), and optionally ``act_cfg`` (dict).
            Default: 's'.
        in_channels (int): Input image channels. Default: 3.
        out_indices (int | Sequence[int]): Stages whose outputs are returned;
            negative indices count from the last stage. Default: (0, 1, 2, 3).
        mlp_ratio (float): Hidden width of each block's bottleneck.
            Default: 2.
        n_div (int): PConv convolves ``channels // n_div`` channels.
            Default: 4.
        spatial_mixer (str): The 3x3 spatial mixer of every block:
            ``'pconv'`` (the paper's), ``'dwconv'``, ``'gconv'``, ``'conv'``
            or ``'identity'``, for ablations; see
            :func:`build_spatial_mixer`. Public checkpoints are PConv ones:
            a checkpoint saved with another mixer is refused with a message
            that names both. Default: 'pconv'.
        gconv_groups (int): Groups of the ``'gconv'`` mixer; must divide
            ``embed_dims``. Default: 16 (the paper's operator study).
        patch_size (int): Kernel and stride of the patch embedding.
            Default: 4.
        merge_size (int): Kernel and stride of the patch merging. Default: 2.
        drop_path_rate (float): Stochastic depth rate, rising linearly over
            all blocks from 0 to this value. Default: 0.
        layer_scale_init_value (float): Initial layer-scale value; 0 disables
            layer scale (as in the released models). Default: 0.
        norm_cfg (dict): Norm for all layers, including the output norms
            (use ``dict(type='SyncBN')`` for multi-GPU training).
            Default: dict(type='BN', requires_grad=True).
        act_cfg (dict, optional): Activation in the blocks; None uses the
            arch's (GELU for T0/T1, ReLU otherwise). Default: None.
        pconv_forward (str): How PConv runs: ``'split_cat'`` (training and
            inference) or ``'slicing'`` (inference only); ignored by the
            other mixers and by deploy mode. Default: 'split_cat'.
        frozen_stages (int): -1 freezes nothing, 0 the patch embedding, ``i``
            the patch embedding and stages ``0 .. i-1`` together with their
            output norms. Default: -1.
        norm_eval (bool): Keep every norm layer in eval mode during training
            (frozen statistics). Default: False.
        with_cp (bool): Gradient checkpointing in every block (saves memory,
            costs a recompute). Default: False.
        init_cfg (dict | list[dict], optional): Initialization config, e.g.
            ``dict(type='Pretrained', checkpoint=PATH)``. Any public FasterNet
            layout loads (official classification or detection release,
            timm, ours). Default: None (truncated normal convs).

    Example:
        >>> import torch
        >>> from mmfasternet.models import FasterNet
        >>> model = FasterNet(arch='t0').eval()
        >>> for out in model(torch.rand(1, 3, 224, 224)):
        ...     print(tuple(out.shape))
        (1, 40, 56, 56)
        (1, 80, 28, 28)
        (1, 160, 14, 14)
        (1, 320, 7, 7)
    """

    arch_settings: Dict[str, dict] = {
        't0': dict(embed_dims=40, depths=(1, 2, 8, 2), act_cfg=_GELU),
        't1': dict(embed_dims=64, depths=(1, 2, 8, 2), act_cfg=_GELU),
        't2': dict(embed_dims=96, depths=(1, 2, 8, 2), act_cfg=_RELU),
        's': dict(embed_dims=128, depths=(1, 2, 13, 2), act_cfg=_RELU),
        'm': dict(embed_dims=144, depths=(3, 4, 18, 3), act_cfg=_RELU),
        'l': dict(embed_dims=192, depths=(3, 4, 18, 3), act_cfg=_RELU),
    }  # yapf: disable

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 mlp_ratio: float = 2.,
                 n_div: int = 4,
                 spatial_mixer: str = 'pconv',
                 gconv_groups: int = 16,
                 patch_size: int = 4,
                 merge_size: int = 2,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 0.,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 pconv_forward: str = 'split_cat',
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='TruncNormal', layer='Conv2d', std=.02, bias=0.),
                dict(type='Constant', layer='_BatchNorm', val=1., bias=0.),
            ]
        super().__init__(init_cfg=init_cfg)
        self.arch_name, arch = self._parse_arch(arch)
        self.embed_dims = arch['embed_dims']
        self.depths = tuple(arch['depths'])
        self.num_stages = len(self.depths)
        self.out_indices = parse_out_indices(out_indices, self.num_stages)
        self._set_freezing(frozen_stages, norm_eval)
        if pconv_forward not in PCONV_FORWARDS:
            raise ValueError(f'pconv_forward must be one of {PCONV_FORWARDS}, '
                             f'got {pconv_forward!r}')
        if spatial_mixer not in SPATIAL_MIXERS:
            raise ValueError(f'spatial_mixer must be one of {SPATIAL_MIXERS}, '
                             f'got {spatial_mixer!r}')
        if drop_path_rate < 0:
            raise ValueError(f'drop_path_rate must be >= 0, got '
                             f'{drop_path_rate}')
        check_n_div(n_div)
        norm_cfg = dict(norm_cfg or dict(type='BN', requires_grad=True))
        act_cfg = dict(act_cfg or arch.get('act_cfg', _RELU))
        self.spatial_mixer = spatial_mixer
        self.with_cp = with_cp
        self.deployed = False
        self.deploy_bf16 = False
        self.deploy_channels_last: Optional[bool] = None
        self.channels = tuple(self.embed_dims * 2**i
                              for i in range(self.num_stages))

        self.patch_embed = ConvNorm(in_channels, self.embed_dims, patch_size,
                                    norm_cfg, 'proj')
        drop_rates = torch.linspace(0, drop_path_rate,
                                    sum(self.depths)).tolist()
        self.stages = nn.ModuleList()
        for i, (depth, channels) in enumerate(zip(self.depths, self.channels)):
            downsample = None if i == 0 else ConvNorm(
                channels // 2, channels, merge_size, norm_cfg, 'reduction')
            first = sum(self.depths[:i])
            blocks = [
                FasterNetBlock(
                    channels,
                    mlp_ratio=mlp_ratio,
                    n_div=n_div,
                    drop_path=drop_rates[first + j],
                    layer_scale_init_value=layer_scale_init_value,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg,
                    pconv_forward=pconv_forward,
                    spatial_mixer=spatial_mixer,
                    gconv_groups=gconv_groups,
                    with_cp=with_cp) for j in range(depth)
            ]
            self.stages.append(FasterNetStage(downsample, blocks))
        for i in self.out_indices:
            self.add_module(f'norm{i}',
                            build_norm_layer(norm_cfg, self.channels[i])[1])
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> Tuple[str, dict]:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_settings:
                raise ValueError(f'unknown FasterNet arch {arch!r}; choose '
                                 f'from {sorted(cls.arch_settings)} or pass '
                                 'a dict')
            return key, cls.arch_settings[key]
        if isinstance(arch, dict):
            missing = {'embed_dims', 'depths'} - set(arch)
            if missing:
                raise ValueError(f'custom arch dict lacks {sorted(missing)}')
            return 'custom', dict(arch)
        raise TypeError(f'arch must be a str or dict, got {type(arch)}')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the normed outputs of the stages in ``out_indices``."""
        if not self.deployed:
            return self._forward_stages(x)
        # Only a bf16 deploy model enters autocast itself; otherwise an
        # autocast the caller entered (e.g. --amp fp16) stays in force.
        bf16 = torch.autocast(
            x.device.type,
            dtype=torch.bfloat16) if self.deploy_bf16 else nullcontext()
        with bf16:
            fmt = self._deploy_memory_format(x)
            outs = self._forward_stages(x.contiguous(memory_format=fmt))
        # Back to the input's dtype (bf16 deploy) and to NCHW unless the
        # input was channels-last: downstream ops (e.g. mmcv's RoIAlign)
        # index NCHW memory directly.
        out_fmt = torch.channels_last if _is_channels_last(
            x) else torch.contiguous_format
        dtype = x.dtype if self.deploy_bf16 else None
        return tuple(
            out.to(dtype=dtype, memory_format=out_fmt) for out in outs)

    def _deploy_memory_format(self, x: torch.Tensor) -> torch.memory_format:
        """The layout the stages run in.

        Channels-last on a CPU (oneDNN's fast kernels) and on a GPU under
        half precision (autocast, half inputs or ``bf16``: cuDNN's
        tensor-core kernels); a GPU in fp32 keeps the input's layout, which
        adds no conversion kernels at batch 1, where a GPU is launch-bound
        (docs/gpu.md has the measurements). ``switch_to_deploy``'s
        ``channels_last`` overrides the choice.
        """
        if self.deploy_channels_last is not None:
            wanted = self.deploy_channels_last
        elif x.device.type == 'cpu':
            wanted = True
        else:
            wanted = self.deploy_bf16 or torch.is_autocast_enabled(
                x.device.type) or x.dtype in (torch.float16, torch.bfloat16)
        if wanted:
            return torch.channels_last
        return torch.channels_last if _is_channels_last(
            x) else torch.contiguous_format

    def _forward_stages(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x))
            if i == self.out_indices[-1]:
                break
        return tuple(outs)

    def stem_modules(self) -> List[nn.Module]:
        """The patch embedding."""
        return [self.patch_embed]

    def stage_modules(self, i: int) -> List[nn.Module]:
        """Stage ``i`` (its patch merging and blocks)."""
        return [self.stages[i]]

    def train(self, mode: bool = True) -> 'FasterNet':
        """Set train mode, keeping frozen stages and (optionally) norms in
        eval mode; refused after :meth:`switch_to_deploy`."""
        if mode and self.deployed:
            raise RuntimeError('this FasterNet was switched to deploy mode '
                               '(BN folded, inference kernels); build a new '
                               'model to train')
        return super().train(mode)

    def switch_to_deploy(self,
                         bf16: bool = False,
                         channels_last: Optional[bool] = None) -> None:
        """Re-parameterize for fast inference, in place and irreversibly.

        Every BN that follows a conv is folded into it, layer scale is folded
        into the last conv of each block, activations and residual adds run
        in place (see :class:`~.fused_block.FusedFasterNetBlock`), the stages
        run in the memory format that is fast on the device (see
        ``channels_last``), and the model is put in eval mode; ``train()``
        refuses afterwards. An autocast the caller enters (e.g. fp16 on a
        GPU) applies inside as it does in eager mode. Outputs equal the eager
        model's within float rounding (about 1e-6 relative in fp32). Calling
        it again only changes ``bf16`` and ``channels_last``.

        Args:
            bf16 (bool): Run the backbone under bfloat16 autocast (fast on
                CPUs with AMX / AVX512-BF16 and on recent GPUs; about 1%
                feature error). Outputs are cast back to the input dtype, so
                the neck and heads are unaffected. Default: False.
            channels_last (bool, optional): Run the stages in channels-last
                memory format. None chooses by device and precision: on a
                CPU always, on a GPU under fp16 / bf16 (autocast, half
                inputs or ``bf16``); fp32 on a GPU keeps the input's layout
                (True is faster there for S-L at large batch). Outputs keep
                the input's layout either way. Default: None.

        Raises:
            RuntimeError: If ``bf16`` is set and the parameters' device does
                not run bf16 natively (see :func:`check_native_bf16`).
        """
        if bf16:
            check_native_bf16(next(self.parameters()).device.type)
        self.deploy_bf16 = bf16
        self.deploy_channels_last = channels_last
        if self.deployed:
            return
        self.eval()
        self.patch_embed = fuse_conv_bn(self.patch_embed.proj,
                                        self.patch_embed.norm)
        for stage in self.stages:
            if not isinstance(stage.downsample, nn.Identity):
                stage.downsample = fuse_conv_bn(stage.downsample.reduction,
                                                stage.downsample.norm)
            stage.blocks = nn.Sequential(
                *[FusedFasterNetBlock.from_block(b) for b in stage.blocks])
        self.deployed = True
        self.eval()  # the new fused modules too

    @property
    def _maps_checkpoints(self) -> bool:
        """Deploy mode loads its own (fused) state dicts as they are."""
        return not self.deployed

    def _checkpoint_weights(
            self, weights: Dict[str, object]) -> Tuple[dict, List[str]]:
        """Any public FasterNet layout (see ``weight_layouts``), checked for
        the spatial mixer and the variant."""
        converted = convert_to_mmfasternet(weights)
        self._check_spatial_mixer(converted.state_dict)
        self._check_loadable(converted.state_dict)
        notes = [f'loading {converted.layout} weights']
        if converted.dropped:
            notes.append(f'ignored {len(converted.dropped)} classification '
                         'head tensors')
        return converted.state_dict, notes

    def _describe(self) -> str:
        return f'FasterNet-{self.arch_name.upper()}'

    def _check_spatial_mixer(self, weights: Dict[str, object]) -> None:
        """Raise on weights saved with another spatial mixer (or ratio)."""
        found = detect_spatial_mixer(weights)
        if found is None:
            return
        own = detect_spatial_mixer(self.state_dict(), found.block)
        if own is None or own == found:
            return
        settings = ' '.join(f'model.backbone.{k}={v}'
                            for k, v in found.settings.items())
        raise CheckpointMismatchError(
            f'{self._describe()}: the checkpoint was saved with '
            f'spatial_mixer={found.name!r} ({found.detail}), but this model '
            f'has spatial_mixer={own.name!r} ({own.detail}); compared at '
            f'{found.block}. Build the model with the checkpoint\'s mixer '
            f'(--cfg-options {settings}).')

    def _check_loadable(self, weights: Dict[str, object]) -> None:
        """Raise on a mostly-absent backbone (another model's weights,
        ``foreign``) or another variant's weights."""
        body = self._body_keys()
        absent = [k for k in body if k not in weights]
        if len(absent) > len(body) // 2:
            raise CheckpointMismatchError(
                f'{self._describe()}: the checkpoint leaves {len(absent)} of '
                f'{len(body)} backbone tensors unloaded (first: '
                f'{", ".join(absent[:5])}). Is it a FasterNet checkpoint, '
                'and is the init_cfg prefix right?',
                foreign=True)
        mismatched = self._mismatch_examples(weights)
        if mismatched:
            raise CheckpointMismatchError(
                f'{self._describe()}: the checkpoint does not fit this '
                f'variant ({len(mismatched)} shape mismatches, e.g. '
                f'{"; ".join(mismatched[:3])}). Were the weights saved from '
                'another FasterNet variant?')
