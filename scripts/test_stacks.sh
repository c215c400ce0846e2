#!/usr/bin/env bash
# Installs mmfasternet into the stacks its users have and runs a chosen part
# of the suite in each (`make test-stacks`; .ci/run calls it):
#
#   pinned          the pinned stack (requirements/) with mmcv built with its
#                   compiled ops (MMCV_OPS=compiled): the parity tests of
#                   the torchvision-backed ops against mmcv's own run here
#   openmmlab-2023  OpenMMLab's last released stack: torch 2.1.2, numpy
#                   1.26, mmcv-lite 2.1.0, mmengine 0.10.7, mmdet 3.3.0,
#                   mmsegmentation 1.2.2 (requirements/stacks/)
#   onedl           OneDL's fork (onedl-mmengine/-mmcv/-mmdetection/
#                   -mmsegmentation) on the pinned torch
#
# In each, `pip install -e .` with its dependencies must leave torch,
# torchvision and mmcv as they were. Then: backbone and weight layouts,
# every config builds, the ops, and a toy train + test of Mask R-CNN, RTMDet
# and Semantic FPN.
#
# Each venv is kept under $STACKS_DIR (default: .stacks/) with a stamp, so a
# second run only re-checks the install and runs the tests.
#
# Environment:
#   STACKS       which stacks to run (default: "pinned openmmlab-2023 onedl")
#   STACKS_DIR   where their venvs live (default: ./.stacks)
#   PYTHON       interpreter for new venvs (default: python3.11)
#   PYTEST_ARGS  extra pytest arguments
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACKS=${STACKS:-pinned openmmlab-2023 onedl}
STACKS_DIR=${STACKS_DIR:-$ROOT/.stacks}
PYTHON=${PYTHON:-python3.11}
cd "$ROOT"

# What each stack runs: the weights, every config, the ops, one toy train +
# test of each detector family and of Semantic FPN.
TESTS=(
  tests/test_backbone.py
  tests/test_weight_layouts.py
  tests/test_coco_configs.py
  tests/test_rtmdet_configs.py
  tests/test_ade_configs.py
  tests/test_mmcv_ops.py
  tests/test_mmcv_ops_models.py
  tests/test_upstream_fixes.py
  "tests/test_tools_detection.py::test_train_checkpoints_and_validates"
  "tests/test_tools_detection.py::test_test_evaluates_and_writes_out"
  "tests/test_tools_detection.py::test_mmdets_own_test_tool_without_compiled_ops"
  "tests/test_tools_rtmdet.py::test_ins_train_switches_pipeline_and_updates_ema"
  "tests/test_tools_rtmdet.py::test_ins_test_on_ema_checkpoint_prints_bbox_and_segm_map"
  "tests/test_tools_segmentation.py::test_train_validates"
  "tests/test_tools_segmentation.py::test_test_evaluates_checkpoint"
  "tests/test_tools_segmentation.py::test_mmsegs_own_test_tool_without_compiled_ops"
)

log() { printf '[stacks] %s\n' "$*" >&2; }
fail() { log "FAILED: $1"; exit 1; }

# The versions `pip install -e .` must not change.
guarded() {
  "$1" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null \
    | grep -iE '^(torch|torchvision|numpy|mmcv|mmcv-lite|onedl-mmcv|mmengine|onedl-mmengine)==' \
    | sort
}

make_stack() {
  local stack=$1 venv=$2
  local stamp=$venv/.stack-ready
  local want
  want=$(cat requirements/*.txt requirements/stacks/*.txt setup.py \
    scripts/test_stacks.sh | sha256sum | cut -c1-16)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    return 0
  fi
  rm -f "$stamp"
  local pip=("$venv/bin/python" -m pip --disable-pip-version-check)
  case $stack in
    pinned)
      VENV=$venv MMCV_OPS=compiled bash scripts/setup_env.sh ;;
    openmmlab-2023 | onedl)
      [[ -x $venv/bin/python ]] || "$PYTHON" -m venv "$venv" \
        || fail "could not create $venv"
      "${pip[@]}" install -q -r "requirements/stacks/$stack.txt" \
        || fail "pip could not install requirements/stacks/$stack.txt"
      if [[ -f requirements/stacks/$stack-nodeps.txt ]]; then
        "${pip[@]}" install -q --no-deps -r "requirements/stacks/$stack-nodeps.txt" \
          || fail "pip could not install requirements/stacks/$stack-nodeps.txt"
      fi ;;
    *) fail "unknown stack '$stack' (pinned, openmmlab-2023, onedl)" ;;
  esac
  echo "$want" > "$stamp"
}

failed=()
for stack in $STACKS; do
  venv=$STACKS_DIR/$stack
  start=$SECONDS
  log "== $stack: setting up $venv"
  make_stack "$stack" "$venv"
  py=$venv/bin/python
  before=$(guarded "$py")
  log "$stack: pip install -e . (with its dependencies)"
  "$py" -m pip install -q --disable-pip-version-check -e . \
    || fail "$stack: pip install -e . failed"
  after=$(guarded "$py")
  if [[ $before != "$after" ]]; then
    diff <(echo "$before") <(echo "$after") >&2 || true
    fail "$stack: pip install -e . changed the packages above"
  fi
  log "$stack: install left these as they were: $(echo "$after" | tr '\n' ' ')"
  "$py" -m mmfasternet
  log "$stack: set-up $((SECONDS - start)) s; running the stack tests"
  # shellcheck disable=SC2086
  if ! "$py" -m pytest -q -rs "${TESTS[@]}" ${PYTEST_ARGS:-}; then
    failed+=("$stack")
  fi
  log "$stack: done in $((SECONDS - start)) s"
done
if ((${#failed[@]})); then
  fail "the stack tests failed on: ${failed[*]}"
fi
log "all stacks passed: $STACKS"
