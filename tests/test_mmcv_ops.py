"""mmcv's NMS and RoIAlign served by torchvision (mmfasternet/mmcv_ops.py).

The parity tests compare the torchvision-backed functions with mmcv's own
compiled kernels and run where mmcv has them (``MMCV_OPS=compiled make
setup``; ``make test-stacks`` builds such an environment); elsewhere they
are skipped with that reason. The rest runs on any mmcv.
"""
import importlib
import importlib.metadata
import subprocess
import sys

import pytest
import torch

import mmfasternet  # noqa: F401  (serves mmcv._ext where it is missing)
from mmfasternet import mmcv_ops
from tool_runner import REPO, run_python_without_compiled_mmcv, tool_env


def compiled_ext():
    """mmcv's compiled extension, or skip."""
    if mmcv_ops.mmcv_ops_backend() != 'compiled':
        pytest.skip('mmcv has no compiled ops here (mmcv-lite): the parity '
                    'tests need MMCV_OPS=compiled (make test-stacks)')
    return importlib.import_module('mmcv._ext')


def random_boxes(n: int, seed: int, size: float = 64.) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * size
    wh = torch.rand(n, 2, generator=gen) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=1)


def roi_align(ext, feats, rois, size, scale, ratio, aligned):
    """Forward and input gradient of ``ext``'s RoIAlign (average pooling),
    called as mmcv.ops.roi_align calls it."""
    out = feats.new_zeros(len(rois), feats.size(1), *size)
    empty = feats.new_zeros(0)  # argmax_y / argmax_x: max pooling only
    options = dict(
        aligned_height=size[0],
        aligned_width=size[1],
        spatial_scale=scale,
        sampling_ratio=ratio,
        pool_mode=1,
        aligned=aligned)
    ext.roi_align_forward(feats, rois, out, empty, empty, **options)
    grad_out = torch.linspace(-1, 1, out.numel()).view_as(out)
    grad_in = torch.zeros_like(feats)
    ext.roi_align_backward(grad_out, rois, empty, empty, grad_in, **options)
    return out, grad_in


def random_rois(num: int, batch: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, batch, (num, 1), generator=gen).float()
    # boxes in image coordinates (stride 4 below), some past the border
    return torch.cat([index, random_boxes(num, seed, size=80.)], dim=1)


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('ratio', [0, 2])
def test_roi_align_matches_compiled(aligned, ratio):
    ext = compiled_ext()
    feats = torch.randn(
        2, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    rois = random_rois(12, batch=2, seed=ratio + aligned)
    args = (feats, rois, (7, 5), 0.25, ratio, aligned)
    out, grad = roi_align(mmcv_ops, *args)
    ref_out, ref_grad = roi_align(ext, *args)
    assert out.abs().sum() > 0 and grad.abs().sum() > 0
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-5)


def test_roi_align_empty_rois_match_compiled():
    ext = compiled_ext()
    feats = torch.randn(1, 2, 8, 8)
    rois = feats.new_zeros(0, 5)
    out, grad = roi_align(mmcv_ops, feats, rois, (2, 2), 1., 0, True)
    ref_out, ref_grad = roi_align(ext, feats, rois, (2, 2), 1., 0, True)
    assert out.shape == ref_out.shape == (0, 2, 2, 2)
    assert torch.equal(grad, ref_grad) and not grad.any()


@pytest.mark.parametrize('offset', [0, 1])
@pytest.mark.parametrize('iou', [0.3, 0.7])
def test_nms_matches_compiled(offset, iou):
    ext = compiled_ext()
    boxes = random_boxes(300, seed=offset)
    scores = torch.rand(300, generator=torch.Generator().manual_seed(2))
    keep = mmcv_ops.nms(boxes, scores, iou_threshold=iou, offset=offset)
    ref = ext.nms(boxes, scores, iou_threshold=iou, offset=offset)
    assert 0 < len(keep) < 300
    assert torch.equal(keep, ref)


def test_nms_tied_scores_match_compiled():
    ext = compiled_ext()
    boxes = random_boxes(200, seed=3)
    # eight distinct values: most boxes tie with many overlapping others
    scores = (torch.arange(200) % 8).float() / 8
    keep = mmcv_ops.nms(boxes, scores, iou_threshold=0.4, offset=0)
    assert torch.equal(keep,
                       ext.nms(boxes, scores, iou_threshold=0.4, offset=0))


