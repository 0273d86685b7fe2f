#!/usr/bin/env bash
# The prepared GPU check (docs/gpu_check.md): installs from wheels/ beside this script, then
# GRPO plain and under DeepSpeed ZeRO-2 on one GPU, then the gpu tests; one JSON line at the end.
#   bash benchmarks/gpu_check.sh            # on the GPU machine
#   bash benchmarks/gpu_check.sh --cpu      # CPU-size dry path (or GPU_CHECK_CPU=1)
# PYTHON picks the interpreter (default: python3 on PATH, e.g. the active virtual environment).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
exec "$PY" "$HERE/gpu_check.py" --python "$(command -v "$PY")" "$@"
