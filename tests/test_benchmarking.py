"""The helpers every benchmark shares (mmfasternet.benchmarking)."""
import json

import pytest
import torch
import torch.nn as nn

from mmfasternet.benchmarking import randomize_bn, write_report
from mmfasternet.models import FasterNet
from mmfasternet.models.backbones.fasternet import fuse_conv_bn
from tool_runner import load_script


def test_randomize_bn_makes_folding_matter():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    assert randomize_bn(model, seed=1) is model and not model.training
    bn = model[1]
    for stat, identity in ((bn.running_var, 1.), (bn.running_mean, 0.),
                           (bn.weight, 1.), (bn.bias, 0.)):
        assert not torch.allclose(stat, torch.full_like(stat, identity))
    again = randomize_bn(
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)), seed=1)
    assert torch.equal(again[1].running_var, bn.running_var)
    # Folding now changes the weights, and still computes the same thing.
    x = torch.randn(1, 3, 16, 16)
    fused = fuse_conv_bn(model[0], bn)
    assert not torch.allclose(fused.weight, model[0].weight)
    assert torch.allclose(fused(x), model(x), atol=1e-5)


def test_randomize_bn_covers_a_whole_backbone():
    model = randomize_bn(FasterNet(arch='t0'))
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.running_var.min() >= 0.5 for m in norms)


def test_write_report_writes_json_markdown_and_chart(tmp_path, capsys):
    result = dict(rows=[1, 2])

    def markdown(path, res):
        with open(path, 'w') as f:
            f.write(f'| rows |\n|---|\n| {len(res["rows"])} |\n')

    def chart(path, res):
        with open(path, 'wb') as f:
            f.write(b'png')

    stem = tmp_path / 'sub' / 'study'
    write_report(str(stem), result, markdown, chart)
    assert json.loads(stem.with_suffix('.json').read_text()) == result
    assert stem.with_suffix('.png').read_bytes() == b'png'
    out = capsys.readouterr().out
    assert '| 2 |' in out and out.rstrip().endswith('study.json, .md, .png')

    write_report(str(tmp_path / 'plain'), result, markdown)
    assert not (tmp_path / 'plain.png').exists()
    assert capsys.readouterr().out.rstrip().endswith('plain.json, .md')


def test_benchmark_tool_gflops_only_for_the_backbone():
    """``tools/benchmark.py --mode detector`` times whole detectors: the
    backbone's work over that time is no achieved rate, so it is left out;
    in backbone mode the fraction of the same rounds' peak is given."""
    bench = load_script('tools/benchmark.py')
    samples = {'ours-eager': [2., 1., 3.], 'gemm': [1.], 'conv1x1': [1.]}
    detector = bench.tabulate(dict(samples), 1, None, {}, {})
    assert detector['backbone_gflop'] is None
    assert 'gflops_per_s' not in detector['rows']['ours-eager']
    backbone = bench.tabulate(dict(samples), 1, 4., {}, {})
    row = backbone['rows']['ours-eager']
    assert row['gflops_per_s'] == 2.  # 4 GFLOP in a 2 s median
    peak = backbone['peak']['peak_gflops']
    assert row['fraction_of_peak'] == 4. / 1. / peak


def test_benchmark_tool_bf16_has_no_fraction_of_the_fp32_peak():
    """Native bf16 runs faster than the fp32 peak (137-149% of it on an
    AVX512-BF16 CPU): its row gets GFLOP/s but no fraction of that peak."""
    bench = load_script('tools/benchmark.py')
    samples = {
        'ours-deploy': [2.],
        'ours-bf16': [0.5],
        'gemm': [1.],
        'conv1x1': [1.]
    }
    rows = bench.tabulate(samples, 1, 4., {}, {})['rows']
    assert rows['ours-bf16']['gflops_per_s'] == 8.
    assert 'fraction_of_peak' not in rows['ours-bf16']
    assert 'fraction_of_peak' in rows['ours-deploy']


