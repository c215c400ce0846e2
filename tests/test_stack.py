"""The pinned OpenMMLab stack imports, and mmcv's NMS and RoIAlign work on
CPU: compiled (``MMCV_OPS=compiled``) or from torchvision (mmcv-lite)."""
import importlib.metadata
import os.path as osp
import re

import pytest
import torch
from packaging.version import Version

REQUIREMENTS = osp.join(osp.dirname(osp.dirname(__file__)), 'requirements')


def _pins():
    """``{name: (operator, version)}`` from requirements/*.txt."""
    pins = {}
    for name in ('mmcv', 'mmcv-compiled', 'runtime', 'openmmlab', 'torch'):
        with open(osp.join(REQUIREMENTS, f'{name}.txt')) as f:
            for line in f:
                match = re.match(r'^([A-Za-z0-9_-]+)\s*(==|>=)\s*([\w.]+)',
                                 line.split('#')[0].strip())
                if match:
                    pins[match.group(1).lower()] = match.group(2, 3)
    return pins


@pytest.mark.parametrize('package,module', [
    ('mmengine', 'mmengine'),
    ('mmcv', 'mmcv'),
    ('mmdet', 'mmdet'),
    ('mmsegmentation', 'mmseg'),
    ('timm', 'timm'),
])
def test_pinned_versions_import(package, module):
    if package == 'mmcv':  # mmcv-lite by default, mmcv with MMCV_OPS=compiled
        package = installed_mmcv()
    op, pinned = _pins()[package]
    installed = Version(__import__(module).__version__)
    if op == '==':
        assert installed == Version(pinned)
    else:
        assert installed >= Version(pinned)


def installed_mmcv() -> str:
    """The mmcv distribution in the venv: ``mmcv-lite`` or ``mmcv``."""
    found = []
    for name in ('mmcv-lite', 'mmcv'):
        try:
            importlib.metadata.version(name)
            found.append(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    assert len(found) == 1, f'exactly one mmcv distribution, not {found}'
    return found[0]


def test_mmcv_ops_backend_follows_the_distribution():
    from mmcv.utils import ext_loader

    import mmfasternet  # noqa: F401
    from mmfasternet.mmcv_ops import mmcv_ops_backend
    expected = dict(mmcv='compiled', **{'mmcv-lite': 'torchvision'})
    assert mmcv_ops_backend() == expected[installed_mmcv()]
    ext = ext_loader.load_ext('_ext', ['nms', 'roi_align_forward'])
    assert callable(ext.nms)


def test_nms_hand_checked():
    from mmcv.ops import nms

    # IoU(box0, box1) = 9*9 / (100 + 100 - 81) = 81/119 ~ 0.68;
    # box2 does not overlap either.
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.],
                          [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])

    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert torch.equal(dets[:, :4], boxes[[0, 2]])
    assert torch.allclose(dets[:, 4], torch.tensor([0.9, 0.7]))

    _, keep = nms(boxes, scores, iou_threshold=0.7)  # 0.68 < 0.7: keep all
    assert keep.tolist() == [0, 1, 2]


def test_roi_align_hand_checked():
    from mmcv.ops import RoIAlign

    # f(x, y) = x + 10 y at pixel (x, y): bilinear sampling of a linear map
    # is exact, so every bin's value is f at the bin centre. With
    # aligned=True pixel centres sit at integer + 0.5 in box coordinates.
    ys, xs = torch.meshgrid(torch.arange(4.), torch.arange(4.), indexing='ij')
    feat = (xs + 10 * ys)[None, None]  # (1, 1, 4, 4)
    rois = torch.tensor([
        [0., 0., 0., 4., 4.],  # bins 2x2 px, centres at pixel 0.5 and 2.5
        [0., 1., 1., 3., 3.],  # bins 1x1 px, centres at pixel 1 and 2
    ])
    roi_align = RoIAlign(
        output_size=(2, 2), spatial_scale=1.0, sampling_ratio=1, aligned=True)

    out = roi_align(feat, rois)
    expected = torch.tensor([
        [[5.5, 7.5], [25.5, 27.5]],
        [[11., 12.], [21., 22.]],
    ])[:, None]
    assert out.shape == (2, 1, 2, 2)
    assert torch.allclose(out, expected, atol=1e-5)
