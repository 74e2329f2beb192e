/* nn/pool.c: 1-D max-pool over T (PyTorch semantics: -inf padding, first maximum wins) and the
 * mean over spatial dims [B, C, T, H, W] -> [B, C, T]. */
#include "nn.h"
#include "cuda_ops.h"
#include "dispatch.h"

#include <math.h>
#include <string.h>

void tal_maxpool1d_forward(tal_tensor y, tal_tensor argmax, tal_tensor x, int kernel, int stride,
                           int padding) {
    TAL_ASSERT(x.ndim == 3 && y.ndim == 3 && kernel >= 1 && stride >= 1 && padding >= 0);
    int64_t B = x.shape[0], C = x.shape[1], T = x.shape[2];
    int64_t To = tal_conv_out_len(T, kernel, stride, padding);
    TAL_ASSERT(y.shape[0] == B && y.shape[1] == C && y.shape[2] == To);
    TAL_ASSERT(!argmax.data || tal_tensor_numel(argmax) == B * C * To);
    TAL_ASSERT_MSG(T < (1 << 24), "maxpool1d: T %lld too long for float indices", (long long)T);
    tal_device dev = OP_DEVICE(y, argmax, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        maxpool1d_forward_cuda(y, argmax, x, kernel, stride, padding);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
#pragma omp parallel for schedule(static) if (B * C * To > 65536)
    for (int64_t r = 0; r < B * C; r++) {
        const float *xr = x.data + r * T;
        for (int64_t t = 0; t < To; t++) {
            float best = -INFINITY;
            int64_t at = -1;
            for (int64_t j = 0; j < kernel; j++) {
                int64_t s = t * stride + j - padding;
                if (s < 0 || s >= T) continue;
                /* as PyTorch's kernel: strictly greater wins (ties keep the first index), a
                 * NaN always wins (so the output is NaN and the last NaN is the argmax) */
                if (at < 0 || xr[s] > best || isnan(xr[s])) {
                    best = xr[s];
                    at = s;
                }
            }
            y.data[r * To + t] = best;
            if (argmax.data) argmax.data[r * To + t] = (float)at;
        }
    }
}

void tal_maxpool1d_backward(tal_tensor dx, tal_tensor dy, tal_tensor argmax) {
    TAL_ASSERT(dx.ndim == 3 && dy.ndim == 3);
    TAL_ASSERT(tal_tensor_numel(argmax) == tal_tensor_numel(dy));
    int64_t BC = dx.shape[0] * dx.shape[1], T = dx.shape[2], To = dy.shape[2];
    tal_device dev = OP_DEVICE(dx, dy, argmax);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        maxpool1d_backward_cuda(dx, dy, argmax);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    memset(dx.data, 0, tal_tensor_bytes(dx));
#pragma omp parallel for schedule(static) if (BC * To > 65536)
    for (int64_t r = 0; r < BC; r++)
        for (int64_t t = 0; t < To; t++) {
            int64_t s = (int64_t)argmax.data[r * To + t];
            if (s >= 0) dx.data[r * T + s] += dy.data[r * To + t];
        }
}

void tal_mean_hw_forward(tal_tensor y, tal_tensor x) {
    TAL_ASSERT(x.ndim == 5 && y.ndim == 3);
    int64_t BCT = x.shape[0] * x.shape[1] * x.shape[2], HW = x.shape[3] * x.shape[4];
    TAL_ASSERT(tal_tensor_numel(y) == BCT);
    tal_device dev = OP_DEVICE(y, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        mean_hw_forward_cuda(y, x);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
#pragma omp parallel for schedule(static) if (BCT * HW > 65536)
    for (int64_t i = 0; i < BCT; i++) {
        double s = 0;
        for (int64_t j = 0; j < HW; j++) s += x.data[i * HW + j];
        y.data[i] = (float)(s / (double)HW);
    }
}

void tal_mean_hw_backward(tal_tensor dx, tal_tensor dy) {
    TAL_ASSERT(dx.ndim == 5 && dy.ndim == 3);
    int64_t BCT = dx.shape[0] * dx.shape[1] * dx.shape[2], HW = dx.shape[3] * dx.shape[4];
    TAL_ASSERT(tal_tensor_numel(dy) == BCT);
    tal_device dev = OP_DEVICE(dx, dy);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        mean_hw_backward_cuda(dx, dy);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
#pragma omp parallel for schedule(static) if (BCT * HW > 65536)
    for (int64_t i = 0; i < BCT; i++) {
        float g = dy.data[i] / (float)HW;
        for (int64_t j = 0; j < HW; j++) dx.data[i * HW + j] = g;
    }
}
