"""Report a FasterNet checkpoint's weight layout and rewrite it in ours.

Accepts the official ImageNet release, the official mmdet-2 Mask R-CNN
release, timm's files (``.pth``, ``.bin``, ``.safetensors``) and our own.
A detector checkpoint (``backbone.`` keys) keeps its other weights as they
are. ``init_cfg=dict(type='Pretrained', ...)`` does this conversion on the fly;
this tool is for loading the weights elsewhere.

Example:
    python tools/convert_weights.py \
        checkpoints/fasternet_s-epoch.299-val_acc1.81.2840.pth \
        checkpoints/fasternet_s_mmfasternet.pth
"""
import argparse
import os.path as osp

import torch
from mmengine.runner import CheckpointLoader

import mmfasternet  # noqa: F401  (safe loading, safetensors support)
from mmfasternet.models.utils import convert_to_mmfasternet

BACKBONE_PREFIX = 'backbone.'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='checkpoint in any FasterNet layout')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    return parser.parse_args()


def unwrap(checkpoint) -> dict:
    """The state dict inside a checkpoint (``state_dict``/``model`` key)."""
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def main():
    args = parse_args()
    checkpoint = CheckpointLoader.load_checkpoint(args.src, map_location='cpu')
    state_dict = unwrap(checkpoint)
    is_detector = any(k.startswith(BACKBONE_PREFIX) for k in state_dict)
    prefix = BACKBONE_PREFIX if is_detector else ''
    backbone = {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }
    converted = convert_to_mmfasternet(backbone)
    out = {k: v for k, v in state_dict.items() if not k.startswith(prefix)}
    out.update({prefix + k: v for k, v in converted.state_dict.items()})
    meta = dict(checkpoint.get('meta', {})) if 'meta' in checkpoint else {}
    meta['converted_from'] = dict(
        file=osp.basename(args.src), layout=converted.layout)
    torch.save(dict(meta=meta, state_dict=out), args.dst)
    print(f'{args.src}: {converted.layout} layout'
          f'{" (detector checkpoint)" if is_detector else ""}; '
          f'{len(converted.state_dict)} backbone tensors, '
          f'{len(converted.dropped)} classification-head tensors dropped')
    print(f'wrote {args.dst} (mmfasternet layout)')


if __name__ == '__main__':
    main()
