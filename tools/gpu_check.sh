#!/usr/bin/env bash
# The GPU check, in one run on a CUDA machine: mmcv's CUDA ops built through
# scripts/build_mmcv.sh, the CUDA tests, AMP training of the toy demo, and
# the GPU benchmarks (the paper's Table 1 / 3 / 4 protocols, fast-inference
# paths). Each step's output goes to $OUT/gpu_check.log, a line per step to
# $OUT/summary.txt, and the benchmarks' JSON / markdown to
# work_dirs/gpu/, packed into $OUT/results.tgz after every step, so that
# what was measured survives a later failure or the deadline.
#
# The mmcv build runs in the background on all but 4 CPU cores while the
# steps that need no compiled op (backbone tests and benchmarks) run on
# the other 4; the detector steps wait for it.
#
#   bash tools/gpu_check.sh                  # every step, in this order
#   bash tools/gpu_check.sh demo compile     # only these steps
#
# Environment:
#   PY                   python with a CUDA build of torch (default: python3;
#                        in a project venv: .venv/bin/python)
#   OUT                  where the log, summary and results.tgz go
#                        (default: work_dirs/gpu_check)
#   GPU_CHECK_DEADLINE   seconds after which no step starts and running
#                        ones are stopped (default: 3000)
#   WHEELS               a folder of wheels to install first with
#                        `pip install --target` (a machine without a package
#                        index; see docs/gpu.md)
#   MMCV_SDIST           a local mmcv source tarball (no download)
#   TORCH_CUDA_ARCH_LIST GPU architectures of mmcv's ops (default: the GPU's)
#   GPU_CHECK_BUILD=0    skip the mmcv build (only steps that need no
#                        compiled op; timed steps then get every core)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PY:-python3}
OUT=${OUT:-$ROOT/work_dirs/gpu_check}
RESULTS=$ROOT/work_dirs/gpu
DEADLINE=${GPU_CHECK_DEADLINE:-3000}
mkdir -p "$OUT" "$RESULTS"
LOG=$OUT/gpu_check.log
SUMMARY=$OUT/summary.txt
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
export FORCE_CUDA=1
export MMFASTERNET_CACHE=${MMFASTERNET_CACHE:-$ROOT/.gpu_cache}
start=$SECONDS

note() { echo "[$((SECONDS - start)) s] $*" | tee -a "$SUMMARY"; }
pack() {
  tar -czf "$OUT/results.partial" --exclude='*.pth' --exclude=data \
    -C "$ROOT/work_dirs" gpu 2>/dev/null \
    && mv "$OUT/results.partial" "$OUT/results.tgz"
}
left() { echo $((DEADLINE - (SECONDS - start))); }

# step NAME CMD...: run unless deselected or out of time; never aborts.
step() {
  local name=$1
  shift
  if [[ -n $SELECTED && " $SELECTED " != *" $name "* ]]; then return 0; fi
  if (($(left) < 20)); then
    note "$name skipped: deadline"
    return 0
  fi
  local t=$SECONDS
  echo "===== [$((SECONDS - start)) s] $name: $*" >>"$LOG"
  timeout "$(left)" "$@" >>"$LOG" 2>&1
  local rc=$?
  note "$name rc=$rc in $((SECONDS - t)) s"
  pack
}
SELECTED="$*"

