from .fasternet import FasterNet, FasterNetBlock, PartialConv
from .fused_block import FusedFasterNetBlock

__all__ = ['FasterNet', 'FasterNetBlock', 'PartialConv', 'FusedFasterNetBlock']
