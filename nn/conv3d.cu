/* nn/conv3d.cu: CUDA twins of conv3d.c as im2col + cuBLAS (products in the precision mode),
 * with device_math.h's conv3d_col_source for every index. The patch embedding (stride =
 * kernel) builds one sample's patch matrix [K, P] in the op workspace; the general conv builds
 * the same chunks of output positions as the CPU in the caller's scratch arena (the CPU op's
 * scratch contract holds as is). col2im gathers: one thread per input element adds the column
 * entries that read it, so there are no atomics and the result is the same every run. */
#include "cuda_reduce.cuh"

/* cols[k, i] = sample xb's input under im2col entry (k, p0 + i), for k < K, i < n. */
__global__ void im2col3d_kernel(float *cols, const float *xb, conv3d_shape s, int64_t K,
                                int64_t p0, int64_t n) {
    GRID_STRIDE_LOOP(e, K * n) {
        int64_t src = conv3d_col_source(&s, e / n, p0 + e % n);
        cols[e] = src >= 0 ? xb[src] : 0.0f;
    }
}

/* dxb[e] (+)= the entries of cols (positions p0 .. p0 + n) that read input element e. */
__global__ void col2im3d_gather_kernel(float *dxb, const float *cols, conv3d_shape s,
                                       int64_t p0, int64_t n, int accumulate) {
    GRID_STRIDE_LOOP(e, s.Ci * s.T * s.H * s.W) {
        int64_t w = e % s.W, h = (e / s.W) % s.H, t = (e / (s.W * s.H)) % s.T;
        int64_t ci = e / (s.W * s.H * s.T);
        float acc = 0.0f;
        for (int64_t dt = 0; dt < s.kt; dt++) {
            int64_t to = conv_tap_output(t, dt, s.stride[0], s.padding[0], s.To);
            if (to < 0) continue;
            for (int64_t dh = 0; dh < s.kh; dh++) {
                int64_t ho = conv_tap_output(h, dh, s.stride[1], s.padding[1], s.Ho);
                if (ho < 0) continue;
                for (int64_t dw = 0; dw < s.kw; dw++) {
                    int64_t wo = conv_tap_output(w, dw, s.stride[2], s.padding[2], s.Wo);
                    if (wo < 0) continue;
                    int64_t p = (to * s.Ho + ho) * s.Wo + wo;
                    if (p < p0 || p >= p0 + n) continue;
                    int64_t k = ((ci * s.kt + dt) * s.kh + dh) * s.kw + dw;
                    acc += cols[k * n + (p - p0)];
                }
            }
        }
        dxb[e] = accumulate ? dxb[e] + acc : acc;
    }
}

/* y [B, Co, P] = b[c] everywhere in channel c */
__global__ void broadcast_channels_kernel(float *y, const float *b, int64_t Co, int64_t P,
                                          int64_t n) {
    GRID_STRIDE_LOOP(i, n) y[i] = b[(i / P) % Co];
}

static void im2col3d(float *cols, const float *xb, const conv3d_shape &s, int64_t K, int64_t p0,
                     int64_t n) {
    im2col3d_kernel<<<grid_for(K * n), TAL_BLOCK, 0, tal_cuda_stream()>>>(cols, xb, s, K, p0, n);
    TAL_LAUNCH_CHECK();
}

static void col2im3d(float *dxb, const float *cols, const conv3d_shape &s, int64_t p0, int64_t n,
                     int accumulate) {
    int64_t m = s.Ci * s.T * s.H * s.W;
    col2im3d_gather_kernel<<<grid_for(m), TAL_BLOCK, 0, tal_cuda_stream()>>>(dxb, cols, s, p0, n,
                                                                             accumulate);
    TAL_LAUNCH_CHECK();
}

static void broadcast_bias(float *y, const float *b, int64_t B, int64_t Co, int64_t P) {
    int64_t n = B * Co * P;
    broadcast_channels_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(y, b, Co, P, n);
    TAL_LAUNCH_CHECK();
}

static conv3d_shape shape_of(tal_tensor x, tal_tensor w, tal_tensor y, tal_conv3d_geom g) {
    conv3d_shape s = {x.shape[1], x.shape[2], x.shape[3], x.shape[4],
                      w.shape[2], w.shape[3], w.shape[4],
                      y.shape[2], y.shape[3], y.shape[4],
                      {g.stride[0], g.stride[1], g.stride[2]},
                      {g.padding[0], g.padding[1], g.padding[2]}};
    return s;
}

/* the patch embedding is the conv with stride = kernel and no padding */
static tal_conv3d_geom patch_geom(tal_tensor w) {
    tal_conv3d_geom g = {{(int)w.shape[2], (int)w.shape[3], (int)w.shape[4]}, {0, 0, 0}};
    return g;
}

