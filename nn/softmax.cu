/* nn/softmax.cu: CUDA twin of softmax.c: one warp per row of any length, max-subtracted, the
 * sum in double by a fixed butterfly (the same bits every run); a row of all -inf gives zeros,
 * as on the CPU. y may alias x; dx may alias dy (each lane reads its elements before writing
 * them, and the row's sums are complete before any write). */
#include "cuda_reduce.cuh"

#define WARPS_PER_BLOCK 8

static unsigned row_blocks(int64_t rows) {
    return (unsigned)((rows + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK);
}

__global__ void softmax_rows_per_warp(float *y, const float *x, int64_t rows, int64_t n) {
    int64_t r = (int64_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const float *xr = x + r * n;
    float *yr = y + r * n;
    float m = -INFINITY;
    for (int64_t j = lane; j < n; j += 32) m = xr[j] > m ? xr[j] : m;
    m = warp_max_float(m);
    if (m == -INFINITY) {
        for (int64_t j = lane; j < n; j += 32) yr[j] = 0.0f;
        return;
    }
    double s = 0;
    for (int64_t j = lane; j < n; j += 32) {
        float e = expf(xr[j] - m);
        yr[j] = e;
        s += e;
    }
    float inv = (float)(1.0 / warp_sum_double(s));
    for (int64_t j = lane; j < n; j += 32) yr[j] *= inv;
}

__global__ void softmax_backward_rows_per_warp(float *dx, const float *dy, const float *y,
                                               int64_t rows, int64_t n) {
    int64_t r = (int64_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const float *yr = y + r * n, *dyr = dy + r * n;
    float *dxr = dx + r * n;
    double s = 0;
    for (int64_t j = lane; j < n; j += 32) s += (double)dyr[j] * yr[j];
    float sf = (float)warp_sum_double(s);
    for (int64_t j = lane; j < n; j += 32) dxr[j] = yr[j] * (dyr[j] - sf);
}

void softmax_forward_cuda(tal_tensor y, tal_tensor x) {
    int64_t rows = tal_tensor_rows(x), n = tal_tensor_cols(x);
    if (rows == 0 || n == 0) return;
    softmax_rows_per_warp<<<row_blocks(rows), 32 * WARPS_PER_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, x.data, rows, n);
    TAL_LAUNCH_CHECK();
}

void softmax_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor y) {
    int64_t rows = tal_tensor_rows(y), n = tal_tensor_cols(y);
    if (rows == 0 || n == 0) return;
    softmax_backward_rows_per_warp<<<row_blocks(rows), 32 * WARPS_PER_BLOCK, 0,
                                     tal_cuda_stream()>>>(dx.data, dy.data, y.data, rows, n);
    TAL_LAUNCH_CHECK();
}
