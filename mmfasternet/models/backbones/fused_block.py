"""Inference-only re-parameterized FasterNet layers (deploy mode).

A FasterNet block computes ``x + s * W2(act(BN(W1(mixer(x)))))``, where the
spatial mixer is PConv or, in ablation models, a depthwise / grouped / dense
3x3 conv or nothing. For inference the BN is folded into ``W1`` (which gains
a bias) and the layer scale ``s`` into ``W2``, the activation runs in place,
and the residual is added into the output of ``W2`` in place, so a block
allocates one hidden and one output buffer and makes no separate
normalization or scaling pass. The model runs in ``torch.channels_last``
memory format, where oneDNN's convolutions are fastest on CPU.

``tools/benchmark.py`` times this deploy mode against the eager model.
Computing the pointwise convs as GEMMs on the channels-last matrix instead
(which avoids the PConv concatenation), whole or in cache-sized chunks, was
tried during development and was slower than oneDNN's convolutions; that
experiment is not kept in the repository.
"""
from typing import Optional

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> nn.Conv2d:
    """Return a new conv (with bias) equal to ``bn(conv(x))`` in eval mode.

    Both modules must be in eval mode (torch's ``fuse_conv_bn_eval``).
    """
    return fuse_conv_bn_eval(conv, bn).requires_grad_(False)


class FusedFasterNetBlock(nn.Module):
    """A FasterNet block with BN and layer scale folded (inference only).

    Build it with :meth:`from_block`.

    Args:
        mixer (nn.Conv2d, optional): The spatial mixer's 3x3 conv. When it
            has fewer input channels than ``fc1`` it is a PConv, applied to
            the first channels; otherwise it convolves all channels
            (depthwise, grouped or dense). None: no spatial mixing.
        fc1 (nn.Conv2d): First pointwise conv with the BN folded in.
        act (nn.Module): The block's activation.
        fc2 (nn.Conv2d): Second pointwise conv with layer scale folded in.
    """

    def __init__(self, mixer: Optional[nn.Conv2d], fc1: nn.Conv2d,
                 act: nn.Module, fc2: nn.Conv2d) -> None:
        super().__init__()
        self.conv_channels = fc1.in_channels if mixer is None else \
            mixer.in_channels
        self.untouched_channels = fc1.in_channels - self.conv_channels
        self.mixer = mixer
        self.fc1 = fc1
        self.act = act
        self.relu_in_place = isinstance(act, nn.ReLU)
        self.fc2 = fc2
        self.requires_grad_(False)

    @classmethod
    @torch.no_grad()
    def from_block(cls, block: nn.Module) -> 'FusedFasterNetBlock':
        """Fold a :class:`~.fasternet.FasterNetBlock` (eval mode)."""
        mixing = block.spatial_mixing
        if isinstance(mixing, nn.Identity):
            mixer = None
        else:  # PartialConv holds its conv; the other mixers are one
            mixer = getattr(mixing, 'partial_conv3', mixing)
        conv1, bn, act, conv2 = block.mlp
        fc1 = fuse_conv_bn(conv1, bn)
        fc2 = nn.Conv2d(
            conv2.in_channels, conv2.out_channels, 1,
            bias=False).to(conv2.weight)
        weight = conv2.weight
        if block.layer_scale is not None:
            weight = weight * block.layer_scale.view(-1, 1, 1, 1)
        fc2.weight.copy_(weight)
        return cls(mixer, fc1, act, fc2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mixer is None:
            mixed = x
        elif self.untouched_channels:
            x1, x2 = torch.split(
                x, [self.conv_channels, self.untouched_channels], dim=1)
            mixed = torch.cat((self.mixer(x1), x2), dim=1)
        else:
            mixed = self.mixer(x)
        hidden = self.fc1(mixed)
        hidden = hidden.relu_() if self.relu_in_place else self.act(hidden)
        # The residual goes into fc2's fresh output buffer, never into x.
        return self.fc2(hidden).add_(x)
