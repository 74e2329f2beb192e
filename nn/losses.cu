/* nn/losses.cu: CUDA twins of losses.c: one thread per element computes its term with
 * device_math.h's math (the CPU's formulas in double; CUDA's exp / log1p / pow may differ from
 * glibc's in the last bit) and writes its gradient; the terms are then added in a fixed tree
 * (per-block sums, then the blocks in order), so the sum is the same every run. No atomics. */
#include "cuda_reduce.cuh"

#define SUM_BLOCKS 256 /* blocks of the partial sums, at most */

/* partial[blk] = sum of terms over the block's grid-stride share. */
__global__ void sum_terms_blocks(double *partial, const double *terms, int64_t n) {
    __shared__ double shared[TAL_BLOCK];
    double s = 0;
    GRID_STRIDE_LOOP(e, n) s += terms[e];
    double total = block_sum_double(s, shared);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void sum_terms_finish(double *out, const double *partial, int blocks) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double s = 0;
    for (int b = 0; b < blocks; b++) s += partial[b];
    *out = s;
}

/* The op workspace as [n] terms, then the partials and the result. */
static double *terms_workspace(int64_t n, int blocks) {
    return (double *)tal_cuda_workspace((size_t)(n + blocks + 1) * sizeof(double));
}

/* Sum of terms [n] (in the workspace from terms_workspace), downloaded. */
static double sum_terms(double *terms, int64_t n, int blocks) {
    double *partial = terms + n, *out = partial + blocks;
    cudaStream_t stream = tal_cuda_stream();
    sum_terms_blocks<<<blocks, TAL_BLOCK, 0, stream>>>(partial, terms, n);
    TAL_LAUNCH_CHECK();
    sum_terms_finish<<<1, 32, 0, stream>>>(out, partial, blocks);
    TAL_LAUNCH_CHECK();
    double sum = 0;
    tal_err err = {TAL_OK, ""};
    tal_status rc = cuda_copy_bytes(&sum, TAL_DEV_CPU, out, TAL_DEV_CUDA, sizeof sum, &err);
    TAL_ASSERT_MSG(rc == TAL_OK, "loss sum: %s", err.msg);
    return sum;
}

static int blocks_for(int64_t n) {
    unsigned g = grid_for(n);
    return (int)(g < SUM_BLOCKS ? g : SUM_BLOCKS);
}

__global__ void focal_terms(double *terms, float *dx, const float *x, const float *t,
                            const float *mask, int64_t K, int64_t T, float alpha, float gamma,
                            float gscale, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t i = e % T, b = e / (K * T);
        bool valid = !mask || mask[b * T + i] > 0;
        float d = 0.0f;
        terms[e] = valid ? focal_loss_term(x[e], t[e], alpha, gamma, gscale, &d) : 0.0;
        if (dx) dx[e] = d;
    }
}

double focal_loss_masked_cuda(tal_tensor dx, tal_tensor x, tal_tensor t, tal_tensor mask,
                              float alpha, float gamma, float gscale) {
    int64_t n = tal_tensor_numel(x);
    if (!n) return 0;
    int blocks = blocks_for(n);
    double *terms = terms_workspace(n, blocks);
    focal_terms<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        terms, dx.data, x.data, t.data, mask.data, x.shape[1], x.shape[2], alpha, gamma, gscale,
        n);
    TAL_LAUNCH_CHECK();
    return sum_terms(terms, n, blocks);
}

/* One thread per point (b, i): its term and both offsets' gradients. */
__global__ void diou_terms(double *terms, float *dr, const float *r, const float *rt,
                           const float *pos, int64_t T, double s, float gscale, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t i = e % T, b = e / T;
        const float *rb = r + b * 2 * T, *tb = rt + b * 2 * T;
        float d0 = 0.0f, d1 = 0.0f;
        double term = 0;
        if (pos[e] > 0) {
            float ps, pe, gs, ge, dps, dpe;
            offsets_to_segment(i, s, rb[i], rb[T + i], &ps, &pe);
            offsets_to_segment(i, s, tb[i], tb[T + i], &gs, &ge);
            term = diou_loss_term(ps, pe, gs, ge, gscale, &dps, &dpe);
            d0 = (float)(-dps * s);
            d1 = (float)(dpe * s);
        }
        terms[e] = term;
        if (dr) {
            dr[b * 2 * T + i] = d0;
            dr[b * 2 * T + T + i] = d1;
        }
    }
}

double diou_loss_offsets_cuda(tal_tensor dr, tal_tensor r, tal_tensor rt, tal_tensor pos,
                              float stride, float gscale) {
    int64_t n = tal_tensor_numel(pos);
    if (!n) return 0;
    int blocks = blocks_for(n);
    double *terms = terms_workspace(n, blocks);
    diou_terms<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        terms, dr.data, r.data, rt.data, pos.data, r.shape[2], (double)stride, gscale, n);
    TAL_LAUNCH_CHECK();
    return sum_terms(terms, n, blocks);
}
