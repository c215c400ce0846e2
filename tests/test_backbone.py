"""FasterNet's structure, arguments, freezing, norm_eval and checkpointing."""
from unittest import mock

import pytest
import torch
from backbone_checks import assert_frozen
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from mmfasternet.models import FasterNet, PartialConv
from mmfasternet.models.backbones import fasternet as fasternet_module

EMBED = {'t0': 40, 't1': 64, 't2': 96, 's': 128, 'm': 144, 'l': 192}
DEPTHS = {
    't0': (1, 2, 8, 2),
    't1': (1, 2, 8, 2),
    't2': (1, 2, 8, 2),
    's': (1, 2, 13, 2),
    'm': (3, 4, 18, 3),
    'l': (3, 4, 18, 3),
}
# ImageNet parameter counts of the paper (with the 1280-d head + classifier).
PAPER_PARAMS_M = {
    't0': 3.9,
    't1': 7.6,
    't2': 15.0,
    's': 31.1,
    'm': 53.5,
    'l': 93.4
}


@pytest.mark.parametrize('arch', list(EMBED))
@pytest.mark.parametrize('size', [(64, 64), (225, 301)])
def test_output_shapes_every_variant(arch, size):
    model = FasterNet(arch=arch).eval()
    h, w = size
    with torch.no_grad():
        outs = model(torch.rand(1, 3, h, w))
    assert len(outs) == 4
    c = EMBED[arch]
    for i, out in enumerate(outs):
        # stem: floor(h/4); each merge: floor(/2)
        eh, ew = h // 4, w // 4
        for _ in range(i):
            eh, ew = eh // 2, ew // 2
        assert out.shape == (1, c * 2**i, eh, ew)
    assert model.channels == tuple(c * 2**i for i in range(4))
    assert tuple(len(s.blocks) for s in model.stages) == DEPTHS[arch]


@pytest.mark.parametrize('arch', list(EMBED))
def test_imagenet_param_count_matches_paper(arch):
    # The paper counts the classification head too: 1x1 conv to 1280 + fc.
    model = FasterNet(arch=arch, out_indices=3)
    body = sum(p.numel() for n, p in model.named_parameters()
               if not n.startswith('norm'))
    head = 8 * EMBED[arch] * 1280 + 1280 * 1000 + 1000
    # The paper truncates (S: 31.18M is printed as 31.1M).
    assert abs((body + head) / 1e6 - PAPER_PARAMS_M[arch]) < 0.1


def test_registered_in_root_and_downstream_scopes():
    from mmdet.registry import MODELS as DET_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    for registry in (MODELS, DET_MODELS, SEG_MODELS):
        model = registry.build(dict(type='FasterNet', arch='t0'))
        assert isinstance(model, FasterNet)


@pytest.mark.parametrize('out_indices, expected', [
    (3, (3, )),
    (-1, (3, )),
    ([0, 2], (0, 2)),
    ((-4, -1), (0, 3)),
    ((2, 0), (0, 2)),
])
def test_out_indices_forms(out_indices, expected):
    given = list(out_indices) if isinstance(out_indices, list) else out_indices
    model = FasterNet(arch='t0', out_indices=given).eval()
    assert model.out_indices == expected
    if isinstance(out_indices, list):
        assert given == out_indices  # the caller's list is not mutated
    assert sorted(
        k for k in dict(model.named_children())
        if k.startswith('norm')) == [f'norm{i}' for i in expected]
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [40 * 2**i for i in expected]


@pytest.mark.parametrize('kwargs, error', [
    (dict(arch='xl'), "unknown FasterNet arch 'xl'; choose from"),
    (dict(arch=dict(embed_dims=32)), 'lacks'),
    (dict(out_indices=4), 'out of range'),
    (dict(out_indices=(-5, )), 'out of range'),
    (dict(out_indices=(1, -3)), 'repeats'),
    (dict(out_indices=()), 'non-empty'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(pconv_forward='inplace'), 'pconv_forward'),
    (dict(drop_path_rate=-0.1), 'drop_path_rate'),
    (dict(n_div=64, arch=dict(embed_dims=16, depths=(1, )),
          out_indices=0), 'no channel'),
    (dict(n_div=0), 'n_div must be a positive integer'),
    (dict(n_div=-2, spatial_mixer='dwconv'), 'n_div must be a positive'),
    (dict(n_div=2.5), 'n_div must be a positive integer'),
])
def test_bad_arguments_raise(kwargs, error):
    kwargs.setdefault('arch', 't0')
    with pytest.raises(ValueError, match=error.replace('(', r'\(')):
        FasterNet(**kwargs)


@pytest.mark.parametrize('n_div', [0, -1])
def test_partial_conv_refuses_n_div_below_one(n_div):
    with pytest.raises(ValueError, match=f'got {n_div}'):
        PartialConv(16, n_div=n_div)


def test_unknown_arch_lists_choices():
    with pytest.raises(ValueError) as info:
        FasterNet(arch='xl')
    for name in ('t0', 't1', 't2', 's', 'm', 'l'):
        assert f"'{name}'" in str(info.value)


