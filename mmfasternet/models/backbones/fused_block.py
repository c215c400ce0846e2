"""Inference-only re-parameterized FasterNet layers (deploy mode).

A FasterNet block computes ``x + W2 @ act(BN(W1 @ pconv(x)))`` where
``pconv(x) = cat(conv3x3(x[:c]), x[c:])``. With BN folded into ``W1`` and
layer scale folded into ``W2``, the pointwise convs become two GEMMs on the
channels-last view of ``x`` (an ``(N*H*W, C)`` matrix):

* ``hidden = x[:, c:] @ W1[:, c:].T + conv3x3(x[:c]) @ W1[:, :c].T + b1``:
  the untouched channels are read in place through a strided view, so the
  concatenation is never materialized;
* ``out = x + act(hidden) @ W2.T``: the residual add happens inside the GEMM
  (``addmm``), so there is no separate elementwise pass.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def fold_bn(weight: torch.Tensor, bias: Optional[torch.Tensor],
            bn: _BatchNorm):
    """Fold an eval-mode BN that follows a conv/linear into its weights.

    Args:
        weight (Tensor): Weight with the output channels first.
        bias (Tensor, optional): Bias of the conv, or None.
        bn (_BatchNorm): The norm layer (its running statistics are used).

    Returns:
        tuple[Tensor, Tensor]: The folded weight and bias.
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1, ) + (1, ) * (weight.dim() - 1)
    folded_bias = bn.bias - bn.running_mean * scale
    if bias is not None:
        folded_bias = folded_bias + bias * scale
    return weight * scale.reshape(shape), folded_bias


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> nn.Conv2d:
    """Return a new conv (with bias) equal to ``bn(conv(x))`` in eval mode."""
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True).to(conv.weight)
    weight, bias = fold_bn(conv.weight, conv.bias, bn)
    fused.weight.copy_(weight)
    fused.bias.copy_(bias)
    return fused


class FusedFasterNetBlock(nn.Module):
    """A FasterNet block with BN and layer scale folded (inference only).

    Build it with :meth:`from_block`. Input and output are NCHW tensors in
    ``torch.channels_last`` memory format (other layouts are converted).

    Args:
        pconv_weight (Tensor): 3x3 PConv weight, ``(c, c, 3, 3)``.
        fc1_weight (Tensor): First pointwise weight with BN folded,
            ``(hidden, C)``.
        fc1_bias (Tensor): Its bias, ``(hidden, )``.
        fc2_weight (Tensor): Second pointwise weight with layer scale
            folded, ``(C, hidden)``.
        act (nn.Module): The block's activation.
    """

    def __init__(self, pconv_weight: torch.Tensor, fc1_weight: torch.Tensor,
                 fc1_bias: torch.Tensor, fc2_weight: torch.Tensor,
                 act: nn.Module) -> None:
        super().__init__()
        self.conv_channels = pconv_weight.shape[0]
        self.pconv_weight = nn.Parameter(pconv_weight.clone(),
                                         requires_grad=False)
        # Stored transposed (in, out) so the GEMMs read them contiguously.
        self.fc1_conv_part = nn.Parameter(
            fc1_weight[:, :self.conv_channels].t().contiguous(),
            requires_grad=False)
        self.fc1_pass_part = nn.Parameter(
            fc1_weight[:, self.conv_channels:].t().contiguous(),
            requires_grad=False)
        self.fc1_bias = nn.Parameter(fc1_bias.clone(), requires_grad=False)
        self.fc2_weight = nn.Parameter(
            fc2_weight.t().contiguous(), requires_grad=False)
        self.act = act

    @classmethod
    @torch.no_grad()
    def from_block(cls, block: nn.Module) -> 'FusedFasterNetBlock':
        """Fold a :class:`~.fasternet.FasterNetBlock` (eval mode)."""
        fc1, bn, act, fc2 = block.mlp
        fc1_weight, fc1_bias = fold_bn(fc1.weight.flatten(1), None, bn)
        fc2_weight = fc2.weight.flatten(1)
        if block.layer_scale is not None:
            fc2_weight = fc2_weight * block.layer_scale.view(-1, 1)
        return cls(block.spatial_mixing.partial_conv3.weight, fc1_weight,
                   fc1_bias, fc2_weight, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, channels, height, width = x.shape
        x = x.contiguous(memory_format=torch.channels_last)
        rows = x.permute(0, 2, 3, 1).reshape(-1, channels)  # a view
        convolved = F.conv2d(
            x[:, :self.conv_channels], self.pconv_weight, padding=1)
        convolved = convolved.permute(0, 2, 3, 1).reshape(
            -1, self.conv_channels)
        hidden = torch.addmm(self.fc1_bias, rows[:, self.conv_channels:],
                             self.fc1_pass_part)
        # In-place ops are not autocast: match the dtype autocast chose.
        hidden.addmm_(
            convolved.to(hidden.dtype), self.fc1_conv_part.to(hidden.dtype))
        if isinstance(self.act, nn.ReLU):
            hidden.relu_()  # no second (rows x hidden) buffer
        else:
            hidden = self.act(hidden)
        out = torch.addmm(rows, hidden, self.fc2_weight)
        return out.view(n, height, width, channels).permute(0, 3, 1, 2)
