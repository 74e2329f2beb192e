/* nn/elementwise.c: add, sub, mul, scale, axpy, copy, fill on tensors of equal element count
 * (shapes may differ: these are flat). Outputs may alias inputs: each element is read before
 * it is written. CUDA twins in elementwise.cu; tal_copy also copies across devices. */
#include "nn.h"
#include "cuda_ops.h"
#include "dispatch.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define PAR_MIN 65536 /* elements; below this threads cost more than they save */

static int64_t same_numel(tal_tensor a, tal_tensor b) {
    TAL_ASSERT_MSG(tal_tensor_numel(a) == tal_tensor_numel(b), "%lld vs %lld elements",
                   (long long)tal_tensor_numel(a), (long long)tal_tensor_numel(b));
    return tal_tensor_numel(a);
}

typedef enum { OP_ADD, OP_SUB, OP_MUL } binary_op;

static void binary_cpu(float *y, const float *a, const float *b, int64_t n, binary_op op) {
    switch (op) {
    case OP_ADD:
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
        break;
    case OP_SUB:
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = a[i] - b[i];
        break;
    case OP_MUL:
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
        break;
    }
}

static void binary(tal_tensor y, tal_tensor a, tal_tensor b, binary_op op) {
    int64_t n = same_numel(y, a);
    same_numel(a, b);
    tal_device dev = OP_DEVICE_AS(op == OP_ADD ? "tal_add" : op == OP_SUB ? "tal_sub" : "tal_mul",
                                  y, a, b);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        if (op == OP_ADD) add_cuda(y, a, b);
        if (op == OP_SUB) sub_cuda(y, a, b);
        if (op == OP_MUL) mul_cuda(y, a, b);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    binary_cpu(y.data, a.data, b.data, n, op);
}

void tal_add(tal_tensor y, tal_tensor a, tal_tensor b) { binary(y, a, b, OP_ADD); }
void tal_sub(tal_tensor y, tal_tensor a, tal_tensor b) { binary(y, a, b, OP_SUB); }
void tal_mul(tal_tensor y, tal_tensor a, tal_tensor b) { binary(y, a, b, OP_MUL); }

static void scale_cpu(float *y, const float *x, float s, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = s * x[i];
}

void tal_scale(tal_tensor y, tal_tensor x, float s) {
    int64_t n = same_numel(y, x);
    tal_device dev = OP_DEVICE(y, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        scale_cuda(y, x, s);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    scale_cpu(y.data, x.data, s, n);
}

static void axpy_cpu(float *y, float a, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void tal_axpy(tal_tensor y, float a, tal_tensor x) {
    int64_t n = same_numel(y, x);
    tal_device dev = OP_DEVICE(y, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        axpy_cuda(y, a, x);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    axpy_cpu(y.data, a, x.data, n);
}

/* Large copies and zero fills go in one contiguous piece per thread: a single core's memmove
 * reaches about half the memory bandwidth, and the other threads would idle at the next
 * barrier meanwhile. */
#define PAR_MIN_BYTES ((int64_t)1 << 20)

static int overlap(const float *a, const float *b, int64_t n) {
    return a < b + n && b < a + n;
}

/* [i0, i1): this thread's contiguous share of n (inside a parallel region). */
static void my_share(int64_t n, int64_t *i0, int64_t *i1) {
#ifdef _OPENMP
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    int64_t t = 0, nt = 1;
#endif
    *i0 = n * t / nt;
    *i1 = n * (t + 1) / nt;
}

void tal_copy(tal_tensor dst, tal_tensor src) {
    int64_t n = same_numel(dst, src);
    if (!n || dst.data == src.data) return;
    if (dst.device != TAL_DEV_CPU || src.device != TAL_DEV_CPU) { /* across or on devices */
        tal_err err = {TAL_OK, ""};
        tal_status rc = tal_copy_bytes(dst.data, dst.device, src.data, src.device,
                                       (size_t)n * sizeof(float), &err);
        TAL_ASSERT_MSG(rc == TAL_OK, "tal_copy: %s", err.msg);
        return;
    }
    float *d = dst.data;
    const float *s = src.data;
    if (overlap(d, s, n) || n * (int64_t)sizeof(float) < PAR_MIN_BYTES) {
        memmove(d, s, (size_t)n * sizeof(float));
        return;
    }
#pragma omp parallel
    {
        int64_t i0, i1;
        my_share(n, &i0, &i1);
        memcpy(d + i0, s + i0, (size_t)(i1 - i0) * sizeof(float));
    }
}

static void fill_cpu(float *t, float value, int64_t n) {
    if (value == 0.0f && !signbit(value)) { /* +0.0 is all-zero bits; -0.0 is not */
        if (n * (int64_t)sizeof(float) < PAR_MIN_BYTES) {
            memset(t, 0, (size_t)n * sizeof(float));
            return;
        }
#pragma omp parallel
        {
            int64_t i0, i1;
            my_share(n, &i0, &i1);
            memset(t + i0, 0, (size_t)(i1 - i0) * sizeof(float));
        }
        return;
    }
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) t[i] = value;
}

void tal_fill(tal_tensor t, float value) {
    int64_t n = tal_tensor_numel(t);
    if (!n) return;
    tal_device dev = OP_DEVICE(t);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        fill_cuda(t, value);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    fill_cpu(t.data, value, n);
}
