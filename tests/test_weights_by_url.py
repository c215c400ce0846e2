"""The configs name their ImageNet weights by URL, and load them offline.

``init_cfg=dict(type='Pretrained', checkpoint='https://...')`` goes through
mmfasternet's HTTP loader, which looks in torch's hub cache,
``$TORCH_HOME/hub/checkpoints/<cached_file_name(url)>``, before it downloads.
Here a synthetic checkpoint in the layout of the official file is put there,
the download function refuses to run, and the weights must arrive in the
backbone of the real config. ``--cfg-options
model.backbone.init_cfg.checkpoint=PATH`` is the other way to a local copy.
"""
from collections import OrderedDict
from pathlib import Path

import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from safetensors.torch import save_file

from checkpoint_factory import (assert_official_outputs, deterministic_state,
                                randomize_bn)
from mmfasternet.checkpoint_loading import cached_file_name
from official_weights import fasternet_url, ghostnetv2_url

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'configs'
# Every config but the toy ones (configs/demo/), which start from random
# weights.
CONFIGS = sorted(p.name for p in CONFIG_DIR.glob('*.py'))


def official_fasternet_t0() -> dict:
    """FasterNet-T0 weights as the official release stores them: the
    classification model's state dict (the official code's keys), saved as
    it is."""
    return OrderedDict(deterministic_state('t0', detection=False))


def computes_as_official_t0(backbone: torch.nn.Module, state: dict) -> None:
    """The backbone computes what the official FasterNet-T0 computes with
    these weights (``state`` is :func:`official_fasternet_t0`'s)."""
    assert_official_outputs(backbone, 't0', with_norms=False)


def timm_ghostnetv2_100() -> dict:
    """GhostNetV2-1.0 weights as timm's hub file holds them."""
    torch.manual_seed(0)
    model = randomize_bn(timm.create_model('ghostnetv2_100'))
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def save_like(url: str, state: dict, path: Path) -> Path:
    """Write ``state`` in the format of the file at ``url``."""
    if url.endswith('.safetensors'):
        save_file(state, str(path))
    else:
        torch.save(state, str(path))
    return path


# (config, URL its backbone must name, the official file's contents,
#  the check that they arrived in the backbone)
CASES = {
    'fasternet': ('mask_rcnn_fasternet_t0_fpn_1x_coco.py', fasternet_url('t0'),
                  official_fasternet_t0, computes_as_official_t0),
    'ghostnetv2': ('mask_rcnn_ghostnetv2_100_fpn_1x_coco.py',
                   ghostnetv2_url('100'), timm_ghostnetv2_100,
                   lambda backbone, state: assert_loaded(backbone, state)),
}


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """A torch hub cache under a fresh ``TORCH_HOME``, where downloading
    fails the test."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))

    def no_download(url, *args, **kwargs):
        raise AssertionError(f'tried to download {url}')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_download)
    return tmp_path / 'torch' / 'hub' / 'checkpoints'


def init_backbone(cfg: Config) -> torch.nn.Module:
    """The config's backbone, built and initialised through its init_cfg."""
    init_default_scope(cfg.default_scope)
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    return backbone


def assert_loaded(backbone: torch.nn.Module, expected: dict) -> None:
    """Every tensor of ``expected`` that the backbone has arrived there."""
    own = backbone.state_dict()
    shared = [k for k in expected if k in own]
    assert len(shared) > len(own) // 2
    for key in shared:
        assert torch.equal(own[key], expected[key]), key


@pytest.mark.parametrize('case', list(CASES))
def test_url_loads_from_the_torch_hub_cache(case, offline_hub):
    config, url, make_state, check = CASES[case]
    cfg = Config.fromfile(str(CONFIG_DIR / config))
    assert cfg.model.backbone.init_cfg.checkpoint == url
    state = make_state()
    offline_hub.mkdir(parents=True)
    save_like(url, state, offline_hub / cached_file_name(url))

    check(init_backbone(cfg), state)


@pytest.mark.parametrize('case', list(CASES))
def test_cfg_options_path_replaces_the_url(case, offline_hub, tmp_path):
    config, url, make_state, check = CASES[case]
    state = make_state()
    local = save_like(url, state, tmp_path / Path(url).name)
    cfg = Config.fromfile(str(CONFIG_DIR / config))
    cfg.merge_from_dict({'model.backbone.init_cfg.checkpoint': str(local)})

    check(init_backbone(cfg), state)
    assert not offline_hub.exists()  # the cache was not even looked at


def test_every_config_names_official_weights_by_url():
    cached = {}
    for name in CONFIGS:
        init_cfg = Config.fromfile(str(CONFIG_DIR /
                                       name)).model.backbone.get('init_cfg')
        assert init_cfg is not None and init_cfg['type'] == 'Pretrained', name
        url = init_cfg['checkpoint']
        assert url.startswith('https://'), name
        # Two configs may share one backbone's weights; two different
        # files must never share one place in the cache.
        cached.setdefault(cached_file_name(url), set()).add(url)
    assert all(len(urls) == 1 for urls in cached.values()), cached
    assert len(cached) == 6 + 3  # FasterNet T0-L, GhostNetV2 1.0/1.3/1.6


@pytest.mark.parametrize('url,name', [
    (fasternet_url('s'), 'fasternet_s-epoch.299-val_acc1.81.2840.pth'),
    (ghostnetv2_url('130'), 'ghostnetv2_130.in1k_model.safetensors'),
    ('https://huggingface.co/timm/x.in1k/resolve/main/sub/pytorch_model.bin',
     'x.in1k_pytorch_model.bin'),
    ('https://download.example.org/a/b/weights.pth?raw=1', 'weights.pth'),
])
def test_cached_file_name(url, name):
    assert cached_file_name(url) == name