def test_nms_empty_matches_compiled():
    ext = compiled_ext()
    boxes, scores = torch.zeros(0, 4), torch.zeros(0)
    keep = mmcv_ops.nms(boxes, scores, iou_threshold=0.5, offset=0)
    ref = ext.nms(boxes, scores, iou_threshold=0.5, offset=0)
    assert keep.dtype == ref.dtype == torch.long
    assert keep.shape == ref.shape == (0, )


def test_nms_offset_one_counts_the_extra_pixel():
    # x 0..9 and 5..14, y 0..9: IoU 36/126 = 0.29 with offset 0 (9 px
    # wide), 50/150 = 0.33 with offset 1 (10 px wide)
    boxes = torch.tensor([[0., 0., 9., 9.], [5., 0., 14., 9.]])
    scores = torch.tensor([0.9, 0.8])
    assert mmcv_ops.nms(boxes, scores, 0.3, offset=0).tolist() == [0, 1]
    assert mmcv_ops.nms(boxes, scores, 0.3, offset=1).tolist() == [0]


def test_other_ops_raise_one_clear_error():
    ext = mmcv_ops._build_ext()
    with pytest.raises(
            mmcv_ops.MissingMmcvOpError,
            match=r"'deform_conv_forward' needs mmcv's compiled "
            r'ops.*MMCV_OPS=compiled make setup'):
        ext.deform_conv_forward(torch.zeros(1))
    with pytest.raises(mmcv_ops.MissingMmcvOpError, match='pool_mode="max"'):
        ext.roi_align_forward(
            torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), torch.zeros(1),
            torch.zeros(1), torch.zeros(1), 2, 2, 1., 0, 0, True)
    assert not hasattr(ext, '__path__')  # still a plain module to importlib


def test_torchvision_mismatch_is_one_line(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def broken_torchvision(name, *args, **kwargs):
        if name == 'torchvision':
            raise RuntimeError('operator torchvision::nms does not exist')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', broken_torchvision)
    with pytest.raises(mmcv_ops.TorchvisionMismatchError) as info:
        mmcv_ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
    message = str(info.value)
    minor = int(torch.__version__.split('.')[1])
    assert '\n' not in message
    assert f'torch {torch.__version__}' in message
    assert importlib.metadata.version('torchvision') in message
    assert f'torchvision==0.{minor + 15}.*' in message
    assert 'torchvision::nms does not exist' in message


def run_python(code: str, hide_compiled: bool) -> str:
    """Run ``code`` in a fresh interpreter, as with mmcv-lite if
    ``hide_compiled``; return its output."""
    if hide_compiled:
        return run_python_without_compiled_mmcv(code)
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=str(REPO),
                          env=tool_env(),
                          capture_output=True,
                          text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def test_without_compiled_ops_mmdet_and_mmseg_models_import():
    out = run_python(
        'import mmfasternet\n'
        'import mmdet.models, mmseg.models\n'
        'from mmcv.ops import RoIAlign, batched_nms\n'
        'from mmfasternet.mmcv_ops import mmcv_ops_backend\n'
        'print(mmcv_ops_backend())\n',
        hide_compiled=True)
    assert out.split() == ['torchvision']


def test_compiled_ops_are_kept_when_present():
    compiled_ext()
    out = run_python(
        'import mmfasternet, mmcv.ops, sys\n'
        'print(type(sys.modules["mmcv._ext"]).__name__)\n',
        hide_compiled=False)
    assert out.split() == ['module']


def test_module_reports_backend():
    out = subprocess.run([sys.executable, '-m', 'mmfasternet'],
                         cwd=str(REPO),
                         env=tool_env(),
                         capture_output=True,
                         text=True,
                         timeout=120,
                         check=True).stdout
    assert 'mmcv ops backend: ' in out
    assert mmcv_ops.mmcv_ops_backend() in out


def test_backend_is_logged_once(monkeypatch):
    logged = []
    monkeypatch.setattr(mmcv_ops, '_logged', False)
    monkeypatch.setattr(mmcv_ops, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    mmcv_ops.log_backend_once()
    mmcv_ops.nms(torch.zeros(1, 4), torch.ones(1), 0.5)
    mmcv_ops.log_backend_once()
    assert len(logged) == 1
    backend = mmcv_ops.mmcv_ops_backend()
    assert ("torchvision's kernels" in logged[0]) == (backend == 'torchvision')
