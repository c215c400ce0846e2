"""FasterNet backbone for MMDetection 3.x and MMSegmentation 1.x.

Importing the package registers ``FasterNet`` in MMEngine's root ``MODELS``
registry (configs do it through ``custom_imports``).
"""
from . import models  # noqa: F401  (registers FasterNet)
from .version import __version__

__all__ = ['__version__']
