/* nn/conv3d.c: 3-D convolutions on [B, C, T, H, W]. The patch embedding (stride = kernel, no
 * padding) gathers one output row of patches at a time into a small stack tile and multiplies
 * it with the [Co, Ci*kt*kh*kw] weight matrix. The general conv runs on oneDNN's convolution
 * primitives on the CPU (nn/conv3d_dnnl.c) and as im2col + GEMM on the device; 1x1x1 stride-1
 * convs multiply the sample itself on the CPU (no scratch: faster than oneDNN's 1x1 kernels
 * with the reorders they need, bench_nn_conv_libs). */
#include "nn.h"
#include "conv3d_dnnl.h"
#include "cuda_ops.h"
#include "dispatch.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define TILE_FLOATS 16384 /* 64 KiB of stack per thread */

typedef struct pdims {
    int64_t B, Ci, T, H, W, Co, kt, kh, kw, To, Ho, Wo, K, P;
} pdims;

static pdims patch_dims(tal_tensor x, tal_tensor w) {
    TAL_ASSERT(x.ndim == 5 && w.ndim == 5 && w.shape[1] == x.shape[1]);
    pdims d = {x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4], w.shape[0],
               w.shape[2], w.shape[3], w.shape[4], 0, 0, 0, 0, 0};
    TAL_ASSERT_MSG(d.T % d.kt == 0 && d.H % d.kh == 0 && d.W % d.kw == 0,
                   "patch conv3d: input %lldx%lldx%lld not a multiple of kernel %lldx%lldx%lld",
                   (long long)d.T, (long long)d.H, (long long)d.W, (long long)d.kt,
                   (long long)d.kh, (long long)d.kw);
    d.To = d.T / d.kt;
    d.Ho = d.H / d.kh;
    d.Wo = d.W / d.kw;
    d.K = d.Ci * d.kt * d.kh * d.kw;
    d.P = d.To * d.Ho * d.Wo;
    return d;
}

/* tile [K, n] of the patches (t, h, w0 .. w0+n) of sample b; k = ((ci*kt + dt)*kh + dh)*kw + dw
 * is the weight's own flattening, so W [Co, K] multiplies it directly. */
static void gather_tile(float *tile, const float *x, pdims d, int64_t b, int64_t t, int64_t h,
                        int64_t w0, int64_t n) {
    for (int64_t ci = 0; ci < d.Ci; ci++)
        for (int64_t dt = 0; dt < d.kt; dt++)
            for (int64_t dh = 0; dh < d.kh; dh++) {
                const float *row = x + (((b * d.Ci + ci) * d.T + t * d.kt + dt) * d.H +
                                        h * d.kh + dh) * d.W;
                for (int64_t dw = 0; dw < d.kw; dw++) {
                    float *out = tile + (((ci * d.kt + dt) * d.kh + dh) * d.kw + dw) * n;
                    for (int64_t i = 0; i < n; i++) out[i] = row[(w0 + i) * d.kw + dw];
                }
            }
}

static void scatter_tile(float *x, const float *tile, pdims d, int64_t b, int64_t t, int64_t h,
                         int64_t w0, int64_t n) {
    for (int64_t ci = 0; ci < d.Ci; ci++)
        for (int64_t dt = 0; dt < d.kt; dt++)
            for (int64_t dh = 0; dh < d.kh; dh++) {
                float *row = x + (((b * d.Ci + ci) * d.T + t * d.kt + dt) * d.H + h * d.kh + dh) *
                                     d.W;
                for (int64_t dw = 0; dw < d.kw; dw++) {
                    const float *in = tile + (((ci * d.kt + dt) * d.kh + dh) * d.kw + dw) * n;
                    for (int64_t i = 0; i < n; i++) row[(w0 + i) * d.kw + dw] = in[i];
                }
            }
}

static int64_t tile_cols(pdims d) {
    int64_t n = TILE_FLOATS / d.K;
    TAL_ASSERT_MSG(n >= 1, "patch conv3d: kernel of %lld elements too large", (long long)d.K);
    return n < d.Wo ? n : d.Wo;
}

