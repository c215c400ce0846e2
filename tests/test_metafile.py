"""The model index (``model-index.yml`` and the metafiles it imports) agrees
with the configs and with the README's model zoo.

Every config under ``configs/`` (the toy ``configs/demo/`` ones aside) is
listed once; each listed config builds, with the parameter count the index
gives; its ``init_cfg`` downloads exactly the backbone weights the index
names; results are marked as the paper's; and the README's zoo shows the
same figures.
"""
import re
from pathlib import Path

import pytest
import yaml
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from official_weights import FASTERNET_RELEASE, fasternet_url
from tool_runner import run_tool

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs'


def load_index():
    """``(collections, models)`` of every metafile model-index.yml
    imports."""
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    collections, models = [], []
    for path in index['Import']:
        metafile = yaml.safe_load((REPO / path).read_text())
        collections += metafile['Collections']
        models += metafile['Models']
    return collections, models


COLLECTIONS, MODELS_LISTED = load_index()
BY_CONFIG = {m['Config']: m for m in MODELS_LISTED}


def amount(text: str) -> float:
    """'48.99M' -> 48.99 (the unit is checked by the caller)."""
    return float(text[:-1])


def decimals(text: str) -> int:
    """How many decimals a figure such as '48.99M' is rounded to."""
    return len(text[:-1].partition('.')[2])


def test_every_config_is_listed_once():
    configs = sorted(f'configs/{p.name}' for p in CONFIG_DIR.glob('*.py'))
    listed = [m['Config'] for m in MODELS_LISTED]
    assert sorted(listed) == configs
    names = [m['Name'] for m in MODELS_LISTED]
    assert len(set(names)) == len(names)
    for model in MODELS_LISTED:
        assert model['Config'] == f'configs/{model["Name"]}.py'


def test_collections_and_readmes():
    names = {c['Name'] for c in COLLECTIONS}
    assert len(names) == len(COLLECTIONS)
    assert {m['In Collection'] for m in MODELS_LISTED} == names
    for collection in COLLECTIONS:
        assert (REPO / collection['README']).is_file(), collection['Name']
        assert collection['Paper']['URL'].startswith('https://arxiv.org/')


@pytest.mark.parametrize('model', MODELS_LISTED, ids=lambda m: m['Name'])
def test_config_builds_with_the_listed_parameters(model):
    meta = model['Metadata']
    cfg = Config.fromfile(str(REPO / model['Config']))
    assert cfg.model.backbone.init_cfg.checkpoint == meta['Backbone Weights']
    assert meta['Parameters'].endswith('M') and meta['FLOPs'].endswith('G')
    init_default_scope(cfg.default_scope)
    built = MODELS.build(cfg.model)  # no init_weights: nothing is fetched
    counted = sum(p.numel() for p in built.parameters()) / 1e6
    assert round(counted, decimals(meta['Parameters'])) == \
        amount(meta['Parameters']), f'{counted:.4f}M'


def test_listed_flops_are_what_get_flops_counts():
    """One recount, the smallest config (a few seconds)."""
    model = BY_CONFIG['configs/rtmdet_fasternet_t0_8xb32-300e_coco.py']
    meta = model['Metadata']
    size = meta['FLOPs Input'].split('x')
    out = run_tool('get_flops.py', model['Config'], '--shape', *size)
    counted = float(re.search(r'FLOPs:\s+([\d.]+) G', out).group(1))
    assert round(counted, decimals(meta['FLOPs'])) == amount(meta['FLOPs'])


def test_results_are_marked_as_the_papers():
    with_results = [m for m in MODELS_LISTED if m['Results']]
    assert with_results, 'the paper has COCO results for S, M and L'
    for model in MODELS_LISTED:
        if model['Results']:
            assert 'paper' in model['Results Source'], model['Name']
        else:
            assert 'Results Source' not in model, model['Name']


def test_mask_rcnn_s_fetches_the_official_weights():
    """What ``tools/train.py configs/mask_rcnn_fasternet_s_fpn_1x_coco.py``
    would download, and the official COCO checkpoint of that model."""
    config = 'configs/mask_rcnn_fasternet_s_fpn_1x_coco.py'
    url = Config.fromfile(str(REPO / config)).model.backbone.init_cfg
    assert url.type == 'Pretrained'
    assert url.checkpoint == fasternet_url('s')
    assert BY_CONFIG[config]['Metadata']['Backbone Weights'] == fasternet_url(
        's')
    assert BY_CONFIG[config]['Weights'] == (
        f'{FASTERNET_RELEASE}/mask_rcnn_fasternet_s_fpn_1x_coco_'
        '20221111_063419.pth')


def test_official_coco_checkpoints_for_s_m_l_only():
    with_weights = sorted(m['Name'] for m in MODELS_LISTED if 'Weights' in m)
    assert with_weights == [
        f'mask_rcnn_fasternet_{v}_fpn_1x_coco' for v in ('l', 'm', 's')
    ]
    for model in MODELS_LISTED:
        if 'Weights' in model:
            assert model['Weights'].startswith(
                f'{FASTERNET_RELEASE}/{model["Name"]}_')


@pytest.mark.parametrize('model', MODELS_LISTED, ids=lambda m: m['Name'])
def test_readme_zoo_shows_the_same_figures(model):
    """The README's zoo row for the config has its params, FLOPs, backbone
    weights and (the paper's) results."""
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    meta = model['Metadata']
    rows = [
        line for line in readme.splitlines()
        if line.startswith('|') and f'({model["Config"]})' in line
    ]
    assert len(rows) == 1, model['Config']
    row = rows[0]
    for figure in (meta['Parameters'], meta['FLOPs'], meta['Backbone Weights'],
                   model.get('Weights', '')):
        assert figure in row
    for result in model['Results']:
        for value in result['Metrics'].values():
            assert f'| {value} |' in row
