/* nn/sequence.c: the detection head's elementwise steps on channel-first sequences x [B, C, T]
 * with a length mask [B, T] (nn.h "ops: sequences"): masking, layer scale, the position table,
 * the mask's subsampling, the learned regression scale. The CPU loops are the head's own
 * (heads/ ran them before they moved here: the same bits); the CUDA twins in sequence.cu give
 * the same bits except the double sums of the parameter gradients (summed in another order). */
#include "nn.h"
#include "cuda_ops.h"
#include "dispatch.h"

#include <math.h>

typedef struct seq_dims {
    int64_t B, C, T;
} seq_dims;

static seq_dims seq_of(tal_tensor x) {
    TAL_ASSERT_MSG(x.ndim == 3, "a sequence is [B, C, T], got %d dims", x.ndim);
    seq_dims d = {x.shape[0], x.shape[1], x.shape[2]};
    return d;
}

static void check_mask(tal_tensor mask, seq_dims d) {
    TAL_ASSERT_MSG(tal_tensor_numel(mask) == d.B * d.T, "mask of %lld elements for [B, T] = "
                   "[%lld, %lld]", (long long)tal_tensor_numel(mask), (long long)d.B,
                   (long long)d.T);
}

void tal_mask_columns(tal_tensor y, tal_tensor x, tal_tensor mask) {
    seq_dims d = seq_of(x);
    TAL_ASSERT_SAME_SHAPE(y, x);
    check_mask(mask, d);
    tal_device dev = OP_DEVICE(y, x, mask);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        mask_columns_cuda(y, x, mask);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t c = 0; c < d.C; c++) {
            const float *r = x.data + (b * d.C + c) * d.T, *mr = mask.data + b * d.T;
            float *yr = y.data + (b * d.C + c) * d.T;
            for (int64_t t = 0; t < d.T; t++) yr[t] = r[t] * mr[t];
        }
}

void tal_channel_scale_forward(tal_tensor y, tal_tensor x, tal_tensor g) {
    seq_dims d = seq_of(x);
    TAL_ASSERT_SAME_SHAPE(y, x);
    TAL_ASSERT(tal_tensor_numel(g) == d.C);
    tal_device dev = OP_DEVICE(y, x, g);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        channel_scale_cuda(y, x, g);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t c = 0; c < d.C; c++)
            for (int64_t t = 0; t < d.T; t++) {
                int64_t i = (b * d.C + c) * d.T + t;
                y.data[i] = g.data[c] * x.data[i];
            }
}

void tal_channel_scale_backward(tal_tensor dx, tal_tensor dg, tal_tensor dy, tal_tensor x,
                                tal_tensor g) {
    seq_dims d = seq_of(x);
    TAL_ASSERT_SAME_SHAPE(dy, x);
    TAL_ASSERT(!dx.data || tal_tensor_same_shape(dx, x));
    TAL_ASSERT(tal_tensor_numel(g) == d.C && (!dg.data || tal_tensor_numel(dg) == d.C));
    tal_device dev = OP_DEVICE(dx, dg, dy, x, g);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        if (dg.data) channel_scale_grad_cuda(dg, dy, x);
        if (dx.data) channel_scale_cuda(dx, dy, g);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    if (dg.data) /* first: dx may be dy itself */
        for (int64_t c = 0; c < d.C; c++) {
            double s = 0;
            for (int64_t b = 0; b < d.B; b++)
                for (int64_t t = 0; t < d.T; t++) {
                    int64_t i = (b * d.C + c) * d.T + t;
                    s += (double)dy.data[i] * x.data[i];
                }
            dg.data[c] += (float)s;
        }
    if (dx.data) tal_channel_scale_forward(dx, dy, g);
}

void tal_add_position_table(tal_tensor y, tal_tensor x, tal_tensor table, tal_tensor mask) {
    seq_dims d = seq_of(x);
    TAL_ASSERT_SAME_SHAPE(y, x);
    check_mask(mask, d);
    TAL_ASSERT_MSG(table.ndim == 2 && table.shape[0] == d.C && table.shape[1] >= d.T,
                   "position table [%lld, %lld] for C %lld, T %lld", (long long)table.shape[0],
                   (long long)table.shape[1], (long long)d.C, (long long)d.T);
    tal_device dev = OP_DEVICE(y, x, table, mask);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        add_position_table_cuda(y, x, table, mask);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t Tt = table.shape[1];
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t c = 0; c < d.C; c++)
            for (int64_t t = 0; t < d.T; t++) {
                int64_t i = (b * d.C + c) * d.T + t;
                y.data[i] = x.data[i] + table.data[c * Tt + t] * mask.data[b * d.T + t];
            }
}

void tal_take_every(tal_tensor dst, tal_tensor src, int stride) {
    int64_t To = tal_tensor_cols(dst), T = tal_tensor_cols(src), A = tal_tensor_rows(src);
    TAL_ASSERT(stride >= 1 && tal_tensor_rows(dst) == A);
    TAL_ASSERT_MSG(To == 0 || (To - 1) * stride < T, "take every %d of %lld into %lld", stride,
                   (long long)T, (long long)To);
    tal_device dev = OP_DEVICE(dst, src);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        take_every_cuda(dst, src, stride);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    for (int64_t a = 0; a < A; a++)
        for (int64_t t = 0; t < To; t++) dst.data[a * To + t] = src.data[a * T + t * stride];
}

void tal_scale_relu_forward(tal_tensor y, tal_tensor x, tal_tensor s) {
    TAL_ASSERT(tal_tensor_numel(y) == tal_tensor_numel(x) && tal_tensor_numel(s) == 1);
    tal_device dev = OP_DEVICE(y, x, s);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        scale_relu_forward_cuda(y, x, s);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t n = tal_tensor_numel(x);
    float sc = s.data[0];
    for (int64_t i = 0; i < n; i++) {
        float v = sc * x.data[i];
        y.data[i] = v > 0 ? v : 0.0f;
    }
}

void tal_scale_relu_backward(tal_tensor dx, tal_tensor ds, tal_tensor dy, tal_tensor y,
                             tal_tensor x, tal_tensor s) {
    int64_t n = tal_tensor_numel(x);
    TAL_ASSERT(tal_tensor_numel(y) == n && tal_tensor_numel(dy) == n && tal_tensor_numel(s) == 1);
    TAL_ASSERT(tal_tensor_numel(dx) == n && (!ds.data || tal_tensor_numel(ds) == 1));
    tal_device dev = OP_DEVICE(dx, ds, dy, y, x, s);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        scale_relu_backward_cuda(dx, ds, dy, y, x, s);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    float sc = s.data[0];
    double acc = 0;
    for (int64_t i = 0; i < n; i++) {
        float g = y.data[i] > 0.0f ? dy.data[i] : 0.0f;
        acc += (double)g * x.data[i];
        dx.data[i] = g * sc;
    }
    if (ds.data) ds.data[0] += (float)acc;
}

int64_t tal_count_nonfinite(tal_tensor t) {
    tal_device dev = OP_DEVICE(t);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) return count_nonfinite_cuda(t);
#endif
    ASSERT_CPU_PATH(dev);
    int64_t n = tal_tensor_numel(t), k = 0;
    const float *v = t.data;
#pragma omp parallel for reduction(+ : k) schedule(static) if (n > 65536)
    for (int64_t j = 0; j < n; j++) k += !isfinite(v[j]);
    return k;
}
