/* nn/gemm_thin.c: C = alpha op(A) op(B) + beta C for "thin" products, where op(B) is small
 * (at most a few hundred columns, fits in L2) and op(A) is tall: the window attention's
 * Q K^T, P V, dO V^T, P^T dO, dS K, dS^T Q and the Swin linears' X W^T and dY W. OpenBLAS
 * copies ("packs") all of op(A) into its own layout before multiplying, one extra pass over the
 * largest operand (the 392 x 392 probabilities, or 25088 x 384 activations) for a product that
 * reads it only once: 15% of a Swin block's step was spent packing. Here op(A) is read where it
 * lies (one broadcast per element) and only the small op(B) is copied into 32-column panels;
 * 6 x 32 tiles of C stay in 12 AVX-512 registers over the whole K loop.
 *
 * AVX-512 only (compiled for it: nn/CMakeLists.txt; used where the CPU has it); elsewhere, or
 * with RE2TAL_THIN_GEMM=0, every product goes to OpenBLAS. */
#include "gemm_thin.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>

enum { MR = 6, NR = 32 }; /* rows and columns of C per tile */

/* r[0..7] (8 x 8 floats) transposed in place. */
static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* op(B) [K, N] -> panels of NR columns, each [K, NR] contiguous, zero past N. A transposed
 * B goes by 8 x 8 blocks where it can (the window attention's K^T and V^T: a scalar gather
 * was 5% of the attention). */
static void pack_b(float *bp, int trans_b, int64_t N, int64_t K, const float *B, int64_t ldb) {
    int64_t panels = (N + NR - 1) / NR;
    for (int64_t p = 0; p < panels; p++) {
        float *dst = bp + p * K * NR;
        int64_t n0 = p * NR, nn = N - n0 < NR ? N - n0 : NR;
        int64_t k = 0;
        if (trans_b)
            for (; k + 8 <= K; k += 8) {
                int64_t j0 = 0;
                for (; j0 + 8 <= nn; j0 += 8) {
                    __m256 r[8];
                    for (int jj = 0; jj < 8; jj++)
                        r[jj] = _mm256_loadu_ps(B + (n0 + j0 + jj) * ldb + k);
                    transpose8(r);
                    for (int kk = 0; kk < 8; kk++)
                        _mm256_storeu_ps(dst + (k + kk) * NR + j0, r[kk]);
                }
                for (int kk = 0; kk < 8; kk++) {
                    float *d = dst + (k + kk) * NR;
                    for (int64_t j = j0; j < nn; j++) d[j] = B[(n0 + j) * ldb + k + kk];
                    for (int64_t j = nn; j < NR; j++) d[j] = 0;
                }
            }
        for (; k < K; k++) {
            float *d = dst + k * NR;
            if (trans_b)
                for (int64_t j = 0; j < nn; j++) d[j] = B[(n0 + j) * ldb + k];
            else
                memcpy(d, B + k * ldb + n0, sizeof(float) * (size_t)nn);
            for (int64_t j = nn; j < NR; j++) d[j] = 0;
        }
    }
}

/* Writes alpha * acc (+ bias) (+ beta * C) into the tile's row c, columns masked to N. */
static inline __attribute__((always_inline)) void store_row(float *c, __m512 lo, __m512 hi,
                                                            __m512 alpha, const float *bias,
                                                            float beta, __mmask16 m0,
                                                            __mmask16 m1) {
    if (bias) {
        lo = _mm512_fmadd_ps(lo, alpha, _mm512_maskz_loadu_ps(m0, bias));
        hi = _mm512_fmadd_ps(hi, alpha, _mm512_maskz_loadu_ps(m1, bias + 16));
    } else {
        lo = _mm512_mul_ps(lo, alpha);
        hi = _mm512_mul_ps(hi, alpha);
    }
    if (beta != 0) {
        __m512 b = _mm512_set1_ps(beta);
        lo = _mm512_fmadd_ps(b, _mm512_maskz_loadu_ps(m0, c), lo);
        hi = _mm512_fmadd_ps(b, _mm512_maskz_loadu_ps(m1, c + 16), hi);
    }
    if (m0 == 0xFFFF && m1 == 0xFFFF) { /* masked stores are slow on Zen 4: ~1 per 6 cycles */
        _mm512_storeu_ps(c, lo);
        _mm512_storeu_ps(c + 16, hi);
    } else {
        _mm512_mask_storeu_ps(c, m0, lo);
        _mm512_mask_storeu_ps(c + 16, m1, hi);
    }
}

