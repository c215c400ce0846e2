"""Packaging for mmfasternet: the FasterNet backbone for MMDetection and
MMSegmentation."""
import os.path as osp
from setuptools import find_packages, setup


def read_version() -> str:
    """Read ``__version__`` from ``mmfasternet/version.py`` (no import)."""
    scope = {}
    version_file = osp.join(osp.dirname(__file__), 'mmfasternet', 'version.py')
    with open(version_file) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt``."""
    path = osp.join(osp.dirname(__file__), 'requirements', f'{name}.txt')
    with open(path) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


setup(
    name='mmfasternet',
    version=read_version(),
    description='FasterNet (CVPR 2023) backbone for MMDetection 3.x and '
    'MMSegmentation 1.x',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'demo')),
    python_requires='>=3.9',
    # Nothing here may replace a user's torch or mmcv: torch >= 2.1 is what
    # the code needs (newer APIs are guarded), torchvision's NMS/RoIAlign
    # kernels serve mmcv's ops when mmcv has none (mmfasternet/mmcv_ops.py).
    # mmengine/mmcv/mmdet/mmseg are not declared: they come from OpenMMLab
    # (mmengine, mmcv or mmcv-lite, mmdet, mmsegmentation) or from OneDL's
    # fork (onedl-mmengine, onedl-mmcv, ...), whichever the user has; the
    # extras below install one of them.
    install_requires=[
        'torch>=2.1', 'torchvision>=0.16', 'numpy', 'safetensors',
        'timm>=1.0.16'
    ],
    extras_require={
        # then: pip install --no-deps -r requirements/openmmlab.txt (mmdet
        # declares the `mmcv` distribution, which would build it from source)
        'openmmlab': ['mmengine>=0.10.0', 'mmcv-lite>=2.0.0,<2.2.0'],
        'onedl': [
            'onedl-mmengine', 'onedl-mmcv', 'onedl-mmdetection',
            'onedl-mmsegmentation'
        ],
        'deploy':
        read_requirements('deploy'),
        'tests':
        read_requirements('tests') + read_requirements('lint'),
    },
    zip_safe=False,
)
