#!/usr/bin/env bash
# The GPU check, in one run on a CUDA machine: the CUDA tests, AMP training
# of the toy demo, and the GPU benchmarks (the paper's Table 1 / 3 / 4
# protocols, fast-inference paths). Each step's output goes to
# $OUT/gpu_check.log, a line per step to $OUT/summary.txt, and the
# benchmarks' JSON / markdown to work_dirs/gpu/, packed into
# $OUT/results.tgz after every step, so that what was measured survives a
# later failure or the deadline.
#
# No compiler is needed: with mmcv-lite, the detectors' NMS and RoIAlign run
# on torchvision's CUDA kernels (mmfasternet/mmcv_ops.py); an mmcv with
# compiled CUDA ops is used where it is installed.
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
#                        index: scripts/gpu_wheels.sh fills one, ~11 MiB)
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
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
"$PY" - >>"$SUMMARY" 2>&1 <<'PYEOF' || { note "FAILED: the stack does not import"; exit 1; }
import torch, mmengine, mmdet, mmseg, timm, mmfasternet
from mmfasternet.device_options import gpu_banner
print(gpu_banner(torch.device('cuda')))
print('mmengine', mmengine.__version__, 'mmdet', mmdet.__version__,
      'mmseg', mmseg.__version__, 'timm', timm.__version__)
from mmfasternet.mmcv_ops import mmcv_ops_backend
print('mmcv ops:', mmcv_ops_backend())
PYEOF

# ---- the backbone ------------------------------------------------------------
step cuda_tests "$PY" -m pytest -q -rs -p no:cacheprovider \
  tests/test_cuda.py -k 'not detector and not train_tool and not nccl'
step table3 "$PY" benchmarks/gpu_throughput.py --device cuda \
  --layout-study --out-dir "$RESULTS"
step batch1_graph "$PY" benchmarks/gpu_throughput.py \
  --device cuda --batch-size 1 --cuda-graph --precisions fp32 fp16 \
  --out-dir "$RESULTS"
step table1 "$PY" benchmarks/operator_study.py --device cuda \
  --out-dir "$RESULTS"
step table1_fp16 "$PY" benchmarks/operator_study.py \
  --device cuda --amp fp16 --out-dir "$RESULTS"
step mixers "$PY" benchmarks/mixer_study.py --device cuda \
  --out-dir "$RESULTS"

# ---- the detectors -------------------------------------------------------------
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