void tal_patch_conv3d_forward(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b) {
    pdims d = patch_dims(x, w);
    TAL_ASSERT(y.ndim == 5 && y.shape[0] == d.B && y.shape[1] == d.Co && y.shape[2] == d.To &&
               y.shape[3] == d.Ho && y.shape[4] == d.Wo);
    TAL_ASSERT(!b.data || tal_tensor_numel(b) == d.Co);
    tal_device dev = OP_DEVICE(y, x, w, b);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        patch_conv3d_forward_cuda(y, x, w, b);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t nc = tile_cols(d);
#pragma omp parallel for collapse(3) schedule(static)
    for (int64_t bi = 0; bi < d.B; bi++)
        for (int64_t t = 0; t < d.To; t++)
            for (int64_t h = 0; h < d.Ho; h++) {
                float tile[TILE_FLOATS];
                for (int64_t w0 = 0; w0 < d.Wo; w0 += nc) {
                    int64_t n = d.Wo - w0 < nc ? d.Wo - w0 : nc;
                    gather_tile(tile, x.data, d, bi, t, h, w0, n);
                    float *yo = y.data + bi * d.Co * d.P + (t * d.Ho + h) * d.Wo + w0;
                    if (b.data)
                        for (int64_t c = 0; c < d.Co; c++)
                            for (int64_t i = 0; i < n; i++) yo[c * d.P + i] = b.data[c];
                    tal_gemm(0, 0, d.Co, n, d.K, 1.0f, w.data, d.K, tile, n, b.data ? 1.0f : 0.0f,
                             yo, d.P);
                }
            }
}

/* db[c] += sum of dy over batch and positions, in double; threads own channels. */
static void sum_bias_grad(float *db, const float *dy, int64_t B, int64_t Co, int64_t P) {
#pragma omp parallel for schedule(static) if (B * Co * P > 65536)
    for (int64_t c = 0; c < Co; c++) {
        double s = 0;
        for (int64_t bi = 0; bi < B; bi++)
            for (int64_t p = 0; p < P; p++) s += dy[(bi * Co + c) * P + p];
        db[c] += (float)s;
    }
}

void tal_patch_conv3d_backward(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                               tal_tensor x, tal_tensor w) {
    pdims d = patch_dims(x, w);
    TAL_ASSERT(dy.ndim == 5 && dy.shape[0] == d.B && dy.shape[1] == d.Co && dy.shape[2] == d.To &&
               dy.shape[3] == d.Ho && dy.shape[4] == d.Wo);
    TAL_ASSERT(!dx.data || tal_tensor_same_shape(dx, x));
    TAL_ASSERT(!dw.data || tal_tensor_same_shape(dw, w));
    TAL_ASSERT(!db.data || tal_tensor_numel(db) == d.Co);
    tal_device dev = OP_DEVICE(dx, dw, db, dy, x, w);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        patch_conv3d_backward_cuda(dx, dw, db, dy, x, w);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t nc = tile_cols(d);
    if (db.data) sum_bias_grad(db.data, dy.data, d.B, d.Co, d.P);
    if (dx.data) { /* patches do not overlap: each tile of dx is written once */
#pragma omp parallel for collapse(3) schedule(static)
        for (int64_t bi = 0; bi < d.B; bi++)
            for (int64_t t = 0; t < d.To; t++)
                for (int64_t h = 0; h < d.Ho; h++) {
                    float tile[TILE_FLOATS];
                    for (int64_t w0 = 0; w0 < d.Wo; w0 += nc) {
                        int64_t n = d.Wo - w0 < nc ? d.Wo - w0 : nc;
                        const float *go = dy.data + bi * d.Co * d.P + (t * d.Ho + h) * d.Wo + w0;
                        tal_gemm(1, 0, d.K, n, d.Co, 1.0f, w.data, d.K, go, d.P, 0.0f, tile, n);
                        scatter_tile(dx.data, tile, d, bi, t, h, w0, n);
                    }
                }
    }
    if (dw.data) { /* dW += dy_tile x tile^T; threads own disjoint rows of dW */
#pragma omp parallel
        {
            int nt = 1, id = 0;
#ifdef _OPENMP
            nt = omp_get_num_threads();
            id = omp_get_thread_num();
#endif
            int64_t c0 = d.Co * id / nt, c1 = d.Co * (id + 1) / nt;
            float tile[TILE_FLOATS];
            for (int64_t bi = 0; bi < d.B && c1 > c0; bi++)
                for (int64_t t = 0; t < d.To; t++)
                    for (int64_t h = 0; h < d.Ho; h++)
                        for (int64_t w0 = 0; w0 < d.Wo; w0 += nc) {
                            int64_t n = d.Wo - w0 < nc ? d.Wo - w0 : nc;
                            gather_tile(tile, x.data, d, bi, t, h, w0, n);
                            const float *go =
                                dy.data + (bi * d.Co + c0) * d.P + (t * d.Ho + h) * d.Wo + w0;
                            tal_gemm(0, 1, c1 - c0, d.K, n, 1.0f, go, d.P, tile, n, 1.0f,
                                     dw.data + c0 * d.K, d.K);
                        }
        }
    }
}

