#!/usr/bin/env bash
# Creates (or completes) the project's virtual environment: the pinned
# PyTorch, mmcv 2.1.0, mmengine, mmdet, mmsegmentation, timm, ONNX Runtime and
# OpenVINO, the test and lint tools, and mmfasternet itself (editable).
#
# mmcv comes in one of two ways (MMCV_OPS):
#   lite      (default) mmcv-lite, a pure-Python wheel: no compiler, about a
#             minute. NMS and RoIAlign, the only compiled ops the configs
#             reach, run on torchvision's kernels (mmfasternet/mmcv_ops.py).
#   compiled  mmcv built from source with its compiled ops (CPU, or CUDA
#             where a GPU or FORCE_CUDA=1 and nvcc), cached as a wheel:
#             scripts/build_mmcv.sh. Minutes on 2 cores the first time.
# Switching replaces the one mmcv with the other in the same venv.
#
# Idempotent: once everything is installed a stamp file holding a hash of the
# requirements and MMCV_OPS is written; a later run with the same ones
# returns at once. A run that fails part-way leaves no stamp, so the next
# run resumes.
#
# Environment:
#   VENV               where to create the environment (default: ./.venv)
#   PYTHON             interpreter for a new venv (default: python3.11)
#   MMCV_OPS           lite (default) or compiled, see above
#   MMFASTERNET_CACHE  wheel cache for the mmcv build (default: ~/.cache/mmfasternet)
#   MAX_JOBS           parallel compile jobs for mmcv (default: nproc)
#   FORCE_CUDA=1       build mmcv's CUDA ops even if no GPU is visible (needs nvcc)
#   TORCH_CUDA_ARCH_LIST  GPU architectures of the CUDA ops (e.g. "8.0;9.0")
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

MMCV_OPS=${MMCV_OPS:-lite}
case $MMCV_OPS in
  lite | compiled) ;;
  *) fail "MMCV_OPS=$MMCV_OPS: use lite (mmcv-lite, ops from torchvision) or compiled (build mmcv's ops)" ;;
esac
want=$( (echo "$MMCV_OPS"; cat requirements/*.txt setup.py scripts/setup_env.sh scripts/build_mmcv.sh scripts/patch_mmcv_cxx_std.py) | sha256sum | cut -c1-16)
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
installed() { "${PIP[@]}" show -q "$1" >/dev/null 2>&1; }

log "installing PyTorch, mmengine, timm, the ONNX engines, test and lint tools"
"${PIP[@]}" install -q -r requirements/torch.txt -r requirements/runtime.txt \
  -r requirements/deploy.txt -r requirements/tests.txt -r requirements/lint.txt \
  || fail "pip could not install requirements/{torch,runtime,deploy,tests,lint}.txt"

# ---- mmcv: mmcv-lite, or mmcv with compiled ops ------------------------------
# Both distributions own the same `mmcv/` folder: remove the other first.
if [[ $MMCV_OPS == lite ]]; then
  reinstall=()
  if installed mmcv; then
    log "replacing mmcv (compiled ops) with mmcv-lite"
    "${PIP[@]}" uninstall -q -y mmcv || fail "could not uninstall mmcv"
    reinstall=(--force-reinstall --no-deps)
  fi
  log "installing $(grep -E '^mmcv-lite' requirements/mmcv.txt) (no compiler needed)"
  "${PIP[@]}" install -q "${reinstall[@]}" -r requirements/mmcv.txt \
    || fail "pip could not install requirements/mmcv.txt"
else
  "${PIP[@]}" install -q -r requirements/build.txt -r requirements/torch.txt \
    || fail "pip could not install the build tools (requirements/build.txt)"
  if installed mmcv-lite; then
    log "replacing mmcv-lite with mmcv built with compiled ops"
    "${PIP[@]}" uninstall -q -y mmcv-lite || fail "could not uninstall mmcv-lite"
  fi
  PY="$PY" bash scripts/build_mmcv.sh || fail "mmcv with compiled ops (see above)"
fi

# ---- mmdet, mmseg (their dependencies are in runtime.txt) and the package ---
"${PIP[@]}" install -q --no-deps -r requirements/openmmlab.txt \
  || fail "pip could not install requirements/openmmlab.txt"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e . || fail "could not install mmfasternet"
"$PY" -c 'import mmdet, mmseg, timm, onnxruntime, openvino, mmfasternet' || fail "the stack does not import"
backend=$("$PY" -m mmfasternet | tail -n 1) || fail "mmcv's ops are not usable (above)"
log "$backend"

echo "$want" > "$STAMP"
log "environment ready in $((SECONDS - start)) s: $VENV"
