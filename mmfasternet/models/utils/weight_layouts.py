"""Detection and conversion of the public FasterNet weight layouts.

Four layouts of FasterNet weights are in circulation. They store the same
tensors under different names:

* ``official_classification`` -- the ImageNet release of the paper's
  authors: ``stages.0 .. stages.6`` where the odd entries are the patch
  merging (downsampling) layers, plus ``avgpool_pre_head.*`` / ``head.*``.
* ``official_detection`` -- the authors' mmdet-2 Mask R-CNN release: the
  same backbone names under ``backbone.`` plus output norms
  ``norm0 / norm2 / norm4 / norm6`` (indexed like the official stages).
* ``timm`` -- ``stages.{1,2,3}.downsample.*`` and ``stages.N.blocks.*``,
  with ``conv_head`` / ``classifier`` for the classification head
  (``stages_N`` in a ``features_only`` model).
* ``mmfasternet`` -- ours: timm's body names plus output norms
  ``norm0 .. norm3`` indexed by stage.

Ablation models built with another spatial mixer than PConv (see
``FasterNet(spatial_mixer=...)``) store it as ``spatial_mixing.weight``;
:func:`detect_spatial_mixer` tells the mixer of a state dict from its keys
and shapes, so that loading one into a model of another mixer can be refused
with a clear message.

The functions here work on a *backbone-local* state dict (no ``backbone.``
prefix) and always build a new dict: renaming in place collides, because
stage 2 of the official layout is stage 1 of ours and so on.
"""
import re
from fractions import Fraction
from typing import Dict, List, Mapping, NamedTuple, Optional

OFFICIAL_CLASSIFICATION = 'official_classification'
OFFICIAL_DETECTION = 'official_detection'
TIMM = 'timm'
MMFASTERNET = 'mmfasternet'

# Keys of classification heads that a detection / segmentation backbone
# never uses (official: avgpool_pre_head + head; timm: conv_head + classifier).
_HEAD_PREFIXES = ('avgpool_pre_head.', 'head.', 'conv_head.', 'classifier.')

_OFFICIAL_MERGE = re.compile(r'^stages\.(\d+)\.(reduction|norm)\.')
_OFFICIAL_STAGE = re.compile(r'^stages\.(\d+)\.(.*)$')
_TIMM_DOWNSAMPLE = re.compile(r'^stages[._]\d+\.downsample\.')
_TIMM_FLAT_STAGE = re.compile(r'^stages_(\d+)\.(.*)$')
_OUT_NORM = re.compile(r'^norm(\d+)\.(.*)$')
_BLOCK_FC1 = re.compile(r'^(stages\.(\d+)\.blocks\.(\d+)\.)mlp\.0\.weight$')


class ConvertedWeights(NamedTuple):
    """The result of :func:`convert_to_mmfasternet`.

    Attributes:
        layout (str): The layout the input was detected as.
        state_dict (dict): A new dict in the mmfasternet layout.
        dropped (list[str]): Input keys that have no place in the backbone
            (classification head).
    """
    layout: str
    state_dict: Dict[str, object]
    dropped: List[str]


def detect_layout(keys) -> str:
    """Tell which public layout a backbone-local state dict uses.

    Args:
        keys (Iterable[str]): Keys of the state dict, without any
            ``backbone.`` prefix.

    Returns:
        str: One of ``'official_classification'``, ``'official_detection'``,
        ``'timm'`` and ``'mmfasternet'``. A dict that has none of the
        distinguishing keys (e.g. only the stem and the first stage, where all
        layouts agree) is reported as ``'mmfasternet'``.
    """
    keys = list(keys)
    has_out_norms = any(_OUT_NORM.match(k) for k in keys)
    if any(_OFFICIAL_MERGE.match(k) for k in keys):
        return OFFICIAL_DETECTION if has_out_norms else OFFICIAL_CLASSIFICATION
    if any(_TIMM_DOWNSAMPLE.match(k) for k in keys) and not has_out_norms:
        return TIMM
    if any(k.startswith(('conv_head.', 'classifier.')) for k in keys):
        return TIMM
    return MMFASTERNET


def _official_key_to_ours(key: str) -> str:
    """Rename one official-layout key (classification or detection)."""
    stage = _OFFICIAL_STAGE.match(key)
    if stage:
        index, rest = int(stage.group(1)), stage.group(2)
        if index % 2 == 0:
            # Even entries are the block sequences: official 2k -> ours k.
            return f'stages.{index // 2}.{rest}'
        # Odd entries are the merging layers that open stage (index + 1) / 2.
        return f'stages.{(index + 1) // 2}.downsample.{rest}'
    norm = _OUT_NORM.match(key)
    if norm:
        return f'norm{int(norm.group(1)) // 2}.{norm.group(2)}'
    return key


def _timm_key_to_ours(key: str) -> str:
    """Rename one timm key (``stages_N`` only appears in features_only)."""
    flat = _TIMM_FLAT_STAGE.match(key)
    if flat:
        return f'stages.{flat.group(1)}.{flat.group(2)}'
    return key


