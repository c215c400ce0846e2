"""The GPU options on any machine: one clear error for every combination
that cannot run here, and deploy mode's autocast and memory-format rules.

The CUDA-only behaviour (graphs, compile, AMP training) is in
``test_cuda.py``; these tests fake the GPU's absence or presence where
they need to, so they pass alike on CPU and GPU machines.
"""
import pytest
import torch

from mmfasternet.device_options import (DeviceOptionError, DeviceOptions,
                                        check_amp, check_device)
from mmfasternet.fast_inference import (CUDAGraphRunner, GraphedDetector,
                                        amp_dtype, autocast,
                                        compile_for_inference)
from mmfasternet.models.backbones import FasterNet
from tool_runner import load_script, run_tool


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


@pytest.fixture
def gpu_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    # a Volta: bf16 only emulated (is_bf16_supported() would say yes)
    monkeypatch.setattr(
        torch.cuda, 'get_device_capability', lambda device=None: (7, 0))
    monkeypatch.setattr(torch.version, 'hip', None)


def test_cuda_without_gpu_says_what_to_do(no_gpu):
    with pytest.raises(
            DeviceOptionError, match='no CUDA GPU is visible.*'
            '--device cpu'):
        check_device('cuda')
    with pytest.raises(DeviceOptionError, match='not a device'):
        check_device('gpu0')


def test_bf16_on_gpu_without_bf16_suggests_fp16(gpu_without_bf16):
    check_amp('fp16', torch.device('cuda'))
    with pytest.raises(DeviceOptionError, match='use --amp fp16'):
        DeviceOptions('cuda', amp='bf16')


def test_fp16_amp_on_cpu_is_refused():
    with pytest.raises(DeviceOptionError, match='fp16 is for GPUs'):
        DeviceOptions('cpu', amp='fp16')


@pytest.mark.parametrize('flag', ['cuda_graph', 'compile'])
def test_graph_and_compile_need_cuda(flag):
    with pytest.raises(DeviceOptionError, match='needs --device cuda'):
        DeviceOptions('cpu', **{flag: True})


def test_graph_and_compile_refuse_cpu_inputs_and_training(gpu_without_bf16):
    model = FasterNet('t0')  # training mode
    with pytest.raises(ValueError, match='on a CUDA device, got cpu'):
        CUDAGraphRunner(model.eval(), torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r'inference: call \.eval\(\)'):
        GraphedDetector(model.train(), torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match='CUDA only'):
        compile_for_inference(model.eval(), 'cpu')
    with pytest.raises(ValueError, match=r'call \.eval\(\)'):
        compile_for_inference(model.train(), 'cuda')


def test_graph_without_gpu(no_gpu):
    with pytest.raises(ValueError, match='need a CUDA GPU'):
        CUDAGraphRunner(FasterNet('t0').eval(), torch.rand(1, 3, 64, 64))


def test_amp_names():
    assert amp_dtype('bf16') is torch.bfloat16 and amp_dtype(None) is None
    with pytest.raises(ValueError, match='amp must be one of'):
        amp_dtype('int8')


def test_report_name_keeps_device_and_autocast_runs_apart(gpu_without_bf16):
    assert DeviceOptions('cpu').report_name('study') == 'study'
    assert DeviceOptions('cpu', amp='bf16').report_name('study') == \
        'study_bf16'
    assert DeviceOptions('cuda', amp='fp16').report_name('study') == \
        'study_cuda_fp16'


def test_deploy_keeps_the_callers_autocast():
    """Under an autocast entered by the caller, deploy mode computes in its
    dtype as eager mode does (it used to turn the autocast off and run in
    fp32 with the inputs cast back and forth)."""
    torch.manual_seed(0)
    eager = FasterNet('t0').eval()
    deploy = FasterNet('t0').eval()
    deploy.load_state_dict(eager.state_dict())
    deploy.switch_to_deploy()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(), autocast('cpu', 'bf16'):
        want = eager(x)
        got = deploy(x)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype == torch.bfloat16
        assert ((a.float() - b.float()).norm() / b.float().norm()) < 0.05
    with torch.no_grad():  # no autocast: fp32 in, fp32 out
        assert all(o.dtype == torch.float32 for o in deploy(x))


@pytest.mark.parametrize('channels_last', [None, False, True])
def test_deploy_outputs_keep_the_input_layout(channels_last):
    model = FasterNet('t0', out_indices=(0, 3)).eval()
    model.switch_to_deploy(channels_last=channels_last)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        for out in model(x):
            assert out.is_contiguous()
        x_cl = x.contiguous(memory_format=torch.channels_last)
        first = model(x_cl)[0]
        assert first.is_contiguous(memory_format=torch.channels_last)
        assert not first.is_contiguous()


def test_deploy_memory_format_rule():
    model = FasterNet('t0').eval()
    model.switch_to_deploy()
    assert not any(m.training for m in model.modules())
    nchw = torch.rand(1, 3, 32, 32)
    assert model._deploy_memory_format(nchw) == torch.channels_last
    model.switch_to_deploy(channels_last=False)
    assert model._deploy_memory_format(nchw) == torch.contiguous_format


def test_benchmark_help_lists_the_gpu_options():
    out = run_tool('benchmark.py', '--help')
    for flag in ('--device', '--amp', '--channels-last', '--cuda-graph',
                 '--compile'):
        assert flag in out


@pytest.mark.parametrize('args, message', [
    (['--device', 'cuda'], 'no CUDA GPU is visible'),
    (['--cuda-graph'], '--cuda-graph needs --device cuda'),
    (['--compile'], '--compile needs --device cuda'),
    (['--amp', 'fp16'], 'fp16 is for GPUs'),
])
def test_benchmark_refuses_with_one_line(no_gpu, capsys, args, message):
    """tools/benchmark.py's argument check (in this process; the --help
    and train.py tests run tools as users do): usage, then one error."""
    benchmark = load_script('tools/benchmark.py')
    with pytest.raises(SystemExit) as exited:
        benchmark.parse_args(
            ['configs/demo/rtmdet_fasternet_t0_toy.py', *args])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith('usage: ')
    assert ': error: ' in lines[-1] and message in lines[-1], lines
    assert not any(line.startswith('Traceback') for line in lines)


def test_train_amp_without_gpu_is_refused(tmp_path):
    out = run_tool(
        'train.py',
        'configs/demo/rtmdet_fasternet_t0_toy.py',
        '--amp',
        'bf16',
        '--work-dir',
        str(tmp_path),
        expect_failure=True,
        CUDA_VISIBLE_DEVICES='')
    assert 'train in fp32 without --amp' in out and 'Traceback' not in out
