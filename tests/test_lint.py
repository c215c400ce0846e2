"""The lint check OpenMMLab projects run (flake8, isort, yapf; settings in
setup.cfg), part of ``make test`` so that CI enforces it.

Fix what it reports with ``.venv/bin/isort <files>`` and
``.venv/bin/yapf -i <files>``; flake8's findings are fixed by hand.
"""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Every Python file of the project (setup.py and these folders).
PYTHON_PATHS = ('setup.py', 'mmfasternet', 'tools', 'tests', 'configs',
                'benchmarks', 'demo', 'scripts')
CHECKS = {
    'flake8': ['-m', 'flake8', *PYTHON_PATHS],
    'isort': ['-m', 'isort', '--check-only', '--diff', *PYTHON_PATHS],
    'yapf': ['-m', 'yapf', '--diff', '--recursive', *PYTHON_PATHS],
}


@pytest.mark.parametrize('tool', list(CHECKS))
def test_lint_is_clean(tool):
    proc = subprocess.run([sys.executable, *CHECKS[tool]],
                          cwd=str(REPO),
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True)
    assert proc.returncode == 0, f'{tool} found:\n{proc.stdout[-8000:]}'
