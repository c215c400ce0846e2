from .fasternet import FasterNet, FasterNetBlock, PartialConv
from .fused_block import FusedFasterNetBlock
from .ghostnetv2 import GhostNetV2

__all__ = [
    'FasterNet', 'FasterNetBlock', 'PartialConv', 'FusedFasterNetBlock',
    'GhostNetV2'
]
