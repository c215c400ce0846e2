"""FasterNet backbone for MMDetection 3.x and MMSegmentation 1.x.

Importing the package registers ``FasterNet`` in MMEngine's root ``MODELS``
registry (configs do it through ``custom_imports``).
"""
from . import engine  # noqa: F401  (registers CPUDistributedDataParallel)
from . import models  # noqa: F401  (registers FasterNet)
from .checkpoint_loading import (setup_safe_checkpoint_loading,
                                 trusted_checkpoint)
from .version import __version__

__all__ = ['__version__', 'trusted_checkpoint']

setup_safe_checkpoint_loading()
