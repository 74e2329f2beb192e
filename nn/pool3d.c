/* nn/pool3d.c: 3-D max-pool over [B, C, T, H, W] with PyTorch's semantics (padding never wins,
 * strictly greater replaces, so ties keep the first position in (t, h, w) scan order; a NaN
 * wins). The backward finds each window's winner again from x instead of storing indices: the
 * ResNet stem keeps its pool input anyway (the ReLU backward reads it). CUDA twin in pool3d.cu. */
#include "nn.h"
#include "cuda_ops.h"
#include "device_math.h"
#include "dispatch.h"

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

/* The winner of output (t, h, w), as the CUDA kernels find it (device_math.h). */
static int64_t window_argmax(const float *xp, const int64_t in[3], int64_t t, int64_t h,
                             int64_t w, tal_pool3d_geom g) {
    return pool3d_window_argmax(xp, in, t, h, w, g.kernel, g.stride, g.padding);
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
    tal_device dev = OP_DEVICE(y, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        maxpool3d_forward_cuda(y, x, g);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    maxpool3d_forward_cpu(y, x, g);
}

void tal_maxpool3d_backward(tal_tensor dx, tal_tensor dy, tal_tensor x, tal_pool3d_geom g) {
    check_geom(dy, x, g);
    TAL_ASSERT_SAME_SHAPE(dx, x);
    tal_device dev = OP_DEVICE(dx, dy, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        maxpool3d_backward_cuda(dx, dy, x, g);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    maxpool3d_backward_cpu(dx, dy, x, g);
}
