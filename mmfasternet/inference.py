"""Switch the FasterNet backbones inside any model to deploy mode."""
import torch.nn as nn

from .models.backbones import FasterNet


def switch_fasternet_to_deploy(model: nn.Module, bf16: bool = False) -> int:
    """Call :meth:`FasterNet.switch_to_deploy` on every FasterNet in a model.

    Args:
        model (nn.Module): A detector, segmentor or bare backbone (model
            wrappers are unwrapped through ``.modules()``).
        bf16 (bool): Run the backbones under bfloat16 autocast.
            Default: False.

    Returns:
        int: How many FasterNet backbones were switched.
    """
    backbones = [m for m in model.modules() if isinstance(m, FasterNet)]
    for backbone in backbones:
        backbone.switch_to_deploy(bf16=bf16)
    return len(backbones)
