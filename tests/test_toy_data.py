"""The toy data generators: deterministic, valid COCO, valid ADE20K layout."""
import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmfasternet.datasets import (SEG_CLASSES, SHAPE_CLASSES, make_toy_ade,
                                  make_toy_coco)
from mmfasternet.datasets.toy_data import main


def _same_tree(a, b):
    """Every file under ``a`` exists under ``b`` with identical bytes."""
    files = sorted(
        osp.relpath(osp.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    assert files
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == []
    return files


def test_coco_is_deterministic(tmp_path, toy_coco_root):
    make_toy_coco(
        str(tmp_path), num_train=8, num_val=4, img_size=(128, 96), seed=0)
    files = _same_tree(toy_coco_root, str(tmp_path))
    assert len(files) == 2 + 8 + 4


def test_coco_seed_changes_data(tmp_path, toy_coco_root):
    make_toy_coco(
        str(tmp_path), num_train=8, num_val=4, img_size=(128, 96), seed=1)
    name = osp.join('annotations', 'instances_train.json')
    assert not filecmp.cmp(
        osp.join(toy_coco_root, name), osp.join(tmp_path, name), shallow=False)


def test_val_split_independent_of_num_train(tmp_path, toy_coco_root):
    make_toy_coco(
        str(tmp_path), num_train=3, num_val=4, img_size=(128, 96), seed=0)
    name = osp.join('annotations', 'instances_val.json')
    assert filecmp.cmp(
        osp.join(toy_coco_root, name), osp.join(tmp_path, name), shallow=False)


def test_coco_info(toy_coco_info):
    info = toy_coco_info
    assert info['classes'] == SHAPE_CLASSES
    assert 2 <= len(info['classes']) <= 4
    assert len(info['palette']) == len(info['classes'])
    assert info['img_size'] == (128, 96)
    assert info['train']['num_images'] == 8
    assert info['val']['num_images'] == 4
    assert info['train']['ann_file'] == 'annotations/instances_train.json'
    assert info['val']['img_dir'] == 'val/'


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_annotations_are_valid(toy_coco_info, split):
    pycocotools_coco = pytest.importorskip('pycocotools.coco')
    root = toy_coco_info['root']
    coco = pycocotools_coco.COCO(
        osp.join(root, toy_coco_info[split]['ann_file']))
    assert [c['name']
            for c in coco.loadCats(coco.getCatIds())] == list(SHAPE_CLASSES)
    img_ids = coco.getImgIds()
    assert len(img_ids) == toy_coco_info[split]['num_images']
    ann_ids = coco.getAnnIds()
    assert len(ann_ids) == toy_coco_info[split]['num_instances']
    assert len(ann_ids) >= len(img_ids)  # at least one shape per image
    assert len(set(ann_ids)) == len(ann_ids)
    for img_info in coco.loadImgs(img_ids):
        path = osp.join(root, toy_coco_info[split]['img_dir'],
                        img_info['file_name'])
        with Image.open(path) as img:
            assert img.size == (img_info['width'], img_info['height'])
            assert img.mode == 'RGB'
    for ann in coco.loadAnns(ann_ids):
        assert ann['iscrowd'] == 0
        assert ann['category_id'] in coco.getCatIds()
        x, y, w, h = ann['bbox']
        assert w > 1 and h > 1 and ann['area'] > 1
        assert x >= 0 and y >= 0 and x + w <= 128 and y + h <= 96
        # Polygon vertices span exactly the box.
        poly = np.array(ann['segmentation'][0]).reshape(-1, 2)
        assert poly.min(0) == pytest.approx([x, y], abs=0.01)
        assert poly.max(0) == pytest.approx([x + w, y + h], abs=0.01)
        # Every rasterised mask pixel lies inside the box.
        mask = coco.annToMask(ann)
        assert mask.shape == (96, 128)
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0
        assert xs.min() >= np.floor(x) and xs.max() <= np.ceil(x + w)
        assert ys.min() >= np.floor(y) and ys.max() <= np.ceil(y + h)
        assert mask.sum() == pytest.approx(ann['area'], rel=0.25, abs=8)


def test_coco_masks_do_not_overlap(toy_coco_info):
    pycocotools_coco = pytest.importorskip('pycocotools.coco')
    coco = pycocotools_coco.COCO(
        osp.join(toy_coco_info['root'], toy_coco_info['val']['ann_file']))
    for img_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        coverage = sum(coco.annToMask(a).astype(int) for a in anns)
        assert coverage.max() == 1


def test_ade_layout(toy_ade_info):
    info = toy_ade_info
    root = info['root']
    assert info['classes'] == SEG_CLASSES
    assert info['classes'][0] == 'background'
    assert info['reduce_zero_label'] is True
    for split, folder, num in (('train', 'training', 8), ('val', 'validation',
                                                          4)):
        assert info[split]['img_dir'] == f'images/{folder}/'
        assert info[split]['seg_map_dir'] == f'annotations/{folder}/'
        imgs = sorted(os.listdir(osp.join(root, 'images', folder)))
        segs = sorted(os.listdir(osp.join(root, 'annotations', folder)))
        assert len(imgs) == num
        assert all(f.endswith('.jpg') for f in imgs)
        assert [f[:-4] for f in imgs] == [f[:-4] for f in segs]
        assert all(f.endswith('.png') for f in segs)
        seen = set()
        for img_name, seg_name in zip(imgs, segs):
            with Image.open(osp.join(root, 'images', folder, img_name)) as img:
                assert img.mode == 'RGB' and img.size == (128, 96)
            with Image.open(osp.join(root, 'annotations', folder,
                                     seg_name)) as seg:
                assert seg.mode == 'L' and seg.size == (128, 96)
                labels = np.unique(np.asarray(seg))
            # reduce_zero_label: PNG value i + 1 is class i; 0 (ignore) unused.
            assert labels.min() >= 1 and labels.max() <= len(SEG_CLASSES)
            assert 1 in labels  # background present
            assert len(labels) >= 2  # and at least one shape
            seen.update(labels.tolist())
        if split == 'train':
            assert seen == set(range(1, len(SEG_CLASSES) + 1))


def test_ade_is_deterministic(tmp_path, toy_ade_root):
    make_toy_ade(
        str(tmp_path), num_train=8, num_val=4, img_size=(128, 96), seed=0)
    assert len(_same_tree(toy_ade_root, str(tmp_path))) == 2 * (8 + 4)


def test_bad_size():
    with pytest.raises(ValueError, match='img_size'):
        make_toy_coco('unused', img_size=(16, 16))


def test_cli(tmp_path, capsys):
    main([
        'coco',
        str(tmp_path / 'c'), '--num-train', '2', '--num-val', '1',
        '--img-size', '64', '48'
    ])
    assert '2 train / 1 val' in capsys.readouterr().out
    with open(tmp_path / 'c' / 'annotations' / 'instances_val.json') as f:
        assert json.load(f)['images'][0]['width'] == 64
    main(['ade', str(tmp_path / 'a'), '--num-train', '2', '--num-val', '1'])
    assert len(os.listdir(tmp_path / 'a' / 'images' / 'training')) == 2
