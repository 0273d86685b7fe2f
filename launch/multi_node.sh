#!/usr/bin/env bash
# One command per node; run it on every node with the same arguments:
#   NNODES=2 NODE_RANK=<0|1> MASTER_ADDR=<rank-0 address> NPROC_PER_NODE=8 launch/multi_node.sh RECIPE [KEY=VALUE ...]
# A recipe with vllm_mode: server also needs its vLLM node: set VLLM_HOST=<its address> on every
# node and run NODE_RANK=$NNODES there (rank N serves, ranks 0..N-1 train).
# MASTER_PORT defaults to 29500; ACCEL to zero2 (docs/distributed.md).
set -euo pipefail
: "${NNODES:?set NNODES}" "${NODE_RANK:?set NODE_RANK}" "${MASTER_ADDR:?set MASTER_ADDR}"
recipe=$1; shift
exec rl-reason launch "$recipe" "$@" \
  --accelerate-config "${ACCEL:-zero2}" \
  --num-machines "$NNODES" --machine-rank "$NODE_RANK" \
  --processes-per-machine "${NPROC_PER_NODE:-1}" \
  --main-process-ip "$MASTER_ADDR" --main-process-port "${MASTER_PORT:-29500}" \
  ${VLLM_HOST:+--vllm-host "$VLLM_HOST"}
