"""The spatial-mixer switch: every mixer trains, deploys and loads."""
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn as nn

from checkpoint_factory import random_timm_fasternet, randomize_bn
from mmfasternet.benchmarking import max_relative_error
from mmfasternet.models import FasterNet, FusedFasterNetBlock
from mmfasternet.models.backbones import fasternet as fasternet_module
from mmfasternet.models.backbones.fasternet import (SPATIAL_MIXERS,
                                                    build_spatial_mixer)
from mmfasternet.models.utils.weight_layouts import (convert_to_mmfasternet,
                                                     detect_spatial_mixer)

# 32 channels in stage 0: 'gconv' with 8 groups is neither dense nor
# depthwise, so the checkpoint detection can tell all five mixers apart.
TOY = dict(embed_dims=32, depths=(1, 2, 2, 1))
MIXER_KWARGS = {
    'pconv': dict(spatial_mixer='pconv'),
    'dwconv': dict(spatial_mixer='dwconv'),
    'gconv': dict(spatial_mixer='gconv', gconv_groups=8),
    'conv': dict(spatial_mixer='conv'),
    'identity': dict(spatial_mixer='identity'),
}


def toy(mixer: str, seed: int = 0, **kwargs) -> FasterNet:
    torch.manual_seed(seed)
    model = FasterNet(arch=TOY, **MIXER_KWARGS[mixer], **kwargs)
    model.init_weights()
    randomize_bn(model)
    return model


def test_every_mixer_is_tested():
    assert set(MIXER_KWARGS) == set(SPATIAL_MIXERS)


