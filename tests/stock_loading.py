"""Load checkpoints with mmengine's ``CheckpointLoader`` in a fresh process,
first without mmfasternet, then after ``import mmfasternet``, and print
what came back as JSON.

Run by ``tests/test_checkpoint_loading.py`` (through ``tool_runner``)::

    python tests/stock_loading.py CKPT [CKPT ...]

The output holds, for each checkpoint and each of the two loads,
:func:`describe` of the loaded object or the error's type and first line,
and :func:`loading_state` before and after the import.
"""
import argparse
import hashlib
import json
from typing import Any, Dict, List

import numpy as np
import torch
from mmengine.runner import CheckpointLoader


def _digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def describe(obj: Any) -> Any:
    """A JSON-able description of ``obj`` that two loads of one checkpoint
    share exactly when they return equal content: types, dtypes, shapes and
    the bytes of every tensor and array, numpy scalars with their type, and
    any other object by its class and attributes."""
    if isinstance(obj, torch.Tensor):
        data = obj.detach().cpu().contiguous()
        return [
            'tensor',
            str(data.dtype),
            list(data.shape),
            _digest(data.view(-1).view(torch.uint8).numpy().tobytes())
        ]
    if isinstance(obj, np.ndarray):
        return [
            'ndarray',
            str(obj.dtype),
            list(obj.shape),
            _digest(np.ascontiguousarray(obj).tobytes())
        ]
    if isinstance(obj, np.generic):
        return ['numpy', type(obj).__name__, repr(obj.item())]
    if isinstance(obj, dict):
        return [
            type(obj).__name__,
            [[repr(k), describe(v)] for k, v in sorted(obj.items(), key=repr)]
        ]
    if isinstance(obj, (list, tuple)):
        return [type(obj).__name__, [describe(v) for v in obj]]
    if isinstance(obj, (set, frozenset)):
        return [type(obj).__name__, sorted(repr(v) for v in obj)]
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return [type(obj).__name__, repr(obj)]
    if callable(obj):  # e.g. HistoryBuffer's pickled statistics methods
        return ['callable', getattr(obj, '__qualname__', repr(obj))]
    return [
        f'{type(obj).__module__}.{type(obj).__qualname__}',
        describe(vars(obj))
    ]


def _global_name(entry: Any) -> str:
    if isinstance(entry, tuple):  # (object, 'pickled.name')
        return entry[1]
    return f'{entry.__module__}.{entry.__qualname__}'


def loading_state() -> Dict[str, Any]:
    """What ``import mmfasternet`` could change: torch's global
    ``weights_only`` allow-list and mmengine's checkpoint loaders.

    The allow-list's entries from outside torch only: torch adds its own
    types when its submodules are first imported (``torch._dynamo``, which
    timm imports, adds one), whoever imports them.
    """
    serialization = torch.serialization
    allowed: List[str] = []
    if hasattr(serialization, 'get_safe_globals'):
        allowed = sorted(
            name
            for name in map(_global_name, serialization.get_safe_globals())
            if not name.startswith('torch.'))
    schemes = {
        prefix: f'{loader.__module__}.{loader.__qualname__}'
        for prefix, loader in CheckpointLoader._schemes.items()
    }
    return dict(safe_globals=allowed, schemes=schemes)


def load(path: str) -> Any:
    """:func:`describe` of ``path`` loaded by mmengine, or the error."""
    try:
        return dict(
            loaded=describe(
                CheckpointLoader.load_checkpoint(path, map_location='cpu')))
    except Exception as exc:  # the stock loader's refusal is a result here
        return dict(
            error=type(exc).__name__,
            message=(str(exc).splitlines() or [''])[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('checkpoints', nargs='+')
    args = parser.parse_args()
    result: Dict[str, Any] = {}
    result['without'] = {path: load(path) for path in args.checkpoints}
    result['before'] = loading_state()
    import mmfasternet  # noqa: F401
    result['after'] = loading_state()
    result['with'] = {path: load(path) for path in args.checkpoints}
    print('RESULT ' + json.dumps(result))


if __name__ == '__main__':
    main()
