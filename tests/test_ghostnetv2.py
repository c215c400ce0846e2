"""GhostNetV2: parity with timm, timm's weights, training options, configs."""
import logging
import re
from pathlib import Path
from unittest import mock

import pytest
import timm
import torch
import torch.nn as nn
from backbone_checks import assert_frozen, logged_during
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope
from safetensors.torch import save_file
from torch.nn.modules.batchnorm import _BatchNorm

from checkpoint_factory import randomize_bn
from mmfasternet.models import GhostNetV2
from mmfasternet.models.backbones import ghostnetv2 as ghostnetv2_module
from official_weights import ghostnetv2_url

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs'
# arch: (timm name suffix, output channels, FasterNet variant it is matched
# against in the configs)
WIDTHS = {
    '1.0': ('100', (24, 40, 112, 160), 't1'),
    '1.3': ('130', (32, 52, 144, 208), 't1'),
    '1.6': ('160', (40, 64, 180, 256), 't2'),
}
# Stem conv channels of each width (what a refusal names).
STEM_CHANNELS = {'1.0': 16, '1.3': 20, '1.6': 24}
# The last group of bottlenecks at strides 4, 8, 16, 32 in timm's model.
STAGE_ENDS = (2, 4, 6, 8)
INPUT_SHAPE = (2, 3, 72, 104)
SYNC_BN = dict(type='SyncBN', requires_grad=True)


def random_timm_ghostnetv2(arch: str, seed: int = 0) -> torch.nn.Module:
    """timm's GhostNetV2 with random weights and randomized BN statistics."""
    torch.manual_seed(seed)
    return randomize_bn(timm.create_model(f'ghostnetv2_{WIDTHS[arch][0]}'))


def timm_stage_ends(timm_model, x):
    """timm's features at the end of each resolution (forward hooks)."""
    captured = {}
    hooks = [
        timm_model.blocks[g].register_forward_hook(
            lambda m, i, o, g=g: captured.__setitem__(g, o.clone()))
        for g in STAGE_ENDS
    ]
    with torch.no_grad():
        timm_model.forward_features(x)
    for hook in hooks:
        hook.remove()
    return [captured[g] for g in STAGE_ENDS]


def assert_matches_timm(model, timm_model, x):
    """Our outputs equal our output norms applied to timm's features."""
    model.eval()
    with torch.no_grad():
        outs = model(x)
        for i, (out,
                ref) in enumerate(zip(outs, timm_stage_ends(timm_model, x))):
            expected = getattr(model, f'norm{i}')(ref)
            assert out.shape == expected.shape
            assert (out - expected).abs().max().item() <= 1e-6, i


def randomize_out_norms(model):
    randomize_bn(model)  # also the output norms: they are compared too
    return model


def bn_types(model):
    """``{module name: 'SyncBN' or 'BN'}`` for every BN layer."""
    return {
        name: 'SyncBN' if isinstance(module, nn.SyncBatchNorm) else 'BN'
        for name, module in model.named_modules()
        if isinstance(module, _BatchNorm)
    }


def save_timm_safetensors(timm_model, path):
    save_file({
        k: v.contiguous()
        for k, v in timm_model.state_dict().items()
    }, str(path))
    return path


# --------------------------------------------------------------------------
# structure and parity


@pytest.mark.parametrize('arch', list(WIDTHS))
def test_parity_with_timm_every_width(arch):
    timm_model = random_timm_ghostnetv2(arch)
    model = randomize_out_norms(GhostNetV2(arch))
    model.load_state_dict(timm_model.state_dict(), strict=False)
    assert_matches_timm(model, timm_model, torch.rand(*INPUT_SHAPE))


@pytest.mark.parametrize('arch', list(WIDTHS))
def test_output_shapes_and_channels(arch):
    model = GhostNetV2(arch).eval()
    channels = WIDTHS[arch][1]
    assert model.channels == channels
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 97, 131))  # odd sizes
    sizes = [(25, 33), (13, 17), (7, 9), (4, 5)]
    assert [tuple(o.shape) for o in outs] == [(1, c, *s)
                                              for c, s in zip(channels, sizes)]


def test_registered_in_root_and_downstream_scopes():
    for scope in ('mmdet', 'mmseg'):
        init_default_scope(scope)
        model = MODELS.build(dict(type='GhostNetV2', arch='1.3'))
        assert isinstance(model, GhostNetV2)