# ---- the stack --------------------------------------------------------------
if [[ -n ${WHEELS:-} ]]; then
  SITE=${SITE:-/tmp/mmfasternet-site}
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target "$SITE" "$WHEELS"/*.whl >>"$LOG" 2>&1 \
    || { note "FAILED: installing $WHEELS"; exit 1; }
  export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
  export PIP_INSTALL_TARGET=$SITE
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
if [[ -n ${MMCV_SDIST:-} ]]; then
  # mmcv's Python code (no compiled ops) for the steps that do not need
  # them, until the build below installs the real one in front of it.
  src=$(mktemp -d)
  tar -xzf "$MMCV_SDIST" -C "$src"
  export PYTHONPATH=$PYTHONPATH:$(ls -d "$src"/mmcv-*)
fi
"$PY" - >>"$SUMMARY" 2>&1 <<'PYEOF' || { note "FAILED: the stack does not import"; exit 1; }
import torch, mmengine, mmdet, mmseg, timm, mmfasternet
from mmfasternet.device_options import gpu_banner
print(gpu_banner(torch.device('cuda')))
print('mmengine', mmengine.__version__, 'mmdet', mmdet.__version__,
      'mmseg', mmseg.__version__, 'timm', timm.__version__)
PYEOF

# ---- mmcv's CUDA ops, in the background -------------------------------------
cores=$(nproc)
if [[ ${GPU_CHECK_BUILD:-1} == 0 ]]; then
  bench=()
elif ((cores >= 8)) && command -v taskset >/dev/null; then
  build_cpus="0-$((cores - 5))"
  bench=(taskset -c "$((cores - 4))-$((cores - 1))")
  jobs=$((cores - 4))
else
  build_cpus="0-$((cores - 1))"
  bench=()
  jobs=$cores
fi
mmcv_log=$OUT/mmcv_build.log
build_started=$SECONDS
build_pid=
if [[ ${GPU_CHECK_BUILD:-1} != 0 ]]; then
  (taskset -c "$build_cpus" env PY="$PY" MAX_JOBS=$jobs \
    bash scripts/build_mmcv.sh >"$mmcv_log" 2>&1; echo $? >"$OUT/mmcv.rc") &
  build_pid=$!
  note "mmcv build started on CPUs $build_cpus ($jobs jobs); timed steps on the rest"
fi

# ---- steps that need no compiled op (beside the build) ----------------------
step cuda_tests "${bench[@]}" "$PY" -m pytest -q -rs -p no:cacheprovider \
  tests/test_cuda.py -k 'not detector and not train_tool and not nccl'
step table3 "${bench[@]}" "$PY" benchmarks/gpu_throughput.py --device cuda \
  --layout-study --out-dir "$RESULTS"
step batch1_graph "${bench[@]}" "$PY" benchmarks/gpu_throughput.py \
  --device cuda --batch-size 1 --cuda-graph --precisions fp32 fp16 \
  --out-dir "$RESULTS"
step table1 "${bench[@]}" "$PY" benchmarks/operator_study.py --device cuda \
  --out-dir "$RESULTS"
step table1_fp16 "${bench[@]}" "$PY" benchmarks/operator_study.py \
  --device cuda --amp fp16 --out-dir "$RESULTS"
step mixers "${bench[@]}" "$PY" benchmarks/mixer_study.py --device cuda \
  --out-dir "$RESULTS"

# ---- mmcv ready: the detector steps -----------------------------------------
[[ -n $build_pid ]] && wait "$build_pid" && note "mmcv build rc=$(cat "$OUT/mmcv.rc" 2>/dev/null || echo '?') after $((SECONDS - build_started)) s: $(grep -E 'built and cached|using cached|FAILED|installed' "$mmcv_log" | tr '\n' ' ')"
step detector_tests "$PY" -m pytest -q -rs -p no:cacheprovider \
  tests/test_cuda.py -k 'detector or train_tool or nccl'
step table4 "$PY" tools/benchmark.py configs/mask_rcnn_fasternet_s_fpn_1x_coco.py \
  --mode detector --device cuda --cuda-graph --json "$RESULTS/table4_mask_rcnn_s.json"
step rtmdet "$PY" benchmarks/rtmdet_speed.py --device cuda --cuda-graph \
  --out-dir "$RESULTS"
step rtmdet_fp16 "$PY" benchmarks/rtmdet_speed.py --device cuda --amp fp16 \
  --cuda-graph --out-dir "$RESULTS"
step demo "$PY" tools/toy_demo.py --device cuda --amp fp16 \
  --data-root "$RESULTS/data" --work-dir "$RESULTS/demo"
step compile_b1 "$PY" benchmarks/gpu_throughput.py --device cuda --archs t0 s \
  --precisions fp16 --batch-size 1 --compile --cuda-graph \
  --out-dir "$RESULTS/compile_b1"
step compile "$PY" benchmarks/gpu_throughput.py --device cuda --archs t0 s \
  --precisions fp16 --compile --cuda-graph --out-dir "$RESULTS/compile_b32"
step table4_fp16 "$PY" tools/benchmark.py \
  configs/mask_rcnn_fasternet_s_fpn_1x_coco.py --mode detector --device cuda \
  --amp fp16 --cuda-graph --json "$RESULTS/table4_mask_rcnn_s_fp16.json"
step ghostnetv2 "$PY" benchmarks/backbone_comparison.py --device cuda \
  --out-dir "$RESULTS"
pack
note "done in $((SECONDS - start)) s"
