"""Deploy mode (BN folding, fused blocks) equals the eager model."""
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmfasternet.models import FasterNet, FusedFasterNetBlock

VARIANTS = ('t0', 't1', 't2', 's', 'm', 'l')


def randomized(model: FasterNet, seed: int = 0) -> FasterNet:
    """Random BN statistics and layer scale so folding is non-trivial."""
    torch.manual_seed(seed)
    model.init_weights()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def max_relative_error(outs, refs):
    return max(((a - b).abs().max() / b.abs().max()).item()
               for a, b in zip(outs, refs))


@pytest.mark.parametrize('arch', VARIANTS)
@pytest.mark.parametrize('out_indices', [(0, 1, 2, 3), (1, 3), (2, )])
def test_deploy_equals_eager(arch, out_indices):
    model = randomized(FasterNet(arch=arch, out_indices=out_indices))
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        refs = model(x)
        model.switch_to_deploy()
        outs = model(x)
    assert len(outs) == len(refs)
    for a, b in zip(outs, refs):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert max_relative_error(outs, refs) < 1e-4
    assert all(
        isinstance(b, FusedFasterNetBlock) for s in model.stages
        for b in s.blocks)
    assert not any(isinstance(m, _BatchNorm) for m in model.stages.modules())


def test_deploy_with_layer_scale_and_gelu():
    model = randomized(
        FasterNet(
            arch=dict(embed_dims=24, depths=(1, 2, 2, 1)),
            act_cfg=dict(type='GELU'),
            layer_scale_init_value=0.5))
    with torch.no_grad():
        for block in (b for s in model.stages for b in s.blocks):
            block.layer_scale.uniform_(0.1, 1.0)
        x = torch.rand(2, 3, 70, 50)
        refs = model(x)
        model.switch_to_deploy()
        assert max_relative_error(model(x), refs) < 1e-4


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


def test_bf16_deploy_within_error_bound():
    model = randomized(FasterNet(arch='t2'))
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        refs = model(x)
        model.switch_to_deploy(bf16=True)
        outs = model(x)
    assert all(o.dtype == torch.float32 for o in outs)
    # Relative error of the whole feature map (Frobenius norms).
    errors = [((a - b).norm() / b.norm()).item() for a, b in zip(outs, refs)]
    assert max(errors) < 0.02, errors
    assert max(errors) > 0  # bf16 really ran