@pytest.mark.parametrize('mixer', SPATIAL_MIXERS)
def test_mixer_forward_backward(mixer):
    model = toy(mixer).train()
    block = model.stages[0].blocks[0]
    expected = dict(
        pconv=(8, 8, 3, 3),
        dwconv=(32, 1, 3, 3),
        gconv=(32, 4, 3, 3),
        conv=(32, 32, 3, 3),
        identity=None)[mixer]
    weights = [p for p in block.spatial_mixing.parameters()]
    assert [tuple(p.shape) for p in weights] == \
        ([expected] if expected else [])
    x = torch.rand(2, 3, 64, 96)
    outs = model(x)
    assert [tuple(o.shape) for o in outs
            ] == [(2, 32 * 2**i, 16 // 2**i, 24 // 2**i) for i in range(4)]
    sum(o.mean() for o in outs).backward()
    for p in weights:
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize('mixer', SPATIAL_MIXERS)
def test_mixer_deploy_equals_eager(mixer):
    model = toy(mixer, layer_scale_init_value=0.5).eval()
    x = torch.rand(1, 3, 70, 90)
    with torch.no_grad():
        refs = model(x)
        model.switch_to_deploy()
        outs = model(x)
    assert max_relative_error(outs, refs) < 1e-4
    blocks = [b for s in model.stages for b in s.blocks]
    assert all(isinstance(b, FusedFasterNetBlock) for b in blocks)
    assert (blocks[0].mixer is None) == (mixer == 'identity')


@pytest.mark.parametrize('mixer', ['dwconv', 'identity'])
def test_mixer_with_cp_same_gradients(mixer, monkeypatch):
    spy = mock.Mock(wraps=fasternet_module.cp.checkpoint)
    monkeypatch.setattr(fasternet_module.cp, 'checkpoint', spy)
    plain = toy(mixer).train()
    ckpt = toy(mixer, with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    grads = []
    for model, calls in ((plain, 0), (ckpt, sum(TOY['depths']))):
        x.grad = None
        spy.reset_mock()
        outs = model(x)
        assert spy.call_count == calls  # once per block, checkpointed
        sum(o.sum() for o in outs).backward()
        grads.append(x.grad.clone())
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('mixer', SPATIAL_MIXERS)
def test_mixer_frozen_stages(mixer):
    model = toy(mixer, frozen_stages=2).train()
    for i, stage in enumerate(model.stages):
        mixing = stage.blocks[0].spatial_mixing
        assert all(p.requires_grad == (i >= 2) for p in mixing.parameters())
        assert all(m.training == (i >= 2) for m in stage.modules())


@pytest.mark.parametrize('mixer', SPATIAL_MIXERS)
def test_detect_spatial_mixer(mixer):
    info = detect_spatial_mixer(toy(mixer).state_dict())
    assert info.name == mixer
    assert info.block == 'stages.0.blocks.0'
    # The reported settings rebuild a model of the same mixer.
    rebuilt = FasterNet(arch=TOY, **info.settings)
    assert detect_spatial_mixer(rebuilt.state_dict()) == info


def test_detect_spatial_mixer_on_public_layouts():
    state = random_timm_fasternet('t0').state_dict()
    info = detect_spatial_mixer(convert_to_mmfasternet(state).state_dict)
    assert info.settings == dict(spatial_mixer='pconv', n_div=4)
    assert info.detail == '3x3 conv on 1/4 of the channels'
    assert detect_spatial_mixer({'patch_embed.proj.weight': None}) is None


@pytest.mark.parametrize('saved, model, names', [
    ('pconv', 'dwconv', ("'pconv'", "'dwconv'")),
    ('dwconv', 'pconv', ("'dwconv'", "'pconv'")),
    ('identity', 'conv', ("'identity'", "'conv'")),
    ('gconv', 'conv', ("'gconv'", "'conv'")),
])
def test_mismatched_mixer_checkpoint_refused(tmp_path, saved, model, names):
    path = tmp_path / f'{saved}.pth'
    torch.save(toy(saved).state_dict(), path)
    target = FasterNet(
        arch=TOY,
        **MIXER_KWARGS[model],
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(RuntimeError) as info:
        target.init_weights()
    message = str(info.value)
    saved_name, model_name = names
    assert f'saved with spatial_mixer={saved_name}' in message
    assert f'this model has spatial_mixer={model_name}' in message
    assert f'model.backbone.spatial_mixer={saved}' in message


@pytest.mark.parametrize('saved, model, setting', [
    (dict(spatial_mixer='pconv',
          n_div=2), dict(spatial_mixer='pconv'), 'model.backbone.n_div=2'),
    (dict(spatial_mixer='gconv', gconv_groups=8),
     dict(spatial_mixer='gconv',
          gconv_groups=4), 'model.backbone.gconv_groups=8'),
])
def test_mismatched_mixer_settings_refused(saved, model, setting):
    state = FasterNet(arch=TOY, **saved).state_dict()
    with pytest.raises(RuntimeError, match=setting):
        FasterNet(arch=TOY, **model).load_state_dict(state)


@pytest.mark.parametrize('mixer', SPATIAL_MIXERS)
def test_matching_mixer_checkpoint_loads(tmp_path, mixer):
    source = toy(mixer).eval()
    path = tmp_path / 'ckpt.pth'
    torch.save(source.state_dict(), path)
    target = FasterNet(
        arch=TOY,
        **MIXER_KWARGS[mixer],
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    target.init_weights()
    target.eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(source(x), target(x)))


def test_default_is_pconv_with_the_public_keys():
    default = FasterNet(arch='t0')
    explicit = FasterNet(arch='t0', spatial_mixer='pconv')
    assert default.spatial_mixer == 'pconv'
    assert list(default.state_dict()) == list(explicit.state_dict())
    mixer_keys = [k for k in default.state_dict() if 'spatial_mixing' in k]
    assert mixer_keys and all(
        k.endswith('spatial_mixing.partial_conv3.weight') for k in mixer_keys)


def test_default_outputs_bitwise_equal_timm():
    """The switch changes nothing for PConv: timm's outputs, bit for bit."""
    timm_model = random_timm_fasternet('t0')
    ours = FasterNet(arch='t0', out_indices=(0, 1, 2, 3)).eval()
    ours.load_state_dict(timm_model.state_dict(), strict=False)
    x = torch.rand(1, 3, 96, 64)
    with torch.no_grad():
        feats = timm_model.forward_intermediates(x, intermediates_only=True)
        x = ours.patch_embed(x)
        for stage, ref in zip(ours.stages, feats):
            x = stage(x)
            assert torch.equal(x, ref)


@pytest.mark.parametrize('kwargs, error', [
    (dict(spatial_mixer='shift'), 'spatial_mixer must be one of'),
    (dict(spatial_mixer='gconv', gconv_groups=16), 'gconv_groups=16'),
    (dict(spatial_mixer='gconv', gconv_groups=0), 'gconv_groups=0'),
])
def test_bad_mixer_arguments(kwargs, error):
    with pytest.raises(ValueError, match=error):
        FasterNet(arch='t0', **kwargs)  # 40 channels: 16 does not divide


def test_build_spatial_mixer_types():
    assert isinstance(build_spatial_mixer('identity', 8), nn.Identity)
    assert build_spatial_mixer('dwconv', 8).groups == 8
    assert build_spatial_mixer('gconv', 32, gconv_groups=16).groups == 16
    assert build_spatial_mixer('pconv', 8, n_div=2).conv_channels == 4


@pytest.mark.parametrize('mixer, options, expected', [
    ('dwconv', {}, (80, 1, 3, 3)),
    ('gconv', dict(gconv_groups=8), (80, 10, 3, 3)),
])
def test_cfg_options_switch_the_detector_backbone(mixer, options, expected):
    """What ``--cfg-options model.backbone.spatial_mixer=...`` does to the
    ablation config of docs/pconv_study.md: every block of the built detector
    mixes with the chosen operator."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    config = Path(__file__).resolve().parents[1] / 'configs' / \
        'mask_rcnn_fasternet_t0_fpn_1x_coco.py'
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict({
        'model.backbone.spatial_mixer': mixer,
        'model.backbone.init_cfg': None,
        **{
            f'model.backbone.{k}': v
            for k, v in options.items()
        }
    })
    init_default_scope('mmdet')
    backbone = MODELS.build(cfg.model).backbone
    mixers = [
        block.spatial_mixing for block in backbone.modules()
        if hasattr(block, 'spatial_mixing')
    ]
    assert len(mixers) == sum(backbone.depths)
    assert backbone.spatial_mixer == mixer
    # Stage 1 (80 channels) as a sample of the weight shape.
    weights = list(backbone.stages[1].blocks[0].spatial_mixing.parameters())
    assert [tuple(w.shape) for w in weights] == [expected]
