"""Packaging for mmfasternet: the FasterNet backbone for MMDetection / MMSegmentation."""
import os.path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    """Read ``__version__`` from ``mmfasternet/version.py`` without importing."""
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'mmfasternet', 'version.py')) as f:
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
    python_requires='>=3.8',
    install_requires=['mmengine>=0.10.0', 'mmcv>=2.0.0,<2.2.0', 'torch>=1.8'],
    extras_require={
        'full': read_requirements('runtime'),
        'tests': read_requirements('tests'),
    },
    zip_safe=False,
)
