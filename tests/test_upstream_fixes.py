"""mmfasternet/upstream_fixes.py: each fix acts only where its package is
broken."""
from pathlib import Path

import pytest
from mmengine.config import utils as config_utils

from mmfasternet import upstream_fixes


@pytest.mark.parametrize('installed,changed', [
    ({'mmsegmentation'}, False),
    ({'onedl-mmsegmentation'}, True),
    ({'mmsegmentation', 'onedl-mmsegmentation'}, False),
    (set(), False),
])
def test_mmseg_scope_points_at_onedl_only_where_needed(monkeypatch, installed,
                                                       changed):
    table = dict(config_utils.MODULE2PACKAGE, mmseg='mmsegmentation')
    monkeypatch.setattr(config_utils, 'MODULE2PACKAGE', table)
    monkeypatch.setattr(upstream_fixes, '_installed',
                        lambda name: name in installed)
    assert upstream_fixes.fix_mmseg_scope() is changed
    expected = 'onedl-mmsegmentation' if changed else 'mmsegmentation'
    assert table['mmseg'] == expected
    assert upstream_fixes.fix_mmseg_scope() is False  # idempotent


def test_mmseg_scope_resolves_here():
    from mmengine.config import Config
    config = Path(__file__).resolve().parents[1] / 'configs' / \
        'fpn_fasternet_t0_ade20k_40k.py'
    cfg = Config.fromfile(config)
    assert cfg.model.backbone.type == 'FasterNet'
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