/* ---------------------------------------------------------------- general conv3d -------- */
typedef struct gdims {
    int64_t B, Ci, T, H, W, Co, kt, kh, kw, To, Ho, Wo, K, P;
} gdims;

static gdims general_dims(tal_tensor y, tal_tensor x, tal_tensor w, tal_conv3d_geom g) {
    TAL_ASSERT(x.ndim == 5 && w.ndim == 5 && y.ndim == 5 && w.shape[1] == x.shape[1]);
    gdims d = {x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4], w.shape[0],
               w.shape[2], w.shape[3], w.shape[4], 0, 0, 0, 0, 0};
    d.To = tal_conv_out_len(d.T, (int)d.kt, g.stride[0], g.padding[0]);
    d.Ho = tal_conv_out_len(d.H, (int)d.kh, g.stride[1], g.padding[1]);
    d.Wo = tal_conv_out_len(d.W, (int)d.kw, g.stride[2], g.padding[2]);
    TAL_ASSERT_MSG(y.shape[0] == d.B && y.shape[1] == d.Co && y.shape[2] == d.To &&
                       y.shape[3] == d.Ho && y.shape[4] == d.Wo,
                   "conv3d: output shape disagrees with geometry (expected %lldx%lldx%lld)",
                   (long long)d.To, (long long)d.Ho, (long long)d.Wo);
    d.K = d.Ci * d.kt * d.kh * d.kw;
    d.P = d.To * d.Ho * d.Wo;
    return d;
}

/* On the device the column matrix is built for a chunk of output positions [p0, p0 + n) at a
 * time, so the scratch stays near CHUNK_FLOATS whatever the clip size (a 7x7 stem over
 * 32 x 112 x 112 outputs would otherwise take 236 MB); chunks keep at least MIN_CHUNK columns
 * for the GEMM. */
#define CHUNK_FLOATS (1 << 21)
#define MIN_CHUNK 256

static int64_t chunk_cols(gdims d) {
    int64_t n = CHUNK_FLOATS / d.K;
    if (n < MIN_CHUNK) n = MIN_CHUNK;
    return n < d.P ? n : d.P;
}

/* The column chunk from the scratch arena, which lives where the tensors do (a planner counts
 * it). On the device it is left unfilled: the im2col kernel writes all of it. */
static float *take_cols(tal_arena *scratch, tal_device dev, int64_t n) {
    TAL_ASSERT_MSG(tal_arena_is_planner(scratch) || tal_arena_device(scratch) == dev,
                   "conv3d: the scratch arena is on another device than the tensors");
    return dev == TAL_DEV_CUDA ? tal_arena_floats_uninit(scratch, n) : tal_arena_floats(scratch, n);
}

/* 1x1x1, stride 1, no padding: the sample [Ci, T*H*W] is already the column matrix. */
static int pointwise(gdims d, tal_conv3d_geom g) {
    return d.kt == 1 && d.kh == 1 && d.kw == 1 && g.stride[0] == 1 && g.stride[1] == 1 &&
           g.stride[2] == 1 && g.padding[0] == 0 && g.padding[1] == 0 && g.padding[2] == 0;
}

