"""FLOPs of the spatial mixers and of whole FasterNets, pinned by hand.

FLOPs are multiply-adds (the paper's unit and fvcore's, which mmengine's
FlopAnalyzer follows; it also counts an eval-mode affine BN as 2 per
element).
"""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer

from mmfasternet.models import FasterNet
from mmfasternet.models.backbones.fasternet import build_spatial_mixer
from tool_runner import load_script

# The study's cost model (benchmarks/operator_costs.py, beside the study
# that prints it).
operator_costs = load_script('benchmarks/operator_costs.py')
mixer_copy_elements = operator_costs.mixer_copy_elements
mixer_macs = operator_costs.mixer_macs
mixer_memory_access = operator_costs.mixer_memory_access

FEATURE_MAPS = ((96, 56, 56), (192, 28, 28), (384, 14, 14), (768, 7, 7))
# One layer at each of the paper's feature maps, computed by hand:
# h * w * 9 * c * c / groups (PConv: c / 4 channels, dense).
HAND_MACS = {
    'conv': [260_112_384] * 4,
    'gconv': [16_257_024] * 4,
    'pconv': [16_257_024] * 4,
    'dwconv': [2_709_504, 1_354_752, 677_376, 338_688],
    'identity': [0] * 4,
}


def counted(model: torch.nn.Module, shape) -> int:
    analyzer = FlopAnalyzer(model.eval(), torch.rand(*shape))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return int(analyzer.total())


@pytest.mark.parametrize('mixer', sorted(HAND_MACS))
def test_operator_flops_pinned_and_counted(mixer):
    for (c, h, w), hand in zip(FEATURE_MAPS, HAND_MACS[mixer]):
        assert mixer_macs(mixer, c, h, w) == hand
        if mixer != 'identity':
            assert counted(build_spatial_mixer(mixer, c), (1, c, h, w)) == hand


def test_operator_flops_relations():
    conv = HAND_MACS['conv'][0]
    assert HAND_MACS['pconv'][0] * 16 == conv  # r = 1/4: 1/16 of a conv
    assert HAND_MACS['gconv'][0] * 16 == conv
    dw = HAND_MACS['dwconv']
    assert all(a == 2 * b for a, b in zip(dw, dw[1:]))  # halves per stage
    # Both PConv forms count the same (split, cat and copies are free).
    for forward in ('split_cat', 'slicing'):
        layer = build_spatial_mixer('pconv', 96, pconv_forward=forward).eval()
        assert counted(layer, (1, 96, 56, 56)) == conv // 16


def test_memory_access_pinned():
    # Paper's estimate: h*w*2c + 9c^2/g, PConv h*w*2c_p + 9c_p^2 (c_p=24).
    assert mixer_memory_access('conv', 96, 56, 56) == 602_112 + 82_944
    assert mixer_memory_access('dwconv', 96, 56, 56) == 602_112 + 864
    assert mixer_memory_access('gconv', 96, 56, 56) == 602_112 + 5_184
    assert mixer_memory_access('pconv', 96, 56, 56) == 150_528 + 5_184
    assert mixer_memory_access('identity', 96, 56, 56) == 0
    # About a quarter of the dense conv's, as the paper says.
    ratio = (
        mixer_memory_access('pconv', 96, 56, 56) /
        mixer_memory_access('conv', 96, 56, 56))
    assert 0.22 < ratio < 0.25
    hw = 56 * 56
    assert mixer_copy_elements('split_cat', 96, 56, 56) == 2 * hw * 96
    assert mixer_copy_elements('slicing', 96, 56, 56) == 2 * hw * 120
    assert mixer_copy_elements('inplace', 96, 56, 56) == 2 * hw * 24
    with pytest.raises(ValueError):
        mixer_copy_elements('strided', 96, 56, 56)


def hand_network_macs(arch: str,
                      mixer: str,
                      size,
                      n_div: int = 4,
                      groups: int = 16,
                      bn: bool = True) -> int:
    """FasterNet's multiply-adds by hand (BN: 2 per element when ``bn``)."""
    settings = FasterNet.arch_settings[arch]
    c0, depths = settings['embed_dims'], settings['depths']
    h, w = size[0] // 4, size[1] // 4
    norm = 2 if bn else 0
    total = 3 * c0 * 16 * h * w + norm * c0 * h * w  # patch embed + BN
    for i, depth in enumerate(depths):
        c, hw = c0 * 2**i, (h >> i) * (w >> i)
        if i:
            total += (c // 2) * c * 4 * hw + norm * c * hw  # merging + BN
        cp = c // n_div if mixer == 'pconv' else c
        g = dict(pconv=1, dwconv=c, gconv=groups, conv=1, identity=None)
        mix = 0 if mixer == 'identity' else 9 * cp * cp // g[mixer] * hw
        # mixer, two 1x1 convs (c -> 2c -> c), the hidden BN
        total += depth * (mix + 4 * c * c * hw + norm * 2 * c * hw)
        total += norm * c * hw  # output norm
    return total


# Counted at 224x224 once and checked against the hand formula below.
PINNED_224 = {
    ('t0', 'pconv'): 336_806_400,
    ('t0', 'dwconv'): 304_913_280,
    ('t0', 'identity'): 300_115_200,
    ('s', 'pconv'): 4_558_991_360,  # the paper's 4.56G
    ('s', 'conv'): 12_362_362_880,
    ('s', 'dwconv'): 4_058_636_288,
}


@pytest.mark.parametrize('arch, mixer', sorted(PINNED_224))
def test_network_flops_pinned_at_224(arch, mixer):
    assert hand_network_macs(arch, mixer, (224, 224)) == \
        PINNED_224[(arch, mixer)]


def torch_counted_macs(model: torch.nn.Module, shape) -> int:
    """Multiply-adds by torch's dispatch-level counter (2 FLOPs each)."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.rand(*shape))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize('arch', ['t0', 't1', 't2', 's'])
def test_network_flops_counted_equal_hand(arch):
    """Every variant of the whole-network study, counted at a small input.

    torch's counter (convolutions only) keeps this fast; mmengine's, which
    also counts BN, is checked on T0 below.
    """
    size = (64, 96)
    groups = 8 if arch == 't0' else 16
    for mixer in ('pconv', 'dwconv', 'gconv', 'conv', 'identity'):
        model = FasterNet(arch=arch, spatial_mixer=mixer, gconv_groups=groups)
        assert torch_counted_macs(model, (1, 3, *size)) == hand_network_macs(
            arch, mixer, size, groups=groups, bn=False), mixer
    for n_div in (2, 8):
        model = FasterNet(arch=arch, n_div=n_div)
        assert torch_counted_macs(model, (1, 3, *size)) == hand_network_macs(
            arch, 'pconv', size, n_div=n_div, bn=False), n_div


@pytest.mark.parametrize('mixer', ['pconv', 'gconv'])
def test_network_flops_mmengine_counter(mixer):
    model = FasterNet(arch='t0', spatial_mixer=mixer, gconv_groups=8)
    assert counted(model, (1, 3, 64, 96)) == hand_network_macs(
        't0', mixer, (64, 96), groups=8)
