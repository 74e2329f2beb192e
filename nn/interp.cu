/* nn/interp.cu: CUDA twin of interp.c with the same source positions and weights
 * (device_math.h's interp_source): forward one thread per output; backward one thread per row
 * running the CPU's loop (outputs in order add into their two sources: the same bits, no
 * atomics; rows are B x C, the head's few thousand). */
#include "cuda_common.cuh"

__global__ void interp1d_forward_kernel(float *y, const float *x, int64_t tin, int64_t tout,
                                        int64_t n) {
    GRID_STRIDE_LOOP(o, n) {
        int64_t r = o / tout, i = o % tout, i0, i1;
        float l;
        interp_source(i, tin, tout, &i0, &i1, &l);
        y[o] = (1.0f - l) * x[r * tin + i0] + l * x[r * tin + i1];
    }
}

void interp1d_forward_cuda(tal_tensor y, tal_tensor x) {
    int64_t tin = x.shape[2], tout = y.shape[2], n = tal_tensor_numel(y);
    if (!n) return;
    interp1d_forward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(y.data, x.data,
                                                                              tin, tout, n);
    TAL_LAUNCH_CHECK();
}

__global__ void interp1d_backward_rows(float *dx, const float *dy, int64_t rows, int64_t tin,
                                       int64_t tout) {
    GRID_STRIDE_LOOP(r, rows) {
        float *dxr = dx + r * tin;
        for (int64_t i = 0; i < tin; i++) dxr[i] = 0.0f;
        for (int64_t i = 0; i < tout; i++) {
            int64_t i0, i1;
            float l;
            interp_source(i, tin, tout, &i0, &i1, &l);
            dxr[i0] += (1.0f - l) * dy[r * tout + i];
            dxr[i1] += l * dy[r * tout + i];
        }
    }
}

void interp1d_backward_cuda(tal_tensor dx, tal_tensor dy) {
    int64_t rows = dx.shape[0] * dx.shape[1], tin = dx.shape[2], tout = dy.shape[2];
    if (!rows || !tin) return;
    interp1d_backward_rows<<<grid_for(rows), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dx.data, dy.data, rows, tin, tout);
    TAL_LAUNCH_CHECK();
}
