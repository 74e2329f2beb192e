/* nn/gemm.c: matrix products on oneDNN's dnnl_sgemm (OpenBLAS with RE2TAL_GEMM=openblas). Rows
 * of C are split over the OpenMP threads, each calling a 1-thread sgemm: measured here that
 * beats the libraries' own threading on the Swin shapes. oneDNN against OpenBLAS and the
 * hand-written kernel it replaced (nn/gemm_thin.c), one core, every product shape a Swin-T step
 * makes: 1.8-2.7x OpenBLAS, 1.0-2.3x the thin kernel (bench/bench_nn_gemm_libs, bench/RESULTS.md
 * "peers"). */
#include "nn.h"
#include "cuda_ops.h"
#include "dispatch.h"
#include "sgemm.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many multiply-adds a split costs more (thread wake-up, packing B twice) than it
 * gains; each part keeps at least this many too. */
#define SPLIT_MIN_MACS (1 << 18)

static int threads_here(void) {
#ifdef _OPENMP
    if (!omp_in_parallel()) return omp_get_max_threads();
#endif
    return 1;
}

static int use_openblas(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("RE2TAL_GEMM");
        on = e && !strcmp(e, "openblas");
    }
    return on;
}

static void library_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                          float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                          float beta, float *C, int64_t ldc) {
    if (use_openblas()) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
                    (int)lda, B, (int)ldb, beta, C, (int)ldc);
        return;
    }
    dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda,
                                  B, ldb, beta, C, ldc);
    TAL_ASSERT_MSG(st == dnnl_success, "dnnl_sgemm %lld x %lld x %lld: status %d", (long long)M,
                   (long long)N, (long long)K, (int)st);
}

/* K = 0 (an empty sum) still applies beta, which not every BLAS build does, so it is done
 * here. oneDNN runs a call on omp_get_max_threads() threads of its own unless it is made
 * inside an active parallel region: outside one, the thread count is set to 1 for the call
 * (an ICV of the calling thread only). */
void tal_sgemm1(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        return;
    }
#ifdef _OPENMP
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (threads > 1) omp_set_num_threads(1);
#endif
    library_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#ifdef _OPENMP
    if (threads > 1) omp_set_num_threads(threads);
#endif
}

void tal_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc) {
    TAL_ASSERT(M >= 0 && N >= 0 && K >= 0);
    TAL_ASSERT_MSG(M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX,
                   "gemm %lld x %lld x %lld exceeds BLAS int", (long long)M, (long long)N,
                   (long long)K);
    if (M == 0 || N == 0) return;
    TAL_ASSERT(ldc >= N && lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N));
    int64_t macs = M * N * K;
    int threads = threads_here();
    if (threads > 1 && macs / threads < SPLIT_MIN_MACS) threads = (int)(macs / SPLIT_MIN_MACS);
    if (threads <= 1) {
        tal_sgemm1(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Rows of C when there are enough of them (each thread reads a slab of op(A) and all of B);
     * else columns (a few rows, many columns: e.g. a tiny batch through a wide layer). Rows of
     * op(A) are rows of A (no trans) or columns of A (trans), likewise columns of op(B). */
    int by_rows = M >= 8 * threads || M >= N;
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        int t = 0, nt = 1;
#endif
        if (by_rows) {
            int64_t r0 = M * t / nt, r1 = M * (t + 1) / nt;
            const float *a = trans_a ? A + r0 : A + r0 * lda;
            tal_sgemm1(trans_a, trans_b, r1 - r0, N, K, alpha, a, lda, B, ldb, beta,
                       C + r0 * ldc, ldc);
        } else {
            int64_t c0 = N * t / nt, c1 = N * (t + 1) / nt;
            const float *b = trans_b ? B + c0 * ldb : B + c0;
            tal_sgemm1(trans_a, trans_b, M, c1 - c0, K, alpha, A, lda, b, ldb, beta, C + c0, ldc);
        }
    }
}

static void bmm_cpu(tal_tensor c, tal_tensor a, tal_tensor b, int trans_a, int trans_b,
                    float alpha, float beta, int64_t nb, int64_t M, int64_t N, int64_t K) {
    int64_t ar = a.shape[a.ndim - 2], ac = a.shape[a.ndim - 1];
    int64_t br = b.shape[b.ndim - 2], bc = b.shape[b.ndim - 1];
    int threads = threads_here();
    if (threads > 1 && nb >= threads && M * N * K * nb >= SPLIT_MIN_MACS) {
        /* Whole products per thread: no split inside one (small window GEMMs lose to it). */
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t i = 0; i < nb; i++)
            tal_sgemm1(trans_a, trans_b, M, N, K, alpha, a.data + i * ar * ac, ac,
                       b.data + i * br * bc, bc, beta, c.data + i * M * N, N);
    } else {
        for (int64_t i = 0; i < nb; i++) /* few, large products: split each one's rows */
            tal_gemm(trans_a, trans_b, M, N, K, alpha, a.data + i * ar * ac, ac,
                     b.data + i * br * bc, bc, beta, c.data + i * M * N, N);
    }
}

void tal_bmm(tal_tensor c, tal_tensor a, tal_tensor b, int trans_a, int trans_b, float alpha,
             float beta) {
    TAL_ASSERT(a.ndim == b.ndim && a.ndim == c.ndim && (a.ndim == 2 || a.ndim == 3));
    tal_device dev = OP_DEVICE(c, a, b);
    int three = a.ndim == 3;
    int64_t nb = three ? a.shape[0] : 1;
    TAL_ASSERT(!three || (b.shape[0] == nb && c.shape[0] == nb));
    int64_t ar = a.shape[a.ndim - 2], ac = a.shape[a.ndim - 1];
    int64_t br = b.shape[b.ndim - 2], bc = b.shape[b.ndim - 1];
    int64_t M = trans_a ? ac : ar, K = trans_a ? ar : ac;
    int64_t N = trans_b ? br : bc, Kb = trans_b ? bc : br;
    TAL_ASSERT_MSG(K == Kb && c.shape[c.ndim - 2] == M && c.shape[c.ndim - 1] == N,
                   "bmm: [%lld x %lld] x [%lld x %lld] -> [%lld x %lld]", (long long)M,
                   (long long)K, (long long)Kb, (long long)N, (long long)c.shape[c.ndim - 2],
                   (long long)c.shape[c.ndim - 1]);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        gemm_batched_cuda(trans_a, trans_b, M, N, K, alpha, a.data, ac, ar * ac, b.data, bc,
                          br * bc, beta, c.data, N, M * N, nb);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    bmm_cpu(c, a, b, trans_a, trans_b, alpha, beta, nb, M, N, K);
}
