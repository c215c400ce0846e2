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
    # torch >= 2.6: safe checkpoint loading relies on weights_only's
    # allow-list API (torch.serialization.add_safe_globals); torch 2.6 needs
    # Python >= 3.9.
    python_requires='>=3.9',
    install_requires=['mmengine>=0.10.0', 'mmcv>=2.0.0,<2.2.0', 'torch>=2.6'],
    extras_require={
        'full': read_requirements('runtime'),
        'deploy': read_requirements('deploy'),
        'tests': read_requirements('tests') + read_requirements('lint'),
    },
    zip_safe=False,
)
