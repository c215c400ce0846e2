"""The lint check OpenMMLab projects run (flake8, isort, yapf; settings in
setup.cfg), part of ``make test`` so that CI enforces it.

Fix what it reports with ``.venv/bin/isort <files>`` and
``.venv/bin/yapf -i <files>``; flake8's findings are fixed by hand.
"""
import pytest

from tool_runner import run_module

# Every Python file of the project (setup.py and these folders).
PYTHON_PATHS = ('setup.py', 'mmfasternet', 'tools', 'tests', 'configs',
                'benchmarks', 'demo', 'scripts')
CHECKS = {
    'flake8': ['flake8', *PYTHON_PATHS],
    'isort': ['isort', '--check-only', '--diff', *PYTHON_PATHS],
    'yapf': ['yapf', '--diff', '--recursive', *PYTHON_PATHS],
}


@pytest.mark.parametrize('tool', list(CHECKS))
def test_lint_is_clean(tool):
    run_module(*CHECKS[tool], timeout=600)