void tal_conv3d_forward(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                        tal_conv3d_geom g, tal_arena *scratch) {
    gdims d = general_dims(y, x, w, g);
    TAL_ASSERT_MSG(scratch != NULL, "conv3d: a scratch arena is required");
    TAL_ASSERT(!b.data || tal_tensor_numel(b) == d.Co);
    tal_device dev = OP_DEVICE(y, x, w, b);
    const int direct = pointwise(d, g);
    if (tal_arena_is_planner(scratch) ? tal_arena_device(scratch) == TAL_DEV_CPU
                                      : dev == TAL_DEV_CPU) {
        ASSERT_CPU_PATH(dev);
        if (!direct) {
            conv3d_forward_dnnl(y, x, w, b, g, scratch); /* a planner: counts its buffers */
            return;
        }
        if (tal_arena_is_planner(scratch)) return;
        for (int64_t bi = 0; bi < d.B; bi++) { /* 1x1x1: the sample is the column matrix */
            float *xb = x.data + bi * d.Ci * d.T * d.H * d.W;
            float *yb = y.data + bi * d.Co * d.P;
            if (b.data)
                for (int64_t c = 0; c < d.Co; c++)
                    for (int64_t p = 0; p < d.P; p++) yb[c * d.P + p] = b.data[c];
            tal_gemm(0, 0, d.Co, d.P, d.K, 1.0f, w.data, d.K, xb, d.P, b.data ? 1.0f : 0.0f, yb,
                     d.P);
        }
        return;
    }
    /* the device: im2col chunks and its GEMMs (a planner counts the chunk) */
    const int64_t nc = chunk_cols(d);
    size_t mark = tal_arena_mark(scratch);
    float *cols = direct ? NULL : take_cols(scratch, dev, d.K * nc);
    if (!tal_arena_is_planner(scratch)) {
#ifdef TAL_HAVE_CUDA
        conv3d_forward_cuda(y, x, w, b, g, cols, nc);
#else
        (void)cols;
        ASSERT_CPU_PATH(dev);
#endif
    }
    tal_arena_release(scratch, mark);
}

void tal_conv3d_backward(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                         tal_tensor x, tal_tensor w, tal_conv3d_geom g, tal_arena *scratch) {
    gdims d = general_dims(dy, x, w, g);
    TAL_ASSERT_MSG(scratch != NULL, "conv3d: a scratch arena is required");
    TAL_ASSERT(!dx.data || tal_tensor_same_shape(dx, x));
    TAL_ASSERT(!dw.data || tal_tensor_same_shape(dw, w));
    TAL_ASSERT(!db.data || tal_tensor_numel(db) == d.Co);
    tal_device dev = OP_DEVICE(dx, dw, db, dy, x, w);
    const int direct = pointwise(d, g);
    if (tal_arena_is_planner(scratch) ? tal_arena_device(scratch) == TAL_DEV_CPU
                                      : dev == TAL_DEV_CPU) {
        ASSERT_CPU_PATH(dev);
        if (!direct) {
            if (db.data && !tal_arena_is_planner(scratch))
                sum_bias_grad(db.data, dy.data, d.B, d.Co, d.P);
            conv3d_backward_dnnl(dx, dw, dy, x, w, g, scratch); /* a planner: counts */
            return;
        }
        if (tal_arena_is_planner(scratch)) return;
        if (db.data) sum_bias_grad(db.data, dy.data, d.B, d.Co, d.P);
        for (int64_t bi = 0; bi < d.B; bi++) { /* 1x1x1: plain products per sample */
            const float *gb = dy.data + bi * d.Co * d.P;
            float *xb = x.data + bi * d.Ci * d.T * d.H * d.W;
            if (dw.data)
                tal_gemm(0, 1, d.Co, d.K, d.P, 1.0f, gb, d.P, xb, d.P, 1.0f, dw.data, d.K);
            if (dx.data)
                tal_gemm(1, 0, d.K, d.P, d.Co, 1.0f, w.data, d.K, gb, d.P, 0.0f,
                         dx.data + bi * d.Ci * d.T * d.H * d.W, d.P);
        }
        return;
    }
    /* the device: im2col chunks and its GEMMs (a planner counts the chunk) */
    const int64_t nc = chunk_cols(d);
    size_t mark = tal_arena_mark(scratch);
    float *cols = direct ? NULL : take_cols(scratch, dev, d.K * nc);
    if (!tal_arena_is_planner(scratch)) {
#ifdef TAL_HAVE_CUDA
        conv3d_backward_cuda(dx, dw, db, dy, x, w, g, cols, nc);
#else
        (void)cols;
        ASSERT_CPU_PATH(dev);
#endif
    }
    tal_arena_release(scratch, mark);
}
