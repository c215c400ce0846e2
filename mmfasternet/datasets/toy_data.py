"""Deterministic toy datasets: filled shapes on a noisy background.

Two generators share one scene model (1-4 non-overlapping filled shapes on a
textured background):

* :func:`make_toy_coco` writes an instance-segmentation set in COCO format
  (polygon masks), loadable by mmdet's ``CocoDataset``.
* :func:`make_toy_ade` writes a semantic-segmentation set in ADE20K's folder
  layout, loadable by mmseg's ``ADE20KDataset`` (``reduce_zero_label=True``).

Only numpy and Pillow are needed; nothing heavy is imported here. The same
arguments always produce byte-identical files.

Command line::

    python -m mmfasternet.datasets.toy_data coco data/toy_coco --num-train 200
    python -m mmfasternet.datasets.toy_data ade data/toy_ade --img-size 256 192
"""
import argparse
import json
import math
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

#: Shape classes, in category-id order (COCO ids start at 1).
SHAPE_CLASSES: Tuple[str, ...] = ('square', 'circle', 'triangle')
#: Display colours (RGB) matching :data:`SHAPE_CLASSES`.
SHAPE_PALETTE: Tuple[Tuple[int, int, int],
                     ...] = ((220, 60, 60), (60, 180, 75), (65, 95, 220))
#: Semantic classes after ``reduce_zero_label`` (PNG value ``i + 1``).
SEG_CLASSES: Tuple[str, ...] = ('background', ) + SHAPE_CLASSES
SEG_PALETTE: Tuple[Tuple[int, int, int],
                   ...] = ((40, 40, 40), ) + SHAPE_PALETTE

_SPLITS = (('train', 'training', 0), ('val', 'validation', 1))
_CIRCLE_VERTICES = 32


def _shape_polygon(cls: int, cx: float, cy: float, radius: float,
                   angle: float) -> np.ndarray:
    """Vertices (N, 2) of a shape of class ``cls`` centred at ``(cx, cy)``."""
    name = SHAPE_CLASSES[cls]
    if name == 'square':
        angles = angle + math.pi / 4 + np.arange(4) * math.pi / 2
    elif name == 'circle':
        angles = np.arange(_CIRCLE_VERTICES) * 2 * math.pi / _CIRCLE_VERTICES
    else:  # triangle
        angles = angle + np.arange(3) * 2 * math.pi / 3
    return np.stack(
        [cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)


def _polygon_area(poly: np.ndarray) -> float:
    """Shoelace area of a simple polygon given as (N, 2) vertices."""
    x, y = poly[:, 0], poly[:, 1]
    twice_area = np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))
    return float(abs(twice_area) / 2)


def _background(rng: np.random.Generator, width: int,
                height: int) -> np.ndarray:
    """A slightly tinted grey gradient with pixel noise, float (H, W, 3)."""
    base = rng.uniform(80, 180) + rng.normal(0, 12, size=3)
    tilt = rng.uniform(-40, 40, size=(2, 1)) + rng.normal(0, 8, size=(2, 3))
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :, None]
    img = base + xs * tilt[0] + ys * tilt[1]
    return img + rng.normal(0, 8, size=(height, width, 3))


def _make_scene(rng: np.random.Generator, width: int,
                height: int) -> Tuple[np.ndarray, List[Dict]]:
    """Render one image; return it (uint8 RGB) and its shapes.

    Each shape is a dict with ``label`` (index into :data:`SHAPE_CLASSES`),
    ``polygon`` ((N, 2) float vertices, all inside the image) and ``mask``
    ((H, W) bool, the rendered polygon). Shapes do not overlap, so every
    polygon is exactly its object's visible mask.
    """
    canvas = _background(rng, width, height)
    short = min(width, height)
    shapes, boxes = [], []
    for _ in range(int(rng.integers(1, 5))):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        for _attempt in range(30):
            radius = rng.uniform(0.09, 0.2) * short
            cx = rng.uniform(radius + 2, width - radius - 2)
            cy = rng.uniform(radius + 2, height - radius - 2)
            gap = 0.03 * short
            box = (cx - radius - gap, cy - radius - gap, cx + radius + gap,
                   cy + radius + gap)
            if all(box[2] <= b[0] or b[2] <= box[0] or box[3] <= b[1]
                   or b[3] <= box[1] for b in boxes):
                break
        else:
            continue  # no free room for this shape
        angle = rng.uniform(0, 2 * math.pi)
        poly = np.round(_shape_polygon(label, cx, cy, radius, angle), 2)
        colour = np.clip(
            np.array(SHAPE_PALETTE[label]) + rng.uniform(-35, 35, size=3), 0,
            255)
        mask = Image.new('L', (width, height), 0)
        ImageDraw.Draw(mask).polygon([tuple(p) for p in poly], fill=1)
        mask = np.asarray(mask, dtype=bool)
        canvas[mask] = colour + rng.normal(0, 6, size=(int(mask.sum()), 3))
        boxes.append(box)
        shapes.append(dict(label=label, polygon=poly, mask=mask))
    return np.clip(canvas, 0, 255).round().astype(np.uint8), shapes