@pytest.mark.parametrize('out_indices,expected', [(3, (3, )),
                                                  ((1, 2, 3), (1, 2, 3)),
                                                  ([-1, 0], (0, 3))])
def test_out_indices_forms(out_indices, expected):
    model = GhostNetV2(out_indices=out_indices).eval()
    assert model.out_indices == expected
    assert sorted(n for n, _ in model.named_children()
                  if n.startswith('norm')) == [f'norm{i}' for i in expected]
    assert len(model(torch.rand(1, 3, 64, 64))) == len(expected)


@pytest.mark.parametrize('kwargs,error', [
    (dict(arch='2.0'), "'1.0', '1.3', '1.6'"),
    (dict(arch=dict(depth=3)), 'width'),
    (dict(out_indices=4), 'out of range'),
    (dict(out_indices=(1, -3)), 'repeats'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(norm_cfg=dict(type='GN', num_groups=4)),
     "norm_cfg type must be one of ['BN', 'SyncBN']"),
])
def test_bad_arguments_raise(kwargs, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        GhostNetV2(**kwargs)


# --------------------------------------------------------------------------
# timm's weights


@pytest.fixture(scope='module')
def timm_files(tmp_path_factory):
    """GhostNetV2-1.0 weights in timm's hub formats: {suffix: path}."""
    root = tmp_path_factory.mktemp('ghostnetv2_100.in1k')
    timm_model = random_timm_ghostnetv2('1.0', seed=1)
    files = dict(
        safetensors=save_timm_safetensors(timm_model,
                                          root / 'model.safetensors'),
        bin=root / 'pytorch_model.bin')
    torch.save(timm_model.state_dict(), files['bin'])
    return timm_model, files


def init_with(arch, checkpoint, **init):
    model = GhostNetV2(
        arch,
        init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint), **init))
    model.init_weights()
    return model


@pytest.mark.parametrize('fmt', ['safetensors', 'bin'])
def test_timm_hub_files_load_through_init_cfg(timm_files, fmt):
    timm_model, files = timm_files
    records = logged_during(lambda: assert_matches_timm(
        init_with('1.0', files[fmt]), timm_model, torch.rand(*INPUT_SHAPE)))
    mentions = [r for r in records if 'GhostNetV2-1.0:' in r.getMessage()]
    assert len(mentions) == 1 and mentions[0].levelno == logging.INFO
    message = mentions[0].getMessage()
    assert 'ignored 10 tensors of the classification head' in message
    assert 'norm0, norm1, norm2, norm3' in message
    assert not [r for r in records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize('arch,saved', [('1.3', '1.0'), ('1.6', '1.0'),
                                        ('1.0', '1.3'), ('1.3', '1.6')])
def test_other_width_is_refused_by_name(timm_files, tmp_path, arch, saved):
    """Wider and narrower weights alike."""
    path = timm_files[1]['safetensors'] if saved == '1.0' else \
        save_timm_safetensors(
            timm.create_model(f'ghostnetv2_{WIDTHS[saved][0]}'),
            tmp_path / 'model.safetensors')
    with pytest.raises(
            RuntimeError,
            match=rf'GhostNetV2-{arch}: the checkpoint is GhostNetV2-{saved} '
            rf'weights \(stem conv with {STEM_CHANNELS[saved]} channels; '
            rf'this model has {STEM_CHANNELS[arch]}\)'):
        init_with(arch, path)


def test_prefix_is_checked(timm_files, tmp_path):
    timm_model, files = timm_files
    detector = {
        'backbone.' + k: v
        for k, v in torch.load(files['bin'], weights_only=True).items()
    }
    detector['neck.conv.weight'] = torch.zeros(1)
    path = tmp_path / 'detector.pth'
    torch.save(detector, path)
    with pytest.raises(
            RuntimeError,
            match=r"under the prefix 'backbone\.'.*init_cfg "
            'prefix'):
        init_with('1.0', path)
    model = init_with('1.0', path, prefix='backbone.')
    assert_matches_timm(model, timm_model, torch.rand(*INPUT_SHAPE))


def test_ghostnet_v1_weights_are_refused(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'ghostnet_100.pth'
    torch.save(timm.create_model('ghostnet_100').state_dict(), path)
    with pytest.raises(RuntimeError, match=r'GhostNet \(v1\) checkpoint'):
        init_with('1.0', path)


def test_whole_model_state_round_trips():
    model = randomize_out_norms(GhostNetV2('1.3'))
    copy = GhostNetV2('1.3')
    copy.load_state_dict(model.state_dict())  # strict: nothing dropped
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), copy.eval()(x)):
            assert torch.equal(a, b)


