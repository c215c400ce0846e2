"""bf16 deploy is refused where the device does not run bf16 natively.

The capability queries are faked both ways, so these tests pass on any
machine; one test reads this machine's real answers.
"""
import argparse
import sys

import pytest
import torch
from mmengine.config import Config

from mmfasternet import benchmarking
from mmfasternet.models import FasterNet
from mmfasternet.models.utils import bf16_support
from tool_runner import REPO, load_script


def fake_cpu(monkeypatch, capability: str, flags: set) -> None:
    """A CPU with torch dispatch level ``capability`` whose features (torch's
    and ``/proc/cpuinfo``'s) are ``flags``."""
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability',
                        lambda: capability)
    features = {name: True for name in flags}
    features['architecture'] = 'x86_64'
    monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: features)
    monkeypatch.setattr(bf16_support, 'cpu_flags', lambda: frozenset(flags))


@pytest.mark.parametrize('capability, flags, native', [
    ('AVX2', {'avx2', 'fma'}, False),
    ('AVX512', {'avx2', 'avx512f'}, False),
    ('AVX512', {'avx2', 'avx512f', 'avx512_bf16'}, True),
    ('AVX512', {'avx512f', 'amx_tile', 'amx_bf16'}, True),
    ('AMX', set(), True),
    ('SVE256', {'neon', 'sve', 'bf16', 'sve_bf16'}, True),
    ('DEFAULT', {'neon', 'fp16_arith'}, False),
])
def test_cpu_detection(monkeypatch, capability, flags, native):
    fake_cpu(monkeypatch, capability, flags)
    assert (bf16_support.native_bf16_missing('cpu') is None) == native
    assert benchmarking.has_native_bf16('cpu') == native
    assert ('native bf16: yes' in benchmarking.cpu_banner()) == native


def test_cpu_detection_asks_torch_not_proc_cpuinfo(monkeypatch):
    """torch's query decides: an Arm CPU with BF16 (which
    ``/proc/cpuinfo`` lists under ``Features``) and an x86 one whose
    ``/proc/cpuinfo`` cannot be read."""
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability',
                        lambda: 'DEFAULT')
    monkeypatch.setattr(bf16_support, 'cpu_flags', lambda: frozenset())
    for features in ({
            'architecture': 'arm64',
            'neon': True,
            'bf16': True
    }, {
            'architecture': 'x86_64',
            'avx512_bf16': True
    }):
        monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: features)
        assert bf16_support.native_bf16_missing('cpu') is None, features


def test_cpu_features_on_older_torch(monkeypatch):
    """An older torch without ``torch.cpu.get_capabilities``: torch's
    AVX512-BF16 / AMX queries; without those either, ``/proc/cpuinfo``."""
    monkeypatch.delattr(torch.cpu, 'get_capabilities', raising=False)
    monkeypatch.setattr(
        torch.cpu, '_is_avx512_bf16_supported', lambda: True, raising=False)
    monkeypatch.setattr(
        torch.cpu, '_is_amx_tile_supported', lambda: False, raising=False)
    monkeypatch.setattr(bf16_support, 'cpu_flags', lambda: frozenset({'x'}))
    assert bf16_support.cpu_features() == {'avx512_bf16'}
    monkeypatch.delattr(torch.cpu, '_is_avx512_bf16_supported')
    assert bf16_support.cpu_features() == {'x'}


def test_cpu_detection_on_this_machine():
    """Where ``/proc/cpuinfo`` lists flags, torch's query agrees with them."""
    flags = bf16_support.cpu_flags()
    if not flags:
        pytest.skip('no /proc/cpuinfo flags to compare with')
    native = bool(flags & bf16_support.NATIVE_BF16_CPU_FLAGS
                  ) or 'AMX' in torch.backends.cpu.get_cpu_capability()
    assert (bf16_support.native_bf16_missing('cpu') is None) == native


def test_cuda_detection(monkeypatch):
    """Native bf16 from Ampere (8.0) on, asked of the device named; an
    older GPU that torch.cuda.is_bf16_supported() accepts (it emulates
    bf16) is refused."""
    capabilities = {0: (7, 0), 1: (8, 0), 2: (9, 0)}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(
        torch.cuda, 'is_bf16_supported', lambda including_emulation=True: True)
    monkeypatch.setattr(torch.version, 'hip', None)
    monkeypatch.setattr(
        torch.cuda,
        'get_device_capability',
        lambda device=None: capabilities[torch.device(device).index or 0])
    reason = bf16_support.native_bf16_missing('cuda:0')
    assert reason is not None and 'compute capability 7.0' in reason
    assert bf16_support.native_bf16_missing('cuda') is not None
    assert bf16_support.native_bf16_missing('cuda:1') is None
    assert bf16_support.native_bf16_missing('cuda:2') is None
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert 'no CUDA device' in bf16_support.native_bf16_missing('cuda:1')


