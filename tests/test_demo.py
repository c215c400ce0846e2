"""The demos: the toy run end to end (``tools/toy_demo.py --quick``, what
``make demo`` runs in full) and inference on an image
(``demo/image_demo.py``)."""
import os
from pathlib import Path

import pytest
from PIL import Image

from tool_runner import REPO, load_script, run_script

DET_CONFIG = REPO / 'configs' / 'demo' / 'mask_rcnn_fasternet_t0_fpn_toy.py'
SEG_CONFIG = REPO / 'configs' / 'demo' / 'fpn_fasternet_t0_ade20k_toy.py'
PICTURES = ('det_predictions.png', 'seg_overlay.png', 'loss_curve.png')


def run(script: str, *args) -> str:
    """Run a script of the repository as ``make demo`` runs it (the user's
    OpenMP threads, Python's warnings off); return its output."""
    return run_script(
        script,
        *args,
        timeout=600,
        OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS'),
        PYTHONWARNINGS='ignore')


@pytest.fixture(scope='module')
def quick_demo(tmp_path_factory):
    """``tools/toy_demo.py --quick`` in a temporary folder: (root, stdout)."""
    root = tmp_path_factory.mktemp('demo')
    out = run('tools/toy_demo.py', '--quick', '--data-root', root / 'data',
              '--work-dir', root / 'work')
    return root, out


def test_quick_demo_writes_data_and_checkpoints(quick_demo):
    root, _ = quick_demo
    assert (root / 'data' / 'toy_coco' / 'annotations' /
            'instances_val.json').is_file()
    assert len(
        list((root / 'data' / 'toy_ade' / 'images' /
              'validation').iterdir())) == 4
    for task in ('det', 'seg'):
        checkpoint = (root / 'work' / task / 'last_checkpoint').read_text()
        assert Path(checkpoint.strip()).name == 'iter_2.pth'


def test_quick_demo_pictures(quick_demo):
    root, _ = quick_demo
    sizes = {}
    for name in PICTURES:
        with Image.open(root / 'work' / name) as img:
            img.verify()
            sizes[name] = img.size
    # a 2x2 grid of the 320x256 instance val images, 4-pixel gaps
    assert sizes['det_predictions.png'] == (644, 516)
    # 4 rows of (input, overlay) pairs of the 256x192 semantic val images
    assert sizes['seg_overlay.png'] == (516, 780)
    assert sizes['loss_curve.png'][0] > sizes['loss_curve.png'][1]


def test_quick_demo_reports_metrics_and_pictures(quick_demo):
    root, out = quick_demo
    # tools/train.py and tools/test.py ran and logged
    assert 'Iter(train) [2/2]' in out
    assert 'Iter(test)' in out
    lines = out.strip().splitlines()
    assert any(
        line.startswith('Mask R-CNN FasterNet-T0 on toy val: bbox mAP')
        for line in lines)
    assert any('on toy val: mIoU' in line for line in lines)
    # the last lines say where the pictures are
    tail = '\n'.join(lines[-4:])
    assert f"Pictures are in {root / 'work'}" in tail
    for name in PICTURES:
        assert str(root / 'work' / name) in tail


def test_image_demo_detection_cli(quick_demo, tmp_path):
    root, _ = quick_demo
    image = root / 'data' / 'toy_coco' / 'val' / '000000.jpg'
    checkpoint = (root / 'work' / 'det' / 'last_checkpoint').read_text()
    out = run('demo/image_demo.py', image, DET_CONFIG, '--weights',
              checkpoint.strip(), '--out-dir', tmp_path, '--device', 'cpu')
    picture = tmp_path / 'vis' / '000000.jpg'
    assert f'Saved {picture}' in out
    with Image.open(picture) as img:
        assert img.size == (320, 256)


def test_image_demo_segmentation_without_weights(toy_ade_root, tmp_path):
    image_demo = load_script('demo/image_demo.py')
    image = Path(toy_ade_root) / 'images' / 'validation' / '000001.jpg'
    paths = image_demo.run(
        str(image), str(SEG_CONFIG), out_dir=str(tmp_path), device='cpu')
    assert paths == [str(tmp_path / 'vis' / '000001.jpg')]
    with Image.open(paths[0]) as img:
        assert img.size == (128, 96)


def test_build_inferencer_names_config_classes_without_weights():
    """Random weights: the config's classes label the pictures, not the
    COCO names that DetInferencer falls back to."""
    from mmdet.apis import DetInferencer

    from mmfasternet.datasets import SHAPE_CLASSES, SHAPE_PALETTE
    from mmfasternet.inference import build_inferencer
    inferencer = build_inferencer(str(DET_CONFIG), device='cpu')
    assert isinstance(inferencer, DetInferencer)
    for meta in (inferencer.model.dataset_meta,
                 inferencer.visualizer.dataset_meta):
        assert meta['classes'] == SHAPE_CLASSES
        assert meta['palette'] == [tuple(c) for c in SHAPE_PALETTE]


def test_image_demo_rejects_other_scopes(tmp_path):
    image_demo = load_script('demo/image_demo.py')
    config = tmp_path / 'cls.py'
    config.write_text("default_scope = 'mmpretrain'\nmodel = dict()\n")
    with pytest.raises(ValueError, match='default_scope'):
        image_demo.run('unused.jpg', str(config))


def test_quick_rtmdet_demo(tmp_path):
    """``tools/toy_demo.py --rtmdet --quick``: the RTMDet demo trains two
    epochs (the pipeline switch in the second), evaluates the EMA
    checkpoint and draws its pictures."""
    out = run('tools/toy_demo.py', '--rtmdet', '--quick', '--data-root',
              tmp_path / 'data', '--work-dir', tmp_path / 'work')
    assert 'Switch pipeline now!' in out
    assert 'Epoch(test)' in out
    lines = out.strip().splitlines()
    assert any(
        line.startswith('RTMDet FasterNet-T0 on toy val (EMA weights): '
                        'bbox mAP ') for line in lines)
    work = tmp_path / 'work' / 'rtmdet'
    for name in ('rtmdet_predictions.png', 'rtmdet_loss_curve.png'):
        with Image.open(work / name) as img:
            img.verify()
        assert str(work / name) in out
