/* nn/conv1d.cu: CUDA twin of conv1d.c. Depthwise: direct kernels, one thread per output (and
 * per input element for dx, gathering over the taps; dw as per-tap channel sums, deterministic).
 * Dense groups: im2col of one sample's group into the caller's scratch arena + cuBLAS, as the
 * CPU (same scratch sizes, so its planner counts hold); col2im gathers, one thread per input
 * element (no atomics). Indices from device_math.h, shared with the CPU tests. */
#include "cuda_reduce.cuh"

typedef struct dims1 {
    int64_t B, Ci, T, Co, k, To, cig, cog;
    int stride, padding, groups;
} dims1;

static dims1 dims_of(tal_tensor x, tal_tensor w, tal_tensor y, tal_conv1d_geom g) {
    dims1 d = {x.shape[0], x.shape[1], x.shape[2], w.shape[0], w.shape[2], y.shape[2],
               x.shape[1] / g.groups, w.shape[0] / g.groups, g.stride, g.padding, g.groups};
    return d;
}

static int is_depthwise(const dims1 &d) { return d.cig == 1 && d.cog == 1; }
static int is_pointwise(const dims1 &d) {
    return d.k == 1 && d.stride == 1 && d.padding == 0 && !is_depthwise(d);
}

__global__ void depthwise_forward_kernel(float *y, const float *x, const float *w,
                                         const float *b, dims1 d, int64_t n) {
    GRID_STRIDE_LOOP(o, n) {
        int64_t t = o % d.To, c = (o / d.To) % d.Co, bi = o / (d.To * d.Co);
        const float *xr = x + (bi * d.Ci + c) * d.T, *wr = w + c * d.k;
        float s = b ? b[c] : 0.0f;
        for (int64_t j = 0; j < d.k; j++) {
            int64_t src = conv_tap_source(t, j, d.stride, d.padding);
            if (src >= 0 && src < d.T) s += wr[j] * xr[src];
        }
        y[o] = s;
    }
}

/* dx[b, c, s] = sum over taps j of dy[b, c, t] w[c, j], t the output reading s through j */
__global__ void depthwise_dx_kernel(float *dx, const float *dy, const float *w, dims1 d,
                                    int64_t n) {
    GRID_STRIDE_LOOP(i, n) {
        int64_t s = i % d.T, c = (i / d.T) % d.Ci, bi = i / (d.T * d.Ci);
        const float *gr = dy + (bi * d.Co + c) * d.To;
        float acc = 0.0f;
        for (int64_t j = 0; j < d.k; j++) {
            int64_t t = conv_tap_output(s, j, d.stride, d.padding, d.To);
            if (t >= 0) acc += gr[t] * w[c * d.k + j];
        }
        dx[i] = acc;
    }
}

/* dw[c, j] sums dy[b, c, t] x[b, c, t stride + j - padding] over (b, t): channel c k + j */
struct depthwise_dw_value {
    const float *dy, *x;
    dims1 d;
    __device__ double operator()(int64_t cj, int64_t b, int64_t t) const {
        int64_t c = cj / d.k, j = cj % d.k;
        int64_t src = conv_tap_source(t, j, d.stride, d.padding);
        if (src < 0 || src >= d.T) return 0.0;
        return (double)(dy[(b * d.Co + c) * d.To + t] * x[(b * d.Ci + c) * d.T + src]);
    }
};

/* cols [cig k, To] of group gi of sample xb [Ci, T] */
__global__ void im2col1d_kernel(float *cols, const float *xb, dims1 d, int64_t gi, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t t = e % d.To, row = e / d.To, c = row / d.k, j = row % d.k;
        int64_t s = conv_tap_source(t, j, d.stride, d.padding);
        cols[e] = s >= 0 && s < d.T ? xb[(gi * d.cig + c) * d.T + s] : 0.0f;
    }
}

/* dxb[(gi cig + c) T + s] = sum over taps of cols[(c k + j) To + t]: each element of the group
 * is written once, by this pass only (groups own their input channels) */
__global__ void col2im1d_gather_kernel(float *dxb, const float *cols, dims1 d, int64_t gi,
                                       int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t s = e % d.T, c = e / d.T;
        float acc = 0.0f;
        for (int64_t j = 0; j < d.k; j++) {
            int64_t t = conv_tap_output(s, j, d.stride, d.padding, d.To);
            if (t >= 0) acc += cols[(c * d.k + j) * d.To + t];
        }
        dxb[(gi * d.cig + c) * d.T + s] = acc;
    }
}

/* y [B, Co, To] *= mask [B, To] (or m = dy * mask into another buffer) */
__global__ void mask_kernel(float *out, const float *in, const float *mask, int64_t Co,
                            int64_t To, int64_t n) {
    GRID_STRIDE_LOOP(i, n) out[i] = in[i] * mask[(i / (Co * To)) * To + i % To];
}

__global__ void bias_rows_kernel(float *y, const float *b, int64_t Co, int64_t To, int64_t n) {
    GRID_STRIDE_LOOP(i, n) y[i] = b[(i / To) % Co];
}

static void launch_mask(float *out, const float *in, const float *mask, const dims1 &d) {
    int64_t n = d.B * d.Co * d.To;
    mask_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(out, in, mask, d.Co, d.To, n);
    TAL_LAUNCH_CHECK();
}

