"""Checks that the FasterNet and GhostNetV2 tests share: freezing, and the
records that loading logs."""
import logging
from typing import Callable, List, Sequence

import torch
from mmengine.logging import MMLogger
from torch.nn.modules.batchnorm import _BatchNorm


def assert_frozen(model: torch.nn.Module, frozen: Sequence[str],
                  input_size: int) -> None:
    """After ``model.train()``, the modules named in ``frozen`` (and what
    is below them) are frozen and the others train.

    Frozen parameters need no gradient and get none from a backward pass;
    frozen BN layers are in eval mode and keep their running statistics;
    the rest of the model does the opposite.

    Args:
        model (nn.Module): The backbone, in train mode.
        frozen (Sequence[str]): Names of the frozen modules.
        input_size (int): Height and width of the input of the backward
            pass.
    """

    def is_frozen(name):
        return any(name == p or name.startswith(p + '.') for p in frozen)

    for name, param in model.named_parameters():
        assert param.requires_grad is not is_frozen(name), name
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            assert module.training is not is_frozen(name), name
    if not any(p.requires_grad for p in model.parameters()):
        return  # nothing to run backward through
    stats = {
        n: b.clone()
        for n, b in model.named_buffers() if 'running_mean' in n
    }
    x = torch.rand(2, 3, input_size, input_size)
    sum(o.sum() for o in model(x)).backward()
    for name, param in model.named_parameters():
        assert (param.grad is None) is is_frozen(name), name
    for name, value in model.named_buffers():
        if 'running_mean' in name:
            assert torch.equal(value, stats[name]) is is_frozen(name), name


def logged_during(fn: Callable[[], object]) -> List[logging.LogRecord]:
    """The records the current MMLogger receives while ``fn`` runs."""
    logger = MMLogger.get_current_instance()
    records = []

    class Catch(logging.Handler):

        def emit(self, record):
            records.append(record)

    handler = Catch()
    logger.addHandler(handler)
    try:
        fn()
    finally:
        logger.removeHandler(handler)
    return records
