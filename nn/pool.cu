/* nn/pool.cu: CUDA twins of pool.c. Max-pool: one thread per output (PyTorch's rule: -inf
 * padding, strictly greater wins, a NaN always wins); its backward one thread per row. Spatial
 * mean: one warp per (b, c, t) row, the sum in double; its backward one thread per element. */
#include "cuda_reduce.cuh"

__global__ void maxpool1d_forward_kernel(float *y, float *argmax, const float *x, int64_t T,
                                         int64_t To, int kernel, int stride, int padding,
                                         int64_t n) {
    GRID_STRIDE_LOOP(o, n) {
        int64_t r = o / To, t = o % To;
        const float *xr = x + r * T;
        float best = -INFINITY;
        int64_t at = -1;
        for (int64_t j = 0; j < kernel; j++) {
            int64_t s = conv_tap_source(t, j, stride, padding);
            if (s < 0 || s >= T) continue;
            if (at < 0 || xr[s] > best || isnan(xr[s])) {
                best = xr[s];
                at = s;
            }
        }
        y[o] = best;
        if (argmax) argmax[o] = (float)at;
    }
}

void maxpool1d_forward_cuda(tal_tensor y, tal_tensor argmax, tal_tensor x, int kernel,
                            int stride, int padding) {
    int64_t T = x.shape[2], To = y.shape[2], n = tal_tensor_numel(y);
    if (!n) return;
    maxpool1d_forward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, argmax.data, x.data, T, To, kernel, stride, padding, n);
    TAL_LAUNCH_CHECK();
}

/* One thread per row runs the CPU's loop: outputs in increasing t add their gradient at their
 * argmax (-1: an all-padding window, nothing). Rows are B x C (the head's few thousand), so
 * this is parallel enough, and adds in the CPU's order: the same bits, no atomics. */
__global__ void maxpool1d_backward_rows(float *dx, const float *dy, const float *argmax,
                                        int64_t rows, int64_t T, int64_t To) {
    GRID_STRIDE_LOOP(r, rows) {
        float *dxr = dx + r * T;
        for (int64_t s = 0; s < T; s++) dxr[s] = 0.0f;
        for (int64_t t = 0; t < To; t++) {
            int64_t s = (int64_t)argmax[r * To + t];
            if (s >= 0) dxr[s] += dy[r * To + t];
        }
    }
}

void maxpool1d_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor argmax) {
    int64_t rows = dx.shape[0] * dx.shape[1], T = dx.shape[2], To = dy.shape[2];
    if (!rows || !T) return;
    maxpool1d_backward_rows<<<grid_for(rows), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dx.data, dy.data, argmax.data, rows, T, To);
    TAL_LAUNCH_CHECK();
}

__global__ void mean_hw_rows_per_warp(float *y, const float *x, int64_t rows, int64_t hw) {
    int64_t r = (int64_t)blockIdx.x * 8 + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    double s = 0;
    for (int64_t j = lane; j < hw; j += 32) s += x[r * hw + j];
    s = warp_sum_double(s);
    if (lane == 0) y[r] = (float)(s / (double)hw);
}

void mean_hw_forward_cuda(tal_tensor y, tal_tensor x) {
    int64_t rows = x.shape[0] * x.shape[1] * x.shape[2], hw = x.shape[3] * x.shape[4];
    if (!rows) return;
    mean_hw_rows_per_warp<<<(unsigned)((rows + 7) / 8), 256, 0, tal_cuda_stream()>>>(
        y.data, x.data, rows, hw);
    TAL_LAUNCH_CHECK();
}

/* dx = dy / HW, the same float division as the CPU */
__global__ void mean_hw_backward_kernel(float *dx, const float *dy, int64_t hw, float hw_f,
                                        int64_t n) {
    GRID_STRIDE_LOOP(i, n) dx[i] = dy[i / hw] / hw_f;
}

void mean_hw_backward_cuda(tal_tensor dx, tal_tensor dy) {
    int64_t hw = dx.shape[3] * dx.shape[4], n = tal_tensor_numel(dx);
    if (!n) return;
    mean_hw_backward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dx.data, dy.data, hw, (float)hw, n);
    TAL_LAUNCH_CHECK();
}
