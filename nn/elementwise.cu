/* nn/elementwise.cu: CUDA twins of elementwise.c: one thread per element (grid-stride), each
 * element read before it is written, so outputs may alias inputs as on the CPU. */
#include "cuda_common.cuh"

enum binary_op { OP_ADD, OP_SUB, OP_MUL };

template <binary_op OP>
__global__ void binary_kernel(float *y, const float *a, const float *b, int64_t n) {
    GRID_STRIDE_LOOP(i, n) {
        float va = a[i], vb = b[i];
        y[i] = OP == OP_ADD ? va + vb : OP == OP_SUB ? va - vb : va * vb;
    }
}

template <binary_op OP>
static void binary(tal_tensor y, tal_tensor a, tal_tensor b) {
    int64_t n = tal_tensor_numel(y);
    if (!n) return;
    binary_kernel<OP><<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(y.data, a.data, b.data, n);
    TAL_LAUNCH_CHECK();
}

void add_cuda(tal_tensor y, tal_tensor a, tal_tensor b) { binary<OP_ADD>(y, a, b); }
void sub_cuda(tal_tensor y, tal_tensor a, tal_tensor b) { binary<OP_SUB>(y, a, b); }
void mul_cuda(tal_tensor y, tal_tensor a, tal_tensor b) { binary<OP_MUL>(y, a, b); }

__global__ void scale_kernel(float *y, const float *x, float s, int64_t n) {
    GRID_STRIDE_LOOP(i, n) y[i] = s * x[i];
}

void scale_cuda(tal_tensor y, tal_tensor x, float s) {
    int64_t n = tal_tensor_numel(y);
    if (!n) return;
    scale_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(y.data, x.data, s, n);
    TAL_LAUNCH_CHECK();
}

/* y += a x with two roundings, as the CPU loop: __fmul_rn keeps nvcc from fusing it into an
 * FMA, so both devices give the same bits. */
__global__ void axpy_kernel(float *y, float a, const float *x, int64_t n) {
    GRID_STRIDE_LOOP(i, n) y[i] = __fadd_rn(y[i], __fmul_rn(a, x[i]));
}

void axpy_cuda(tal_tensor y, float a, tal_tensor x) {
    int64_t n = tal_tensor_numel(y);
    if (!n) return;
    axpy_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(y.data, a, x.data, n);
    TAL_LAUNCH_CHECK();
}

__global__ void fill_kernel(float *t, float value, int64_t n) {
    GRID_STRIDE_LOOP(i, n) t[i] = value;
}

void fill_cuda(tal_tensor t, float value) {
    int64_t n = tal_tensor_numel(t);
    if (!n) return;
    if (float_bits(value) == 0) { /* +0.0 is all-zero bits (-0.0 is not) */
        cuda_memset_bytes(t.data, 0, (size_t)n * sizeof(float));
        return;
    }
    fill_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(t.data, value, n);
    TAL_LAUNCH_CHECK();
}
