"""Tool-test configs made from the real demo configs (``configs/demo/``).

A tool test loads a demo config with ``Config.fromfile``, overrides what it
needs (the fixture's data, smaller sizes, a shorter schedule) with
``merge_from_dict`` and dumps the result to a ``.py`` file that the tools
run; nothing else of the config is restated in the test.
"""
from typing import List, Sequence


def with_sizes(pipeline: Sequence[dict], **sizes) -> List[dict]:
    """A copy of ``pipeline`` whose transforms take the given sizes.

    Every transform that has one of the keyword names as an argument
    (``scale``, ``crop_size`` ...) gets the new value, whatever the config's
    was, so that a test does not depend on the demo's image size.

    Args:
        pipeline (Sequence[dict]): A data pipeline of a config.
        **sizes: Argument names of the transforms and their new values.

    Returns:
        list[dict]: The new pipeline.

    Raises:
        KeyError: If no transform takes one of the names, so that a renamed
            transform cannot leave a test at the demo's full size unnoticed.
    """
    unused = [k for k in sizes if not any(k in t for t in pipeline)]
    if unused:
        raise KeyError(f'no transform takes {unused}: '
                       f"{[t['type'] for t in pipeline]}")
    return [{k: sizes.get(k, v) for k, v in t.items()} for t in pipeline]