def test_switch_to_deploy_refuses_emulated_bf16(monkeypatch):
    fake_cpu(monkeypatch, 'AVX2', {'avx2'})
    model = FasterNet(arch='t0')
    with pytest.raises(RuntimeError, match='AVX512-BF16 nor AMX') as info:
        model.switch_to_deploy(bf16=True)
    assert 'fp32 deploy' in str(info.value)
    assert not model.deployed and not model.deploy_bf16
    model.switch_to_deploy()  # fp32 deploy is always allowed
    assert model.deployed


def test_switch_to_deploy_accepts_native_bf16(monkeypatch):
    fake_cpu(monkeypatch, 'AVX512', {'avx512f', 'amx_bf16'})
    model = FasterNet(arch='t0')
    model.switch_to_deploy(bf16=True)
    assert model.deployed and model.deploy_bf16
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64))
    assert all(o.dtype == torch.float32 for o in outs)


def run_test_tool_bf16(monkeypatch) -> None:
    """``tools/test.py CONFIG missing.pth --bf16`` on the (faked) CPU,
    with any GPU hidden."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    test_tool = load_script('tools/test.py')
    monkeypatch.setattr(sys, 'argv', [
        'test.py', 'configs/demo/mask_rcnn_fasternet_t0_fpn_toy.py',
        'missing.pth', '--bf16'
    ])
    test_tool.main()


def test_test_tool_refuses_emulated_bf16(monkeypatch):
    fake_cpu(monkeypatch, 'AVX2', {'avx2'})
    with pytest.raises(SystemExit, match='--bf16 refused.*--deploy'):
        run_test_tool_bf16(monkeypatch)


def test_test_tool_accepts_native_bf16(monkeypatch):
    """Past the check, the tool goes on to build the job, and stops only
    at what is really missing (here the toy data or the checkpoint)."""
    fake_cpu(monkeypatch, 'AVX512', {'avx512f', 'avx512_bf16'})
    monkeypatch.chdir(REPO)
    # A refusal would be a SystemExit, which pytest.raises(Exception) lets
    # through (it is not an Exception).
    with pytest.raises(Exception) as info:
        run_test_tool_bf16(monkeypatch)
    assert isinstance(info.value, OSError), info.value


@pytest.mark.parametrize('native', [False, True])
def test_benchmark_marks_emulated_bf16(monkeypatch, native):
    bench = load_script('tools/benchmark.py')
    monkeypatch.setattr(bench, 'has_native_bf16', lambda device: native)
    # Native bf16 is faked here, so the library's own check must be too.
    fake_cpu(monkeypatch, 'AVX512' if native else 'AVX2',
             {'amx_bf16'} if native else set())
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile('configs/mask_rcnn_fasternet_t0_fpn_1x_coco.py')
    args = argparse.Namespace(
        mode='backbone',
        batch_size=1,
        shape=[64, 64],
        bf16=True,
        no_reference=True)
    candidates, _, _, skipped = bench.make_candidates(cfg, args)
    assert ('ours-bf16' in candidates) == native
    assert skipped == ({} if native else {'ours-bf16': 'no native bf16'})
    samples = {
        'ours-eager': [2., 1., 3.],
        'gemm': [1., 2., 2.],
        'conv1x1': [1., 1., 1.]
    }
    table = bench.tabulate(samples, 1, 1., {}, skipped)
    assert ('skipped' in table['rows'].get('ours-bf16', {})) != native


def test_summaries():
    stats = benchmarking.summarize([3., 1., 2.])
    assert stats == dict(median_s=2., min_s=1., max_s=3., spread=1.)
    ratio = benchmarking.ratio_spread([2., 4.], [1., 1.])
    assert ratio == dict(median=3., min=2., max=4.)
    gflop = benchmarking.peak_candidates_gflop(64)
    peak = benchmarking.best_gflops({
        'gemm': [1., 2.],
        'conv1x1': [100.]
    }, gflop)
    assert peak['kernel'] == 'gemm'
    assert peak['peak_gflops'] == gflop['gemm']
    assert peak['min_gflops'] == gflop['gemm'] / 2
    samples = benchmarking.time_interleaved(
        benchmarking.peak_candidates(64), rounds=2, warmup=1)
    assert {k: len(v) for k, v in samples.items()} == {'gemm': 2, 'conv1x1': 2}
