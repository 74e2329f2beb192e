#!/usr/bin/env bash
# bench/run_nn.sh BUILD_DIR: linear (Swin-T stage-1 shapes) and window attention forward +
# backward, beside the bare sgemm ceiling measured in the same run, at 1 and 2 threads; run
# twice: every product on OpenBLAS (RE2TAL_GEMM=openblas), then on oneDNN (the default); then
# every product shape of a Swin-T step on one core, tal_gemm / OpenBLAS / dnnl_sgemm / oneDNN
# matmul (bench_nn_gemm_libs), and conv3d at the SlowFast shapes, nn/conv3d.c against oneDNN's
# convolution primitives (bench_nn_conv_libs), LayerNorm and softmax against oneDNN's
# (bench_nn_norm_libs).
set -euo pipefail
build="$1"
echo "-- OpenBLAS only (RE2TAL_GEMM=openblas)"
RE2TAL_GEMM=openblas "$build/bench/bench_nn_linear" ${BENCH_NN_THREADS:-1 2}
echo "-- oneDNN (default)"
"$build/bench/bench_nn_linear" ${BENCH_NN_THREADS:-1 2}
echo "-- which library for each product (one core)"
"$build/bench/bench_nn_gemm_libs"
echo "-- conv3d: nn/conv3d.c against oneDNN's primitives (one core)"
"$build/bench/bench_nn_conv_libs"
echo "-- LayerNorm, softmax: nn/ against oneDNN's primitives (one core)"
"$build/bench/bench_nn_norm_libs"
