/* nn/dropout.c: dropout and drop-path with masks drawn from a counter-based key, so backward
 * (and a reversible recompute) redraws the very same mask instead of storing it. */
#include "nn.h"

#define PAR_MIN 65536

static void dropout_apply(tal_tensor y, tal_tensor x, float p, tal_rng_key key) {
    TAL_ASSERT(tal_tensor_numel(y) == tal_tensor_numel(x));
    TAL_ASSERT_MSG(p >= 0.0f && p < 1.0f, "dropout p = %g", p);
    int64_t n = tal_tensor_numel(x);
    if (p == 0.0f) {
        tal_copy(y, x);
        return;
    }
    float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        y.data[i] = tal_rng_uniform(key, (uint64_t)i) >= p ? x.data[i] * keep_scale : 0.0f;
}

void tal_dropout_forward(tal_tensor y, tal_tensor x, float p, tal_rng_key key) {
    dropout_apply(y, x, p, key);
}

void tal_dropout_backward(tal_tensor dx, tal_tensor dy, float p, tal_rng_key key) {
    dropout_apply(dx, dy, p, key);
}

static void drop_path_apply(tal_tensor y, tal_tensor x, float p, tal_rng_key key) {
    TAL_ASSERT(tal_tensor_numel(y) == tal_tensor_numel(x) && x.ndim >= 1);
    TAL_ASSERT_MSG(p >= 0.0f && p < 1.0f, "drop-path p = %g", p);
    if (p == 0.0f) {
        tal_copy(y, x);
        return;
    }
    int64_t B = x.shape[0];
    for (int64_t b = 0; b < B; b++) {
        float s = tal_rng_uniform(key, (uint64_t)b) >= p ? 1.0f / (1.0f - p) : 0.0f;
        tal_scale(tal_tensor_slice0(y, b, 1), tal_tensor_slice0(x, b, 1), s);
    }
}

void tal_drop_path_forward(tal_tensor y, tal_tensor x, float p, tal_rng_key key) {
    drop_path_apply(y, x, p, key);
}

void tal_drop_path_backward(tal_tensor dx, tal_tensor dy, float p, tal_rng_key key) {
    drop_path_apply(dx, dy, p, key);
}