def convert_to_mmfasternet(state_dict: Mapping[str, object],
                           layout: Optional[str] = None) -> ConvertedWeights:
    """Convert a backbone-local state dict of any layout to ours.

    Args:
        state_dict (Mapping[str, Any]): Backbone weights without prefix.
        layout (str, optional): Force a layout instead of detecting it.
            Defaults to None.

    Returns:
        ConvertedWeights: The detected layout, a new state dict in the
        mmfasternet layout and the keys that were dropped.
    """
    layout = layout or detect_layout(state_dict.keys())
    if layout in (OFFICIAL_CLASSIFICATION, OFFICIAL_DETECTION):
        rename = _official_key_to_ours
    elif layout == TIMM:
        rename = _timm_key_to_ours
    elif layout == MMFASTERNET:
        rename = str
    else:
        raise ValueError(f'unknown FasterNet weight layout {layout!r}')

    converted, dropped = {}, []
    for key, value in state_dict.items():
        if key.startswith(_HEAD_PREFIXES):
            dropped.append(key)
            continue
        new_key = rename(key)
        if new_key in converted:
            raise ValueError(f'two {layout} keys map to {new_key!r}; the '
                             'checkpoint mixes layouts')
        converted[new_key] = value
    return ConvertedWeights(layout, converted, dropped)


class SpatialMixerInfo(NamedTuple):
    """The spatial mixer of one block, as told by :func:`detect_spatial_mixer`.

    Attributes:
        name (str): ``'pconv'``, ``'dwconv'``, ``'gconv'``, ``'conv'`` or
            ``'identity'``.
        detail (str): What the weights show, e.g. ``'3x3 conv on 1/4 of the
            channels'``.
        settings (dict): The backbone arguments that build this mixer, e.g.
            ``{'spatial_mixer': 'pconv', 'n_div': 4}``.
        block (str): The block it was read from, e.g. ``'stages.0.blocks.0'``.
    """
    name: str
    detail: str
    settings: Dict[str, object]
    block: str


def detect_spatial_mixer(
        state_dict: Mapping[str, object],
        block: Optional[str] = None) -> Optional[SpatialMixerInfo]:
    """Tell a block's spatial mixer from the keys and shapes of its weights.

    A block's input width ``c`` is the second dimension of its ``mlp.0``
    weight. PConv keeps the public key ``spatial_mixing.partial_conv3.weight``
    of shape ``(c/n, c/n, 3, 3)``; the other mixers store a
    ``spatial_mixing.weight`` of shape ``(c, c/g, 3, 3)`` with ``g = c``
    (depthwise), ``1 < g < c`` (grouped) or ``g = 1`` (dense), and a block
    without either key has no spatial mixer.

    Args:
        state_dict (Mapping[str, Any]): Weights in the mmfasternet layout
            (see :func:`convert_to_mmfasternet`), without prefix.
        block (str, optional): The block to read, e.g.
            ``'stages.2.blocks.0'``. Defaults to the first block present.

    Returns:
        SpatialMixerInfo | None: None when the dict holds no such block.
    """
    blocks = {}
    for key in state_dict:
        match = _BLOCK_FC1.match(key)
        if match:
            index = (int(match.group(2)), int(match.group(3)))
            blocks[index] = match.group(1)
    if block is not None:
        prefixes = [p for p in blocks.values() if p == block + '.']
    else:
        prefixes = [blocks[i] for i in sorted(blocks)][:1]
    if not prefixes:
        return None
    prefix = prefixes[0]
    name = prefix.rstrip('.')
    channels = state_dict[prefix + 'mlp.0.weight'].shape[1]
    partial = state_dict.get(prefix + 'spatial_mixing.partial_conv3.weight')
    full = state_dict.get(prefix + 'spatial_mixing.weight')
    if partial is not None:
        conv_channels = partial.shape[0]
        ratio = Fraction(conv_channels, channels)
        settings = dict(spatial_mixer='pconv')
        n_div = round(channels / conv_channels)
        if channels // n_div == conv_channels:
            settings['n_div'] = n_div
        return SpatialMixerInfo('pconv',
                                f'3x3 conv on {ratio} of the channels',
                                settings, name)
    if full is None:
        return SpatialMixerInfo('identity', 'no spatial mixing',
                                dict(spatial_mixer='identity'), name)
    groups = full.shape[0] // full.shape[1]
    if full.shape[1] == 1 and groups > 1:
        return SpatialMixerInfo('dwconv', '3x3 depthwise conv',
                                dict(spatial_mixer='dwconv'), name)
    if groups == 1:
        return SpatialMixerInfo('conv', 'dense 3x3 conv',
                                dict(spatial_mixer='conv'), name)
    return SpatialMixerInfo('gconv', f'3x3 conv in {groups} groups',
                            dict(spatial_mixer='gconv', gconv_groups=groups),
                            name)
