/* tests/cuda_check.h: what the CUDA twin tests share: a visible skip without a GPU, device
 * copies of host tensors, and comparisons of a device result with the CPU op's (downloaded
 * first, so a failure prints the worst index and both values like every other test). */
#ifndef TAL_CUDA_CHECK_H
#define TAL_CUDA_CHECK_H

#include "nn_check.h"

#include <math.h>
#include <string.h>

/* Each test starts with it: no device (or a build without CUDA) is a skip, never a pass. */
#define CUDA_ONLY()                                                                           \
    do {                                                                                      \
        if (tal_cuda_device_count() == 0) cr_skip_test("no CUDA device");                    \
    } while (0)

#define DEV_ARENA_BYTES ((size_t)512 << 20)

/* Tolerances against the CPU op on the same inputs.
 * fp32: the two devices sum in other orders (and may fuse multiply-adds differently): a sum of
 * K terms of size ~1 differs by ~6e-8 sqrt(K); 2e-6 sqrt(K) absolute (~30x that) plus 1e-5
 * relative, while a wrong index or a missing term is off by O(0.1-1).
 * bf16 products: each input rounded to 8 significant bits (u = 2^-8), so a product of K terms
 * of inputs in [-1, 1) moves by ~0.27 2^-8 sqrt(K) (one sigma); 2 x 2^-8 sqrt(K) is ~7 sigma.
 * tf32: 11 significant bits, rounded or truncated: 2^-9 sqrt(K). */
#define FP32_ATOL(K) (2e-6 * sqrt((double)(K)))
#define FP32_RTOL 1e-5
#define BF16_ATOL(K) (2.0 / 256.0 * sqrt((double)(K)))
#define TF32_ATOL(K) (1.0 / 512.0 * sqrt((double)(K)))

/* One device arena per test process (Criterion forks a process per test). */
static tal_arena *g_dev_arena;

static inline tal_arena *dev_arena(void) {
    if (!g_dev_arena) {
        tal_err err = {0};
        cr_assert_eq(tal_arena_create(&g_dev_arena, TAL_DEV_CUDA, DEV_ARENA_BYTES, &err), TAL_OK,
                     "%s", err.msg);
    }
    return g_dev_arena;
}

/* A suite's .fini: the device arena and the host tensors go. */
static inline void cuda_test_cleanup(void) {
    tal_arena_destroy(g_dev_arena);
    g_dev_arena = NULL;
    test_free_all();
}

/* A zeroed device tensor of the given shape. */
static inline tal_tensor dev_tensor(int ndim, const int64_t *shape) {
    return tal_arena_tensor(dev_arena(), ndim, shape);
}

/* A zeroed device tensor shaped like t. */
static inline tal_tensor dev_like(tal_tensor t) { return dev_tensor(t.ndim, t.shape); }

/* A device copy of a host tensor (same shape). */
static inline tal_tensor dev_copy(tal_tensor host) {
    tal_tensor d = tal_arena_like(dev_arena(), host);
    tal_copy(d, host);
    return d;
}

/* Waits for the queued kernels; a kernel that faulted fails the test here, with CUDA's text. */
static inline void dev_sync(void) {
    tal_err err = {0};
    cr_assert_eq(tal_cuda_synchronize(&err), TAL_OK, "CUDA: %s", err.msg);
}

/* A host copy of a device tensor (after the queued kernels ran). */
static inline tal_tensor host_copy(tal_tensor dev) {
    dev_sync();
    tal_tensor h = test_tensor(dev.ndim, dev.shape);
    tal_copy(h, dev);
    return h;
}

/* A host tensor of uniform values in [-1, 1). */
static inline tal_tensor rand_host(int ndim, const int64_t *shape, uint64_t seed) {
    tal_tensor t = test_tensor(ndim, shape);
    test_fill_uniform(t, seed);
    return t;
}

/* A host tensor of uniform values in [lo, hi). */
static inline tal_tensor rand_range(int ndim, const int64_t *shape, uint64_t seed, float lo,
                                    float hi) {
    tal_tensor t = rand_host(ndim, shape, seed);
    for (int64_t i = 0; i < tal_tensor_numel(t); i++)
        t.data[i] = lo + (hi - lo) * 0.5f * (t.data[i] + 1.0f);
    return t;
}

/* Every element rounded to bf16 (what a bf16 product multiplies). */
static inline tal_tensor bf16_rounded(tal_tensor t) {
    tal_tensor r = test_clone(t);
    for (int64_t i = 0; i < tal_tensor_numel(r); i++)
        r.data[i] = tal_bf16_to_f32(tal_f32_to_bf16(r.data[i]));
    return r;
}

/* Device result against the CPU op's result. */
#define expect_dev_close(dev, want, atol, rtol)                                               \
    expect_close_impl(#dev " (cuda) vs the cpu op", host_copy(dev), (want), (atol), (rtol),   \
                      __FILE__, __LINE__)

/* Bit for bit (ops whose every output is one IEEE operation, or a mask drawn from a key). */
static inline void expect_dev_bits_impl(const char *what, tal_tensor dev, tal_tensor want,
                                        const char *file, int line) {
    tal_tensor got = host_copy(dev);
    cr_assert_eq(tal_tensor_numel(got), tal_tensor_numel(want), "%s:%d: %s: sizes differ", file,
                 line, what);
    int64_t n = tal_tensor_numel(got), n_bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got.data[i], &want.data[i], sizeof(float))) {
            if (first < 0) first = i;
            n_bad++;
        }
    if (first >= 0)
        cr_assert_fail("%s:%d: %s: %lld of %lld elements differ in their bits; first at flat "
                       "index %lld: got %.9g, expected %.9g", file, line, what, (long long)n_bad,
                       (long long)n, (long long)first, got.data[first], want.data[first]);
}
#define expect_dev_bits(dev, want)                                                            \
    expect_dev_bits_impl(#dev " (cuda) vs the cpu op", (dev), (want), __FILE__, __LINE__)

#endif
