#!/usr/bin/env bash
# bench/run_nn.sh BUILD_DIR: linear (Swin-T stage-1 shapes) and window attention forward +
# backward, beside the bare sgemm ceiling measured in the same run, at 1 and 2 threads.
set -euo pipefail
build="$1"
"$build/bench/bench_nn_linear" ${BENCH_NN_THREADS:-1 2}
