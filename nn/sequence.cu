/* nn/sequence.cu: CUDA twins of sequence.c, one thread per element: the same single roundings
 * (__fmul_rn / __fadd_rn keep nvcc from fusing a multiply-add the CPU does not), so the same
 * bits; the parameter gradients (layer scale, regression scale) sum in double per block in a
 * fixed layout, then once (cuda_reduce.cuh). No atomics. */
#include "cuda_reduce.cuh"

__global__ void mask_columns_kernel(float *y, const float *x, const float *mask, int64_t C,
                                    int64_t T, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t t = e % T, b = e / (C * T);
        y[e] = __fmul_rn(x[e], mask[b * T + t]);
    }
}

void mask_columns_cuda(tal_tensor y, tal_tensor x, tal_tensor mask) {
    int64_t n = tal_tensor_numel(x);
    if (!n) return;
    mask_columns_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, x.data, mask.data, x.shape[1], x.shape[2], n);
    TAL_LAUNCH_CHECK();
}

__global__ void channel_scale_kernel(float *y, const float *x, const float *g, int64_t C,
                                     int64_t T, int64_t n) {
    GRID_STRIDE_LOOP(e, n) y[e] = __fmul_rn(g[(e / T) % C], x[e]);
}

void channel_scale_cuda(tal_tensor y, tal_tensor x, tal_tensor g) {
    int64_t n = tal_tensor_numel(x);
    if (!n) return;
    channel_scale_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, x.data, g.data, x.shape[1], x.shape[2], n);
    TAL_LAUNCH_CHECK();
}

/* value(c, b, t) = dy x at [b, c, t] */
struct product_value {
    const float *dy, *x;
    int64_t C, T;
    __device__ double operator()(int64_t c, int64_t b, int64_t t) const {
        int64_t i = (b * C + c) * T + t;
        return (double)dy[i] * x[i];
    }
};

void channel_scale_grad_cuda(tal_tensor dg, tal_tensor dy, tal_tensor x) {
    int64_t B = x.shape[0], C = x.shape[1], T = x.shape[2];
    channel_sum(dg.data, C, B, T, product_value{dy.data, x.data, C, T});
}

__global__ void add_position_table_kernel(float *y, const float *x, const float *table,
                                          const float *mask, int64_t C, int64_t T, int64_t Tt,
                                          int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t t = e % T, c = (e / T) % C, b = e / (C * T);
        y[e] = __fadd_rn(x[e], __fmul_rn(table[c * Tt + t], mask[b * T + t]));
    }
}

void add_position_table_cuda(tal_tensor y, tal_tensor x, tal_tensor table, tal_tensor mask) {
    int64_t n = tal_tensor_numel(x);
    if (!n) return;
    add_position_table_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, x.data, table.data, mask.data, x.shape[1], x.shape[2], table.shape[1], n);
    TAL_LAUNCH_CHECK();
}

__global__ void take_every_kernel(float *dst, const float *src, int64_t T, int64_t To,
                                  int stride, int64_t n) {
    GRID_STRIDE_LOOP(e, n) dst[e] = src[(e / To) * T + (e % To) * stride];
}

void take_every_cuda(tal_tensor dst, tal_tensor src, int stride) {
    int64_t n = tal_tensor_numel(dst);
    if (!n) return;
    take_every_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dst.data, src.data, tal_tensor_cols(src), tal_tensor_cols(dst), stride, n);
    TAL_LAUNCH_CHECK();
}

__global__ void scale_relu_forward_kernel(float *y, const float *x, const float *s, int64_t n) {
    float sc = s[0];
    GRID_STRIDE_LOOP(e, n) {
        float v = __fmul_rn(sc, x[e]);
        y[e] = v > 0 ? v : 0.0f;
    }
}

void scale_relu_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor s) {
    int64_t n = tal_tensor_numel(x);
    if (!n) return;
    scale_relu_forward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(y.data, x.data,
                                                                                 s.data, n);
    TAL_LAUNCH_CHECK();
}

/* value(0, 0, i) = (y > 0 ? dy : 0) x at flat i */
struct relu_product_value {
    const float *dy, *y, *x;
    __device__ double operator()(int64_t, int64_t, int64_t i) const {
        float g = y[i] > 0.0f ? dy[i] : 0.0f;
        return (double)g * x[i];
    }
};

__global__ void scale_relu_backward_kernel(float *dx, const float *dy, const float *y,
                                           const float *s, int64_t n) {
    float sc = s[0];
    GRID_STRIDE_LOOP(e, n) {
        float g = y[e] > 0.0f ? dy[e] : 0.0f;
        dx[e] = __fmul_rn(g, sc);
    }
}

void scale_relu_backward_cuda(tal_tensor dx, tal_tensor ds, tal_tensor dy, tal_tensor y,
                              tal_tensor x, tal_tensor s) {
    int64_t n = tal_tensor_numel(x);
    if (!n) return;
    /* the sum first: dx may be dy itself */
    if (ds.data) channel_sum(ds.data, 1, 1, n, relu_product_value{dy.data, y.data, x.data});
    scale_relu_backward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dx.data, dy.data, y.data, s.data, n);
    TAL_LAUNCH_CHECK();
}

/* Per-block counts (a count is exact in any order), then one block adds them up. */
#define COUNT_BLOCKS 1024

__global__ void count_nonfinite_blocks(unsigned long long *partial, const float *v, int64_t n) {
    __shared__ double shared[TAL_BLOCK];
    double k = 0;
    GRID_STRIDE_LOOP(e, n) k += !isfinite(v[e]);
    double total = block_sum_double(k, shared);
    if (threadIdx.x == 0) partial[blockIdx.x] = (unsigned long long)total;
}

__global__ void count_finish(unsigned long long *out, const unsigned long long *partial,
                             int blocks) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    unsigned long long s = 0;
    for (int b = 0; b < blocks; b++) s += partial[b];
    *out = s;
}

int64_t count_nonfinite_cuda(tal_tensor t) {
    int64_t n = tal_tensor_numel(t);
    if (!n) return 0;
    int blocks = (int)(grid_for(n) < COUNT_BLOCKS ? grid_for(n) : COUNT_BLOCKS);
    unsigned long long *ws = (unsigned long long *)tal_cuda_workspace(
        (size_t)(blocks + 1) * sizeof(unsigned long long));
    cudaStream_t stream = tal_cuda_stream();
    count_nonfinite_blocks<<<blocks, TAL_BLOCK, 0, stream>>>(ws + 1, t.data, n);
    TAL_LAUNCH_CHECK();
    count_finish<<<1, 32, 0, stream>>>(ws, ws + 1, blocks);
    TAL_LAUNCH_CHECK();
    unsigned long long count = 0;
    tal_err err = {TAL_OK, ""};
    tal_status rc = cuda_copy_bytes(&count, TAL_DEV_CPU, ws, TAL_DEV_CUDA, sizeof count, &err);
    TAL_ASSERT_MSG(rc == TAL_OK, "count_nonfinite: %s", err.msg);
    return (int64_t)count;
}
