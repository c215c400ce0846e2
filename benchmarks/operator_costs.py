"""Analytic cost of FasterNet's spatial mixers, as the paper counts it.

The paper (Sec. 3.1, Table 1) counts FLOPs as multiply-adds and estimates
memory access as the elements read and written by an operator: its input
and output feature maps plus its weights. For a 3x3 conv with ``c`` input and
output channels in ``g`` groups on an ``h x w`` map that is

* FLOPs ``h * w * 9 * c**2 / g`` and memory ``h * w * 2c + 9 * c**2 / g``;
* PConv convolves ``c_p = c // n_div`` channels and leaves the others in
  place: FLOPs ``h * w * 9 * c_p**2``, memory ``h * w * 2c_p + 9 * c_p**2``
  (1/16 and about 1/4 of a dense conv's for ``n_div = 4``).

The PConv estimate assumes the untouched channels are not moved; a
``split_cat`` or ``slicing`` implementation copies them (see
:func:`mixer_copy_elements`).
"""
from typing import Tuple

KERNEL_AREA = 9  # every mixer here is 3x3


def mixer_groups(spatial_mixer: str,
                 channels: int,
                 gconv_groups: int = 16) -> int:
    """Groups of a full-width mixer (``'dwconv'``, ``'gconv'``, ``'conv'``).

    Args:
        spatial_mixer (str): The mixer's name.
        channels (int): Its input and output channels.
        gconv_groups (int): Groups of ``'gconv'``. Default: 16.

    Returns:
        int: The number of groups.
    """
    groups = dict(dwconv=channels, gconv=gconv_groups, conv=1)
    if spatial_mixer not in groups:
        raise ValueError(f'{spatial_mixer!r} is not a full-width mixer')
    return groups[spatial_mixer]


def _conv_shape(spatial_mixer: str, channels: int, n_div: int,
                gconv_groups: int) -> Tuple[int, int]:
    """(convolved channels, groups) of a mixer; (0, 1) for identity."""
    if spatial_mixer == 'identity':
        return 0, 1
    if spatial_mixer == 'pconv':
        return channels // n_div, 1
    return channels, mixer_groups(spatial_mixer, channels, gconv_groups)


def mixer_macs(spatial_mixer: str,
               channels: int,
               height: int,
               width: int,
               n_div: int = 4,
               gconv_groups: int = 16) -> int:
    """Multiply-adds of one mixer on one ``channels x height x width`` map.

    Args:
        spatial_mixer (str): ``'pconv'``, ``'dwconv'``, ``'gconv'``,
            ``'conv'`` or ``'identity'``.
        channels (int): Input and output channels.
        height (int): Feature map height (stride 1, padding 1).
        width (int): Feature map width.
        n_div (int): PConv's partial ratio is ``1 / n_div``. Default: 4.
        gconv_groups (int): Groups of ``'gconv'``. Default: 16.

    Returns:
        int: Multiply-adds (the paper's FLOPs).
    """
    conv, groups = _conv_shape(spatial_mixer, channels, n_div, gconv_groups)
    return height * width * KERNEL_AREA * conv * conv // groups


def mixer_memory_access(spatial_mixer: str,
                        channels: int,
                        height: int,
                        width: int,
                        n_div: int = 4,
                        gconv_groups: int = 16) -> int:
    """The paper's memory-access estimate of one mixer, in elements.

    Input and output maps of the convolved channels plus the weights; see
    the module docstring. Arguments as in :func:`mixer_macs`.

    Returns:
        int: Elements read and written.
    """
    conv, groups = _conv_shape(spatial_mixer, channels, n_div, gconv_groups)
    return height * width * 2 * conv + KERNEL_AREA * conv * conv // groups


def mixer_copy_elements(pconv_forward: str,
                        channels: int,
                        height: int,
                        width: int,
                        n_div: int = 4) -> int:
    """Elements a PConv implementation moves beyond the paper's estimate.

    ``split_cat`` concatenates: it reads the conv's output and the untouched
    channels and writes the whole map again (``2 * h * w * c``).
    ``slicing`` (with the copy that keeps a residual input intact) copies the
    whole map (``2 * h * w * c``) and then copies the conv's output into it
    (``2 * h * w * c_p``). At ``n_div = 4`` that is 4x (5x) the estimate's
    feature traffic; an in-place slicing with no copy (``'inplace'``, only
    valid where nothing else reads the input) still copies the conv's output
    into place.

    Args:
        pconv_forward (str): ``'split_cat'``, ``'slicing'`` or
            ``'inplace'``.
        channels (int): Channels of the map.
        height (int): Map height.
        width (int): Map width.
        n_div (int): Partial ratio ``1 / n_div``. Default: 4.

    Returns:
        int: Extra elements read and written.
    """
    hw = height * width
    conv = channels // n_div
    extra = dict(
        split_cat=2 * hw * channels,
        slicing=2 * hw * channels + 2 * hw * conv,
        inplace=2 * hw * conv)
    if pconv_forward not in extra:
        raise ValueError(f'unknown PConv forward {pconv_forward!r}')
    return extra[pconv_forward]
