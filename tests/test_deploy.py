"""Deploy mode (BN folding, fused blocks) equals the eager model."""
import os

import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.hooks import EMAHook, Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import Dataset

from checkpoint_factory import randomize_bn
from mmfasternet.benchmarking import max_relative_error
from mmfasternet.models import FasterNet, FusedFasterNetBlock
from mmfasternet.models.backbones import fasternet as fasternet_module
from mmfasternet.models.backbones.fused_block import fuse_conv_bn

VARIANTS = ('t0', 't1', 't2', 's', 'm', 'l')


def randomized(model: FasterNet, seed: int = 0) -> FasterNet:
    """Random weights and BN statistics, so that folding is non-trivial."""
    torch.manual_seed(seed)
    model.init_weights()
    return randomize_bn(model)


def eager_then_deployed(model: FasterNet, x: torch.Tensor):
    """The model's outputs, then its outputs after ``switch_to_deploy()``."""
    with torch.no_grad():
        refs = model(x)
        model.switch_to_deploy()
        return refs, model(x)


ALL_OUT_INDICES = [
    tuple(i for i in range(4) if mask >> i & 1) for mask in range(1, 16)
]


@pytest.mark.parametrize(
    'arch, out_indices', [(arch, (0, 1, 2, 3)) for arch in VARIANTS] +
    [('t0', idx)
     for idx in ALL_OUT_INDICES if idx != (0, 1, 2, 3)] + [('m', (1, 3)),
                                                           ('l', (2, ))])
def test_deploy_equals_eager(arch, out_indices):
    model = randomized(FasterNet(arch=arch, out_indices=out_indices))
    refs, outs = eager_then_deployed(model, torch.rand(1, 3, 64, 96))
    assert len(outs) == len(refs)
    for a, b in zip(outs, refs):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert a.is_contiguous()  # plain NCHW for the neck and mmcv ops
    assert max_relative_error(outs, refs) < 1e-4
    assert all(
        isinstance(b, FusedFasterNetBlock) for s in model.stages
        for b in s.blocks)
    assert not any(isinstance(m, _BatchNorm) for m in model.stages.modules())


def tiny_variances(model: torch.nn.Module) -> torch.nn.Module:
    """BN running variances far below 1, where a fold that leaves out
    ``eps`` (``1 / sqrt(var)`` for ``1 / sqrt(var + eps)``) is far off."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.running_var.uniform_(1e-5, 1e-3)
    return model


def test_conv_bn_fold_uses_eps():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 6, 3, bias=True)
    bn = tiny_variances(randomize_bn(torch.nn.BatchNorm2d(6, eps=1e-2)))
    conv.eval()
    x = torch.randn(2, 4, 9, 7)
    with torch.no_grad():
        fused = fuse_conv_bn(conv, bn)
        assert torch.allclose(fused(x), bn(conv(x)), atol=1e-5)


def test_deploy_with_tiny_variances_and_large_eps():
    model = randomized(
        FasterNet(arch='t0', norm_cfg=dict(type='BN', eps=1e-2)))
    tiny_variances(model)
    refs, outs = eager_then_deployed(model, torch.rand(1, 3, 64, 96))
    assert max_relative_error(outs, refs) < 1e-4


def test_deploy_with_layer_scale_and_gelu():
    model = randomized(
        FasterNet(
            arch=dict(embed_dims=24, depths=(1, 2, 2, 1)),
            act_cfg=dict(type='GELU'),
            layer_scale_init_value=0.5))
    with torch.no_grad():
        for block in (b for s in model.stages for b in s.blocks):
            block.layer_scale.uniform_(0.1, 1.0)
    refs, outs = eager_then_deployed(model, torch.rand(2, 3, 70, 50))
    assert max_relative_error(outs, refs) < 1e-4


def test_deploy_is_idempotent_and_refuses_training():
    model = randomized(FasterNet(arch='t0'))
    x = torch.rand(1, 3, 64, 64)
    model.switch_to_deploy()
    with torch.no_grad():
        first = model(x)
        model.switch_to_deploy()
        second = model(x)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    with pytest.raises(RuntimeError, match='deploy mode'):
        model.train()
    model.eval()  # still allowed


def test_deploy_does_not_modify_input():
    model = randomized(FasterNet(arch='t0'))
    model.switch_to_deploy()
    x = torch.rand(1, 3, 64, 64)
    before = x.clone()
    with torch.no_grad():
        model(x)
    assert torch.equal(x, before)


def test_bf16_deploy_within_error_bound(monkeypatch):
    # Numerics only: bf16 is refused where it is not native (see
    # tests/test_bf16_support.py), so the capability check is faked.
    monkeypatch.setattr(fasternet_module, 'check_native_bf16',
                        lambda device: None)
    model = randomized(FasterNet(arch='t2'))
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        refs = model(x)
        model.switch_to_deploy(bf16=True)
        outs = model(x)
    assert all(o.dtype == torch.float32 for o in outs)
    error = max_relative_error(outs, refs)
    assert 0 < error < 0.02  # bf16 really ran, about 1% off


def test_deploy_inside_a_detector_matches_eager():
    """switch_fasternet_to_deploy finds the backbone; FPN features agree."""
    import copy

    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmfasternet.inference import switch_fasternet_to_deploy

    cfg = Config.fromfile('configs/mask_rcnn_fasternet_t0_fpn_1x_coco.py')
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    detector = MODELS.build(cfg.model)
    randomized(detector.backbone)
    detector.eval()
    deployed = copy.deepcopy(detector)
    assert switch_fasternet_to_deploy(deployed) == 1
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        refs, outs = detector.extract_feat(x), deployed.extract_feat(x)
    assert max_relative_error(outs, refs) < 1e-4


class TinyRegressor(BaseModel):
    """A small FasterNet and a linear head, trained to regress a number."""

    def __init__(self):
        super().__init__()
        self.backbone = FasterNet(
            arch=dict(embed_dims=8, depths=(1, 1, 1, 1)), out_indices=(3, ))
        self.head = nn.Linear(64, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.head(self.backbone(inputs)[0].mean((2, 3))).squeeze(1)
        if mode == 'loss':
            return dict(loss=((out - targets)**2).mean())
        return out


class RandomImages(Dataset):
    """Six fixed 32x32 images with a target each."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.rand(6, 3, 32, 32, generator=generator)
        self.targets = self.images.mean((1, 2, 3)) * 10

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return dict(inputs=self.images[index], targets=self.targets[index])


