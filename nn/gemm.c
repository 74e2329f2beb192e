/* nn/gemm.c: matrix products on OpenBLAS. Rows of C are split over the OpenMP threads, each
 * calling a 1-thread cblas_sgemm: measured here that beats OpenBLAS's own threading on the
 * Swin shapes (148-179 vs 72-136 GFLOP/s on 2 cores). */
#include "nn.h"

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many multiply-adds a split costs more than it gains. */
#define SPLIT_MIN_MACS (1 << 18)

static void sgemm1(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                   int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* sgemm with K = 0 still scales C by beta, but some builds skip it */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda, B,
                (int)ldb, beta, C, (int)ldc);
}

void tal_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc) {
    int threads = 1;
#ifdef _OPENMP
    if (!omp_in_parallel()) threads = omp_get_max_threads();
#endif
    if (threads <= 1 || M * N * K < SPLIT_MIN_MACS || M < 2 * threads) {
        sgemm1(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Row blocks of C: rows of op(A) are rows of A (no trans) or columns of A (trans). */
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        int t = 0, nt = 1;
#endif
        int64_t r0 = M * t / nt, r1 = M * (t + 1) / nt;
        const float *a = trans_a ? A + r0 : A + r0 * lda;
        sgemm1(trans_a, trans_b, r1 - r0, N, K, alpha, a, lda, B, ldb, beta, C + r0 * ldc, ldc);
    }
}

void tal_bmm(tal_tensor c, tal_tensor a, tal_tensor b, int trans_a, int trans_b, float alpha,
             float beta) {
    TAL_ASSERT(a.ndim == b.ndim && a.ndim == c.ndim && (a.ndim == 2 || a.ndim == 3));
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
    int threads = 1;
#ifdef _OPENMP
    if (!omp_in_parallel()) threads = omp_get_max_threads();
#endif
    if (nb >= threads && threads > 1) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nb; i++)
            sgemm1(trans_a, trans_b, M, N, K, alpha, a.data + i * ar * ac, ac, b.data + i * br * bc,
                   bc, beta, c.data + i * M * N, N);
    } else {
        for (int64_t i = 0; i < nb; i++)
            tal_gemm(trans_a, trans_b, M, N, K, alpha, a.data + i * ar * ac, ac,
                     b.data + i * br * bc, bc, beta, c.data + i * M * N, N);
    }
}
