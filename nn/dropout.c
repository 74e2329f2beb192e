/* nn/dropout.c: dropout and drop-path (stochastic depth) with masks drawn from a counter-based
 * key, so backward (and a reversible recompute) redraws the very same mask instead of storing
 * it. Element i's uniform is 24 bits of draw i/2 (each draw gives two 32-bit words). */
#include "nn.h"
#include "cuda_ops.h"
#include "device_math.h"
#include "dispatch.h"

#define PAR_MIN 65536 /* elements */

static inline float uniform_of_element(tal_rng_key key, uint64_t i) {
    return dropout_uniform(key.seed, key.step, key.stream, i);
}

/* y = x * keep / (1 - p), keep = u >= p; the same for forward (x) and backward (dy). */
static void dropout_cpu(float *y, const float *x, int64_t n, float p, tal_rng_key key) {
    float keep_scale = 1.0f / (1.0f - p);
    int64_t pairs = (n + 1) / 2;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t k = 0; k < pairs; k++) {
        uint64_t r = tal_rng_u64(key, (uint64_t)k);
        for (int64_t i = 2 * k; i < 2 * k + 2 && i < n; i++) {
            float u = uniform24((i & 1) ? (uint32_t)r : (uint32_t)(r >> 32));
            y[i] = u >= p ? x[i] * keep_scale : 0.0f;
        }
    }
}

static void dropout_apply(tal_tensor y, tal_tensor x, float p, tal_rng_key key) {
    TAL_ASSERT(tal_tensor_numel(y) == tal_tensor_numel(x));
    TAL_ASSERT_MSG(p >= 0.0f && p < 1.0f, "dropout p = %g (expected 0 <= p < 1)", p);
    tal_device dev = OP_DEVICE(y, x);
    if (p == 0.0f) {
        tal_copy(y, x);
        return;
    }
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        dropout_cuda(y, x, p, key);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    dropout_cpu(y.data, x.data, tal_tensor_numel(x), p, key);
}

void tal_dropout_forward(tal_tensor y, tal_tensor x, float p, tal_rng_key key) {
    dropout_apply(y, x, p, key);
}

void tal_dropout_backward(tal_tensor dx, tal_tensor dy, float p, tal_rng_key key) {
    dropout_apply(dx, dy, p, key);
}

/* Sample b is kept when uniform b of the key is >= p. */
static void drop_path_cpu(tal_tensor y, tal_tensor x, float p, tal_rng_key key) {
    int64_t B = x.shape[0];
    for (int64_t b = 0; b < B; b++) {
        float s = uniform_of_element(key, (uint64_t)b) >= p ? 1.0f / (1.0f - p) : 0.0f;
        tal_scale(tal_tensor_slice0(y, b, 1), tal_tensor_slice0(x, b, 1), s);
    }
}

static void drop_path_apply(tal_tensor y, tal_tensor x, float p, tal_rng_key key) {
    TAL_ASSERT(x.ndim >= 1);
    TAL_ASSERT_SAME_SHAPE(y, x);
    TAL_ASSERT_MSG(p >= 0.0f && p < 1.0f, "drop-path p = %g (expected 0 <= p < 1)", p);
    tal_device dev = OP_DEVICE(y, x);
    if (p == 0.0f) {
        tal_copy(y, x);
        return;
    }
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        drop_path_cuda(y, x, p, key);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    drop_path_cpu(y, x, p, key);
}

void tal_drop_path_forward(tal_tensor y, tal_tensor x, float p, tal_rng_key key) {
    drop_path_apply(y, x, p, key);
}

void tal_drop_path_backward(tal_tensor dx, tal_tensor dy, float p, tal_rng_key key) {
    drop_path_apply(dx, dy, p, key);
}
