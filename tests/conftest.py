"""Shared pytest fixtures: small toy datasets, built once per session."""
import pytest

from mmfasternet.datasets import make_toy_ade, make_toy_coco


def _tiny_toy_set(tmp_path_factory, make, name: str) -> dict:
    """``make`` (a toy set generator) run in a fresh folder: 8 train / 4 val
    images of 128x96."""
    root = tmp_path_factory.mktemp(name)
    return make(str(root), num_train=8, num_val=4, img_size=(128, 96), seed=0)


@pytest.fixture(scope='session')
def toy_coco_info(tmp_path_factory):
    """Info dict of a tiny COCO-format toy set (8 train / 4 val, 128x96)."""
    return _tiny_toy_set(tmp_path_factory, make_toy_coco, 'toy_coco')


@pytest.fixture(scope='session')
def toy_coco_root(toy_coco_info):
    """Root of the tiny COCO toy set (``annotations/``, ``train/``, ``val/``).

    A ``str``; the info dict is the ``toy_coco_info`` fixture.
    """
    return toy_coco_info['root']


@pytest.fixture(scope='session')
def toy_ade_info(tmp_path_factory):
    """Info dict of a tiny ADE20K-layout toy set (8 train / 4 val, 128x96)."""
    return _tiny_toy_set(tmp_path_factory, make_toy_ade, 'toy_ade')


@pytest.fixture(scope='session')
def toy_ade_root(toy_ade_info):
    """Root of the tiny ADE toy set (``images/``, ``annotations/``); a str."""
    return toy_ade_info['root']


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'cuda: needs a CUDA GPU; skipped, with the reason, where '
        'none is visible (tools/gpu_check.sh runs them on a GPU machine)')