/* Element (r, k) of op(A) for the rows starting at a. */
#define A_AT(r, k) (trans_a ? a[(k) * lda + (r)] : a[(r) * lda + (k)])

/* One MR x NR tile: rows of op(A) from a, columns of op(B) from bp (row k at bp + k * ldbp;
 * columns masked to N: a packed panel is zero-padded, B read in place is not). full: all NR
 * columns (a constant after inlining): plain loads, and the loop unrolled by two, measured
 * 10-13% faster than masked loads in a rolled loop (95 -> 107-113 GFLOP/s on one core). */
static inline __attribute__((always_inline)) void tile6(int trans_a, const float *a, int64_t lda,
                                                        const float *bp, int64_t ldbp, int64_t K,
                                                        float *c, int64_t ldc, __m512 alpha,
                                                        const float *bias, float beta,
                                                        __mmask16 m0, __mmask16 m1, int full) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 2
    for (int64_t k = 0; k < K; k++) {
        const float *brow = bp + k * ldbp;
        __m512 b0 = full ? _mm512_loadu_ps(brow) : _mm512_maskz_loadu_ps(m0, brow);
        __m512 b1 = full ? _mm512_loadu_ps(brow + 16) : _mm512_maskz_loadu_ps(m1, brow + 16), x;
#define ROW(r, lo, hi)                                                                             \
    x = _mm512_set1_ps(A_AT(r, k));                                                                \
    lo = _mm512_fmadd_ps(x, b0, lo);                                                               \
    hi = _mm512_fmadd_ps(x, b1, hi);
        ROW(0, c00, c01)
        ROW(1, c10, c11)
        ROW(2, c20, c21)
        ROW(3, c30, c31)
        ROW(4, c40, c41)
        ROW(5, c50, c51)
#undef ROW
    }
    store_row(c, c00, c01, alpha, bias, beta, m0, m1);
    store_row(c + ldc, c10, c11, alpha, bias, beta, m0, m1);
    store_row(c + 2 * ldc, c20, c21, alpha, bias, beta, m0, m1);
    store_row(c + 3 * ldc, c30, c31, alpha, bias, beta, m0, m1);
    store_row(c + 4 * ldc, c40, c41, alpha, bias, beta, m0, m1);
    store_row(c + 5 * ldc, c50, c51, alpha, bias, beta, m0, m1);
}

/* An MR x 16 tile for a last panel of at most 16 columns (half the work of a masked NR one:
 * the 392-key attention's last panel has 8). */
static inline __attribute__((always_inline)) void tile6_half(int trans_a, const float *a,
                                                             int64_t lda, const float *bp,
                                                             int64_t ldbp, int64_t K, float *c,
                                                             int64_t ldc, __m512 alpha,
                                                             const float *bias, float beta,
                                                             __mmask16 m0) {
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    for (int64_t k = 0; k < K; k++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, bp + k * ldbp);
        c0 = _mm512_fmadd_ps(_mm512_set1_ps(A_AT(0, k)), b0, c0);
        c1 = _mm512_fmadd_ps(_mm512_set1_ps(A_AT(1, k)), b0, c1);
        c2 = _mm512_fmadd_ps(_mm512_set1_ps(A_AT(2, k)), b0, c2);
        c3 = _mm512_fmadd_ps(_mm512_set1_ps(A_AT(3, k)), b0, c3);
        c4 = _mm512_fmadd_ps(_mm512_set1_ps(A_AT(4, k)), b0, c4);
        c5 = _mm512_fmadd_ps(_mm512_set1_ps(A_AT(5, k)), b0, c5);
    }
    __m512 zero = _mm512_setzero_ps();
    store_row(c, c0, zero, alpha, bias, beta, m0, 0);
    store_row(c + ldc, c1, zero, alpha, bias, beta, m0, 0);
    store_row(c + 2 * ldc, c2, zero, alpha, bias, beta, m0, 0);
    store_row(c + 3 * ldc, c3, zero, alpha, bias, beta, m0, 0);
    store_row(c + 4 * ldc, c4, zero, alpha, bias, beta, m0, 0);
    store_row(c + 5 * ldc, c5, zero, alpha, bias, beta, m0, 0);
}

