#!/usr/bin/env bash
# Training on a Slurm cluster, one task per GPU.
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py opts]
# Environment (defaults in brackets):
#   GPUS [8]            total tasks
#   GPUS_PER_NODE [8]   tasks per node
#   CPUS_PER_TASK [5]   CPU cores per task (data loading workers)
#   GRES [gpu:$GPUS_PER_NODE]  generic resources; set GRES= on CPU-only
#                       partitions (the tasks then train over gloo)
#   SRUN_ARGS [""]      extra srun arguments
#   PYTHON [python]     interpreter
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py options...]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
GRES=${GRES-gpu:${GPUS_PER_NODE}}
SRUN_ARGS=${SRUN_ARGS:-}
PYTHON=${PYTHON:-python}

gres_arg=()
[[ -n $GRES ]] && gres_arg=(--gres="$GRES")

# shellcheck disable=SC2086  # SRUN_ARGS is a list of words on purpose
srun -p "$PARTITION" \
  --job-name="$JOB_NAME" \
  "${gres_arg[@]}" \
  --ntasks="$GPUS" \
  --ntasks-per-node="$GPUS_PER_NODE" \
  --cpus-per-task="$CPUS_PER_TASK" \
  --kill-on-bad-exit=1 \
  $SRUN_ARGS \
  "$PYTHON" -u "$(dirname "$0")/train.py" "$CONFIG" \
  --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"
