"""Every public FasterNet weight layout loads with exact numerical parity."""
import logging

import pytest
import torch
import torch.nn.functional as F
from backbone_checks import logged_during
from mmengine.runner import load_checkpoint
from safetensors.torch import save_file

from checkpoint_factory import (VARIANTS, official_detection_checkpoint,
                                random_out_norms, random_timm_fasternet,
                                timm_to_official)
from mmfasternet.models import FasterNet, convert_to_mmfasternet, detect_layout
from tool_runner import run_tool

# Small odd input: every stage sees a non-trivial, non-square map.
INPUT_SHAPE = (2, 3, 72, 104)


def stage_outputs(model: FasterNet, x: torch.Tensor):
    """Stage outputs before the output norms (forward hooks)."""
    captured = []
    hooks = [
        s.register_forward_hook(lambda m, i, o: captured.append(o))
        for s in model.stages
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return captured


def assert_close_to_timm(model, timm_model, x, out_norms=None):
    model.eval()
    with torch.no_grad():
        expected = timm_model.forward_intermediates(x, intermediates_only=True)
        outs = model(x)
    ours = stage_outputs(model, x)
    for i, (a, b) in enumerate(zip(ours, expected)):
        close = torch.allclose(a, b, rtol=1e-5, atol=1e-5)
        diff = (a - b).abs().max().item()
        assert close, f'stage {i}: max abs difference {diff:.3g}'
    if out_norms is not None:
        for i, out in enumerate(outs):
            n = out_norms[i]
            normed = F.batch_norm(expected[i], n['running_mean'],
                                  n['running_var'], n['weight'], n['bias'],
                                  False, 0., model.norm0.eps)
            assert torch.allclose(out, normed, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope='module', params=VARIANTS)
def timm_variant(request):
    return request.param, random_timm_fasternet(request.param)


def test_layout_detection():
    timm_state = random_timm_fasternet('t0').state_dict()
    official = timm_to_official(timm_state)
    det = official_detection_checkpoint(timm_state,
                                        random_out_norms([40, 80, 160, 320]))
    det_backbone = {
        k[len('backbone.'):]: v
        for k, v in det['state_dict'].items()
    }
    ours = FasterNet('t0').state_dict()
    assert detect_layout(timm_state) == 'timm'
    assert detect_layout(official) == 'official_classification'
    assert detect_layout(det_backbone) == 'official_detection'
    assert detect_layout(ours) == 'mmfasternet'
    converted = convert_to_mmfasternet(official)
    assert set(converted.state_dict) == {
        k
        for k in timm_state if not k.startswith(('conv_head', 'classifier'))
    }
    assert sorted(converted.dropped) == [
        'avgpool_pre_head.1.weight', 'head.bias', 'head.weight'
    ]
    # A new dict: the input is untouched.
    assert 'stages.6.blocks.0.mlp.0.weight' in official


def test_timm_parity_all_variants(timm_variant, tmp_path):
    arch, timm_model = timm_variant
    path = tmp_path / f'{arch}.pth'
    torch.save(timm_model.state_dict(), path)
    model = FasterNet(
        arch=arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    x = torch.rand(*INPUT_SHAPE)
    assert_close_to_timm(model, timm_model, x)


def test_official_classification_parity_all_variants(timm_variant, tmp_path):
    arch, timm_model = timm_variant
    path = tmp_path / f'fasternet_{arch}-epoch.299-val_acc1.81.2840.pth'
    torch.save(timm_to_official(timm_model.state_dict()), path)
    model = FasterNet(
        arch=arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert_close_to_timm(model, timm_model, torch.rand(*INPUT_SHAPE))


def test_official_detection_parity_all_variants(timm_variant, tmp_path):
    arch, timm_model = timm_variant
    channels = [f['num_chs'] for f in timm_model.feature_info]
    norms = random_out_norms(channels)
    extra = {'neck.lateral_convs.0.conv.weight': torch.zeros(1)}
    path = tmp_path / f'mask_rcnn_fasternet_{arch}.pth'
    torch.save(
        official_detection_checkpoint(timm_model.state_dict(), norms, extra),
        path)
    model = FasterNet(
        arch=arch,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    model.init_weights()
    assert_close_to_timm(model, timm_model, torch.rand(*INPUT_SHAPE), norms)


def test_whole_detector_checkpoint_loads_through_load_checkpoint(tmp_path):
    """mmdet-2 detector checkpoint loaded into a module holding a backbone."""
    timm_model = random_timm_fasternet('t0')
    norms = random_out_norms([40, 80, 160, 320])
    ckpt = official_detection_checkpoint(timm_model.state_dict(), norms)
    path = tmp_path / 'det.pth'
    torch.save(ckpt, path)
    detector = torch.nn.Module()
    detector.backbone = FasterNet('t0')
    load_checkpoint(detector, str(path), strict=True)
    assert_close_to_timm(detector.backbone, timm_model,
                         torch.rand(*INPUT_SHAPE), norms)


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
    timm_model = random_timm_fasternet('t0')
    path = tmp_path / 'official.pth'
    torch.save(timm_to_official(timm_model.state_dict()), path)
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
    timm_model = random_timm_fasternet('t0')
    norms = random_out_norms([40, 80, 160, 320])
    src = tmp_path / 'det.pth'
    torch.save(
        official_detection_checkpoint(timm_model.state_dict(), norms), src)
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
    assert_close_to_timm(model, timm_model, torch.rand(*INPUT_SHAPE), norms)
