"""The ``out_indices`` argument shared by the backbones."""
from typing import Sequence, Tuple, Union


def parse_out_indices(out_indices: Union[int, Sequence[int]],
                      num_stages: int) -> Tuple[int, ...]:
    """Check ``out_indices`` and make it sorted, non-negative stage indices.

    Args:
        out_indices (int | Sequence[int]): One stage or several; negative
            indices count from the last stage, as in Python.
        num_stages (int): How many stages the backbone has.

    Returns:
        tuple[int]: The stages in increasing order.

    Raises:
        ValueError: If it is empty, out of range or repeats a stage.
    """
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    if not isinstance(out_indices, Sequence) or not out_indices:
        raise ValueError('out_indices must be an int or a non-empty '
                         f'sequence, got {out_indices!r}')
    parsed = []
    for index in out_indices:
        if not -num_stages <= index < num_stages:
            raise ValueError(f'out_indices entry {index} is out of range '
                             f'for {num_stages} stages')
        parsed.append(index % num_stages)
    if len(set(parsed)) != len(parsed):
        raise ValueError(f'out_indices {tuple(out_indices)} repeats a stage')
    return tuple(sorted(parsed))
