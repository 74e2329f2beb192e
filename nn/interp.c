/* nn/interp.c: 1-D linear interpolation on the last dim, as PyTorch's
 * interpolate(mode='linear', align_corners=False): src = max(0, (i + 0.5) * Tin / Tout - 0.5),
 * i0 = floor(src), i1 = min(i0 + 1, Tin - 1), y = (1 - l) x[i0] + l x[i1], l = src - i0. */
#include "nn.h"
#include "cuda_ops.h"
#include "device_math.h" /* interp_source: the same positions and weights as the CUDA kernels */
#include "dispatch.h"

#include <string.h>

void tal_interp1d_forward(tal_tensor y, tal_tensor x) {
    TAL_ASSERT(x.ndim == 3 && y.ndim == 3 && x.shape[0] == y.shape[0] && x.shape[1] == y.shape[1]);
    int64_t rows = x.shape[0] * x.shape[1], tin = x.shape[2], tout = y.shape[2];
    TAL_ASSERT(tin >= 1 || tout == 0);
    tal_device dev = OP_DEVICE(y, x);
    if (tin == tout) {
        tal_copy(y, x);
        return;
    }
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        interp1d_forward_cuda(y, x);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
#pragma omp parallel for schedule(static) if (rows * tout > 65536)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < tout; i++) {
            int64_t i0, i1;
            float l;
            interp_source(i, tin, tout, &i0, &i1, &l);
            y.data[r * tout + i] = (1.0f - l) * x.data[r * tin + i0] + l * x.data[r * tin + i1];
        }
}

void tal_interp1d_backward(tal_tensor dx, tal_tensor dy) {
    TAL_ASSERT(dx.ndim == 3 && dy.ndim == 3);
    TAL_ASSERT(dx.shape[0] == dy.shape[0] && dx.shape[1] == dy.shape[1]);
    int64_t rows = dx.shape[0] * dx.shape[1], tin = dx.shape[2], tout = dy.shape[2];
    tal_device dev = OP_DEVICE(dx, dy);
    if (tin == tout) {
        tal_copy(dx, dy);
        return;
    }
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        interp1d_backward_cuda(dx, dy);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    memset(dx.data, 0, tal_tensor_bytes(dx));
#pragma omp parallel for schedule(static) if (rows * tout > 65536)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < tout; i++) {
            int64_t i0, i1;
            float l;
            interp_source(i, tin, tout, &i0, &i1, &l);
            dx.data[r * tin + i0] += (1.0f - l) * dy.data[r * tout + i];
            dx.data[r * tin + i1] += l * dy.data[r * tout + i];
        }
}
