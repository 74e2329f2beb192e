/* nn/channels.c: per-channel ops of the backbones (nn.h "ops: layout"): the spatial mean of
 * channel-last tokens [B, D, S, C] -> [B, C, D] and its backward, frozen BatchNorm on
 * channel-first tensors, and the largest difference of two tensors (the reversible check).
 * CUDA twins in channels.cu compute the same bits (same sums in the same order, the same
 * roundings). */
#include "nn.h"
#include "cuda_ops.h"
#include "device_math.h"
#include "dispatch.h"

#include <math.h>

/* ---------------------------------------------------------------- channel-last mean ----- */
static void check_mean(tal_tensor y, tal_tensor x) {
    TAL_ASSERT(x.ndim == 4 && y.ndim == 3);
    TAL_ASSERT_MSG(y.shape[0] == x.shape[0] && y.shape[1] == x.shape[3] &&
                       y.shape[2] == x.shape[1],
                   "mean_hw_last: y [%lld, %lld, %lld] for x [B, D, S, C] = [%lld, %lld, %lld, "
                   "%lld]",
                   (long long)y.shape[0], (long long)y.shape[1], (long long)y.shape[2],
                   (long long)x.shape[0], (long long)x.shape[1], (long long)x.shape[2],
                   (long long)x.shape[3]);
}

void tal_mean_hw_last_forward(tal_tensor y, tal_tensor x) {
    check_mean(y, x);
    tal_device dev = OP_DEVICE(y, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        mean_hw_last_forward_cuda(y, x);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t B = x.shape[0], D = x.shape[1], S = x.shape[2], C = x.shape[3];
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t d = 0; d < D; d++) {
            const float *src = x.data + (b * D + d) * S * C;
            for (int64_t c = 0; c < C; c++) {
                double acc = 0; /* double: sums of up to 56*56 terms */
                for (int64_t t = 0; t < S; t++) acc += src[t * C + c];
                y.data[(b * C + c) * D + d] = (float)(acc / (double)S);
            }
        }
}

void tal_mean_hw_last_backward(tal_tensor dx, tal_tensor dy) {
    check_mean(dy, dx);
    tal_device dev = OP_DEVICE(dx, dy);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        mean_hw_last_backward_cuda(dx, dy);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t B = dx.shape[0], D = dx.shape[1], S = dx.shape[2], C = dx.shape[3];
    float inv = 1.0f / (float)S;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t d = 0; d < D; d++)
            for (int64_t t = 0; t < S; t++) {
                float *dst = dx.data + ((b * D + d) * S + t) * C;
                for (int64_t c = 0; c < C; c++) dst[c] = dy.data[(b * C + c) * D + d] * inv;
            }
}

/* ---------------------------------------------------------------- frozen BatchNorm ------ */
static int64_t check_bn(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor var) {
    TAL_ASSERT_SAME_SHAPE(y, x);
    TAL_ASSERT(x.ndim >= 2);
    TAL_ASSERT(tal_tensor_numel(w) == x.shape[1] && tal_tensor_numel(var) == x.shape[1]);
    return x.shape[1];
}

void tal_batchnorm_frozen_forward(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                                  tal_tensor mean, tal_tensor var, float eps) {
    int64_t C = check_bn(y, x, w, var);
    TAL_ASSERT(tal_tensor_numel(b) == C && tal_tensor_numel(mean) == C);
    tal_device dev = OP_DEVICE(y, x, w, b, mean, var);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        batchnorm_frozen_forward_cuda(y, x, w, b, mean, var, eps);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t B = x.shape[0], S = C ? tal_tensor_numel(x) / (B * C) : 0;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < B; n++)
        for (int64_t c = 0; c < C; c++) {
            float s, t;
            frozen_bn_affine(w.data[c], b.data[c], mean.data[c], var.data[c], eps, &s, &t);
            const float *src = x.data + (n * C + c) * S;
            float *dst = y.data + (n * C + c) * S;
            for (int64_t i = 0; i < S; i++) dst[i] = src[i] * s + t;
        }
}

void tal_batchnorm_frozen_backward(tal_tensor dx, tal_tensor dy, tal_tensor w, tal_tensor var,
                                   float eps) {
    int64_t C = check_bn(dx, dy, w, var);
    tal_device dev = OP_DEVICE(dx, dy, w, var);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        batchnorm_frozen_backward_cuda(dx, dy, w, var, eps);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t B = dy.shape[0], S = C ? tal_tensor_numel(dy) / (B * C) : 0;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < B; n++)
        for (int64_t c = 0; c < C; c++) {
            float s, t;
            frozen_bn_affine(w.data[c], 0.0f, 0.0f, var.data[c], eps, &s, &t);
            const float *src = dy.data + (n * C + c) * S;
            float *dst = dx.data + (n * C + c) * S;
            for (int64_t i = 0; i < S; i++) dst[i] = src[i] * s;
        }
}

/* ---------------------------------------------------------------- max difference -------- */
double tal_max_abs_diff(tal_tensor a, tal_tensor b) {
    int64_t n = tal_tensor_numel(a);
    TAL_ASSERT_MSG(n == tal_tensor_numel(b), "%lld vs %lld elements", (long long)n,
                   (long long)tal_tensor_numel(b));
    tal_device dev = OP_DEVICE(a, b);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) return max_abs_diff_cuda(a, b);
#endif
    ASSERT_CPU_PATH(dev);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a.data[i] - b.data[i]);
        if (e > worst) worst = e;
    }
    return worst;
}
