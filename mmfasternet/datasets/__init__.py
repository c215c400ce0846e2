"""Toy datasets for the demo and the tests (numpy + Pillow only).

The names are loaded from :mod:`.toy_data` on first use, so that
``python -m mmfasternet.datasets.toy_data`` runs that module only once.
"""
import importlib

__all__ = [
    'make_toy_coco', 'make_toy_ade', 'SHAPE_CLASSES', 'SHAPE_PALETTE',
    'SEG_CLASSES', 'SEG_PALETTE'
]


def __getattr__(name):
    if name in __all__:
        return getattr(importlib.import_module('.toy_data', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(list(globals()) + __all__)