class Predictions(BaseMetric):
    """Keeps the model's test outputs (``self.outputs``)."""

    def process(self, data_batch, data_samples):
        self.results.extend(sample.clone() for sample in data_samples)

    def compute_metrics(self, results):
        self.outputs = torch.stack(results)
        return {}


class EMACopyOfRawWeights(Hook):
    """Puts the checkpoint's raw (not averaged) weights into EMAHook's copy
    before the test, so that swapping it in changes the model's weights:
    what a test after training would swap in."""

    priority = 'HIGH'

    def __init__(self, checkpoint):
        self.raw = torch.load(checkpoint, weights_only=False)['ema_state_dict']

    def before_test(self, runner):
        ema_hook = next(h for h in runner.hooks if isinstance(h, EMAHook))
        ema_hook.ema_model.load_state_dict(self.raw)


def _loader(batch_size=2):
    return dict(
        dataset=RandomImages(),
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        batch_size=batch_size,
        num_workers=0)


EMA = dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.5)


@pytest.fixture(scope='module')
def ema_checkpoint(tmp_path_factory):
    """A checkpoint of 4 iterations with EMAHook: ``state_dict`` holds the
    averaged weights, ``ema_state_dict`` the raw ones."""
    work_dir = tmp_path_factory.mktemp('ema')
    Runner(
        model=TinyRegressor(),
        work_dir=str(work_dir),
        experiment_name='train',
        train_dataloader=_loader(batch_size=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        custom_hooks=[EMA],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=4,
                            by_epoch=False))).train()
    return str(work_dir / 'iter_4.pth')


def _test_outputs(checkpoint, hooks):
    """The test outputs of a Runner that loads ``checkpoint``, with
    EMAHook and ``hooks``; and the runner."""
    metric = Predictions()
    runner = Runner(
        model=TinyRegressor(),
        work_dir=os.path.dirname(checkpoint),
        experiment_name=f'test{len(os.listdir(os.path.dirname(checkpoint)))}',
        test_dataloader=_loader(),
        test_evaluator=[metric],
        test_cfg=dict(),
        custom_hooks=[EMA] + hooks,
        load_from=checkpoint)
    runner.test()
    return metric.outputs, runner


def test_deploy_hook_with_ema_hook_tests_the_ema_weights(ema_checkpoint):
    """FasterNetDeployHook in a Runner with EMAHook (RTMDet's configs):
    the test outputs equal the eager test's, which runs EMAHook's copy of
    the weights: after loading a checkpoint, the averaged weights saved in
    it; or, put into the copy before the test, the raw weights."""
    deploy = [dict(type='FasterNetDeployHook')]
    raw = [EMACopyOfRawWeights(ema_checkpoint)]
    eager, _ = _test_outputs(ema_checkpoint, [])
    fused, runner = _test_outputs(ema_checkpoint, deploy)
    assert runner.model.backbone.deployed
    torch.testing.assert_close(fused, eager, rtol=1e-4, atol=1e-5)

    eager_raw, _ = _test_outputs(ema_checkpoint, raw)
    fused_raw, _ = _test_outputs(ema_checkpoint, raw + deploy)
    torch.testing.assert_close(fused_raw, eager_raw, rtol=1e-4, atol=1e-5)
    # the copy's weights are the ones tested
    assert not torch.allclose(eager_raw, eager, rtol=1e-3, atol=1e-3)
