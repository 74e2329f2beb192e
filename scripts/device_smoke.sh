#!/usr/bin/env bash
# On a GPU machine: builds scripts/device_smoke.c with nn/'s CUDA path and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
CUDA=${CUDA_HOME:-/usr/local/cuda}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
gcc -O2 -std=gnu11 -Wno-format-truncation -DTAL_HAVE_CUDA -I. -I"$CUDA/include" nn/arena.c nn/err.c nn/tensor.c \
    scripts/device_smoke.c -L"$CUDA/lib64" -lcudart -o /tmp/device_smoke
/tmp/device_smoke
