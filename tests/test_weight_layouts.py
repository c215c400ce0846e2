"""Every public FasterNet weight layout loads with exact numerical parity.

References that do not use our mapping: timm's model for timm's layouts;
for the official layouts, the key list and the outputs of the official
model code (``checkpoint_factory.py``, ``reference/``).
"""
import logging

import pytest
import timm
import torch
from backbone_checks import logged_during
from mmengine.runner import load_checkpoint
from safetensors.torch import save_file

from checkpoint_factory import (VARIANTS, assert_official_outputs,
                                deterministic_state,
                                official_detection_checkpoint, official_shapes,
                                random_official_state, random_timm_fasternet,
                                randomize_bn, stage_outputs)
from mmfasternet.models import FasterNet, convert_to_mmfasternet, detect_layout
from tool_runner import run_tool

# Small odd input: every stage sees a non-trivial, non-square map.
INPUT_SHAPE = (2, 3, 72, 104)


def assert_close_to_timm(model, timm_model, x):
    """Our stage outputs equal timm's."""
    model.eval()
    with torch.no_grad():
        expected = timm_model.forward_intermediates(x, intermediates_only=True)
    ours = stage_outputs(model, x)
    for i, (a, b) in enumerate(zip(ours, expected)):
        close = torch.allclose(a, b, rtol=1e-5, atol=1e-5)
        diff = (a - b).abs().max().item()
        assert close, f'stage {i}: max abs difference {diff:.3g}'


def load_official(arch: str,
                  detection: bool,
                  tmp_path,
                  state: dict = None) -> FasterNet:
    """Our backbone initialised from an official file: the classification
    release's state dict, or an mmdet-2 detector checkpoint."""
    state = deterministic_state(arch, detection) if state is None else state
    if detection:
        path = tmp_path / f'mask_rcnn_fasternet_{arch}_fpn_1x_coco.pth'
        extra = {'neck.lateral_convs.0.conv.weight': torch.zeros(1)}
        torch.save(official_detection_checkpoint(arch, state, extra), path)
        init_cfg = dict(
            type='Pretrained', checkpoint=str(path), prefix='backbone.')
    else:
        path = tmp_path / f'fasternet_{arch}-epoch.299-val_acc1.81.2840.pth'
        torch.save(state, path)
        init_cfg = dict(type='Pretrained', checkpoint=str(path))
    model = FasterNet(arch=arch, init_cfg=init_cfg)
    model.init_weights()
    return model.eval()


@pytest.fixture(scope='module', params=VARIANTS)
def timm_variant(request):
    return request.param, random_timm_fasternet(request.param)


@pytest.mark.parametrize('arch', VARIANTS)
def test_official_key_lists_detected_and_fully_mapped(arch):
    """Every key of the official model code has a place in ours, and every
    tensor of ours is filled, with the official shape."""
    classification = official_shapes(arch)
    detection = official_shapes(arch, detection=True)
    ours = {k: list(v.shape) for k, v in FasterNet(arch).state_dict().items()}
    assert detect_layout(classification) == 'official_classification'
    assert detect_layout(detection) == 'official_detection'

    converted = convert_to_mmfasternet(detection)
    assert converted.state_dict == ours
    assert converted.dropped == []
    converted = convert_to_mmfasternet(classification)
    assert converted.state_dict == {
        k: v
        for k, v in ours.items() if not k.startswith('norm')
    }
    assert sorted(converted.dropped) == sorted(k for k in classification
                                               if k not in detection)


def test_layout_detection_of_timm_and_ours():
    assert detect_layout(random_timm_fasternet('t0').state_dict()) == 'timm'
    features = timm.create_model('fasternet_t0', features_only=True)
    assert detect_layout(features.state_dict()) == 'timm'
    assert detect_layout(FasterNet('t0').state_dict()) == 'mmfasternet'
    official = random_official_state('t0')
    converted = convert_to_mmfasternet(official)
    # A new dict: the input is untouched.
    assert 'stages.6.blocks.0.mlp.0.weight' in official
    assert 'stages.6.blocks.0.mlp.0.weight' not in converted.state_dict


