"""A hook that switches FasterNet backbones to deploy mode before testing."""
from mmengine.hooks import Hook
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

    Args:
        bf16 (bool): Run the backbone under bfloat16 autocast.
            Default: False.
    """

    priority = 'VERY_LOW'

    def __init__(self, bf16: bool = False) -> None:
        self.bf16 = bf16

    def before_test(self, runner) -> None:
        count = switch_fasternet_to_deploy(runner.model, bf16=self.bf16)
        print_log(
            f'FasterNetDeployHook: {count} FasterNet backbone(s) in deploy '
            f'mode{" with bf16 autocast" if self.bf16 else ""}',
            logger='current')