void patch_conv3d_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b) {
    conv3d_shape s = shape_of(x, w, y, patch_geom(w));
    int64_t B = x.shape[0], Co = w.shape[0], K = s.Ci * s.kt * s.kh * s.kw;
    int64_t P = s.To * s.Ho * s.Wo, in = s.Ci * s.T * s.H * s.W;
    if (B * Co * P == 0) return;
    if (b.data) broadcast_bias(y.data, b.data, B, Co, P);
    float *cols = (float *)tal_cuda_workspace((size_t)(K * P) * sizeof(float));
    for (int64_t bi = 0; bi < B; bi++) {
        im2col3d(cols, x.data + bi * in, s, K, 0, P);
        gemm_cuda(0, 0, Co, P, K, 1.0f, w.data, K, cols, P, b.data ? 1.0f : 0.0f,
                  y.data + bi * Co * P, P);
    }
}

void patch_conv3d_backward_cuda(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                                tal_tensor x, tal_tensor w) {
    conv3d_shape s = shape_of(x, w, dy, patch_geom(w));
    int64_t B = x.shape[0], Co = w.shape[0], K = s.Ci * s.kt * s.kh * s.kw;
    int64_t P = s.To * s.Ho * s.Wo, in = s.Ci * s.T * s.H * s.W;
    if (db.data) channel_sum_plain(db.data, dy.data, B, Co, P);
    if (!dx.data && !dw.data) return;
    float *cols = (float *)tal_cuda_workspace((size_t)(K * P) * sizeof(float));
    for (int64_t bi = 0; bi < B; bi++) {
        const float *gb = dy.data + bi * Co * P;
        if (dx.data) { /* patches do not overlap: every input element is written once */
            gemm_cuda(1, 0, K, P, Co, 1.0f, w.data, K, gb, P, 0.0f, cols, P);
            col2im3d(dx.data + bi * in, cols, s, 0, P, 0);
        }
        if (dw.data) {
            im2col3d(cols, x.data + bi * in, s, K, 0, P);
            gemm_cuda(0, 1, Co, K, P, 1.0f, gb, P, cols, P, 1.0f, dw.data, K);
        }
    }
}

void conv3d_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                         tal_conv3d_geom g, float *cols, int64_t chunk) {
    conv3d_shape s = shape_of(x, w, y, g);
    int64_t B = x.shape[0], Co = w.shape[0], K = s.Ci * s.kt * s.kh * s.kw;
    int64_t P = s.To * s.Ho * s.Wo, in = s.Ci * s.T * s.H * s.W;
    if (B * Co * P == 0) return;
    if (b.data) broadcast_bias(y.data, b.data, B, Co, P);
    const float beta = b.data ? 1.0f : 0.0f;
    for (int64_t bi = 0; bi < B; bi++) {
        const float *xb = x.data + bi * in;
        float *yb = y.data + bi * Co * P;
        if (!cols) { /* 1x1x1, stride 1: the sample [Ci, P] is its own column matrix */
            gemm_cuda(0, 0, Co, P, K, 1.0f, w.data, K, xb, P, beta, yb, P);
            continue;
        }
        for (int64_t p0 = 0; p0 < P; p0 += chunk) {
            int64_t n = P - p0 < chunk ? P - p0 : chunk;
            im2col3d(cols, xb, s, K, p0, n);
            gemm_cuda(0, 0, Co, n, K, 1.0f, w.data, K, cols, n, beta, yb + p0, P);
        }
    }
}

void conv3d_backward_cuda(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                          tal_tensor x, tal_tensor w, tal_conv3d_geom g, float *cols,
                          int64_t chunk) {
    conv3d_shape s = shape_of(x, w, dy, g);
    int64_t B = x.shape[0], Co = w.shape[0], K = s.Ci * s.kt * s.kh * s.kw;
    int64_t P = s.To * s.Ho * s.Wo, in = s.Ci * s.T * s.H * s.W;
    if (db.data) channel_sum_plain(db.data, dy.data, B, Co, P);
    if (dx.data && P == 0) /* no output: the gradient is zero (no chunk writes it) */
        cuda_memset_bytes(dx.data, 0, tal_tensor_bytes(dx));
    for (int64_t bi = 0; bi < B; bi++) {
        const float *gb = dy.data + bi * Co * P, *xb = x.data + bi * in;
        float *dxb = dx.data ? dx.data + bi * in : NULL;
        if (!cols) {
            if (dw.data) gemm_cuda(0, 1, Co, K, P, 1.0f, gb, P, xb, P, 1.0f, dw.data, K);
            if (dxb) gemm_cuda(1, 0, K, P, Co, 1.0f, w.data, K, gb, P, 0.0f, dxb, P);
            continue;
        }
        for (int64_t p0 = 0; p0 < P; p0 += chunk) {
            int64_t n = P - p0 < chunk ? P - p0 : chunk;
            if (dw.data) { /* dW += dy[:, chunk] cols^T */
                im2col3d(cols, xb, s, K, p0, n);
                gemm_cuda(0, 1, Co, K, n, 1.0f, gb + p0, P, cols, n, 1.0f, dw.data, K);
            }
            if (dxb) { /* dcols = W^T dy[:, chunk], gathered back; the first chunk writes */
                gemm_cuda(1, 0, K, n, Co, 1.0f, w.data, K, gb + p0, P, 0.0f, cols, n);
                col2im3d(dxb, cols, s, p0, n, p0 > 0);
            }
        }
    }
}
