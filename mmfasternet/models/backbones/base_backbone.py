"""What FasterNet and GhostNetV2 share as detection backbones."""
from typing import Dict, Mapping


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's weights do not fit the backbone that loads them.

    Raised from the backbone's ``_load_from_state_dict``, so that a caller
    loading a whole detector learns which module refused the weights
    without reading the traceback.

    Args:
        message (str): What does not fit, and what to do about it.
        module_path (str): The backbone's name in the model being loaded
            (``'backbone'`` in a detector; ``''`` when the backbone itself
            is loaded). Default: ''.
        module_type (str): The backbone's class name. Default: ''.
    """

    def __init__(self,
                 message: str,
                 module_path: str = '',
                 module_type: str = '') -> None:
        super().__init__(message)
        self.module_path = module_path
        self.module_type = module_type


def shape_mismatches(state: Mapping[str, object],
                     expected: Mapping[str, object]) -> Dict[str, tuple]:
    """The keys of ``state`` whose tensors have another shape than in
    ``expected``: ``{key: (shape in state, shape in expected)}``."""
    return {
        k: (tuple(v.shape), tuple(expected[k].shape))
        for k, v in state.items() if k in expected and hasattr(v, 'shape')
        and tuple(v.shape) != tuple(expected[k].shape)
    }
