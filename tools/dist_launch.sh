#!/usr/bin/env bash
# The torchrun launch that tools/dist_train.sh and tools/dist_test.sh share:
# one process per GPU (or per CPU slot when CUDA is absent; they then talk
# over gloo), each running a tools/ script with --launcher pytorch.
#   bash tools/dist_launch.sh NUM_PROCS SCRIPT [script arguments...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
# PYTHON selects the interpreter (default: python).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 NUM_PROCS SCRIPT [script arguments...]" >&2
  exit 2
fi
NPROCS=$1
SCRIPT=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}

exec "$PYTHON" -m torch.distributed.run \
  --nnodes="$NNODES" \
  --node_rank="$NODE_RANK" \
  --master_addr="$MASTER_ADDR" \
  --master_port="$PORT" \
  --nproc_per_node="$NPROCS" \
  "$(dirname "$0")/$SCRIPT" "${@:3}" --launcher pytorch
