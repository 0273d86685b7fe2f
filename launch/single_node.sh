#!/usr/bin/env bash
# One node, N processes (GPUs):  launch/single_node.sh RECIPE NPROC [ACCEL] [KEY=VALUE ...]
# ACCEL: zero2 (default), zero3, zero3_offload, multi_gpu. Mixed precision is the recipe's bf16/fp16.
set -euo pipefail
recipe=$1; nproc=$2; shift 2
accel=zero2
if [[ $# -gt 0 && "$1" != *=* ]]; then accel=$1; shift; fi
exec rl-reason launch "$recipe" "$@" --accelerate-config "$accel" --processes-per-machine "$nproc"
