#!/usr/bin/env bash
# bench/run_nn_conv.sh BUILD_DIR: convolutions (Swin patch embedding, ResNet3D bottleneck convs,
# ActionFormer conv1d) forward and backward beside the bare GEMM ceiling of the same products,
# at 1 and 2 threads.
set -euo pipefail
build="$1"
"$build/bench/bench_nn_conv" ${BENCH_NN_THREADS:-1 2}
