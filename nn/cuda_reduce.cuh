/* nn/cuda_reduce.cuh: private to nn/'s .cu files: deterministic sums (no atomics, the same bits
 * every run): a warp's double sum by a fixed butterfly, and per-channel sums over a tensor
 * [outer, C, inner] in two passes (per-block partial sums in a fixed layout, then one pass
 * adding them in order), which the bias, LayerNorm and depthwise-weight gradients use. */
#ifndef TAL_CUDA_REDUCE_CUH
#define TAL_CUDA_REDUCE_CUH

#include "cuda_common.cuh"

/* Sum over the 32 lanes of a warp; every lane gets the total, the same bits every run. */
__device__ static inline double warp_sum_double(double v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ static inline float warp_max_float(float v) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* The tail of a softmax over one row held by a warp, after the lanes wrote the logits to row
 * and each kept its own maximum in m: exp(x - max) / sum, the sum in double (fixed order, so the
 * same bits every run); a row with nothing to attend to (every logit -inf) becomes zeros. */
__device__ static inline void warp_softmax_row_finish(float *row, int64_t n, float m, int lane) {
    m = warp_max_float(m);
    if (m == -INFINITY) {
        for (int64_t j = lane; j < n; j += 32) row[j] = 0.0f;
        return;
    }
    double s = 0;
    for (int64_t j = lane; j < n; j += 32) {
        float e = expf(row[j] - m);
        row[j] = e;
        s += e;
    }
    float inv = (float)(1.0 / warp_sum_double(s)); /* sum >= 1: the maximum's term is e^0 */
    for (int64_t j = lane; j < n; j += 32) row[j] = __fmul_rn(row[j], inv);
}

/* One row of the softmax gradient by a warp, in place: dS = P (dP - rowsum(dP P)), the row sum
 * in double as the CPU; dbias (may be NULL) accumulates dS (one lane per element: no atomics). */
__device__ static inline void warp_softmax_grad_row(float *dr, const float *pr, float *db,
                                                     int64_t n, int lane) {
    double s = 0;
    for (int64_t j = lane; j < n; j += 32) s += (double)dr[j] * pr[j];
    float sf = (float)warp_sum_double(s);
    for (int64_t j = lane; j < n; j += 32) {
        float g = __fmul_rn(pr[j], __fsub_rn(dr[j], sf));
        dr[j] = g;
        if (db) db[j] = __fadd_rn(db[j], g);
    }
}

#define REDUCE_BLOCK 256        /* threads per block of the partial-sum pass */
#define REDUCE_CHUNK 8192       /* elements of one channel one block sums, at least */
#define REDUCE_MAX_CHUNKS 256   /* blocks per channel, at most */

/* Block (c, k) sums value(c, o, i) over chunk k of the (o, i) pairs of channel c (pair e is
 * o = e / inner, i = e % inner) into partial[k * C + c]. */
template <class Value>
__global__ void channel_partials_kernel(double *partial, int64_t C, int64_t outer, int64_t inner,
                                        int64_t chunk, Value value) {
    __shared__ double shared[REDUCE_BLOCK];
    int64_t c = blockIdx.x, k = blockIdx.y, n = outer * inner;
    int64_t e0 = k * chunk, e1 = e0 + chunk < n ? e0 + chunk : n;
    double s = 0;
    for (int64_t e = e0 + threadIdx.x; e < e1; e += blockDim.x) s += value(c, e / inner, e % inner);
    double total = block_sum_double(s, shared);
    if (threadIdx.x == 0) partial[k * C + c] = total;
}

/* out[c] += the partial sums of channel c, added in chunk order. */
__global__ static void channel_finish_kernel(float *out, const double *partial, int64_t C,
                                             int64_t n_chunks) {
    GRID_STRIDE_LOOP(c, C) {
        double s = 0;
        for (int64_t k = 0; k < n_chunks; k++) s += partial[k * C + c];
        out[c] += (float)s;
    }
}

/* out[c] += sum over o < outer, i < inner of value(c, o, i) (a __device__ functor returning
 * double), for c < C. The chunking depends only on the shape, so the result does too. */
template <class Value>
static void channel_sum(float *out, int64_t C, int64_t outer, int64_t inner, Value value) {
    int64_t n = outer * inner;
    if (C == 0) return;
    int64_t n_chunks = (n + REDUCE_CHUNK - 1) / REDUCE_CHUNK;
    if (n_chunks < 1) n_chunks = 1;
    if (n_chunks > REDUCE_MAX_CHUNKS) n_chunks = REDUCE_MAX_CHUNKS;
    int64_t chunk = (n + n_chunks - 1) / n_chunks;
    TAL_ASSERT_MSG(C <= INT32_MAX, "channel sum over %lld channels", (long long)C);
    double *partial = (double *)tal_cuda_workspace_slot(
        TAL_WS_PARTIALS, (size_t)(C * n_chunks) * sizeof(double));
    cudaStream_t stream = tal_cuda_stream();
    dim3 grid((unsigned)C, (unsigned)n_chunks);
    channel_partials_kernel<<<grid, REDUCE_BLOCK, 0, stream>>>(partial, C, outer, inner, chunk,
                                                                value);
    TAL_LAUNCH_CHECK();
    channel_finish_kernel<<<grid_for(C), TAL_BLOCK, 0, stream>>>(out, partial, C, n_chunks);
    TAL_LAUNCH_CHECK();
}

/* value(c, o, i) = x[(o C + c) inner + i]: the plain channel sum of a [outer, C, inner] tensor
 * (bias gradients: linear as [rows, C, 1], convs as [B, C, positions]). */
struct plain_value {
    const float *x;
    int64_t C, inner;
    __device__ double operator()(int64_t c, int64_t o, int64_t i) const {
        return x[(o * C + c) * inner + i];
    }
};

/* out[c] += sum of x [outer, C, inner] over outer and inner. */
static inline void channel_sum_plain(float *out, const float *x, int64_t outer, int64_t C,
                                     int64_t inner) {
    channel_sum(out, C, outer, inner, plain_value{x, C, inner});
}

#endif /* TAL_CUDA_REDUCE_CUH */
