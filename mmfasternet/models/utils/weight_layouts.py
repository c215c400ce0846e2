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

The functions here work on a *backbone-local* state dict (no ``backbone.``
prefix) and always build a new dict: renaming in place collides, because
stage 2 of the official layout is stage 1 of ours and so on.
"""
import re
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
