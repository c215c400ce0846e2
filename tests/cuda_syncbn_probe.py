"""A one-process distributed training job on the path of tools/train.py,
run by ``test_cuda.py`` with torchrun's environment variables set: it
prints the process group's backend and how many SyncBN layers the trained
model kept.

    python tests/cuda_syncbn_probe.py CONFIG WORK_DIR
"""
import sys

import torch
import torch.distributed as dist

from mmfasternet.engine.tool_setup import (build_runner, load_tool_config,
                                           tool_job)


def main() -> None:
    config, work_dir = sys.argv[1:3]
    cfg = load_tool_config(config, 'pytorch', None, work_dir)
    with tool_job():
        runner = build_runner(cfg)
        runner.train()
        kept = sum(
            isinstance(m, torch.nn.SyncBatchNorm)
            for m in runner.model.modules())
        print(f'backend {dist.get_backend()}')
        print(f'SyncBatchNorm layers kept: {kept}')
        if not kept:
            sys.exit('no SyncBatchNorm layer left in the model')


if __name__ == '__main__':
    main()
