"""Raise the C++ standard in mmcv's ``setup.py`` to what torch needs.

mmcv 2.1.0 hard-codes ``-std=c++17`` for torch > 1.12, while newer torch
headers (2.10+) require C++20. The standard torch itself asks for is read
from ``torch.utils.cpp_extension`` so this keeps working for older and newer
torch releases alike.

Usage: ``python scripts/patch_mmcv_cxx_std.py PATH/TO/mmcv/setup.py``
"""
import inspect
import re
import sys


def torch_cxx_standard() -> int:
    """Return the C++ standard (e.g. 17, 20) torch's extension builder uses."""
    from torch.utils import cpp_extension
    source = inspect.getsource(cpp_extension)
    found = [int(v) for v in re.findall(r"c\+\+(\d\d)'", source)]
    if not found:
        raise RuntimeError('could not find the C++ standard torch builds with')
    return max(found)


def patch(setup_py: str) -> int:
    """Rewrite every c++14/c++17 flag in ``setup_py`` to torch's standard."""
    std = torch_cxx_standard()
    with open(setup_py, encoding='utf-8') as f:
        text = f.read()
    if std > 17:
        text = re.sub(r'([-/]std[=:])c\+\+1[47]', rf'\g<1>c++{std}', text)
    with open(setup_py, 'w', encoding='utf-8') as f:
        f.write(text)
    return std


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f'mmcv setup.py: C++ standard set to c++{patch(sys.argv[1])}')
