/* nn/channels.cu: CUDA twins of channels.c, one thread per output element: the channel-last
 * mean sums its tokens in double in the CPU's order, frozen BatchNorm rounds each operation on
 * its own (device_math.h), so both give the CPU's bits; the max difference reduces per block,
 * then once (a maximum does not depend on the order). No atomics. */
#include "cuda_common.cuh"

/* ---------------------------------------------------------------- channel-last mean ----- */
/* One thread per output (b, d, c), c fastest: the threads of a warp read neighbouring
 * channels of each token. */
__global__ void mean_hw_last_forward_kernel(float *y, const float *x, int64_t D, int64_t S,
                                            int64_t C, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t c = e % C, bd = e / C, b = bd / D, d = bd % D;
        const float *src = x + bd * S * C + c;
        double acc = 0;
        for (int64_t t = 0; t < S; t++) acc += src[t * C];
        y[(b * C + c) * D + d] = (float)(acc / (double)S);
    }
}

void mean_hw_last_forward_cuda(tal_tensor y, tal_tensor x) {
    int64_t n = x.shape[0] * x.shape[1] * x.shape[3];
    if (!n) return;
    mean_hw_last_forward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, x.data, x.shape[1], x.shape[2], x.shape[3], n);
    TAL_LAUNCH_CHECK();
}

__global__ void mean_hw_last_backward_kernel(float *dx, const float *dy, int64_t D, int64_t S,
                                             int64_t C, float inv, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t c = e % C, bd = e / (S * C), b = bd / D, d = bd % D;
        dx[e] = __fmul_rn(dy[(b * C + c) * D + d], inv);
    }
}

void mean_hw_last_backward_cuda(tal_tensor dx, tal_tensor dy) {
    int64_t n = tal_tensor_numel(dx);
    if (!n) return;
    float inv = 1.0f / (float)dx.shape[2];
    mean_hw_last_backward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dx.data, dy.data, dx.shape[1], dx.shape[2], dx.shape[3], inv, n);
    TAL_LAUNCH_CHECK();
}

/* ---------------------------------------------------------------- frozen BatchNorm ------ */
/* x [B, C, S]: element e has channel (e / S) % C. b and mean are NULL in the backward. */
__global__ void batchnorm_frozen_kernel(float *y, const float *x, const float *w, const float *b,
                                        const float *mean, const float *var, float eps,
                                        int64_t C, int64_t S, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t c = (e / S) % C;
        float s, t;
        frozen_bn_affine(w[c], b ? b[c] : 0.0f, mean ? mean[c] : 0.0f, var[c], eps, &s, &t);
        y[e] = b ? __fadd_rn(__fmul_rn(x[e], s), t) : __fmul_rn(x[e], s);
    }
}

static void batchnorm_frozen(tal_tensor y, tal_tensor x, tal_tensor w, const float *b,
                             const float *mean, tal_tensor var, float eps) {
    int64_t n = tal_tensor_numel(x), C = x.shape[1];
    if (!n) return;
    batchnorm_frozen_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, x.data, w.data, b, mean, var.data, eps, C, n / (x.shape[0] * C), n);
    TAL_LAUNCH_CHECK();
}

void batchnorm_frozen_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                                   tal_tensor mean, tal_tensor var, float eps) {
    batchnorm_frozen(y, x, w, b.data, mean.data, var, eps);
}

void batchnorm_frozen_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor w, tal_tensor var,
                                    float eps) {
    batchnorm_frozen(dx, dy, w, NULL, NULL, var, eps);
}

/* ---------------------------------------------------------------- max difference -------- */
#define MAXDIFF_BLOCKS 1024

/* The larger of m and v; a NaN v leaves m (the CPU's `if (e > worst)`). */
__device__ static inline double keep_max(double m, double v) { return v > m ? v : m; }

/* The block's maximum of |a - b| over its grid-stride share into part[blockIdx.x]. */
__global__ void max_abs_diff_blocks(double *part, const float *a, const float *b, int64_t n) {
    __shared__ double sh[TAL_BLOCK];
    double m = 0;
    GRID_STRIDE_LOOP(i, n) m = keep_max(m, fabs((double)a[i] - (double)b[i]));
    sh[threadIdx.x] = m;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] = keep_max(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

double max_abs_diff_cuda(tal_tensor a, tal_tensor b) {
    int64_t n = tal_tensor_numel(a);
    if (!n) return 0;
    unsigned blocks = grid_for(n) < MAXDIFF_BLOCKS ? grid_for(n) : MAXDIFF_BLOCKS;
    double *part = (double *)tal_cuda_workspace(sizeof(double) * blocks);
    max_abs_diff_blocks<<<blocks, TAL_BLOCK, 0, tal_cuda_stream()>>>(part, a.data, b.data, n);
    TAL_LAUNCH_CHECK();
    /* the host waits for the number anyway: it takes the blocks' maxima (8 KiB at most) */
    double host[MAXDIFF_BLOCKS];
    tal_err err = {TAL_OK, ""};
    tal_status rc = cuda_copy_bytes(host, TAL_DEV_CPU, part, TAL_DEV_CUDA,
                                    sizeof(double) * blocks, &err);
    TAL_ASSERT_MSG(rc == TAL_OK, "max_abs_diff: %s", err.msg);
    double m = 0;
    for (unsigned i = 0; i < blocks; i++) m = host[i] > m ? host[i] : m;
    return m;
}
