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

want=$(cat requirements/*.txt setup.py scripts/setup_env.sh scripts/patch_mmcv_cxx_std.py | sha256sum | cut -c1-16)
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

# ---- mmcv with compiled ops -------------------------------------------------
mmcv_spec=$(grep -E '^mmcv==' requirements/mmcv.txt)
mmcv_version=${mmcv_spec#mmcv==}
mmcv_ok() {
  "$PY" - "$mmcv_version" <<'PYEOF' 2>/dev/null
import sys
import mmcv
from mmcv.ops import nms, RoIAlign  # noqa: F401  (needs the compiled _ext)
sys.exit(0 if mmcv.__version__ == sys.argv[1] else 1)
PYEOF
}
if mmcv_ok; then
  log "mmcv $mmcv_version with ops already installed"
else
  key=$("$PY" - <<'PYEOF'
import os, sys, torch
cuda = torch.cuda.is_available() or os.getenv('FORCE_CUDA', '0') == '1'
flavour = f'cu{torch.version.cuda}' if cuda and torch.version.cuda else 'cpu'
print(f'torch{torch.__version__}-py{sys.version_info.major}{sys.version_info.minor}-{flavour}')
PYEOF
  ) || fail "torch does not import in $VENV"
  wheel_dir=$CACHE/wheels/mmcv-$mmcv_version-$key
  wheel=$(ls "$wheel_dir"/mmcv-*.whl 2>/dev/null | head -n1 || true)
  if [[ -z $wheel ]]; then
    log "building $mmcv_spec with ops for $key (about 10 minutes on 2 cores, once per machine)"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation \
      -d "$build" "$mmcv_spec" || fail "could not download the $mmcv_spec source"
    tar -xzf "$build"/mmcv-*.tar.gz -C "$build" || fail "could not unpack the mmcv source"
    src=$(ls -d "$build"/mmcv-*/)
    "$PY" scripts/patch_mmcv_cxx_std.py "$src/setup.py" || fail "could not patch mmcv's setup.py"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" wheel --no-deps \
      --no-build-isolation -w "$build/dist" "$src" > "$build/build.log" 2>&1 \
      || { tail -n 40 "$build/build.log" >&2; fail "mmcv build (full log above, last 40 lines); retry with MAX_JOBS=1 if the compiler ran out of memory"; }
    mkdir -p "$wheel_dir"
    built=$(ls "$build"/dist/mmcv-*.whl)
    cp "$built" "$wheel_dir/.partial" && mv "$wheel_dir/.partial" "$wheel_dir/$(basename "$built")"
    wheel=$wheel_dir/$(basename "$built")
    log "cached $wheel"
  else
    log "using cached $wheel"
  fi
  "${PIP[@]}" install -q "$wheel" -r requirements/torch.txt || fail "could not install $wheel"
  mmcv_ok || fail "mmcv installed but its ops do not import; delete $wheel_dir and retry"
fi

# ---- the rest of the stack and the package ---------------------------------
log "installing mmengine, mmdet, mmsegmentation, timm, ONNX engines, test and lint tools"
"${PIP[@]}" install -q -r requirements/runtime.txt -r requirements/deploy.txt \
  -r requirements/tests.txt -r requirements/lint.txt -r requirements/torch.txt \
  || fail "pip could not install requirements/runtime.txt"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e . || fail "could not install mmfasternet"
"$PY" -c 'import mmdet, mmseg, timm, onnxruntime, openvino, mmfasternet' || fail "the stack does not import"

echo "$want" > "$STAMP"
log "environment ready in $((SECONDS - start)) s: $VENV"
