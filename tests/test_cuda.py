"""CUDA behaviour: deploy mode, CUDA graphs, ``torch.compile``, AMP
training and a one-process NCCL launch. Skipped, with the reason, where no
GPU is visible; ``tools/gpu_check.sh`` runs them on a GPU machine."""
import copy

import pytest
import torch
from mmengine.config import Config

from mmfasternet.benchmarking import randomize_bn
from mmfasternet.fast_inference import (CUDAGraphRunner, GraphedDetector,
                                        autocast, compile_for_inference)
from mmfasternet.models.backbones import FasterNet
from tool_runner import REPO, free_port, run_script, run_tool
from toy_configs import toy_coco_data

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason='needs a CUDA GPU and none is visible (run tools/gpu_check.sh '
        'on a GPU machine)')
]


def rel_error(got, want) -> float:
    return max(((a.float() - b.float()).norm() / b.float().norm()).item()
               for a, b in zip(got, want))


def backbone_pair(arch='t0'):
    torch.manual_seed(0)
    eager = randomize_bn(FasterNet(arch)).cuda().eval()
    deploy = copy.deepcopy(eager)
    deploy.switch_to_deploy()
    return eager, deploy


@pytest.mark.parametrize('amp', [None, 'fp16', 'bf16'])
def test_deploy_matches_eager(amp):
    eager, deploy = backbone_pair('s')
    x = torch.rand(2, 3, 96, 128, device='cuda')
    with torch.no_grad(), autocast('cuda', amp):
        want, got = eager(x), deploy(x)
    assert all(a.dtype == b.dtype for a, b in zip(got, want))
    # fp32 convolutions run in TF32 on cuDNN (10-bit mantissa).
    assert rel_error(got, want) < (5e-3 if amp is None else 5e-2)


@pytest.mark.parametrize('amp', [None, 'fp16'])
def test_cuda_graph_equals_eager(amp):
    _, deploy = backbone_pair()
    x = torch.rand(1, 3, 128, 128, device='cuda')
    graph = CUDAGraphRunner(deploy, torch.zeros_like(x), amp=amp)
    with torch.no_grad(), autocast('cuda', amp):
        want = deploy(x)
    got = graph(x)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    # A second input: the graph reads its new values.
    y = torch.rand_like(x)
    with torch.no_grad(), autocast('cuda', amp):
        assert all(torch.equal(a, b) for a, b in zip(graph(y), deploy(y)))


def test_cuda_graph_refuses_another_shape():
    _, deploy = backbone_pair()
    graph = CUDAGraphRunner(deploy, torch.rand(1, 3, 64, 64, device='cuda'))
    with pytest.raises(ValueError, match='captured for input 1x3x64x64'):
        graph(torch.rand(1, 3, 96, 64, device='cuda'))
    with pytest.raises(ValueError, match='float16'):
        graph(torch.rand(1, 3, 64, 64, device='cuda').half())


def test_compile_matches_eager():
    _, deploy = backbone_pair()
    x = torch.rand(1, 3, 64, 64, device='cuda')
    compiled = compile_for_inference(deploy, 'cuda')
    with torch.no_grad():
        assert rel_error(compiled(x), deploy(x)) < 1e-3


def build_toy_detector(config: str):
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS, init_default_scope

    import mmfasternet  # noqa: F401
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / config))
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    return randomize_bn(model).cuda().eval()


@pytest.mark.parametrize('config', [
    'rtmdet_fasternet_t0_toy.py', 'rtmdet-ins_fasternet_t0_toy.py',
    'mask_rcnn_fasternet_t0_fpn_toy.py'
])
def test_graphed_detector_predicts_like_eager(config):
    from mmdet.structures import DetDataSample

    from mmfasternet.inference import switch_fasternet_to_deploy
    model = build_toy_detector(config)
    switch_fasternet_to_deploy(model)
    x = torch.rand(1, 3, 128, 128, device='cuda') * 100

    def samples():
        s = DetDataSample()
        s.set_metainfo(
            dict(
                img_shape=(128, 128),
                ori_shape=(128, 128),
                pad_shape=(128, 128),
                batch_input_shape=(128, 128),
                scale_factor=(1., 1.)))
        return [s]

    graphed = GraphedDetector(model, x)
    with torch.no_grad():
        want = model.predict(x, samples())[0].pred_instances
    got = graphed.predict(x, samples())[0].pred_instances
    assert len(got) == len(want)
    assert torch.equal(got.labels, want.labels)
    assert torch.allclose(got.bboxes, want.bboxes)
    assert torch.allclose(got.scores, want.scores)


@pytest.mark.parametrize('amp, with_cp', [('fp16', False), ('bf16', False),
                                          ('fp16', True)])
def test_amp_training_step(amp, with_cp):
    torch.manual_seed(0)
    model = FasterNet('t0', with_cp=with_cp).cuda().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler('cuda')
    x = torch.rand(2, 3, 64, 64, device='cuda', requires_grad=True)
    with autocast('cuda', amp):
        loss = sum(o.float().mean() for o in model(x))
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    assert torch.isfinite(loss)
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all()
        for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize('amp', ['fp16', 'bf16'])
def test_train_tool_with_amp(tmp_path, toy_coco_info, amp):
    cfg = Config.fromfile(
        str(REPO / 'configs' / 'demo' / 'mask_rcnn_fasternet_t0_fpn_toy.py'))
    cfg.merge_from_dict(toy_coco_data(toy_coco_info, (128, 96), 2))
    cfg.merge_from_dict({
        'train_cfg.max_iters': 4,
        'train_cfg.val_interval': 4,
        'default_hooks.checkpoint.interval': 4,
        'default_hooks.logger.interval': 1,
        'model.backbone.with_cp': True
    })
    config = tmp_path / 'toy.py'
    cfg.dump(str(config))
    out = run_tool('train.py', config, '--amp', amp, '--work-dir', tmp_path)
    dtype = {'fp16': 'float16', 'bf16': 'bfloat16'}[amp]
    assert "type='AmpOptimWrapper'" in out and f"dtype='{dtype}'" in out
    assert (tmp_path / 'iter_4.pth').exists()


def test_nccl_one_process_launch_keeps_syncbn(tmp_path, toy_coco_info):
    cfg = Config.fromfile(
        str(REPO / 'configs' / 'demo' / 'rtmdet_fasternet_t0_toy.py'))
    cfg.merge_from_dict(toy_coco_data(toy_coco_info, (128, 128), 2))
    cfg.merge_from_dict({
        'model.backbone.norm_cfg':
        dict(type='SyncBN', requires_grad=True),
        'train_cfg.max_epochs':
        1,
        'train_cfg.val_interval':
        1,
    })
    config = tmp_path / 'toy.py'
    cfg.dump(str(config))
    out = run_script(
        'tests/cuda_syncbn_probe.py',
        config,
        tmp_path,
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(free_port()),
        RANK='0',
        LOCAL_RANK='0',
        WORLD_SIZE='1')
    assert 'backend nccl' in out
    assert 'SyncBatchNorm layers kept:' in out
    assert 'SyncBN layers run as per-process BN' not in out
