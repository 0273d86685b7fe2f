#!/usr/bin/env bash
# One node, N processes (GPUs):  launch/single_node.sh RECIPE NPROC [ACCEL] [KEY=VALUE ...]
# ACCEL: zero2 (default), zero3, zero3_offload, multi_gpu.
set -euo pipefail
recipe=$1; nproc=$2; accel=${3:-zero2}; shift $(( $# >= 3 ? 3 : 2 ))
exec rl-reason launch "$recipe" "$@" --accelerate-config "$accel" --processes-per-machine "$nproc"
