"""Tool-test configs made from the real demo configs (``configs/demo/``).

A tool test loads a demo config with ``Config.fromfile``, overrides what it
needs (the fixture's data, smaller sizes, a shorter schedule) with
``merge_from_dict`` and dumps the result to a ``.py`` file that the tools
run; nothing else of the config is restated in the test.
"""
import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]
#: The demo detector, whose toy-COCO data settings the tool tests reuse.
DEMO_DETECTOR = REPO / 'configs' / 'demo' / 'mask_rcnn_fasternet_t0_fpn_toy.py'


def with_sizes(pipeline: Sequence[dict], **sizes) -> List[dict]:
    """A copy of ``pipeline`` whose transforms take the given sizes.

    Every transform that has one of the keyword names as an argument
    (``scale``, ``crop_size`` ...) gets the new value, whatever the config's
    was, so that a test does not depend on the demo's image size.

    Args:
        pipeline (Sequence[dict]): A data pipeline of a config.
        **sizes: Argument names of the transforms and their new values.

    Returns:
        list[dict]: The new pipeline.

    Raises:
        KeyError: If no transform takes one of the names, so that a renamed
            transform cannot leave a test at the demo's full size unnoticed.
    """
    unused = [k for k in sizes if not any(k in t for t in pipeline)]
    if unused:
        raise KeyError(f'no transform takes {unused}: '
                       f"{[t['type'] for t in pipeline]}")
    return [{k: sizes.get(k, v) for k, v in t.items()} for t in pipeline]


def toy_coco_data(info: Dict, scale: Tuple[int, int], batch_size: int) -> Dict:
    """The demo detector's data settings, on a test's toy COCO set.

    Args:
        info (dict): The ``toy_coco_info`` fixture.
        scale (tuple[int, int]): Image scale for every ``Resize``.
        batch_size (int): Images per batch (no worker processes).

    Returns:
        dict: ``train/val/test_dataloader`` and ``val/test_evaluator``
        overrides for ``Config.merge_from_dict``: complete datasets (root,
        annotation files, classes, pipelines), so that they also replace a
        real COCO config's.
    """
    demo = Config.fromfile(DEMO_DETECTOR)
    root = os.path.join(info['root'], '')
    loader = dict(
        batch_size=batch_size, num_workers=0, persistent_workers=False)
    data = {}
    for split in ('train', 'val', 'test'):
        dataset = demo[f'{split}_dataloader'].dataset.to_dict()
        dataset.update(
            data_root=root,
            pipeline=with_sizes(dataset['pipeline'], scale=scale))
        data[f'{split}_dataloader'] = dict(**loader, dataset=dataset)
    ann_file = root + info['val']['ann_file']
    for split in ('val', 'test'):
        data[f'{split}_evaluator'] = dict(
            demo[f'{split}_evaluator'].to_dict(), ann_file=ann_file)
    return data
