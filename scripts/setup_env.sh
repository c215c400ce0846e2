#!/usr/bin/env bash
# Creates (or completes) the project's virtual environment: the pinned
# PyTorch, mmcv 2.1.0 built from source with its compiled ops, mmengine,
# mmdet, mmsegmentation, timm, ONNX Runtime and OpenVINO, the test and lint
# tools, and mmfasternet itself (editable).
#
# Idempotent: once everything is installed a stamp file holding a hash of the
# requirements is written; a later run with the same requirements returns at
# once. A run that fails part-way leaves no stamp, so the next run resumes.
#
# Environment:
#   VENV               where to create the environment (default: ./.venv)
#   PYTHON             interpreter for a new venv (default: python3.11)
#   MMFASTERNET_CACHE  wheel cache for the mmcv build (default: ~/.cache/mmfasternet)
#   MAX_JOBS           parallel compile jobs for mmcv (default: nproc)
#   FORCE_CUDA=1       build mmcv's CUDA ops even if no GPU is visible (needs nvcc)
#   TORCH_CUDA_ARCH_LIST  GPU architectures of the CUDA ops (e.g. "8.0;9.0")
# The mmcv build itself is scripts/build_mmcv.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
CACHE=${MMFASTERNET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmfasternet}
STAMP=$VENV/.mmfasternet-setup
cd "$ROOT"

log() { printf '[setup] %s\n' "$*" >&2; }
fail() {
  log "FAILED: $1"
  log "Nothing was marked complete; fix the cause and run 'make test' (or scripts/setup_env.sh) again."
  exit 1
}

want=$(cat requirements/*.txt setup.py scripts/setup_env.sh scripts/build_mmcv.sh scripts/patch_mmcv_cxx_std.py | sha256sum | cut -c1-16)
if [[ -x $VENV/bin/python && -f $STAMP && $(cat "$STAMP") == "$want" ]]; then
  exit 0
fi
rm -f "$STAMP"
start=$SECONDS

if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  command -v "$PYTHON" >/dev/null || fail "$PYTHON not found (set PYTHON=/path/to/python3.11)"
  log "creating $VENV with $PYTHON"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || fail "could not create the venv"
fi
PY=$VENV/bin/python
PIP=("$PY" -m pip --disable-pip-version-check)

log "installing PyTorch and build tools (requirements/torch.txt, build.txt)"
"${PIP[@]}" install -q -r requirements/torch.txt -r requirements/build.txt \
  || fail "pip could not install PyTorch / build tools"

# ---- mmcv with compiled ops (CPU, or CUDA where a GPU / FORCE_CUDA=1) --------
PY="$PY" bash scripts/build_mmcv.sh || fail "mmcv with compiled ops (see above)"

# ---- the rest of the stack and the package ---------------------------------
log "installing mmengine, mmdet, mmsegmentation, timm, ONNX engines, test and lint tools"
"${PIP[@]}" install -q -r requirements/runtime.txt -r requirements/deploy.txt \
  -r requirements/tests.txt -r requirements/lint.txt -r requirements/torch.txt \
  || fail "pip could not install requirements/runtime.txt"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e . || fail "could not install mmfasternet"
"$PY" -c 'import mmdet, mmseg, timm, onnxruntime, openvino, mmfasternet' || fail "the stack does not import"

echo "$want" > "$STAMP"
log "environment ready in $((SECONDS - start)) s: $VENV"
