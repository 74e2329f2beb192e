/* nn/activations.c: GELU (exact erf form, PyTorch's default gelu(approximate='none')) and ReLU,
 * forward and backward, elementwise on any shape. erf and exp come from simd_math.h (within
 * 4.2e-7 of the exact erf, against ~1e-3 for the tanh form), so the loops vectorise. */
#include "nn.h"
#include "cuda_ops.h"
#include "dispatch.h"
#include "simd_math.h"

#include <math.h>

#define PAR_MIN 65536 /* elements; below this threads cost more than they save */

/* Elementwise work goes in chunks over the threads; each chunk is one call of a function with
 * AVX2 / AVX-512 clones (VECTOR_CLONES), where the erf and exp polynomials run 8-16 wide. */
#define CHUNK 8192

VECTOR_CLONES
static void gelu_forward_chunk(float *y, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tal_erf(v * (float)M_SQRT1_2));
    }
}

static void gelu_forward_cpu(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK)
        gelu_forward_chunk(y + i0, x + i0, n - i0 < CHUNK ? n - i0 : CHUNK);
}

void tal_gelu_forward(tal_tensor y, tal_tensor x) {
    TAL_ASSERT(tal_tensor_numel(y) == tal_tensor_numel(x));
    tal_device dev = OP_DEVICE(y, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        gelu_forward_cuda(y, x);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    gelu_forward_cpu(y.data, x.data, tal_tensor_numel(x));
}

/* d/dx [x Phi(x)] = Phi(x) + x phi(x). */
VECTOR_CLONES
static void gelu_backward_chunk(float *dx, const float *dy, const float *x, int64_t n) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + tal_erf(v * (float)M_SQRT1_2));
        float pdf = inv_sqrt_2pi * tal_exp_nonpos(-0.5f * v * v);
        dx[i] = dy[i] * (cdf + v * pdf);
    }
}

static void gelu_backward_cpu(float *dx, const float *dy, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK)
        gelu_backward_chunk(dx + i0, dy + i0, x + i0, n - i0 < CHUNK ? n - i0 : CHUNK);
}

void tal_gelu_backward(tal_tensor dx, tal_tensor dy, tal_tensor x) {
    TAL_ASSERT(tal_tensor_numel(dx) == tal_tensor_numel(x));
    TAL_ASSERT(tal_tensor_numel(dy) == tal_tensor_numel(x));
    /* dx may alias dy (each element read before written), never x (x is read after). */
    TAL_ASSERT(dx.data != x.data || tal_tensor_numel(x) == 0);
    tal_device dev = OP_DEVICE(dx, dy, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        gelu_backward_cuda(dx, dy, x);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    gelu_backward_cpu(dx.data, dy.data, x.data, tal_tensor_numel(x));
}

static void relu_forward_cpu(float *y, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
}

void tal_relu_forward(tal_tensor y, tal_tensor x) {
    TAL_ASSERT(tal_tensor_numel(y) == tal_tensor_numel(x));
    tal_device dev = OP_DEVICE(y, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        relu_forward_cuda(y, x);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    relu_forward_cpu(y.data, x.data, tal_tensor_numel(x));
}

/* The gradient at 0 is taken as 0, as PyTorch's threshold_backward does. */
static void relu_backward_cpu(float *dx, const float *dy, const float *y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}

void tal_relu_backward(tal_tensor dx, tal_tensor dy, tal_tensor y) {
    TAL_ASSERT(tal_tensor_numel(dx) == tal_tensor_numel(y));
    TAL_ASSERT(tal_tensor_numel(dy) == tal_tensor_numel(y));
    tal_device dev = OP_DEVICE(dx, dy, y);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        relu_backward_cuda(dx, dy, y);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    relu_backward_cpu(dx.data, dy.data, y.data, tal_tensor_numel(y));
}
