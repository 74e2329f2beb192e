/* nn/pool3d.c: 3-D max-pool over [B, C, T, H, W] with PyTorch's semantics (padding never wins,
 * strictly greater replaces, so ties keep the first position in (t, h, w) scan order; a NaN
 * wins). The backward finds each window's winner again from x instead of storing indices: the
 * ResNet stem keeps its pool input anyway (the ReLU backward reads it). CPU only for now. */
#include "nn.h"

#include <math.h>
#include <string.h>

static int64_t pool_out(int64_t in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

static void check_geom(tal_tensor y, tal_tensor x, tal_pool3d_geom g) {
    TAL_ASSERT(x.ndim == 5 && y.ndim == 5);
    for (int a = 0; a < 3; a++) {
        TAL_ASSERT(g.kernel[a] >= 1 && g.stride[a] >= 1 && g.padding[a] >= 0);
        /* PyTorch's rule: padding at most half the kernel, so every window holds an input */
        TAL_ASSERT(2 * g.padding[a] <= g.kernel[a]);
        TAL_ASSERT(y.shape[2 + a] == pool_out(x.shape[2 + a], g.kernel[a], g.stride[a],
                                              g.padding[a]));
    }
    TAL_ASSERT(y.shape[0] == x.shape[0] && y.shape[1] == x.shape[1]);
}

/* Offset (within one [T, H, W] plane) of the winner of output (t, h, w). */
static int64_t window_argmax(const float *xp, const int64_t in[3], int64_t t, int64_t h,
                             int64_t w, tal_pool3d_geom g) {
    float best = -INFINITY;
    int64_t at = -1;
    for (int i = 0; i < g.kernel[0]; i++) {
        int64_t ti = t * g.stride[0] + i - g.padding[0];
        if (ti < 0 || ti >= in[0]) continue;
        for (int j = 0; j < g.kernel[1]; j++) {
            int64_t hi = h * g.stride[1] + j - g.padding[1];
            if (hi < 0 || hi >= in[1]) continue;
            for (int k = 0; k < g.kernel[2]; k++) {
                int64_t wi = w * g.stride[2] + k - g.padding[2];
                if (wi < 0 || wi >= in[2]) continue;
                int64_t o = (ti * in[1] + hi) * in[2] + wi;
                if (at < 0 || xp[o] > best || isnan(xp[o])) {
                    best = xp[o];
                    at = o;
                }
            }
        }
    }
    return at;
}

static void maxpool3d_forward_cpu(tal_tensor y, tal_tensor x, tal_pool3d_geom g) {
    int64_t BC = x.shape[0] * x.shape[1];
    const int64_t in[3] = {x.shape[2], x.shape[3], x.shape[4]};
    int64_t To = y.shape[2], Ho = y.shape[3], Wo = y.shape[4];
    int64_t plane_in = in[0] * in[1] * in[2], plane_out = To * Ho * Wo;
#pragma omp parallel for collapse(2) schedule(static) if (BC * plane_out > 32768)
    for (int64_t r = 0; r < BC; r++)
        for (int64_t t = 0; t < To; t++) {
            const float *xp = x.data + r * plane_in;
            float *yp = y.data + r * plane_out + t * Ho * Wo;
            for (int64_t h = 0; h < Ho; h++)
                for (int64_t w = 0; w < Wo; w++)
                    yp[h * Wo + w] = xp[window_argmax(xp, in, t, h, w, g)];
        }
}

static void maxpool3d_backward_cpu(tal_tensor dx, tal_tensor dy, tal_tensor x,
                                   tal_pool3d_geom g) {
    int64_t BC = x.shape[0] * x.shape[1];
    const int64_t in[3] = {x.shape[2], x.shape[3], x.shape[4]};
    int64_t To = dy.shape[2], Ho = dy.shape[3], Wo = dy.shape[4];
    int64_t plane_in = in[0] * in[1] * in[2], plane_out = To * Ho * Wo;
    /* one (b, c) plane per iteration: overlapping windows scatter into the same plane only */
#pragma omp parallel for schedule(static) if (BC * plane_out > 32768)
    for (int64_t r = 0; r < BC; r++) {
        const float *xp = x.data + r * plane_in;
        const float *gp = dy.data + r * plane_out;
        float *dp = dx.data + r * plane_in;
        memset(dp, 0, sizeof(float) * (size_t)plane_in);
        for (int64_t t = 0; t < To; t++)
            for (int64_t h = 0; h < Ho; h++)
                for (int64_t w = 0; w < Wo; w++)
                    dp[window_argmax(xp, in, t, h, w, g)] += gp[(t * Ho + h) * Wo + w];
    }
}

int64_t tal_pool3d_out_len(int64_t in, int kernel, int stride, int padding) {
    return pool_out(in, kernel, stride, padding);
}

void tal_maxpool3d_forward(tal_tensor y, tal_tensor x, tal_pool3d_geom g) {
    check_geom(y, x, g);
    TAL_ASSERT_SAME_DEVICE(y, x);
    TAL_ASSERT_MSG(x.device == TAL_DEV_CPU, "maxpool3d: no CUDA kernel yet");
    maxpool3d_forward_cpu(y, x, g);
}

void tal_maxpool3d_backward(tal_tensor dx, tal_tensor dy, tal_tensor x, tal_pool3d_geom g) {
    check_geom(dy, x, g);
    TAL_ASSERT_SAME_SHAPE(dx, x);
    TAL_ASSERT(dx.device == x.device && dy.device == x.device);
    TAL_ASSERT_MSG(x.device == TAL_DEV_CPU, "maxpool3d: no CUDA kernel yet");
    maxpool3d_backward_cpu(dx, dy, x, g);
}
