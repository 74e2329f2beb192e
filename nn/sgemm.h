/* nn/sgemm.h (private to nn/): the one-thread matrix product under tal_gemm, for ops that
 * split work over threads themselves (attention pairs, linear row blocks). */
#ifndef TAL_NN_SGEMM_H
#define TAL_NN_SGEMM_H

#include <stdint.h>

/* C[M,N] = alpha op(A) op(B) + beta C, row-major, on the calling thread: oneDNN's dnnl_sgemm
 * (OpenBLAS with RE2TAL_GEMM=openblas). Inside a parallel region (one thread per call there);
 * beta = 0 ignores C's contents, K = 0 applies beta. */
void tal_sgemm1(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                int64_t ldc);

#endif