# --------------------------------------------------------------------------
# training options, as FasterNet's


def frozen_prefixes(frozen_stages):
    stem = ['conv_stem', 'bn1', 'blocks.0']
    groups = [f'blocks.{g}' for g in range(1, 2 * frozen_stages + 1)]
    return stem + groups + [f'norm{i}' for i in range(frozen_stages)]


@pytest.mark.parametrize('frozen_stages', [0, 1, 2, 4])
def test_frozen_stages(frozen_stages):
    model = GhostNetV2('1.0', frozen_stages=frozen_stages)
    model.train()
    # 128x128: the DFC branch of the last stage pools its 4x4 map to 2x2;
    # at 1x1, batch-normed values have a mean of exactly 0 and the running
    # mean after it could not move.
    assert_frozen(model, frozen_prefixes(frozen_stages), input_size=128)
    if frozen_stages == model.num_stages:
        assert not any(p.requires_grad for p in model.parameters())


def test_norm_eval_holds_across_train_calls():
    model = GhostNetV2('1.0', norm_eval=True)
    for _ in range(2):
        assert model.train() is model
        assert all(not m.training for m in model.modules()
                   if isinstance(m, _BatchNorm))
        assert model.blocks[6][0].ghost1.training
    model = GhostNetV2('1.0', norm_eval=False).train()
    assert all(m.training for m in model.modules()
               if isinstance(m, _BatchNorm))


def test_with_cp_checkpoints_every_bottleneck(monkeypatch):
    """Once per bottleneck in training, never without gradients; the same
    outputs and gradients as without checkpointing."""
    spy = mock.Mock(wraps=ghostnetv2_module.cp.checkpoint)
    monkeypatch.setattr(ghostnetv2_module.cp, 'checkpoint', spy)
    results = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = GhostNetV2('1.0', with_cp=with_cp).train()
        bottlenecks = sum(len(group) for group in model.blocks)
        x = torch.rand(2, 3, 64, 64, requires_grad=True)
        spy.reset_mock()
        outs = model(x)
        assert spy.call_count == (bottlenecks if with_cp else 0)
        sum(o.square().sum() for o in outs).backward()
        results.append((outs, x.grad, {
            n: p.grad
            for n, p in model.named_parameters()
        }))
    assert bottlenecks == 16
    spy.reset_mock()
    with torch.no_grad():
        model(x)
        model.eval()(x)
    assert spy.call_count == 0
    for a, b in zip(results[0][0], results[1][0]):
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)
    for name, grad in results[0][2].items():
        assert torch.allclose(grad, results[1][2][name], atol=1e-6), name


# --------------------------------------------------------------------------
# norm_cfg


def test_sync_bn_reaches_every_bn_and_keeps_timm_parity():
    timm_model = random_timm_ghostnetv2('1.3')
    model = randomize_out_norms(GhostNetV2('1.3', norm_cfg=SYNC_BN))
    plain = GhostNetV2('1.3')
    types = bn_types(model)
    assert set(types) == set(bn_types(plain))  # stem, timm's blocks, norm{i}
    assert set(types.values()) == {'SyncBN'}
    assert list(model.state_dict()) == list(plain.state_dict())
    model.load_state_dict(timm_model.state_dict(), strict=False)
    assert_matches_timm(model, timm_model, torch.rand(*INPUT_SHAPE))
    # What MMEngine's runner does in one process: BN again, same outputs.
    x = torch.rand(*INPUT_SHAPE)
    with torch.no_grad():
        refs = model(x)
        reverted = revert_sync_batchnorm(model)
        assert not any(
            isinstance(m, nn.SyncBatchNorm) for m in reverted.modules())
        for out, ref in zip(reverted(x), refs):
            assert torch.equal(out, ref)
    sum(o.sum() for o in reverted.train()(x)).backward()


def test_norm_cfg_requires_grad_reaches_timm_bn():
    model = GhostNetV2('1.0', norm_cfg=dict(type='BN', requires_grad=False))
    assert set(bn_types(model).values()) == {'BN'}
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            assert not any(p.requires_grad for p in module.parameters()), name
    assert model.conv_stem.weight.requires_grad


