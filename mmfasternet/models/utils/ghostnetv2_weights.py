"""GhostNetV2 checkpoints in timm's key layout.

timm's hub files (``timm/ghostnetv2_{100,130,160}.in1k``: ``model.safetensors``
and ``pytorch_model.bin``) are plain state dicts whose names are those of
:class:`timm.models.ghostnet.GhostNet`: ``conv_stem``, ``bn1`` and
``blocks.G.B...`` for the nine groups of bottlenecks, then the classification
head: ``blocks.9`` (a 1x1 ConvBnAct to ``960 * width`` channels that only the
pooled head uses), ``conv_head`` and ``classifier``.
:class:`~mmfasternet.models.backbones.GhostNetV2` keeps timm's names for the
body, so loading drops the head and renames nothing.
"""
from typing import Dict, List, NamedTuple, Optional, Tuple

# The classification head after the last group of bottlenecks. timm's
# checkpoint filter also drops thop's profiling buffers (``total_ops``,
# ``total_params``) that some original releases carry; so do we.
HEAD_PREFIXES: Tuple[str, ...] = ('conv_head.', 'classifier.')
PROFILING_SUFFIXES: Tuple[str, ...] = ('total_ops', 'total_params')
# Sentinels: the stem conv, and a DFC attention branch (GhostNetV2 only).
STEM_KEY = 'conv_stem.weight'
DFC_MARK = '.ghost1.short_conv.'


class SplitWeights(NamedTuple):
    """A GhostNetV2 state dict split into the backbone body and the rest.

    Attributes:
        body (dict): Tensors of the stem and the bottlenecks.
        dropped (list[str]): Names of the classification head (final conv,
            ``conv_head``, ``classifier``) and profiling buffers.
    """
    body: Dict[str, object]
    dropped: List[str]


def split_ghostnetv2_head(state_dict: Dict[str, object],
                          num_groups: int) -> SplitWeights:
    """Separate the classification head from the backbone body.

    Args:
        state_dict (dict): Weights in timm's GhostNet key layout.
        num_groups (int): Groups of bottlenecks in the body (9 for every
            released GhostNetV2); ``blocks.{num_groups}`` is the final conv.

    Returns:
        SplitWeights: The body and the names left out.
    """
    head = HEAD_PREFIXES + (f'blocks.{num_groups}.', )
    body, dropped = {}, []
    for key, value in state_dict.items():
        if key.startswith(head) or key.endswith(PROFILING_SUFFIXES):
            dropped.append(key)
        else:
            body[key] = value
    return SplitWeights(body, dropped)


def find_key_prefix(state_dict: Dict[str, object]) -> Optional[str]:
    """The prefix in front of a GhostNet stem conv, if there is one.

    Args:
        state_dict (dict): Any state dict.

    Returns:
        str | None: e.g. ``'backbone.'`` for a detector's weights, ``''``
        for a bare backbone, None if no key ends with the stem conv's name.
    """
    for key in state_dict:
        if key.endswith(STEM_KEY):
            return key[:-len(STEM_KEY)]
    return None


def stem_channels(state_dict: Dict[str, object]) -> Optional[int]:
    """Output channels of the stem conv (16, 20, 24 for widths 1.0, 1.3,
    1.6), or None if the stem conv is absent."""
    weight = state_dict.get(STEM_KEY)
    return None if weight is None else int(weight.shape[0])


def has_dfc_attention(state_dict: Dict[str, object]) -> bool:
    """Whether the weights have GhostNetV2's DFC attention branches (a
    GhostNet v1 checkpoint has none)."""
    return any(DFC_MARK in key for key in state_dict)
