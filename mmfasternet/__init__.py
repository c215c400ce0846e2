"""FasterNet backbone for MMDetection 3.x and MMSegmentation 1.x.

Importing the package registers ``FasterNet`` in MMEngine's root ``MODELS``
registry (configs do it through ``custom_imports``). Where mmengine's own
checkpoint loaders cannot read a Runner's checkpoint (PyTorch >= 2.6) it
also registers mmfasternet's safe loaders with mmengine's
``CheckpointLoader``; elsewhere it changes no loader, and it never changes
torch's ``weights_only`` allow-list (see :mod:`.checkpoint_loading`).

mmcv's NMS and RoIAlign run on torchvision's kernels where mmcv has no
compiled ops (:mod:`mmfasternet.mmcv_ops`); this has to happen before the
first ``import mmcv.ops``, so it comes first. OneDL's mmengine gets its
``mmseg::`` config scope fixed (:mod:`mmfasternet.upstream_fixes`).
"""
try:
    import mmcv  # noqa: F401
    import mmengine  # noqa: F401
except ImportError as exc:
    raise ImportError(
        f'{exc}: mmfasternet needs mmengine and mmcv, from OpenMMLab '
        '(mmengine with mmcv-lite or mmcv) or from OneDL (onedl-mmengine, '
        'onedl-mmcv); see docs/setup.md') from exc

from .mmcv_ops import use_torchvision_ops  # noqa: E402
from .upstream_fixes import fix_mmseg_scope  # noqa: E402

use_torchvision_ops()
fix_mmseg_scope()

# isort: off
from . import engine  # noqa: E402,F401 (registers CPUDistributedDataParallel)
from . import models  # noqa: E402,F401 (registers FasterNet)
from .checkpoint_loading import safe_checkpoint_loaders  # noqa: E402
from .checkpoint_loading import setup_safe_checkpoint_loading  # noqa: E402
from .checkpoint_loading import trusted_checkpoint  # noqa: E402
from .version import __version__  # noqa: E402
# isort: on

__all__ = ['__version__', 'safe_checkpoint_loaders', 'trusted_checkpoint']

setup_safe_checkpoint_loading()
