/* nn/simd_math.h (private to nn/): e^x and erf in forms the compiler vectorises. glibc's expf
 * and erff are scalar calls (10-30 ns each here) and dominated the window softmax and GELU;
 * these are branch-free polynomials (clamps as integer mins, which vectorise where float
 * selects do not at -O2), 3-10x faster under `#pragma omp simd`. */
#ifndef TAL_NN_SIMD_MATH_H
#define TAL_NN_SIMD_MATH_H

#include <stdint.h>

/* The build targets baseline x86-64 (4-wide SSE); hot elementwise loops get AVX2 and AVX-512
 * clones picked at load time by the CPU (GCC/clang function multi-versioning). Elsewhere the
 * plain version is all there is. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__SANITIZE_ADDRESS__)
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* e^x for x <= 0 (softmax after subtracting the row max, GELU's density): x = n ln2 + r,
 * |r| <= ln2/2, e^r by Cephes' degree-6 polynomial, 2^n built in the exponent bits. Max
 * relative error 1e-7 against double exp on [-88, 0]; x < -88 and -inf give exactly 0. */
static inline float tal_exp_nonpos(float x) {
    union {
        float f;
        uint32_t u;
    } c = {.f = x};
    c.u = c.u < 0xC2B00000u ? c.u : 0xC2B00000u; /* bits of -88.0f: clamps x < -88, -inf */
    x = c.f;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x / ln2) */
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;             /* ln2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* NaN in, NaN out: n is NaN only then (a NaN's float-to-int conversion is undefined, so
     * it takes 0 and p carries the NaN); the shift is done unsigned (n + 127 >= 0 otherwise) */
    int32_t ni = n == n ? (int32_t)n : 0;
    union {
        uint32_t u;
        float f;
    } s = {.u = (uint32_t)(ni + 127) << 23}; /* n = -127 (x <= -88) gives +0 */
    return p * s.f;
}

/* erf(x) as x P(x^2) / Q(x^2) on |x| <= 4 (erf(4) = 1 - 1.5e-8 rounds to 1 in float), the
 * rational approximation Eigen and XLA use for float. Max absolute error 4.2e-7 against
 * double erf (measured on [-10, 10]); odd, so erf(0) = 0 exactly. */
static inline float tal_erf(float x) {
    union {
        float f;
        uint32_t u;
    } c = {.f = x};
    uint32_t sign = c.u & 0x80000000u, mag = c.u & 0x7FFFFFFFu;
    mag = mag < 0x40800000u ? mag : 0x40800000u; /* bits of 4.0f: |x| <= 4 */
    c.u = sign | mag;
    x = c.f;
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return x * p / q;
}

#endif
