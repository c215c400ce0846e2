"""The RTMDet / RTMDet-Ins FasterNet configs: the backbone swap, the RGB
preprocessor, RTMDet's inherited recipe, and the parameter table of
docs/rtmdet.md."""
import functools
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import MODELS, init_default_scope

from official_weights import FASTERNET_RELEASE

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs'

# variant: (embed dim, drop path, ImageNet release asset, stock base,
#           neck/head width)
VARIANTS = {
    't0': (40, 0.0, 'fasternet_t0-epoch.281-val_acc1.71.9180.pth', 'tiny', 96),
    't1': (64, 0.02, 'fasternet_t1-epoch.291-val_acc1.76.2180.pth', 's', 128),
    't2': (96, 0.05, 'fasternet_t2-epoch.289-val_acc1.78.8860.pth', 's', 128),
}
INS_CONFIG = 'rtmdet-ins_fasternet_t0_8xb32-300e_coco.py'
RGB_MEAN = [123.675, 116.28, 103.53]
RGB_STD = [58.395, 57.12, 57.375]


def config_name(variant: str) -> str:
    return f'rtmdet_fasternet_{variant}_8xb32-300e_coco.py'


def load(name: str) -> Config:
    return Config.fromfile(str(CONFIG_DIR / name))


@functools.lru_cache(maxsize=None)
def built(config: str) -> torch.nn.Module:
    """The config's model (built once per session), without init_weights:
    no checkpoint is read. ``mmdet::`` names a stock config."""
    cfg = get_config(config) if '::' in config else Config.fromfile(config)
    init_default_scope('mmdet')
    return MODELS.build(cfg.model).eval()


def unscoped(value):
    """``value`` without the ``_scope_`` keys that MMEngine adds to what a
    config inherits through ``mmdet::``."""
    if isinstance(value, dict):
        return {k: unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(unscoped(v) for v in value)
    return value


def test_flat_list_of_configs():
    names = sorted(p.name for p in CONFIG_DIR.glob('rtmdet*_fasternet_*.py'))
    assert names == sorted([config_name(v) for v in VARIANTS] + [INS_CONFIG])


@pytest.mark.parametrize('name,variant',
                         [(config_name(v), v)
                          for v in VARIANTS] + [(INS_CONFIG, 't0')])
def test_backbone_swap(name, variant):
    embed, drop_path, asset, _, width = VARIANTS[variant]
    cfg = load(name)
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(
        imports=['mmfasternet'], allow_failed_imports=False)
    # `_delete_` left nothing of CSPNeXt's dict behind.
    assert cfg.model.backbone == dict(
        type='FasterNet',
        arch=variant,
        out_indices=(1, 2, 3),
        drop_path_rate=drop_path,
        init_cfg=dict(
            type='Pretrained', checkpoint=f'{FASTERNET_RELEASE}/{asset}'))
    assert cfg.model.neck.in_channels == [embed * 2, embed * 4, embed * 8]
    assert cfg.model.neck.out_channels == width
    assert cfg.model.bbox_head.in_channels == width
    assert cfg.model.bbox_head.feat_channels == width


@pytest.mark.parametrize('name',
                         [config_name(v) for v in VARIANTS] + [INS_CONFIG])
def test_rgb_imagenet_preprocessor(name):
    cfg = load(name)
    preprocessor = cfg.model.data_preprocessor
    assert preprocessor.type == 'DetDataPreprocessor'
    assert preprocessor.mean == RGB_MEAN
    assert preprocessor.std == RGB_STD
    assert preprocessor.bgr_to_rgb is True
    # A pure blue image as LoadImageFromFile gives it (BGR order): blue
    # lands in the last channel, normalised with ImageNet's blue statistics.
    init_default_scope('mmdet')
    module = MODELS.build(preprocessor)
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    image[0] = 255
    out = module(dict(inputs=[image]), training=False)['inputs'][0]
    expected = [(0 - RGB_MEAN[0]) / RGB_STD[0], (0 - RGB_MEAN[1]) / RGB_STD[1],
                (255 - RGB_MEAN[2]) / RGB_STD[2]]
    for channel, value in enumerate(expected):
        assert torch.allclose(out[channel], torch.tensor(value), atol=1e-5)


@pytest.mark.parametrize(
    'name,stock_name',
    [(config_name(v), f'rtmdet_{VARIANTS[v][3]}_8xb32-300e_coco.py')
     for v in VARIANTS] + [(INS_CONFIG, 'rtmdet-ins_tiny_8xb32-300e_coco.py')])
def test_recipe_is_rtmdets(name, stock_name):
    """Everything but backbone and preprocessor is the stock config's."""
    ours = load(name)
    stock = get_config(f'mmdet::rtmdet/{stock_name}')
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg',
                'custom_hooks', 'train_dataloader', 'val_evaluator'):
        assert unscoped(ours[key]) == unscoped(stock[key]), key
    for key in ('neck', 'bbox_head', 'train_cfg', 'test_cfg'):
        expected = unscoped(stock.model[key])
        if key == 'neck':
            expected['in_channels'] = ours.model.neck.in_channels
        assert unscoped(ours.model[key]) == expected, key
    assert ours.model.type == stock.model.type == 'RTMDet'
    # RTMDet's published recipe, as inherited.
    assert ours.train_cfg.max_epochs == 300
    assert ours.optim_wrapper.optimizer == dict(
        type='AdamW', lr=0.004, weight_decay=0.05)
    assert ours.optim_wrapper.paramwise_cfg.norm_decay_mult == 0
    assert ours.optim_wrapper.paramwise_cfg.bias_decay_mult == 0
    hooks = {h['type']: h for h in ours.custom_hooks}
    assert hooks['EMAHook']['ema_type'] == 'ExpMomentumEMA'
    assert hooks['PipelineSwitchHook']['switch_epoch'] == 280
    train = [t['type'] for t in ours.train_dataloader.dataset.pipeline]
    assert 'CachedMosaic' in train and 'CachedMixUp' in train
    assert ours.model.train_cfg.assigner.type == 'DynamicSoftLabelAssigner'
    assert ours.model.neck.norm_cfg.type == 'SyncBN'
    assert ours.model.bbox_head.norm_cfg.type == 'SyncBN'


