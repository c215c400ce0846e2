#!/usr/bin/env bash
# Downloads the wheels that a GPU machine without a package index needs on
# top of its own PyTorch, torchvision, timm, numpy, scipy, matplotlib and
# OpenCV: the pinned mmcv-lite, mmengine, mmdet, mmsegmentation and what they
# import that such an image lacks. About 10 MiB, pure Python or manylinux.
# tools/gpu_check.sh installs them with WHEELS=DIR (pip install --target).
#
#   bash scripts/gpu_wheels.sh [DIR]      # default DIR: .whl (git-ignored)
#
# Environment:
#   GPU_PYTHON  the GPU machine's Python version (default: 3.12)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$ROOT/.whl}
GPU_PYTHON=${GPU_PYTHON:-3.12}
cd "$ROOT"
pin() { grep -hE "^$1==" requirements/*.txt | head -n1; }

packages=(
  "$(pin mmcv-lite)" "$(pin mmengine)" "$(pin mmdet)" "$(pin mmsegmentation)"
  "$(pin setuptools)"  # pkg_resources, which mmengine 0.10.7 imports
  addict yapf platformdirs termcolor pycocotools shapely terminaltables
  prettytable wcwidth ftfy
)
mkdir -p "$DIR"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: \
  --python-version "$GPU_PYTHON" --implementation cp "${platforms[@]}" \
  -d "$DIR" "${packages[@]}"
echo "[gpu_wheels] $(ls "$DIR" | wc -l) wheels, $(du -sh "$DIR" | cut -f1) in $DIR"
