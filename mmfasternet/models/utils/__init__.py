from .weight_layouts import (ConvertedWeights, convert_to_mmfasternet,
                             detect_layout)

__all__ = ['ConvertedWeights', 'convert_to_mmfasternet', 'detect_layout']
