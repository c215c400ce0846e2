"""A hook that switches FasterNet backbones to deploy mode before testing."""
from mmengine.hooks import EMAHook, Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from ..inference import switch_fasternet_to_deploy


@HOOKS.register_module()
class FasterNetDeployHook(Hook):
    """Fold BN and use the fused inference blocks for ``runner.test()``.

    It runs in ``before_test``, i.e. after the runner has loaded the
    checkpoint, so any checkpoint layout still loads into the eager model
    first. ``tools/test.py --deploy`` / ``--bf16`` add it; a config can list
    it in ``custom_hooks`` too.

    With an :class:`~mmengine.hooks.EMAHook` (every RTMDet config has one)
    the EMA copy of the model is switched too, first. EMAHook swaps the
    copy's parameters into the model in ``before_test_epoch`` and back in
    ``after_test_epoch`` (it runs at NORMAL priority, this hook's
    ``before_test`` before both), pairing the two models' tensors by
    position: were only the model switched, the eager EMA tensors would be
    copied into fused ones. With both switched the pairs match, and the
    test runs the EMA weights fused, as the eager test runs them.

    Args:
        bf16 (bool): Run the backbone under bfloat16 autocast.
            Default: False.
    """

    priority = 'VERY_LOW'

    def __init__(self, bf16: bool = False) -> None:
        self.bf16 = bf16

    def before_test(self, runner) -> None:
        ema_hooks = [
            hook for hook in runner.hooks
            if isinstance(hook, EMAHook) and hasattr(hook, 'ema_model')
        ]
        for hook in ema_hooks:
            switch_fasternet_to_deploy(hook.ema_model.module, bf16=self.bf16)
        count = switch_fasternet_to_deploy(runner.model, bf16=self.bf16)
        ema = f', and in the EMA model of {len(ema_hooks)} EMAHook(s)' \
            if ema_hooks else ''
        print_log(
            f'FasterNetDeployHook: {count} FasterNet backbone(s) in deploy '
            f'mode{" with bf16 autocast" if self.bf16 else ""}{ema}',
            logger='current')
