/* nn/conv1d.c: 1-D convolution on [B, C, T] with kernel k, stride, zero padding and groups
 * (depthwise when groups == C), optional length mask on the output. Dense groups go through
 * im2col + GEMM (w [Co, Ci/g, k] is already the [Co, Ci/g * k] matrix; k = 1, stride 1 convs
 * multiply the input rows themselves); depthwise is direct. */
#include "nn.h"
#include "cuda_ops.h"
#include "dispatch.h"

#include <string.h>

int64_t tal_conv_out_len(int64_t in, int k, int stride, int padding) {
    int64_t span = in + 2 * (int64_t)padding - k;
    return span < 0 ? 0 : span / stride + 1;
}

typedef struct dims {
    int64_t B, Ci, T, Co, k, To, cig, cog; /* cig / cog: channels per group in / out */
} dims;

static dims check(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor mask, tal_conv1d_geom g) {
    TAL_ASSERT(x.ndim == 3 && y.ndim == 3 && w.ndim == 3);
    TAL_ASSERT(g.stride >= 1 && g.padding >= 0 && g.groups >= 1);
    dims d = {x.shape[0], x.shape[1], x.shape[2], w.shape[0], w.shape[2], 0, 0, 0};
    TAL_ASSERT_MSG(d.Ci % g.groups == 0 && d.Co % g.groups == 0 && w.shape[1] == d.Ci / g.groups,
                   "conv1d: Ci %lld, Co %lld, groups %d, w [%lld, %lld, %lld]", (long long)d.Ci,
                   (long long)d.Co, g.groups, (long long)w.shape[0], (long long)w.shape[1],
                   (long long)w.shape[2]);
    d.To = tal_conv_out_len(d.T, (int)d.k, g.stride, g.padding);
    TAL_ASSERT_MSG(y.shape[0] == d.B && y.shape[1] == d.Co && y.shape[2] == d.To,
                   "conv1d: output [%lld, %lld, %lld], expected T_out %lld", (long long)y.shape[0],
                   (long long)y.shape[1], (long long)y.shape[2], (long long)d.To);
    TAL_ASSERT(!mask.data || tal_tensor_numel(mask) == d.B * d.To);
    d.cig = d.Ci / g.groups;
    d.cog = d.Co / g.groups;
    return d;
}

/* cols [cig * k, To] of group gi of one sample x_b [Ci, T]. */
static void im2col(float *cols, const float *xb, dims d, tal_conv1d_geom g, int64_t gi) {
#pragma omp parallel for collapse(2) schedule(static) if (d.cig * d.k * d.To > 65536)
    for (int64_t c = 0; c < d.cig; c++)
        for (int64_t j = 0; j < d.k; j++) {
            const float *xr = xb + (gi * d.cig + c) * d.T;
            float *row = cols + (c * d.k + j) * d.To;
            for (int64_t t = 0; t < d.To; t++) {
                int64_t s = t * g.stride + j - g.padding;
                row[t] = s >= 0 && s < d.T ? xr[s] : 0.0f;
            }
        }
}

static void col2im_add(float *dxb, const float *cols, dims d, tal_conv1d_geom g, int64_t gi) {
    /* threads own input channels: the k taps of one channel add into the same row */
#pragma omp parallel for schedule(static) if (d.cig * d.k * d.To > 65536)
    for (int64_t c = 0; c < d.cig; c++)
        for (int64_t j = 0; j < d.k; j++) {
            float *xr = dxb + (gi * d.cig + c) * d.T;
            const float *row = cols + (c * d.k + j) * d.To;
            for (int64_t t = 0; t < d.To; t++) {
                int64_t s = t * g.stride + j - g.padding;
                if (s >= 0 && s < d.T) xr[s] += row[t];
            }
        }
}

static int is_depthwise(dims d) { return d.cig == 1 && d.cog == 1; }

/* The scratch buffers (im2col columns, masked dy) live where the tensors do. */
static void check_scratch(tal_arena *scratch, tal_device dev) {
    TAL_ASSERT_MSG(tal_arena_device(scratch) == dev,
                   "conv1d: the scratch arena is on another device than the tensors");
}
/* k = 1, stride 1, no padding: each group's input rows [cig, T] are already its column matrix. */
static int is_pointwise(dims d, tal_conv1d_geom g) {
    return d.k == 1 && g.stride == 1 && g.padding == 0 && !is_depthwise(d);
}

