/* nn/activations.cu: CUDA twin of activations.c, one thread per element: GELU in the exact erf
 * form (CUDA's erff, within 2 ulp; the CPU's polynomial is within 4.2e-7) and ReLU (gradient 0
 * at 0, as PyTorch). y may alias x in forward; dx may alias dy in backward. */
#include "cuda_common.cuh"

__global__ void gelu_forward_kernel(float *y, const float *x, int64_t n) {
    GRID_STRIDE_LOOP(i, n) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    }
}

/* d/dx [x Phi(x)] = Phi(x) + x phi(x) */
__global__ void gelu_backward_kernel(float *dx, const float *dy, const float *x, int64_t n) {
    GRID_STRIDE_LOOP(i, n) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
        float pdf = 0.3989422804014327f * expf(-0.5f * v * v);
        dx[i] = dy[i] * (cdf + v * pdf);
    }
}

__global__ void relu_forward_kernel(float *y, const float *x, int64_t n) {
    GRID_STRIDE_LOOP(i, n) y[i] = x[i] > 0 ? x[i] : 0.0f;
}

__global__ void relu_backward_kernel(float *dx, const float *dy, const float *y, int64_t n) {
    GRID_STRIDE_LOOP(i, n) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}

void gelu_forward_cuda(tal_tensor y, tal_tensor x) {
    int64_t n = tal_tensor_numel(x);
    if (!n) return;
    gelu_forward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(y.data, x.data, n);
    TAL_LAUNCH_CHECK();
}

void gelu_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor x) {
    int64_t n = tal_tensor_numel(x);
    if (!n) return;
    gelu_backward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(dx.data, dy.data,
                                                                           x.data, n);
    TAL_LAUNCH_CHECK();
}

void relu_forward_cuda(tal_tensor y, tal_tensor x) {
    int64_t n = tal_tensor_numel(x);
    if (!n) return;
    relu_forward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(y.data, x.data, n);
    TAL_LAUNCH_CHECK();
}

void relu_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor y) {
    int64_t n = tal_tensor_numel(y);
    if (!n) return;
    relu_backward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(dx.data, dy.data,
                                                                           y.data, n);
    TAL_LAUNCH_CHECK();
}
