/* nn/softmax.c: softmax over the last dim (max-subtracted; a row of all -inf gives zeros). */
#include "nn.h"

#include <math.h>

/* Shared with attention.c through this file's public functions only: one row in place. */
static void softmax_row(float *y, const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    if (m == -INFINITY) { /* fully masked row: no probability mass anywhere */
        for (int64_t j = 0; j < n; j++) y[j] = 0.0f;
        return;
    }
    double s = 0;
    for (int64_t j = 0; j < n; j++) {
        y[j] = expf(x[j] - m);
        s += y[j];
    }
    float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < n; j++) y[j] *= inv;
}

void tal_softmax_forward(tal_tensor y, tal_tensor x) {
    TAL_ASSERT(tal_tensor_numel(y) == tal_tensor_numel(x));
    int64_t rows = tal_tensor_rows(x), n = tal_tensor_cols(x);
#pragma omp parallel for schedule(static) if (rows * n > 32768)
    for (int64_t r = 0; r < rows; r++) softmax_row(y.data + r * n, x.data + r * n, n);
}

void tal_softmax_backward(tal_tensor dx, tal_tensor dy, tal_tensor y) {
    TAL_ASSERT(tal_tensor_numel(dx) == tal_tensor_numel(y));
    TAL_ASSERT(tal_tensor_numel(dy) == tal_tensor_numel(y));
    int64_t rows = tal_tensor_rows(y), n = tal_tensor_cols(y);
#pragma omp parallel for schedule(static) if (rows * n > 32768)
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y.data + r * n, *dyr = dy.data + r * n;
        float *dxr = dx.data + r * n;
        double s = 0;
        for (int64_t j = 0; j < n; j++) s += (double)dyr[j] * yr[j];
        for (int64_t j = 0; j < n; j++) dxr[j] = yr[j] * (dyr[j] - (float)s);
    }
}
