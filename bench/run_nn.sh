#!/usr/bin/env bash
# bench/run_nn.sh BUILD_DIR: linear (Swin-T stage-1 shapes) and window attention forward +
# backward, beside the bare sgemm ceiling measured in the same run, at 1 and 2 threads; run
# twice: every product on OpenBLAS (RE2TAL_THIN_GEMM=0), then with the thin-product kernel
# (nn/gemm_thin.c, AVX-512 CPUs) taking the shapes it takes.
set -euo pipefail
build="$1"
echo "-- OpenBLAS only (RE2TAL_THIN_GEMM=0)"
RE2TAL_THIN_GEMM=0 "$build/bench/bench_nn_linear" ${BENCH_NN_THREADS:-1 2}
echo "-- with the thin-product kernel (default)"
"$build/bench/bench_nn_linear" ${BENCH_NN_THREADS:-1 2}