@pytest.mark.parametrize('name,variant',
                         [(config_name(v), v)
                          for v in VARIANTS] + [(INS_CONFIG, 't0')])
def test_outputs_at_strides_8_16_32(name, variant):
    embed, _, _, _, width = VARIANTS[variant]
    model = built(str(CONFIG_DIR / name))
    # The neck's per-level output convs take the backbone's stage widths.
    assert [c.conv.in_channels for c in model.neck.out_convs
            ] == [embed * 2, embed * 4, embed * 8]
    height, width_px = 96, 128
    with torch.no_grad():
        inputs = torch.rand(1, 3, height, width_px)
        feats = model.backbone(inputs)
        necks = model.neck(feats)
        cls_scores, bbox_preds = model.bbox_head(necks)[:2]
    strides = (8, 16, 32)
    assert [tuple(f.shape) for f in feats] == [(1, embed * 2**(i + 1),
                                                height // s, width_px // s)
                                               for i, s in enumerate(strides)]
    assert [tuple(f.shape) for f in necks
            ] == [(1, width, height // s, width_px // s) for s in strides]
    assert [tuple(c.shape[1:2]) for c in cls_scores] == [(80, )] * 3
    assert [tuple(b.shape) for b in bbox_preds
            ] == [(1, 4, height // s, width_px // s) for s in strides]


def test_rtmdet_ins_head_and_metrics():
    cfg = load(INS_CONFIG)
    stock = get_config('mmdet::rtmdet/rtmdet-ins_tiny_8xb32-300e_coco.py')
    assert unscoped(cfg.model.bbox_head) == unscoped(stock.model.bbox_head)
    assert cfg.model.bbox_head.type == 'RTMDetInsSepBNHead'
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    assert unscoped(cfg.custom_hooks) == unscoped(stock.custom_hooks)
    loads = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    assert loads['LoadAnnotations']['with_mask'] is True


def documented_params():
    """``{config: params in M}`` from the table of docs/rtmdet.md.

    Our configs are linked as ``../configs/...``, stock RTMDet as mmdet's
    ``configs/rtmdet/...`` on GitHub (read here through ``mmdet::``).
    """
    text = (REPO / 'docs' / 'rtmdet.md').read_text(encoding='utf-8')
    table = {}
    for line in text.splitlines():
        link = re.search(r'\]\(([^)\s]*\.py)\)', line)
        params = re.search(r'\|\s*([\d.]+)M\s*\|', line)
        if not (line.startswith('|') and link and params):
            continue
        path = link.group(1)
        if path.startswith('../configs/'):
            config = str(REPO / path[len('../'):])
        else:  # mmdet's config on GitHub
            config = 'mmdet::rtmdet/' + path.rsplit('/', 1)[1]
        table[config] = float(params.group(1))
    return table


def test_docs_list_every_config():
    configs = documented_params()
    for name in [config_name(v) for v in VARIANTS] + [INS_CONFIG]:
        assert str(CONFIG_DIR / name) in configs, name
    for stock in ('tiny', 's'):
        assert f'mmdet::rtmdet/rtmdet_{stock}_8xb32-300e_coco.py' in configs


@pytest.mark.parametrize('config,params', sorted(documented_params().items()))
def test_params_match_docs(config, params):
    model = built(config)
    counted = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(counted - params) <= 0.005 * params, \
        f'{config}: {counted:.3f}M, docs/rtmdet.md {params}M'