void conv1d_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b, tal_tensor mask,
                         tal_conv1d_geom g, tal_arena *scratch) {
    dims1 d = dims_of(x, w, y, g);
    int64_t n = d.B * d.Co * d.To;
    if (n == 0) return;
    cudaStream_t stream = tal_cuda_stream();
    if (is_depthwise(d)) {
        depthwise_forward_kernel<<<grid_for(n), TAL_BLOCK, 0, stream>>>(y.data, x.data, w.data,
                                                                        b.data, d, n);
        TAL_LAUNCH_CHECK();
    } else {
        const int direct = is_pointwise(d);
        size_t mark = tal_arena_mark(scratch);
        int64_t ncols = d.cig * d.k * d.To;
        float *cols = direct ? NULL : tal_arena_floats_uninit(scratch, ncols);
        if (b.data) {
            bias_rows_kernel<<<grid_for(n), TAL_BLOCK, 0, stream>>>(y.data, b.data, d.Co, d.To, n);
            TAL_LAUNCH_CHECK();
        }
        for (int64_t bi = 0; bi < d.B; bi++)
            for (int64_t gi = 0; gi < d.groups; gi++) {
                const float *xb = x.data + bi * d.Ci * d.T, *src = xb + gi * d.cig * d.T;
                if (!direct) {
                    im2col1d_kernel<<<grid_for(ncols), TAL_BLOCK, 0, stream>>>(cols, xb, d, gi,
                                                                               ncols);
                    TAL_LAUNCH_CHECK();
                    src = cols;
                }
                gemm_cuda(0, 0, d.cog, d.To, d.cig * d.k, 1.0f,
                          w.data + gi * d.cog * d.cig * d.k, d.cig * d.k, src, d.To,
                          b.data ? 1.0f : 0.0f, y.data + (bi * d.Co + gi * d.cog) * d.To, d.To);
            }
        tal_arena_release(scratch, mark);
    }
    if (mask.data) launch_mask(y.data, y.data, mask.data, d);
}

void conv1d_backward_cuda(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy_in,
                          tal_tensor x, tal_tensor w, tal_tensor mask, tal_conv1d_geom g,
                          tal_arena *scratch) {
    dims1 d = dims_of(x, w, dy_in, g);
    cudaStream_t stream = tal_cuda_stream();
    size_t mark = tal_arena_mark(scratch);
    const float *dy = dy_in.data;
    if (mask.data) { /* the forward multiplied by the mask, so its gradient does too */
        float *m = tal_arena_floats_uninit(scratch, d.B * d.Co * d.To);
        if (d.B * d.Co * d.To > 0) launch_mask(m, dy_in.data, mask.data, d);
        dy = m;
    }
    if (db.data) channel_sum_plain(db.data, dy, d.B, d.Co, d.To);
    if (is_depthwise(d)) {
        int64_t n = d.B * d.Ci * d.T;
        if (dx.data && n) {
            depthwise_dx_kernel<<<grid_for(n), TAL_BLOCK, 0, stream>>>(dx.data, dy, w.data, d, n);
            TAL_LAUNCH_CHECK();
        }
        if (dw.data) channel_sum(dw.data, d.Co * d.k, d.B, d.To, depthwise_dw_value{dy, x.data, d});
    } else {
        const int direct = is_pointwise(d);
        int64_t ncols = d.cig * d.k * d.To, ngroup = d.cig * d.T;
        float *cols = direct ? NULL : tal_arena_floats_uninit(scratch, ncols);
        for (int64_t bi = 0; bi < d.B; bi++)
            for (int64_t gi = 0; gi < d.groups; gi++) {
                const float *gb = dy + (bi * d.Co + gi * d.cog) * d.To;
                const float *wg = w.data + gi * d.cog * d.cig * d.k;
                const float *xb = x.data + bi * d.Ci * d.T;
                const int64_t off = bi * d.Ci * d.T + gi * d.cig * d.T;
                if (dw.data) { /* dW_g += dy_g cols^T */
                    const float *src = x.data + off;
                    if (!direct) {
                        im2col1d_kernel<<<grid_for(ncols), TAL_BLOCK, 0, stream>>>(cols, xb, d,
                                                                                   gi, ncols);
                        TAL_LAUNCH_CHECK();
                        src = cols;
                    }
                    gemm_cuda(0, 1, d.cog, d.cig * d.k, d.To, 1.0f, gb, d.To, src, d.To, 1.0f,
                              dw.data + gi * d.cog * d.cig * d.k, d.cig * d.k);
                }
                if (dx.data && direct) /* dx_g = W_g^T dy_g */
                    gemm_cuda(1, 0, d.cig, d.To, d.cog, 1.0f, wg, d.cig, gb, d.To, 0.0f,
                              dx.data + off, d.To);
                if (dx.data && !direct && ngroup) { /* dcols = W_g^T dy_g, gathered back */
                    gemm_cuda(1, 0, d.cig * d.k, d.To, d.cog, 1.0f, wg, d.cig * d.k, gb, d.To,
                              0.0f, cols, d.To);
                    col2im1d_gather_kernel<<<grid_for(ngroup), TAL_BLOCK, 0, stream>>>(
                        dx.data + bi * d.Ci * d.T, cols, d, gi, ngroup);
                    TAL_LAUNCH_CHECK();
                }
            }
    }
    tal_arena_release(scratch, mark);
}
