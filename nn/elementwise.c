/* nn/elementwise.c: add, sub, scale, axpy, copy, fill, mul on equal-sized tensors (aliasing
 * allowed: each element is read before it is written). */
#include "nn.h"

#include <string.h>

#define PAR_MIN 65536

static int64_t same_numel(tal_tensor a, tal_tensor b) {
    TAL_ASSERT_MSG(tal_tensor_numel(a) == tal_tensor_numel(b), "%lld vs %lld elements",
                   (long long)tal_tensor_numel(a), (long long)tal_tensor_numel(b));
    TAL_ASSERT_SAME_DEVICE(a, b);
    return tal_tensor_numel(a);
}

void tal_add(tal_tensor y, tal_tensor a, tal_tensor b) {
    int64_t n = same_numel(y, a);
    same_numel(a, b);
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y.data[i] = a.data[i] + b.data[i];
}

void tal_sub(tal_tensor y, tal_tensor a, tal_tensor b) {
    int64_t n = same_numel(y, a);
    same_numel(a, b);
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y.data[i] = a.data[i] - b.data[i];
}

void tal_mul(tal_tensor y, tal_tensor a, tal_tensor b) {
    int64_t n = same_numel(y, a);
    same_numel(a, b);
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y.data[i] = a.data[i] * b.data[i];
}

void tal_scale(tal_tensor y, tal_tensor x, float s) {
    int64_t n = same_numel(y, x);
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y.data[i] = s * x.data[i];
}

void tal_axpy(tal_tensor y, float a, tal_tensor x) {
    int64_t n = same_numel(y, x);
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y.data[i] += a * x.data[i];
}

void tal_copy(tal_tensor dst, tal_tensor src) {
    int64_t n = same_numel(dst, src);
    if (n && dst.data != src.data) memmove(dst.data, src.data, (size_t)n * sizeof(float));
}

void tal_fill(tal_tensor t, float value) {
    int64_t n = tal_tensor_numel(t);
    if (value == 0.0f) {
        if (n) memset(t.data, 0, (size_t)n * sizeof(float));
        return;
    }
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) t.data[i] = value;
}
