"""Fixes for upstream packages, each applied only where the package is
broken, so that a working installation is left exactly as it is.

* OneDL's mmengine maps the config scope ``mmseg::`` to the distribution
  ``mmsegmentation``, which OneDL names ``onedl-mmsegmentation``; every
  config that inherits an mmseg base (``mmseg::_base_/...``) then fails to
  load with "mmsegmentation is not installed". :func:`fix_mmseg_scope`
  points the scope at the distribution that is installed.
"""
import importlib.metadata

__all__ = ['fix_mmseg_scope']


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def fix_mmseg_scope() -> bool:
    """Make ``mmseg::`` config bases resolve with OneDL's mmsegmentation.

    Changes mmengine's scope-to-distribution table only where
    ``mmsegmentation`` is not installed and ``onedl-mmsegmentation`` is.

    Returns:
        bool: Whether the table was changed.
    """
    from mmengine.config import utils as config_utils
    table = getattr(config_utils, 'MODULE2PACKAGE', None)
    if (table is None or table.get('mmseg') != 'mmsegmentation'
            or _installed('mmsegmentation')
            or not _installed('onedl-mmsegmentation')):
        return False
    table['mmseg'] = 'onedl-mmsegmentation'
    return True
