#!/usr/bin/env bash
# One command per node; run it on every node with the same arguments:
#   NNODES=2 NODE_RANK=<0|1> MASTER_ADDR=<rank-0 address> NPROC_PER_NODE=8 launch/multi_node.sh RECIPE [KEY=VALUE ...]
# MASTER_PORT defaults to 29500; ACCEL to zero3.
set -euo pipefail
: "${NNODES:?set NNODES}" "${NODE_RANK:?set NODE_RANK}" "${MASTER_ADDR:?set MASTER_ADDR}"
recipe=$1; shift
exec rl-reason launch "$recipe" "$@" \
  --accelerate-config "${ACCEL:-zero3}" \
  --num-machines "$NNODES" --machine-rank "$NODE_RANK" \
  --processes-per-machine "${NPROC_PER_NODE:-1}" \
  --main-process-ip "$MASTER_ADDR" --main-process-port "${MASTER_PORT:-29500}"