def test_custom_arch_dict_and_overrides():
    model = FasterNet(
        arch=dict(embed_dims=16, depths=(1, 1)),
        out_indices=(0, 1),
        act_cfg=dict(type='GELU'),
        mlp_ratio=3,
        layer_scale_init_value=1e-2,
        in_channels=1).eval()
    block = model.stages[1].blocks[0]
    assert block.mlp[0].out_channels == 32 * 3
    assert type(block.mlp[2]).__name__ == 'GELU'
    assert torch.allclose(block.layer_scale, torch.full((32, ), 1e-2))
    outs = model(torch.rand(2, 1, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 8, 8), (2, 32, 4, 4)]


def test_arch_default_activation():
    assert type(FasterNet('t0').stages[0].blocks[0].mlp[2]).__name__ == 'GELU'
    assert type(FasterNet('t2').stages[0].blocks[0].mlp[2]).__name__ == 'ReLU'


def test_drop_path_rises_linearly_over_blocks():
    model = FasterNet(arch='s', drop_path_rate=0.15)
    rates = [
        getattr(b.drop_path, 'drop_prob', 0.) for s in model.stages
        for b in s.blocks
    ]
    assert rates[0] == 0.
    assert rates[-1] == pytest.approx(0.15)
    assert all(b >= a for a, b in zip(rates, rates[1:]))


def test_slicing_equals_split_cat_and_keeps_input():
    torch.manual_seed(0)
    split = PartialConv(32, 4, 'split_cat').eval()
    slicing = PartialConv(32, 4, 'slicing').eval()
    slicing.load_state_dict(split.state_dict())
    x = torch.rand(2, 32, 9, 11)
    before = x.clone()
    out_split, out_slice = split(x), slicing(x)
    assert torch.equal(x, before)
    assert torch.equal(out_split, out_slice)
    assert torch.equal(out_slice[:, 8:], x[:, 8:])


def test_slicing_whole_model_matches_and_refuses_training():
    torch.manual_seed(0)
    ref = FasterNet(arch='t0').eval()
    fast = FasterNet(arch='t0', pconv_forward='slicing').eval()
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(1, 3, 64, 96)
    before = x.clone()
    with torch.no_grad():
        for a, b in zip(ref(x), fast(x)):
            assert torch.equal(a, b)
    assert torch.equal(x, before)
    fast.train()
    with pytest.raises(RuntimeError, match='inference only'):
        fast(x)


def test_with_cp_same_outputs_and_gradients(monkeypatch):
    """Checkpointing runs once per block in training (13 in T0), never
    without gradients, and changes neither the loss nor the gradients."""
    spy = mock.Mock(wraps=fasternet_module.cp.checkpoint)
    monkeypatch.setattr(fasternet_module.cp, 'checkpoint', spy)
    torch.manual_seed(0)
    plain = FasterNet(arch='t0', drop_path_rate=0.)
    ckpt = FasterNet(arch='t0', with_cp=True, drop_path_rate=0.)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 64, 64)
    results = []
    for model, calls in ((plain, 0), (ckpt, sum(ckpt.depths))):
        model.train()
        xi = x.clone().requires_grad_()
        spy.reset_mock()
        loss = sum(o.square().mean() for o in model(xi))
        assert spy.call_count == calls
        loss.backward()
        results.append((loss.detach(), xi.grad, {
            n: p.grad
            for n, p in model.named_parameters()
        }))
    assert sum(ckpt.depths) == 13
    spy.reset_mock()
    with torch.no_grad():
        ckpt(x)
        ckpt.eval()(x)
    assert spy.call_count == 0
    assert torch.allclose(results[0][0], results[1][0])
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)
    for name, grad in results[0][2].items():
        assert torch.allclose(grad, results[1][2][name], atol=1e-6), name


@pytest.mark.parametrize('frozen_stages', [0, 1, 2, 4])
def test_frozen_stages(frozen_stages):
    model = FasterNet(arch='t0', frozen_stages=frozen_stages)
    model.train()
    frozen = ['patch_embed'] + [f'stages.{i}' for i in range(frozen_stages)
                                ] + [f'norm{i}' for i in range(frozen_stages)]
    assert_frozen(model, frozen, input_size=64)
    if frozen_stages == model.num_stages:
        assert not any(p.requires_grad for p in model.parameters())


def test_norm_eval_holds_across_train_calls():
    model = FasterNet(arch='t0', norm_eval=True)
    for _ in range(2):
        assert model.train() is model
        assert all(not m.training for m in model.modules()
                   if isinstance(m, _BatchNorm))
        assert model.stages[0].blocks[0].mlp[0].training
    model = FasterNet(arch='t0', norm_eval=False).train()
    assert all(m.training for m in model.modules()
               if isinstance(m, _BatchNorm))


def test_syncbn_norm_cfg_builds():
    model = FasterNet(arch='t0', norm_cfg=dict(type='SyncBN'))
    assert type(model.norm0).__name__ == 'SyncBatchNorm'
    assert type(model.stages[0].blocks[0].mlp[1]).__name__ == 'SyncBatchNorm'


def test_default_init_truncated_normal():
    model = FasterNet(arch='t0')
    model.init_weights()
    w = model.stages[2].blocks[0].mlp[0].weight
    assert w.std().item() == pytest.approx(0.02, rel=0.2)
    assert abs(w.mean().item()) < 0.002
    assert torch.all(model.norm0.weight == 1)


def test_construction_does_not_load_checkpoint(tmp_path):
    missing = tmp_path / 'nope.pth'
    model = FasterNet(
        arch='t0', init_cfg=dict(type='Pretrained', checkpoint=str(missing)))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        model.init_weights()