def _split_rng(seed: int, split_index: int) -> np.random.Generator:
    """Independent stream per split, so ``num_train`` never changes val."""
    return np.random.default_rng([seed, split_index])


def _check_size(img_size: Sequence[int]) -> Tuple[int, int]:
    width, height = (int(v) for v in img_size)
    if width < 32 or height < 32:
        raise ValueError(f'img_size must be at least (32, 32), got {img_size}')
    return width, height


def make_toy_coco(root: str,
                  num_train: int = 200,
                  num_val: int = 50,
                  img_size: Sequence[int] = (320, 256),
                  seed: int = 0) -> Dict:
    """Write a toy instance-segmentation dataset in COCO format.

    Layout::

        root/annotations/instances_train.json
        root/annotations/instances_val.json
        root/train/000000.jpg ...
        root/val/000000.jpg ...

    ``file_name`` in the annotation files is relative to the split folder,
    so an mmdet config uses ``data_prefix=dict(img='train/')``.

    Args:
        root (str): Output folder (created; existing files are overwritten).
        num_train (int): Training images. Default: 200.
        num_val (int): Validation images. Default: 50.
        img_size (Sequence[int]): ``(width, height)``. Default: (320, 256).
        seed (int): Random seed; the output depends only on the arguments.
            Default: 0.

    Returns:
        dict: ``root``, ``classes``, ``palette``, ``img_size`` and, per split
        (``'train'``, ``'val'``), ``ann_file`` / ``img_dir`` (relative to
        ``root``) and ``num_images`` / ``num_instances``.

    Example:
        >>> info = make_toy_coco('/tmp/toy_coco', num_train=8, num_val=4)
        >>> info['classes']
        ('square', 'circle', 'triangle')
    """
    width, height = _check_size(img_size)
    categories = [
        dict(id=i + 1, name=name, supercategory='shape')
        for i, name in enumerate(SHAPE_CLASSES)
    ]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    info = dict(
        root=root,
        classes=SHAPE_CLASSES,
        palette=SHAPE_PALETTE,
        img_size=(width, height))
    for split, _, split_index in _SPLITS:
        num = num_train if split == 'train' else num_val
        rng = _split_rng(seed, split_index)
        img_dir = osp.join(root, split)
        os.makedirs(img_dir, exist_ok=True)
        images, annotations = [], []
        for idx in range(num):
            img, shapes = _make_scene(rng, width, height)
            file_name = f'{idx:06d}.jpg'
            Image.fromarray(img).save(osp.join(img_dir, file_name), quality=95)
            images.append(
                dict(id=idx, file_name=file_name, width=width, height=height))
            for shape in shapes:
                poly = shape['polygon']
                x0, y0 = poly.min(axis=0)
                x1, y1 = poly.max(axis=0)
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=idx,
                        category_id=shape['label'] + 1,
                        segmentation=[[float(v) for v in poly.reshape(-1)]],
                        area=round(_polygon_area(poly), 2),
                        bbox=[
                            float(x0),
                            float(y0),
                            round(float(x1 - x0), 2),
                            round(float(y1 - y0), 2)
                        ],
                        iscrowd=0))
        coco = dict(
            info=dict(
                description='mmfasternet toy shapes', version='1.0',
                year=2024),
            licenses=[],
            images=images,
            annotations=annotations,
            categories=categories)
        ann_file = osp.join('annotations', f'instances_{split}.json')
        with open(osp.join(root, ann_file), 'w') as f:
            json.dump(coco, f)
        info[split] = dict(
            ann_file=ann_file,
            img_dir=split + '/',
            num_images=num,
            num_instances=len(annotations))
    return info


