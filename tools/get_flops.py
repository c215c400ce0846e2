"""Parameters and FLOPs of a config's model at a given input shape.

No dataset and no checkpoint are needed: the model is built from the config
(without loading its pretrained weights) and run on one blank image of
``--shape``, after the config's own data preprocessor (normalisation and
padding).

FLOPs are counted by MMEngine's ``FlopAnalyzer``, where one multiply-add is
one FLOP (the convention of the paper and of mmcv's counter). Elementwise
operations (activations, additions) are not counted, nor are ops without a
counting rule (RoIAlign, NMS).

Two-stage detectors are measured the way mmdet 2.x's ``forward_dummy`` (and
so the FasterNet paper's table) did: backbone, neck, the RPN head's
convolutions, the box head on a fixed number of proposals (the RPN's
``test_cfg.max_per_img``, 1000 for Mask R-CNN) and the mask head on the first
100 of them. Everything else runs ``model(inputs, data_samples,
mode='tensor')``.

Example::

    python tools/get_flops.py configs/mask_rcnn_fasternet_s_fpn_1x_coco.py
    python tools/get_flops.py CONFIG --shape 512 512
    python tools/get_flops.py mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py \
        configs/rtmdet_fasternet_t0_8xb32-300e_coco.py --shape 640
"""
import argparse
import importlib
from typing import Tuple

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.config import Config, DictAction
from mmengine.hub import get_config
from mmengine.registry import MODELS, init_default_scope
from mmengine.structures import BaseDataElement, InstanceData
from torch import nn

# The data-sample class of each framework, for the preprocessor's metainfo.
_DATA_SAMPLES = {
    'mmdet': ('mmdet.structures', 'DetDataSample'),
    'mmseg': ('mmseg.structures', 'SegDataSample'),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Count the parameters and FLOPs of a config\'s model')
    parser.add_argument(
        'config',
        nargs='+',
        help='config file path(s), ours or a framework\'s (e.g. '
        'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py); several are '
        'measured one after another in this run')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[1280, 800],
        help='input size: H W, or one number for a square (default: 1280 800)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, key=value pairs')
    args = parser.parse_args()
    if len(args.shape) == 1:
        args.shape = args.shape * 2
    elif len(args.shape) != 2:
        parser.error('--shape takes one or two numbers')
    return args


class _TwoStageDummy(nn.Module):
    """mmdet-2's ``forward_dummy`` of a two-stage detector, for counting."""

    def __init__(self, detector: nn.Module, num_proposals: int) -> None:
        super().__init__()
        self.detector = detector
        self.num_proposals = num_proposals

    def forward(self, inputs: torch.Tensor) -> Tuple:
        det = self.detector
        feats = det.extract_feat(inputs)
        rpn_outs = det.rpn_head(feats)
        # Fixed boxes inside the image: the heads' cost does not depend on
        # where the boxes are, and no NMS makes the count vary.
        height, width = inputs.shape[-2:]
        gen = torch.Generator().manual_seed(0)
        xy = torch.rand(self.num_proposals, 2, generator=gen)
        wh = torch.rand(self.num_proposals, 2, generator=gen) * 0.5
        boxes = torch.cat([xy * (1 - wh), xy * (1 - wh) + wh], dim=1)
        boxes = boxes * boxes.new_tensor([width, height, width, height])
        proposals = InstanceData(bboxes=boxes.to(inputs.device))
        return rpn_outs, det.roi_head.forward(feats, [proposals])


class _TensorForward(nn.Module):
    """``model(inputs, data_samples, mode='tensor')`` as a one-input call."""

    def __init__(self, model: nn.Module, data_samples) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor):
        return self.model(inputs, self.data_samples, mode='tensor')


def blank_batch(model: nn.Module, scope: str, height: int, width: int):
    """One black image of (height, width), through the model's preprocessor."""
    meta = dict(
        img_shape=(height, width),
        ori_shape=(height, width),
        scale_factor=(1.0, 1.0))
    sample_cls = BaseDataElement
    if scope in _DATA_SAMPLES:
        module, name = _DATA_SAMPLES[scope]
        sample_cls = getattr(importlib.import_module(module), name)
    batch = dict(
        inputs=[torch.zeros(3, height, width, dtype=torch.uint8)],
        data_samples=[sample_cls(metainfo=meta)])
    return model.data_preprocessor(batch, training=False)


def count(config: str, args: argparse.Namespace) -> None:
    """Build ``config``'s model and print its parameters and FLOPs."""
    # `mmdet::...` names a config installed with the framework.
    cfg = get_config(config) if '::' in config else Config.fromfile(config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)

    model = MODELS.build(cfg.model)  # no init_weights: nothing downloaded
    model.eval()
    height, width = args.shape
    data = blank_batch(model, scope, height, width)
    inputs = data['inputs']

    if hasattr(model, 'rpn_head') and hasattr(model, 'roi_head'):
        rpn_test_cfg = (model.test_cfg or {}).get('rpn', {})
        num_proposals = rpn_test_cfg.get('max_per_img', 1000)
        counted = _TwoStageDummy(model, num_proposals)
        protocol = (f'backbone + neck + RPN convs + RoI heads on '
                    f'{num_proposals} proposals (mask head on 100)')
    else:
        counted = _TensorForward(model, data['data_samples'])
        protocol = "model(inputs, data_samples, mode='tensor')"

    with torch.no_grad():
        analyzer = FlopAnalyzer(counted, (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        total_flops = analyzer.total()
        module_flops = analyzer.by_module()
    prefix = 'detector.' if isinstance(counted, _TwoStageDummy) else 'model.'
    params = parameter_count(model)

    line = '=' * 60
    print(line)
    print(f'Config:      {config}')
    print(f'Input shape: {(3, height, width)} -> padded '
          f'{tuple(inputs.shape[1:])}')
    print(f'Counted:     {protocol}')
    print(f'Params:      {params[""] / 1e6:.2f} M')
    print(f'FLOPs:       {total_flops / 1e9:.2f} G')
    for name, _ in model.named_children():
        if name == 'data_preprocessor' or params.get(name, 0) == 0:
            continue
        print(f'  {name:<18} params {params.get(name, 0) / 1e6:7.2f} M   '
              f'FLOPs {module_flops.get(prefix + name, 0) / 1e9:8.2f} G')
    print(line)


def main() -> None:
    args = parse_args()
    for config in args.config:
        count(config, args)


if __name__ == '__main__':
    main()
