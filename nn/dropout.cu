/* nn/dropout.cu: CUDA twin of dropout.c with the same draws (device_math.h's Philox): element
 * i's uniform is word i & 1 of draw i / 2, sample b's drop-path uniform the same way, so the
 * masks are bit-identical to the CPU's and a recompute redraws them exactly. Each output is one
 * multiply on both devices, so the values are bit-identical too. */
#include "cuda_common.cuh"

/* one thread per draw: elements 2k and 2k + 1 */
__global__ void dropout_pairs_kernel(float *y, const float *x, int64_t n, float p,
                                     float keep_scale, uint64_t seed, uint64_t step,
                                     uint64_t stream) {
    GRID_STRIDE_LOOP(k, (n + 1) / 2) {
        uint64_t r = philox_u64(seed, step, stream, (uint64_t)k);
        for (int64_t i = 2 * k; i < 2 * k + 2 && i < n; i++) {
            float u = uniform24((i & 1) ? (uint32_t)r : (uint32_t)(r >> 32));
            y[i] = u >= p ? x[i] * keep_scale : 0.0f;
        }
    }
}

void dropout_cuda(tal_tensor y, tal_tensor x, float p, tal_rng_key key) {
    int64_t n = tal_tensor_numel(x);
    if (!n) return;
    float keep_scale = 1.0f / (1.0f - p); /* rounded on the host, as the CPU does */
    dropout_pairs_kernel<<<grid_for((n + 1) / 2), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, x.data, n, p, keep_scale, key.seed, key.step, key.stream);
    TAL_LAUNCH_CHECK();
}

/* sample b = i / per_sample kept with its scale, else zeroed */
__global__ void drop_path_kernel(float *y, const float *x, int64_t n, int64_t per_sample,
                                 float p, float keep_scale, uint64_t seed, uint64_t step,
                                 uint64_t stream) {
    GRID_STRIDE_LOOP(i, n) {
        uint64_t b = (uint64_t)(i / per_sample);
        float s = dropout_uniform(seed, step, stream, b) >= p ? keep_scale : 0.0f;
        y[i] = s * x[i];
    }
}

void drop_path_cuda(tal_tensor y, tal_tensor x, float p, tal_rng_key key) {
    int64_t n = tal_tensor_numel(x), B = x.shape[0];
    if (!n) return;
    float keep_scale = 1.0f / (1.0f - p);
    drop_path_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, x.data, n, n / B, p, keep_scale, key.seed, key.step, key.stream);
    TAL_LAUNCH_CHECK();
}