# --------------------------------------------------------------------------
# configs


def config_names(arch):
    w, _, fasternet = WIDTHS[arch]
    return {
        f'mask_rcnn_ghostnetv2_{w}_fpn_1x_coco.py':
        f'mask_rcnn_fasternet_{fasternet}_fpn_1x_coco.py',
        f'fpn_ghostnetv2_{w}_ade20k_40k.py':
        f'fpn_fasternet_{fasternet}_ade20k_40k.py',
        f'rtmdet_ghostnetv2_{w}_8xb32-300e_coco.py':
        f'rtmdet_fasternet_{fasternet}_8xb32-300e_coco.py',
    }


CONFIGS = [(name, base, arch) for arch in WIDTHS
           for name, base in config_names(arch).items()]


def test_flat_list_of_configs():
    names = sorted(p.name for p in CONFIG_DIR.glob('*ghostnetv2*.py'))
    assert names == sorted(name for name, _, _ in CONFIGS)


def documented_params():
    """``{config file name: params in M}`` from the config table of
    docs/ghostnetv2.md."""
    text = (REPO / 'docs' / 'ghostnetv2.md').read_text(encoding='utf-8')
    table = {}
    for line in text.splitlines():
        link = re.search(r'\]\(\.\./configs/([^)\s]*ghostnetv2[^)\s]*\.py)\)',
                         line)
        params = re.search(r'\|\s*([\d.]+)M\s*\|', line)
        if line.startswith('|') and link and params:
            table[link.group(1)] = float(params.group(1))
    return table


def test_docs_list_every_config():
    assert sorted(documented_params()) == sorted(name
                                                 for name, _, _ in CONFIGS)


# Backbone options that both backbones take, with their shared defaults.
SHARED_OPTIONS = dict(
    out_indices=(0, 1, 2, 3),
    norm_cfg=dict(type='BN', requires_grad=True),
    frozen_stages=-1,
    norm_eval=False,
    with_cp=False)


@pytest.mark.parametrize('name,base,arch', CONFIGS)
def test_config_changes_only_the_backbone_and_builds(name, base, arch):
    config = Config.fromfile(str(CONFIG_DIR / name))
    cfg = config.to_dict()
    ref = Config.fromfile(str(CONFIG_DIR / base)).to_dict()
    backbone = cfg['model'].pop('backbone')
    ref_backbone = ref['model'].pop('backbone')
    # The type changes, not how it trains: norm type, freezing, outputs.
    for key, default in SHARED_OPTIONS.items():
        value, expected = (
            b.get(key, default) for b in (backbone, ref_backbone))
        if isinstance(default, tuple):
            value, expected = tuple(value), tuple(expected)
        assert value == expected, f'{name}: backbone {key}'
    outputs = backbone['out_indices']
    assert cfg['model']['neck'].pop('in_channels') == [
        WIDTHS[arch][1][i] for i in outputs
    ]
    ref['model']['neck'].pop('in_channels')
    ref.pop('checkpoint', None)
    cfg.pop('checkpoint', None)
    assert cfg == ref
    assert backbone['type'] == 'GhostNetV2' and backbone['arch'] == arch
    assert backbone['init_cfg'] == dict(
        type='Pretrained', checkpoint=ghostnetv2_url(WIDTHS[arch][0]))
    text = (CONFIG_DIR / name).read_text()
    assert f'Matched against FasterNet-{WIDTHS[arch][2].upper()}' in text

    # It builds (no checkpoint is read), with the documented parameter count.
    init_default_scope(config.default_scope)
    model = MODELS.build(config.model)
    # One norm class wherever GhostNetV2 has a BN: SyncBN in the ADE20K
    # configs (their backbone norm_cfg); RTMDet's use_syncbn converts the
    # whole detector only when there is more than one process.
    types = bn_types(model.backbone)
    assert set(types) == set(bn_types(GhostNetV2(arch, out_indices=outputs)))
    expected = 'SyncBN' if '_ade20k_' in name else 'BN'
    assert set(types.values()) == {expected}, name
    counted = sum(p.numel() for p in model.parameters()) / 1e6
    listed = documented_params().get(name)
    assert listed is not None and abs(counted - listed) <= 0.005, \
        f'{name}: {counted:.3f}M, docs/ghostnetv2.md {listed}'