static void conv1d_forward_cpu(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                               tal_tensor mask, tal_conv1d_geom g, tal_arena *scratch, dims d) {
    if (is_depthwise(d)) {
#pragma omp parallel for collapse(2) schedule(static) if (d.B * d.Co * d.To > 16384)
        for (int64_t bi = 0; bi < d.B; bi++)
            for (int64_t c = 0; c < d.Co; c++) {
                const float *xr = x.data + (bi * d.Ci + c) * d.T, *wr = w.data + c * d.k;
                float *yr = y.data + (bi * d.Co + c) * d.To;
                for (int64_t t = 0; t < d.To; t++) {
                    float s = b.data ? b.data[c] : 0.0f;
                    for (int64_t j = 0; j < d.k; j++) {
                        int64_t src = t * g.stride + j - g.padding;
                        if (src >= 0 && src < d.T) s += wr[j] * xr[src];
                    }
                    yr[t] = s;
                }
            }
    } else {
        const int direct = is_pointwise(d, g);
        size_t mark = tal_arena_mark(scratch);
        float *cols = direct ? NULL : tal_arena_floats(scratch, d.cig * d.k * d.To);
        for (int64_t bi = 0; bi < d.B; bi++)
            for (int64_t gi = 0; gi < g.groups; gi++) {
                const float *src = x.data + bi * d.Ci * d.T + gi * d.cig * d.T;
                if (!direct) {
                    im2col(cols, x.data + bi * d.Ci * d.T, d, g, gi);
                    src = cols;
                }
                float *yb = y.data + (bi * d.Co + gi * d.cog) * d.To;
                float beta = 0.0f;
                if (b.data) {
                    for (int64_t c = 0; c < d.cog; c++)
                        for (int64_t t = 0; t < d.To; t++)
                            yb[c * d.To + t] = b.data[gi * d.cog + c];
                    beta = 1.0f;
                }
                tal_gemm(0, 0, d.cog, d.To, d.cig * d.k, 1.0f, w.data + gi * d.cog * d.cig * d.k,
                         d.cig * d.k, src, d.To, beta, yb, d.To);
            }
        tal_arena_release(scratch, mark);
    }
    if (mask.data)
#pragma omp parallel for collapse(2) schedule(static) if (d.B * d.Co * d.To > 65536)
        for (int64_t bi = 0; bi < d.B; bi++)
            for (int64_t c = 0; c < d.Co; c++)
                for (int64_t t = 0; t < d.To; t++)
                    y.data[(bi * d.Co + c) * d.To + t] *= mask.data[bi * d.To + t];
}

void tal_conv1d_forward(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                        tal_tensor mask, tal_conv1d_geom g, tal_arena *scratch) {
    dims d = check(y, x, w, mask, g);
    TAL_ASSERT(!b.data || tal_tensor_numel(b) == d.Co);
    TAL_ASSERT_MSG(scratch != NULL, "conv1d: a scratch arena is required");
    tal_device dev = OP_DEVICE(y, x, w, b, mask);
    if (tal_arena_is_planner(scratch)) {
        if (!is_depthwise(d) && !is_pointwise(d, g)) {
            size_t mark = tal_arena_mark(scratch);
            tal_arena_floats(scratch, d.cig * d.k * d.To);
            tal_arena_release(scratch, mark);
        }
        return;
    }
    check_scratch(scratch, dev);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        conv1d_forward_cuda(y, x, w, b, mask, g, scratch);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    conv1d_forward_cpu(y, x, w, b, mask, g, scratch, d);
}

