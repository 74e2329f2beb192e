/* nn/activations.c: GELU (exact erf form, PyTorch's default) and ReLU, forward and backward. */
#include "nn.h"

#include <math.h>

#define PAR_MIN 65536 /* below this, threads cost more than they save */

void tal_gelu_forward(tal_tensor y, tal_tensor x) {
    TAL_ASSERT(tal_tensor_numel(y) == tal_tensor_numel(x));
    int64_t n = tal_tensor_numel(x);
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = x.data[i];
        y.data[i] = 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
    }
}

/* d/dx [x Phi(x)] = Phi(x) + x phi(x). */
void tal_gelu_backward(tal_tensor dx, tal_tensor dy, tal_tensor x) {
    TAL_ASSERT(tal_tensor_numel(dx) == tal_tensor_numel(x));
    TAL_ASSERT(tal_tensor_numel(dy) == tal_tensor_numel(x));
    int64_t n = tal_tensor_numel(x);
    const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = x.data[i];
        float cdf = 0.5f * (1.0f + erff(v * (float)M_SQRT1_2));
        float pdf = inv_sqrt_2pi * expf(-0.5f * v * v);
        dx.data[i] = dy.data[i] * (cdf + v * pdf);
    }
}

void tal_relu_forward(tal_tensor y, tal_tensor x) {
    TAL_ASSERT(tal_tensor_numel(y) == tal_tensor_numel(x));
    int64_t n = tal_tensor_numel(x);
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y.data[i] = x.data[i] > 0 ? x.data[i] : 0.0f;
}

void tal_relu_backward(tal_tensor dx, tal_tensor dy, tal_tensor y) {
    TAL_ASSERT(tal_tensor_numel(dx) == tal_tensor_numel(y));
    int64_t n = tal_tensor_numel(y);
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx.data[i] = y.data[i] > 0 ? dy.data[i] : 0.0f;
}
