/* nn/softmax.c: softmax over the last dim, max-subtracted, sums in double; a row of all -inf
 * gives zeros (no probability mass anywhere) rather than NaN. e^x from simd_math.h (relative
 * error 1e-7) so the row loop vectorises. */
#include "nn.h"
#include "cuda_ops.h"
#include "dispatch.h"
#include "simd_math.h"

#include <math.h>

#define PAR_MIN 32768 /* elements */

/* One row; y may equal x (each element is read before it is written). */
VECTOR_CLONES
static void softmax_row(float *y, const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    if (m == -INFINITY) {
        for (int64_t j = 0; j < n; j++) y[j] = 0.0f;
        return;
    }
#pragma omp simd
    for (int64_t j = 0; j < n; j++) y[j] = tal_exp_nonpos(x[j] - m);
    double s = 0; /* a separate pass: mixed float/double in one loop does not vectorise */
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; j++) s += y[j];
    float inv = (float)(1.0 / s);
#pragma omp simd
    for (int64_t j = 0; j < n; j++) y[j] *= inv;
}

static void softmax_forward_cpu(tal_tensor y, tal_tensor x) {
    int64_t rows = tal_tensor_rows(x), n = tal_tensor_cols(x);
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) softmax_row(y.data + r * n, x.data + r * n, n);
}

void tal_softmax_forward(tal_tensor y, tal_tensor x) {
    TAL_ASSERT(x.ndim >= 1);
    TAL_ASSERT_SAME_SHAPE(y, x);
    tal_device dev = OP_DEVICE(y, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        softmax_forward_cuda(y, x);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    softmax_forward_cpu(y, x);
}

static void softmax_backward_cpu(tal_tensor dx, tal_tensor dy, tal_tensor y) {
    int64_t rows = tal_tensor_rows(y), n = tal_tensor_cols(y);
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y.data + r * n, *dyr = dy.data + r * n;
        float *dxr = dx.data + r * n; /* may equal dyr: the sum is taken first */
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < n; j++) s += (double)dyr[j] * yr[j];
        float sf = (float)s;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dxr[j] = yr[j] * (dyr[j] - sf);
    }
}

void tal_softmax_backward(tal_tensor dx, tal_tensor dy, tal_tensor y) {
    TAL_ASSERT(y.ndim >= 1);
    TAL_ASSERT_SAME_SHAPE(dx, y);
    TAL_ASSERT_SAME_SHAPE(dy, y);
    tal_device dev = OP_DEVICE(dx, dy, y);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        softmax_backward_cuda(dx, dy, y);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    softmax_backward_cpu(dx, dy, y);
}