static void conv1d_backward_cpu(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy_in,
                                tal_tensor x, tal_tensor w, tal_tensor mask, tal_conv1d_geom g,
                                tal_arena *scratch, dims d) {
    size_t mark = tal_arena_mark(scratch);
    const float *dy = dy_in.data;
    if (mask.data) { /* the forward multiplied by the mask, so its gradient does too */
        float *m = tal_arena_floats(scratch, d.B * d.Co * d.To);
#pragma omp parallel for collapse(2) schedule(static) if (d.B * d.Co * d.To > 65536)
        for (int64_t bi = 0; bi < d.B; bi++)
            for (int64_t c = 0; c < d.Co; c++)
                for (int64_t t = 0; t < d.To; t++) {
                    int64_t i = (bi * d.Co + c) * d.To + t;
                    m[i] = dy_in.data[i] * mask.data[bi * d.To + t];
                }
        dy = m;
    }
    if (db.data)
#pragma omp parallel for schedule(static) if (d.B * d.Co * d.To > 65536)
        for (int64_t c = 0; c < d.Co; c++) {
            double s = 0;
            for (int64_t bi = 0; bi < d.B; bi++)
                for (int64_t t = 0; t < d.To; t++) s += dy[(bi * d.Co + c) * d.To + t];
            db.data[c] += (float)s;
        }
    if (is_depthwise(d)) {
        if (dx.data) memset(dx.data, 0, tal_tensor_bytes(dx));
#pragma omp parallel for schedule(static) if (d.B * d.Co * d.To > 16384)
        for (int64_t c = 0; c < d.Co; c++) {
            const float *wr = w.data + c * d.k;
            for (int64_t bi = 0; bi < d.B; bi++) {
                const float *xr = x.data + (bi * d.Ci + c) * d.T, *gr = dy + (bi * d.Co + c) * d.To;
                float *dxr = dx.data ? dx.data + (bi * d.Ci + c) * d.T : NULL;
                for (int64_t t = 0; t < d.To; t++)
                    for (int64_t j = 0; j < d.k; j++) {
                        int64_t src = t * g.stride + j - g.padding;
                        if (src < 0 || src >= d.T) continue;
                        if (dw.data) dw.data[c * d.k + j] += gr[t] * xr[src];
                        if (dxr) dxr[src] += gr[t] * wr[j];
                    }
            }
        }
    } else {
        const int direct = is_pointwise(d, g);
        float *cols = direct ? NULL : tal_arena_floats(scratch, d.cig * d.k * d.To);
        if (dx.data && !direct) memset(dx.data, 0, tal_tensor_bytes(dx));
        for (int64_t bi = 0; bi < d.B; bi++)
            for (int64_t gi = 0; gi < g.groups; gi++) {
                const float *gb = dy + (bi * d.Co + gi * d.cog) * d.To;
                const float *wg = w.data + gi * d.cog * d.cig * d.k;
                const int64_t off = bi * d.Ci * d.T + gi * d.cig * d.T; /* group's input rows */
                if (dw.data) { /* dW_g += dy_g cols^T */
                    const float *src = x.data + off;
                    if (!direct) {
                        im2col(cols, x.data + bi * d.Ci * d.T, d, g, gi);
                        src = cols;
                    }
                    tal_gemm(0, 1, d.cog, d.cig * d.k, d.To, 1.0f, gb, d.To, src, d.To, 1.0f,
                             dw.data + gi * d.cog * d.cig * d.k, d.cig * d.k);
                }
                if (dx.data && direct) /* dx_g = W_g^T dy_g, written in place */
                    tal_gemm(1, 0, d.cig, d.To, d.cog, 1.0f, wg, d.cig, gb, d.To, 0.0f,
                             dx.data + off, d.To);
                if (dx.data && !direct) { /* dcols = W_g^T dy_g, scattered back */
                    tal_gemm(1, 0, d.cig * d.k, d.To, d.cog, 1.0f, wg, d.cig * d.k, gb, d.To, 0.0f,
                             cols, d.To);
                    col2im_add(dx.data + bi * d.Ci * d.T, cols, d, g, gi);
                }
            }
    }
    tal_arena_release(scratch, mark);
}

void tal_conv1d_backward(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                         tal_tensor x, tal_tensor w, tal_tensor mask, tal_conv1d_geom g,
                         tal_arena *scratch) {
    dims d = check(dy, x, w, mask, g);
    TAL_ASSERT_MSG(scratch != NULL, "conv1d: a scratch arena is required");
    TAL_ASSERT(!dx.data || tal_tensor_same_shape(dx, x));
    TAL_ASSERT(!dw.data || tal_tensor_same_shape(dw, w));
    TAL_ASSERT(!db.data || tal_tensor_numel(db) == d.Co);
    tal_device dev = OP_DEVICE(dx, dw, db, dy, x, w, mask);
    if (tal_arena_is_planner(scratch)) {
        size_t mark = tal_arena_mark(scratch);
        if (mask.data || mask.ndim) tal_arena_floats(scratch, d.B * d.Co * d.To);
        if (!is_depthwise(d) && !is_pointwise(d, g)) tal_arena_floats(scratch, d.cig * d.k * d.To);
        tal_arena_release(scratch, mark);
        return;
    }
    check_scratch(scratch, dev);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        conv1d_backward_cuda(dx, dw, db, dy, x, w, mask, g, scratch);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    conv1d_backward_cpu(dx, dw, db, dy, x, w, mask, g, scratch, d);
}