def test_equal_roi_work_gives_every_backbone_the_same_rois():
    """Whatever the backbone's random features, the RoI heads run on the
    same proposals, and the mask head on the same boxes."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from mmfasternet.benchmarking import (detector_runner, equal_roi_work,
                                          randomize_bn)
    from tool_runner import REPO
    cfg = Config.fromfile(
        str(REPO / 'configs' / 'demo' / 'mask_rcnn_fasternet_t0_fpn_toy.py'))
    init_default_scope('mmdet')
    runs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = randomize_bn(MODELS.build(cfg.model))
        # Huge regression outputs: without the fix most proposals would be
        # clipped to nothing.
        torch.nn.init.constant_(model.rpn_head.rpn_reg.bias, 50.)
        equal_roi_work(model).eval()
        proposals = []
        original = model.roi_head.predict

        def counting(x,
                     rpn_results_list,
                     *args,
                     original=original,
                     proposals=proposals,
                     **kwargs):
            proposals.append(rpn_results_list[0].bboxes.clone())
            return original(x, rpn_results_list, *args, **kwargs)

        model.roi_head.predict = counting
        with torch.no_grad():
            result = detector_runner(model, 1,
                                     (96, 128))(torch.rand(1, 3, 96, 128))[0]
        runs.append((proposals[0], result.pred_instances.bboxes))
    (props_a, boxes_a), (props_b, boxes_b) = runs
    assert len(props_a) == cfg.model.test_cfg.rpn.max_per_img
    assert torch.equal(props_a, props_b)
    assert len(boxes_a) == cfg.model.test_cfg.rcnn.max_per_img
    assert torch.equal(boxes_a, boxes_b)


def test_max_relative_error_counts_every_element():
    """One element off by 1% of the output's largest value is a 1e-2
    error, however many elements agree (a ratio of norms would hide it)."""
    from mmfasternet.benchmarking import max_relative_error
    ref = torch.zeros(1000)
    ref[0] = 10.
    out = ref.clone()
    out[500] = 0.1
    assert max_relative_error(out, ref) == pytest.approx(1e-2)
    # Nested outputs, numpy arrays: the worst output counts.
    assert max_relative_error((ref, [out.numpy()]),
                              (ref, [ref.numpy()])) == pytest.approx(1e-2)
    assert max_relative_error(ref, ref) == 0.
    for other in (torch.zeros(999), (ref, ref), ref * float('nan')):
        assert max_relative_error(other, ref) == float('inf')
    labels = torch.tensor([1, 2])
    assert max_relative_error(labels, labels) == 0.
    assert max_relative_error(labels + 1, labels) == float('inf')


def test_build_random_model_reads_no_weights(tmp_path):
    """A config whose backbone names a checkpoint that does not exist
    builds, with random weights, SyncBN as BN, in eval mode."""
    from mmengine.config import Config

    from mmfasternet.benchmarking import build_random_model
    from tool_runner import REPO
    cfg = Config.fromfile(
        str(REPO / 'configs' / 'mask_rcnn_fasternet_t0_fpn_1x_coco.py'))
    cfg.model.backbone.norm_cfg = dict(type='SyncBN', requires_grad=True)
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=str(tmp_path / 'absent.pth'))
    model = build_random_model(cfg)
    assert not model.training
    assert not any(
        isinstance(m, nn.SyncBatchNorm) for m in model.backbone.modules())
    assert cfg.model.backbone.init_cfg is not None  # the config is unchanged
    backbone = build_random_model(cfg, backbone_only=True, random_bn=True)
    assert isinstance(backbone, FasterNet) and not backbone.training
    assert backbone.norm0.running_var.min() >= 0.5


def test_deploy_speed_quotes_int8_against_default_and_f32():
    """benchmarks/deploy_speed.py: each engine's INT8 speed-up against its
    default precision and against f32 (OpenVINO's default row is its own;
    ONNX Runtime's default is f32), both in the markdown with OpenVINO's
    default precision named."""
    bench = load_script('benchmarks/deploy_speed.py')
    medians = {
        'ONNX Runtime': 0.6,
        'ONNX Runtime INT8': 0.2,
        'OpenVINO': 0.8,
        bench.OPENVINO_DEFAULT: 0.4,
        'OpenVINO INT8': 0.1,
    }
    result = dict(
        model='s',
        input='1x3x8x8',
        rows={
            k: dict(median_s=v)
            for k, v in medians.items()
        },
        openvino_default_precision='bf16')
    speedups = bench.int8_speedups(result)
    assert speedups == {
        'ONNX Runtime': dict(f32=pytest.approx(3), default=pytest.approx(3)),
        'OpenVINO': dict(f32=pytest.approx(8), default=pytest.approx(4)),
    }
    table = bench.int8_table([dict(result, int8_speedup=speedups)])
    assert table[-1] == '| s | 3.00x | 4.00x (bf16) | 8.00x |'
    assert 'OpenVINO vs its default' in table[0]


def test_openvino_runner_precision(tmp_path):
    """OpenVINORunner forces f32 by default; ``precision=None`` leaves the
    CPU plugin's own default (bf16 on CPUs with AMX or AVX512-BF16), which
    the benchmark times beside it."""
    ov = pytest.importorskip('openvino')
    from mmfasternet.deploy import OpenVINORunner
    path = str(tmp_path / 'conv.onnx')
    torch.onnx.export(
        nn.Conv2d(3, 4, 3), (torch.randn(1, 3, 8, 8), ), path, dynamo=False)
    assert OpenVINORunner(path).precision == 'f32'
    default = ov.Core().get_property('CPU', 'INFERENCE_PRECISION_HINT')
    assert OpenVINORunner(
        path, precision=None).precision == default.get_type_name()
