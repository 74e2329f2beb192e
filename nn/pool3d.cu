/* nn/pool3d.cu: CUDA twin of pool3d.c with the same winner rule (device_math.h's
 * pool3d_window_argmax). Forward: one thread per output. Backward: one thread per input
 * element gathers dy of the outputs it wins, in increasing (t, h, w) order as the CPU adds them:
 * no atomics, the same bits. */
#include "cuda_common.cuh"

typedef struct pool3d_dims {
    int64_t in[3], out[3];
    int kernel[3], stride[3], padding[3];
} pool3d_dims;

static pool3d_dims dims_of(tal_tensor x, tal_tensor y, tal_pool3d_geom g) {
    pool3d_dims d;
    for (int a = 0; a < 3; a++) {
        d.in[a] = x.shape[2 + a];
        d.out[a] = y.shape[2 + a];
        d.kernel[a] = g.kernel[a];
        d.stride[a] = g.stride[a];
        d.padding[a] = g.padding[a];
    }
    return d;
}

__global__ void maxpool3d_forward_kernel(float *y, const float *x, pool3d_dims d, int64_t n) {
    int64_t plane_in = d.in[0] * d.in[1] * d.in[2], plane_out = d.out[0] * d.out[1] * d.out[2];
    GRID_STRIDE_LOOP(o, n) {
        int64_t r = o / plane_out, p = o % plane_out;
        int64_t w = p % d.out[2], h = (p / d.out[2]) % d.out[1], t = p / (d.out[2] * d.out[1]);
        const float *xp = x + r * plane_in;
        y[o] = xp[pool3d_window_argmax(xp, d.in, t, h, w, d.kernel, d.stride, d.padding)];
    }
}

/* dx[e] = sum of dy over the outputs whose window holds e and whose winner e is */
__global__ void maxpool3d_backward_gather(float *dx, const float *dy, const float *x,
                                          pool3d_dims d, int64_t n) {
    int64_t plane_in = d.in[0] * d.in[1] * d.in[2], plane_out = d.out[0] * d.out[1] * d.out[2];
    GRID_STRIDE_LOOP(e, n) {
        int64_t r = e / plane_in, off = e % plane_in;
        int64_t wi = off % d.in[2], hi = (off / d.in[2]) % d.in[1], ti = off / (d.in[2] * d.in[1]);
        const float *xp = x + r * plane_in, *gp = dy + r * plane_out;
        float acc = 0.0f;
        /* taps from the last down: the outputs come in increasing order on each axis */
        for (int i = d.kernel[0] - 1; i >= 0; i--) {
            int64_t t = conv_tap_output(ti, i, d.stride[0], d.padding[0], d.out[0]);
            if (t < 0) continue;
            for (int j = d.kernel[1] - 1; j >= 0; j--) {
                int64_t h = conv_tap_output(hi, j, d.stride[1], d.padding[1], d.out[1]);
                if (h < 0) continue;
                for (int k = d.kernel[2] - 1; k >= 0; k--) {
                    int64_t w = conv_tap_output(wi, k, d.stride[2], d.padding[2], d.out[2]);
                    if (w < 0) continue;
                    if (pool3d_window_argmax(xp, d.in, t, h, w, d.kernel, d.stride, d.padding) ==
                        off)
                        acc += gp[(t * d.out[1] + h) * d.out[2] + w];
                }
            }
        }
        dx[e] = acc;
    }
}

void maxpool3d_forward_cuda(tal_tensor y, tal_tensor x, tal_pool3d_geom g) {
    int64_t n = tal_tensor_numel(y);
    if (!n) return;
    maxpool3d_forward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, x.data, dims_of(x, y, g), n);
    TAL_LAUNCH_CHECK();
}

void maxpool3d_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor x, tal_pool3d_geom g) {
    int64_t n = tal_tensor_numel(dx);
    if (!n) return;
    maxpool3d_backward_gather<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dx.data, dy.data, x.data, dims_of(x, dy, g), n);
    TAL_LAUNCH_CHECK();
}