def test_timm_parity_all_variants(timm_variant, tmp_path):
    arch, timm_model = timm_variant
    path = tmp_path / f'{arch}.pth'
    torch.save(timm_model.state_dict(), path)
    model = FasterNet(
        arch=arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    x = torch.rand(*INPUT_SHAPE)
    assert_close_to_timm(model, timm_model, x)


@pytest.mark.parametrize('arch, detection',
                         [(arch, True) for arch in VARIANTS] + [('t0', False),
                                                                ('s', False)])
def test_official_parity(arch, detection, tmp_path):
    """What the official model computes from the same weights: the stage
    outputs, and for the detection release the output norms' too. (The
    classification release's backbone keys are the detection release's;
    its layout is checked for every variant by the key-list test.)"""
    model = load_official(arch, detection, tmp_path)
    assert_official_outputs(model, arch, with_norms=detection)


@pytest.mark.parametrize('arch', ['t0', 'm'])
def test_official_tensors_each_land_once(arch, tmp_path):
    """Random, all-distinct values: every official backbone tensor is one
    of ours, and every tensor of ours is one of them."""
    official = random_official_state(arch, detection=True)
    model = load_official(arch, True, tmp_path, official)
    by_value = {
        (tuple(v.shape), v.numpy().tobytes()): k
        for k, v in official.items() if v.dim()
    }
    assert len(by_value) == sum(v.dim() > 0 for v in official.values())
    landed = [
        by_value.get((tuple(v.shape), v.numpy().tobytes()))
        for v in model.state_dict().values() if v.dim()
    ]
    assert None not in landed
    assert sorted(landed) == sorted(by_value.values())


def test_timm_features_only_parity(tmp_path):
    """timm's ``features_only`` model names its stages ``stages_N``."""
    torch.manual_seed(0)
    timm_model = randomize_bn(
        timm.create_model('fasternet_t0', features_only=True))
    state = timm_model.state_dict()
    assert any(k.startswith('stages_3.downsample.') for k in state)
    path = tmp_path / 'features_only.pth'
    torch.save(state, path)
    model = FasterNet(
        arch='t0', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    x = torch.rand(*INPUT_SHAPE)
    with torch.no_grad():
        expected = timm_model(x)
    ours = stage_outputs(model.eval(), x)
    assert len(ours) == len(expected) == 4
    for i, (a, b) in enumerate(zip(ours, expected)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), f'stage {i}'


def test_whole_detector_checkpoint_loads_through_load_checkpoint(tmp_path):
    """mmdet-2 detector checkpoint loaded into a module holding a backbone."""
    path = tmp_path / 'det.pth'
    torch.save(
        official_detection_checkpoint('t0', deterministic_state('t0')), path)
    detector = torch.nn.Module()
    detector.backbone = FasterNet('t0')
    load_checkpoint(detector, str(path), strict=True)
    assert_official_outputs(detector.backbone, 't0', with_norms=True)


@pytest.mark.parametrize('suffix', ['.bin', '.safetensors'])
def test_timm_hub_files(tmp_path, suffix):
    timm_model = random_timm_fasternet('t1')
    path = tmp_path / f'pytorch_model{suffix}'
    state = {k: v.contiguous() for k, v in timm_model.state_dict().items()}
    if suffix == '.safetensors':
        save_file(state, str(path))
    else:
        torch.save(state, path)
    model = FasterNet(
        arch='t1', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert_close_to_timm(model, timm_model, torch.rand(*INPUT_SHAPE))


def test_own_layout_round_trip(tmp_path):
    src = FasterNet('t0', out_indices=(1, 3))
    src.init_weights()
    for module in src.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 2)
    path = tmp_path / 'ours.pth'
    torch.save({'state_dict': src.state_dict(), 'meta': {}}, path)
    dst = FasterNet(
        't0',
        out_indices=(1, 3),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    dst.init_weights()
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), k


def test_expected_gaps_reported_once_at_info(tmp_path):
    path = tmp_path / 'official.pth'
    torch.save(random_official_state('t0'), path)
    model = FasterNet(
        't0', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    records = logged_during(model.init_weights)
    mentions = [r for r in records if 'FasterNet-T0:' in r.getMessage()]
    assert len(mentions) == 1
    assert mentions[0].levelno == logging.INFO
    assert 'official_classification' in mentions[0].getMessage()
    assert 'classification head' in mentions[0].getMessage()
    assert 'norm0, norm1, norm2, norm3' in mentions[0].getMessage()
    assert not [r for r in records if r.levelno >= logging.WARNING]


def test_wrong_variant_raises_naming_variant(tmp_path):
    path = tmp_path / 't2.pth'
    torch.save(random_timm_fasternet('t2').state_dict(), path)
    model = FasterNet(
        't1', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(RuntimeError, match='FasterNet-T1.*shape mismatch'):
        model.init_weights()


def test_mostly_unloaded_backbone_raises(tmp_path):
    state = random_timm_fasternet('t0').state_dict()
    partial = {k: v for k, v in state.items() if k.startswith('patch_embed')}
    path = tmp_path / 'partial.pth'
    torch.save(partial, path)
    model = FasterNet(
        't0', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(RuntimeError, match='unloaded.*stages.0'):
        model.init_weights()
    # A wrong prefix is the usual cause: the message points at it.
    det = tmp_path / 'det.pth'
    torch.save({'state_dict': {
        f'backbone.{k}': v
        for k, v in state.items()
    }}, det)
    model = FasterNet(
        't0', init_cfg=dict(type='Pretrained', checkpoint=str(det)))
    with pytest.raises(RuntimeError, match='prefix'):
        model.init_weights()


def test_convert_weights_tool(tmp_path):
    src = tmp_path / 'det.pth'
    torch.save(
        official_detection_checkpoint('t0', deterministic_state('t0')), src)
    dst = tmp_path / 'converted.pth'
    output = run_tool('convert_weights.py', src, dst)
    assert 'official_detection' in output
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert 'backbone.stages.3.downsample.reduction.weight' in converted
    assert 'backbone.norm3.weight' in converted
    assert detect_layout(k[len('backbone.'):] for k in converted) == \
        'mmfasternet'
    model = FasterNet(
        't0',
        init_cfg=dict(
            type='Pretrained', checkpoint=str(dst), prefix='backbone.'))
    model.init_weights()
    assert_official_outputs(model, 't0', with_norms=True)
