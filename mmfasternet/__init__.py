"""FasterNet backbone for MMDetection 3.x and MMSegmentation 1.x.

Importing the package registers ``FasterNet`` in MMEngine's root ``MODELS``
registry (configs do it through ``custom_imports``). Where mmengine's own
checkpoint loaders cannot read a Runner's checkpoint (PyTorch >= 2.6) it
also registers mmfasternet's safe loaders with mmengine's
``CheckpointLoader``; elsewhere it changes no loader, and it never changes
torch's ``weights_only`` allow-list (see :mod:`.checkpoint_loading`).
"""
from . import engine  # noqa: F401  (registers CPUDistributedDataParallel)
from . import models  # noqa: F401  (registers FasterNet)
from .checkpoint_loading import (safe_checkpoint_loaders,
                                 setup_safe_checkpoint_loading,
                                 trusted_checkpoint)
from .version import __version__

__all__ = ['__version__', 'safe_checkpoint_loaders', 'trusted_checkpoint']

setup_safe_checkpoint_loading()