def make_toy_ade(root: str,
                 num_train: int = 200,
                 num_val: int = 50,
                 img_size: Sequence[int] = (256, 192),
                 seed: int = 0) -> Dict:
    """Write a toy semantic-segmentation dataset in ADE20K's layout.

    Layout::

        root/images/training/000000.jpg ...
        root/images/validation/000000.jpg ...
        root/annotations/training/000000.png ...
        root/annotations/validation/000000.png ...

    Labels follow ADE20K's ``reduce_zero_label`` convention: PNG value 0 is
    "unlabelled" (ignored; not used here), and value ``i + 1`` is class ``i``
    of :data:`SEG_CLASSES` (``background``, then the shapes). Load it with
    mmseg's ``ADE20KDataset`` (``reduce_zero_label=True``) and
    ``metainfo=dict(classes=info['classes'], palette=info['palette'])``.

    Args:
        root (str): Output folder (created; existing files are overwritten).
        num_train (int): Training images. Default: 200.
        num_val (int): Validation images. Default: 50.
        img_size (Sequence[int]): ``(width, height)``. Default: (256, 192).
        seed (int): Random seed; the output depends only on the arguments.
            Default: 0.

    Returns:
        dict: ``root``, ``classes``, ``palette``, ``img_size``,
        ``reduce_zero_label`` (True) and, per split (``'train'``, ``'val'``),
        ``img_dir`` / ``seg_map_dir`` (relative to ``root``) and
        ``num_images``.
    """
    width, height = _check_size(img_size)
    info = dict(
        root=root,
        classes=SEG_CLASSES,
        palette=SEG_PALETTE,
        img_size=(width, height),
        reduce_zero_label=True)
    for split, folder, split_index in _SPLITS:
        num = num_train if split == 'train' else num_val
        # Offset the stream so the semantic set differs from the COCO one.
        rng = _split_rng(seed + 1000, split_index)
        img_dir = osp.join('images', folder)
        seg_dir = osp.join('annotations', folder)
        os.makedirs(osp.join(root, img_dir), exist_ok=True)
        os.makedirs(osp.join(root, seg_dir), exist_ok=True)
        for idx in range(num):
            img, shapes = _make_scene(rng, width, height)
            seg = np.ones((height, width), dtype=np.uint8)  # background
            for shape in shapes:
                seg[shape['mask']] = shape['label'] + 2
            Image.fromarray(img).save(
                osp.join(root, img_dir, f'{idx:06d}.jpg'), quality=95)
            Image.fromarray(seg).save(
                osp.join(root, seg_dir, f'{idx:06d}.png'))
        info[split] = dict(
            img_dir=img_dir + '/', seg_map_dir=seg_dir + '/', num_images=num)
    return info


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate a deterministic toy dataset of filled shapes.')
    parser.add_argument(
        'kind',
        choices=['coco', 'ade'],
        help='coco: instance segmentation (COCO json); '
        'ade: semantic segmentation (ADE20K folders)')
    parser.add_argument('root', help='output folder')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument(
        '--img-size',
        type=int,
        nargs=2,
        metavar=('W', 'H'),
        help='image size; default 320 256 (coco) or 256 192 (ade)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    make = make_toy_coco if args.kind == 'coco' else make_toy_ade
    kwargs = dict(
        num_train=args.num_train, num_val=args.num_val, seed=args.seed)
    if args.img_size:
        kwargs['img_size'] = tuple(args.img_size)
    info = make(args.root, **kwargs)
    print(f"{args.kind} toy data in {info['root']}: "
          f"{info['train']['num_images']} train / "
          f"{info['val']['num_images']} val images, "
          f"classes {', '.join(info['classes'])}")


if __name__ == '__main__':
    main()
