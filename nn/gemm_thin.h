/* nn/gemm_thin.h (private to nn/): the thin-product kernel behind tal_gemm and the attention. */
#ifndef TAL_NN_GEMM_THIN_H
#define TAL_NN_GEMM_THIN_H

#include <stdint.h>

/* C[M,N] = alpha op(A) op(B) + beta C (row-major, one thread) when the product is thin enough
 * for it (op(B) small, op(A) tall) and the CPU has AVX-512; returns 1 if done, 0 if the caller
 * must use OpenBLAS. beta = 0 ignores C's contents (NaN included), as BLAS does. */
int tal_gemm_thin(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc);

/* op(B) [K, N] copied into the kernel's panels, for many row blocks of one product (the
 * linear layer's forward); NULL when the kernel does not take this op(B) (caller: OpenBLAS).
 * Release with free(). */
float *tal_gemm_thin_pack(int trans_b, int64_t N, int64_t K, const float *B, int64_t ldb);
/* C[M,N] = A[M,K] op(B) + bias (row vector; NULL: none) with op(B) from tal_gemm_thin_pack. */
void tal_gemm_thin_run(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *packed, const float *bias, float *C, int64_t ldc);

/* C[M,N] = alpha op(A) B' + beta C with B' either op(B) from tal_gemm_thin_pack (packed = 1)
 * or B [K, N] read in place, row-major with row stride ldb (packed = 0): for many products
 * against one op(B) (row blocks), or a small B that needs no copy. Any M >= 1. Only where
 * tal_gemm_thin_available(). */
void tal_gemm_thin_with(int trans_a, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, int packed,
                        float beta, float *C, int64_t ldc);
/* 1 when the kernel runs here (AVX-512 CPU and build, not switched off by RE2TAL_THIN_GEMM=0). */
int tal_gemm_thin_available(void);

/* dst row r = src row r * scale[r] for rows [rows, n] (both contiguous), with streaming stores
 * (no read of dst's lines first) from each row's first 32-byte boundary on. For results
 * written once and read much later (the attention probabilities backward needs). */
void tal_scale_rows_streaming(float *dst, const float *src, const float *scale, int64_t rows,
                              int64_t n);

#endif
