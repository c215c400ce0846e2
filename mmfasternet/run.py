"""Run a script with mmfasternet imported first:
``python -m mmfasternet.run SCRIPT [ARGS ...]``.

mmdet's own ``tools/train.py`` and ``tools/test.py`` import ``mmdet.engine``,
which imports ``mmcv.ops``, before they read the config and its
``custom_imports``. Where mmcv has no compiled ops (mmcv-lite), that import
fails unless mmfasternet's torchvision-backed ``mmcv._ext`` is already in
place, so run them through this module (``$MMDET_TOOLS``: the installed
mmdet's ``.mim/tools`` folder)::

    python -m mmfasternet.run $MMDET_TOOLS/test.py CONFIG CKPT

mmseg's tools import only mmengine before reading the config and need no
such help; neither does anything with compiled mmcv ops.
"""
import runpy
import sys

import mmfasternet  # noqa: F401  (mmcv._ext from torchvision if needed)


def main(argv=None) -> None:
    """Run ``argv[0]`` as ``__main__`` with ``argv`` as its ``sys.argv``.

    Args:
        argv (list[str], optional): The script and its arguments. Defaults
            to ``sys.argv[1:]``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        raise SystemExit('usage: python -m mmfasternet.run SCRIPT [ARGS ...]')
    sys.argv = argv
    runpy.run_path(argv[0], run_name='__main__')


if __name__ == '__main__':
    main()