/* The last rows (fewer than MR), one at a time. */
static void tile1(int trans_a, const float *a, int64_t lda, const float *bp, int64_t ldbp,
                  int64_t K, float *c, __m512 alpha, const float *bias, float beta, __mmask16 m0,
                  __mmask16 m1) {
    __m512 lo = _mm512_setzero_ps(), hi = lo;
    for (int64_t k = 0; k < K; k++) {
        __m512 x = _mm512_set1_ps(A_AT(0, k));
        lo = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m0, bp + k * ldbp), lo);
        hi = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m1, bp + k * ldbp + 16), hi);
    }
    store_row(c, lo, hi, alpha, bias, beta, m0, m1);
}

/* C = alpha op(A) B' + beta C over all rows and column panels, B' either the packed panels
 * (packed: panel p at b + p * K * NR, row stride NR) or op(B) = B in place (row stride ldb). */
static void thin(int trans_a, int64_t M, int64_t N, int64_t K, float alpha_s, const float *A,
                 int64_t lda, const float *b, int64_t ldb, int packed, const float *bias,
                 float beta, float *C, int64_t ldc) {
    const __m512 alpha = _mm512_set1_ps(alpha_s);
    const int64_t panels = (N + NR - 1) / NR, ldbp = packed ? NR : ldb;
    /* row blocks outer: MR rows of op(A) stay in L1 while every panel of op(B) passes by */
    for (int64_t i = 0; i < M; i += MR) {
        const float *a = trans_a ? A + i : A + i * lda;
        for (int64_t p = 0; p < panels; p++) {
            int64_t n0 = p * NR, nn = N - n0 < NR ? N - n0 : NR;
            __mmask16 m0 = nn >= 16 ? 0xFFFF : (__mmask16)((1u << nn) - 1);
            __mmask16 m1 = nn >= 32 ? 0xFFFF : nn <= 16 ? 0 : (__mmask16)((1u << (nn - 16)) - 1);
            const float *bp = packed ? b + p * K * NR : b + n0;
            float *c = C + i * ldc + n0;
            const float *bn = bias ? bias + n0 : NULL;
            if (i + MR <= M && nn == NR) {
                if (trans_a) tile6(1, a, lda, bp, ldbp, K, c, ldc, alpha, bn, beta, m0, m1, 1);
                else tile6(0, a, lda, bp, ldbp, K, c, ldc, alpha, bn, beta, m0, m1, 1);
            } else if (i + MR <= M && nn <= 16) {
                if (trans_a) tile6_half(1, a, lda, bp, ldbp, K, c, ldc, alpha, bn, beta, m0);
                else tile6_half(0, a, lda, bp, ldbp, K, c, ldc, alpha, bn, beta, m0);
            } else if (i + MR <= M) {
                if (trans_a) tile6(1, a, lda, bp, ldbp, K, c, ldc, alpha, bn, beta, m0, m1, 0);
                else tile6(0, a, lda, bp, ldbp, K, c, ldc, alpha, bn, beta, m0, m1, 0);
            } else {
                for (int64_t r = 0; r < M - i; r++)
                    tile1(trans_a, trans_a ? a + r : a + r * lda, lda, bp, ldbp, K, c + r * ldc,
                          alpha, bn, beta, m0, m1);
            }
        }
    }
}

/* Long sums with a small C (the weight gradients dW = dY^T X: K = tokens): K in chunks whose
 * rows of op(A) and B stay in L2, each chunk added into C; B read in place (no copy at all). */
enum { KC = 256 };
static void thin_long(int trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                      int64_t ldc) {
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = K - k0 < KC ? K - k0 : KC;
        const float *a = trans_a ? A + k0 * lda : A + k0;
        thin(trans_a, M, N, kc, alpha, a, lda, B + k0 * ldb, ldb, 0, NULL, k0 ? 1.0f : beta, C,
             ldc);
    }
}

static int enabled(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("RE2TAL_THIN_GEMM");
        on = __builtin_cpu_supports("avx512f") && !(e && !strcmp(e, "0"));
    }
    return on;
}

