#!/usr/bin/env bash
# Builds mmcv (the version in requirements/mmcv-compiled.txt) from source with its
# compiled ops, for the interpreter $PY, caches the wheel and installs it.
# scripts/setup_env.sh calls it; a GPU machine can call it alone.
#
# CPU or CUDA: the CUDA ops are built when torch sees a GPU or FORCE_CUDA=1
# (nvcc must be on PATH or in CUDA_HOME). TORCH_CUDA_ARCH_LIST (e.g. "9.0",
# "8.0;8.6;9.0") picks the GPU architectures; without it PyTorch builds for
# the visible GPU. The wheel cache key holds the torch, Python and CUDA
# versions and the architectures, so CPU and CUDA wheels never mix.
#
# Environment:
#   PY                 interpreter to build and install for (required)
#   MMFASTERNET_CACHE  wheel cache (default: ~/.cache/mmfasternet)
#   MAX_JOBS           parallel compile jobs (default: nproc)
#   FORCE_CUDA=1       build the CUDA ops even if no GPU is visible
#   TORCH_CUDA_ARCH_LIST  CUDA architectures to build for
#   MMCV_SDIST         a local mmcv-X.tar.gz to build instead of downloading
#   PIP_INSTALL_TARGET install with `pip install --target DIR` (a machine
#                      whose Python is read-only or shared)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${PY:?set PY to the python to build mmcv for}"
CACHE=${MMFASTERNET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmfasternet}
PIP=("$PY" -m pip --disable-pip-version-check)
log() { printf '[mmcv] %s\n' "$*" >&2; }
fail() { log "FAILED: $1"; exit 1; }

mmcv_spec=$(grep -E '^mmcv==' "$ROOT/requirements/mmcv-compiled.txt")
mmcv_version=${mmcv_spec#mmcv==}
want_cuda=$("$PY" -c 'import os, torch; print(int(bool(torch.version.cuda) and (torch.cuda.is_available() or os.getenv("FORCE_CUDA", "0") == "1")))') \
  || fail "torch does not import with $PY"

mmcv_ok() {
  "$PY" - "$mmcv_version" "$want_cuda" <<'PYEOF' 2>/dev/null
import sys
import mmcv
from mmcv.ops import nms, RoIAlign  # noqa: F401  (needs the compiled _ext)
ok = mmcv.__version__ == sys.argv[1]
if sys.argv[2] == '1':  # the CUDA kernels must be in the extension
    from mmcv.ops import get_compiling_cuda_version
    ok = ok and get_compiling_cuda_version() not in ('not available', '')
sys.exit(0 if ok else 1)
PYEOF
}
if mmcv_ok; then
  log "mmcv $mmcv_version with ops already installed"
  exit 0
fi

key=$("$PY" - "$want_cuda" <<'PYEOF'
import os, sys, torch
flavour = 'cpu'
if sys.argv[1] == '1':
    archs = os.getenv('TORCH_CUDA_ARCH_LIST', '')
    if not archs and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        archs = f'{major}.{minor}'
    archs = archs.replace(';', '_').replace(' ', '_').replace('+', 'p') or 'default'
    flavour = f'cu{torch.version.cuda}-sm{archs}'
print(f'torch{torch.__version__}-py{sys.version_info.major}{sys.version_info.minor}-{flavour}')
PYEOF
) || fail "torch does not import with $PY"
wheel_dir=$CACHE/wheels/mmcv-$mmcv_version-$key
wheel=$(ls "$wheel_dir"/mmcv-*.whl 2>/dev/null | head -n1 || true)
if [[ -z $wheel ]]; then
  if [[ $want_cuda == 1 ]]; then
    command -v nvcc >/dev/null || [[ -x ${CUDA_HOME:-/usr/local/cuda}/bin/nvcc ]] \
      || fail "CUDA ops wanted but nvcc is not on PATH nor in CUDA_HOME; install the CUDA toolkit matching torch ($("$PY" -c 'import torch; print(torch.version.cuda)')) or build for CPU without FORCE_CUDA"
    log "building $mmcv_spec with CUDA ops for $key (TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-visible GPU}); about 5 minutes on 16 cores"
  else
    log "building $mmcv_spec with CPU ops for $key (about 10 minutes on 2 cores, once per machine)"
  fi
  start=$SECONDS
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  if [[ -n ${MMCV_SDIST:-} ]]; then
    cp "$MMCV_SDIST" "$build/" || fail "could not read MMCV_SDIST=$MMCV_SDIST"
  else
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation \
      -d "$build" "$mmcv_spec" || fail "could not download the $mmcv_spec source"
  fi
  tar -xzf "$build"/mmcv-*.tar.gz -C "$build" || fail "could not unpack the mmcv source"
  src=$(ls -d "$build"/mmcv-*/)
  "$PY" "$ROOT/scripts/patch_mmcv_cxx_std.py" "$src/setup.py" || fail "could not patch mmcv's setup.py"
  if [[ $want_cuda == 1 ]]; then export FORCE_CUDA=1; fi
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" wheel --no-deps \
    --no-build-isolation -w "$build/dist" "$src" > "$build/build.log" 2>&1 \
    || { tail -n 40 "$build/build.log" >&2; fail "mmcv build (last 40 lines above); retry with MAX_JOBS=1 if the compiler ran out of memory"; }
  mkdir -p "$wheel_dir"
  built=$(ls "$build"/dist/mmcv-*.whl)
  cp "$built" "$wheel_dir/.partial" && mv "$wheel_dir/.partial" "$wheel_dir/$(basename "$built")"
  wheel=$wheel_dir/$(basename "$built")
  log "built and cached $wheel in $((SECONDS - start)) s"
else
  log "using cached $wheel"
fi
if [[ -n ${PIP_INSTALL_TARGET:-} ]]; then
  "${PIP[@]}" install -q --no-deps --no-index --upgrade --target "$PIP_INSTALL_TARGET" "$wheel" \
    || fail "could not install $wheel into $PIP_INSTALL_TARGET"
else
  "${PIP[@]}" install -q "$wheel" -r "$ROOT/requirements/torch.txt" || fail "could not install $wheel"
fi
if ! mmcv_ok; then
  # Say where the import of the compiled extension dies (e.g. a crash).
  "$PY" -X faulthandler -c 'import mmcv._ext' 2>&1 | tail -n 25 >&2 || true
  fail "mmcv installed but its ops do not import (above); delete $wheel_dir and retry"
fi
log "mmcv $mmcv_version with ops installed ($key)"