/* The size of op(B)'s panels if the kernel takes products with this op(B), else 0: it fits
 * in L2 next to the streaming rows of op(A) (a few hundred columns: the window attention's 392
 * keys at d = 32 included); K >= 16: below that OpenBLAS's copy of op(A) is cheap anyway. */
static int64_t packed_floats(int64_t N, int64_t K) {
    int64_t floats = (N + NR - 1) / NR * NR * K;
    return enabled() && N <= 512 && K >= 16 && floats <= 64 * 1024 ? floats : 0;
}

float *tal_gemm_thin_pack(int trans_b, int64_t N, int64_t K, const float *B, int64_t ldb) {
    int64_t floats = packed_floats(N, K);
    float *bp = floats ? aligned_alloc(64, sizeof(float) * (size_t)floats) : NULL;
    if (bp) pack_b(bp, trans_b, N, K, B, ldb);
    return bp;
}

void tal_gemm_thin_run(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *packed, const float *bias, float *C, int64_t ldc) {
    thin(0, M, N, K, 1.0f, A, lda, packed, 0, 1, bias, 0.0f, C, ldc);
}

int tal_gemm_thin(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc) {
    if (!enabled() || N > 512 || M < 4 * MR || K < 16) return 0; /* tall op(A) amortises it */
    if (!packed_floats(N, K)) {
        /* op(B) too big to copy whole: the long-sum form when C is small and B is read in
         * place (row-major, not transposed); else OpenBLAS. Measured on one core: 110-117
         * against OpenBLAS's 99-103 GFLOP/s for the weight gradients of a 784-1568-row window
         * group (N 96 or 384); over long sums a B wider than 128 columns loses. */
        if (trans_b || M > 512 || (N > 128 && K * N > 2048 * 128)) return 0;
        thin_long(trans_a, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return 1;
    }
    float *bp = tal_gemm_thin_pack(trans_b, N, K, B, ldb);
    if (!bp) return 0; /* out of memory: OpenBLAS then */
    thin(trans_a, M, N, K, alpha, A, lda, bp, 0, 1, NULL, beta, C, ldc);
    free(bp);
    return 1;
}

void tal_gemm_thin_with(int trans_a, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, int packed,
                        float beta, float *C, int64_t ldc) {
    thin(trans_a, M, N, K, alpha, A, lda, B, ldb, packed, NULL, beta, C, ldc);
}

int tal_gemm_thin_available(void) { return enabled(); }

void tal_scale_rows_streaming(float *dst, const float *src, const float *scale, int64_t rows,
                              int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        float *d = dst + r * n;
        const float *sr = src + r * n;
        __m256 k = _mm256_set1_ps(scale[r]);
        int64_t j = 0;
        for (; j < n && ((uintptr_t)(d + j) & 31) != 0; j++) d[j] = sr[j] * scale[r];
        for (; j + 8 <= n; j += 8)
            _mm256_stream_ps(d + j, _mm256_mul_ps(_mm256_loadu_ps(sr + j), k));
        for (; j < n; j++) d[j] = sr[j] * scale[r];
    }
    _mm_sfence(); /* streaming stores are weakly ordered: done before anyone reads dst */
}

#else
int tal_gemm_thin_available(void) { return 0; }
/* never called: tal_gemm_thin_available() says no here */
void tal_gemm_thin_with(int trans_a, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, int packed,
                        float beta, float *C, int64_t ldc) {
    (void)trans_a, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B;
    (void)ldb, (void)packed, (void)beta, (void)C, (void)ldc;
}
void tal_scale_rows_streaming(float *dst, const float *src, const float *scale, int64_t rows,
                              int64_t n) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++) dst[r * n + j] = src[r * n + j] * scale[r];
}
int tal_gemm_thin(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc) {
    (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda;
    (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
    return 0; /* no AVX-512 build: OpenBLAS takes every product */
}
float *tal_gemm_thin_pack(int trans_b, int64_t N, int64_t K, const float *B, int64_t ldb) {
    (void)trans_b, (void)N, (void)K, (void)B, (void)ldb;
    return NULL;
}
/* never called: tal_gemm_thin_pack gives nothing to run on here */
void tal_gemm_thin_run(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *packed, const float *bias, float *C, int64_t ldc) {
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)packed, (void)bias, (void)C, (void)ldc;
}
#endif
