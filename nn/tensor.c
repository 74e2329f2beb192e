/* nn/tensor.c: tensor views (float32, contiguous, row-major): building, reshaping, shapes. */
#include "nn.h"

#include <string.h>

tal_tensor tal_tensor_of(float *data, int ndim, const int64_t *shape) {
    TAL_ASSERT_MSG(ndim >= 0 && ndim <= TAL_MAX_DIMS, "ndim %d", ndim);
    tal_tensor t = {0};
    t.data = data;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        TAL_ASSERT_MSG(shape[i] >= 0, "dim %d is %lld", i, (long long)shape[i]);
        t.shape[i] = shape[i];
    }
    t.device = TAL_DEV_CPU;
    return t;
}

tal_tensor tal_t1(float *data, int64_t d0) { return tal_tensor_of(data, 1, (int64_t[]){d0}); }
tal_tensor tal_t2(float *data, int64_t d0, int64_t d1) {
    return tal_tensor_of(data, 2, (int64_t[]){d0, d1});
}
tal_tensor tal_t3(float *data, int64_t d0, int64_t d1, int64_t d2) {
    return tal_tensor_of(data, 3, (int64_t[]){d0, d1, d2});
}
tal_tensor tal_t4(float *data, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    return tal_tensor_of(data, 4, (int64_t[]){d0, d1, d2, d3});
}
tal_tensor tal_t5(float *data, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int64_t d4) {
    return tal_tensor_of(data, 5, (int64_t[]){d0, d1, d2, d3, d4});
}
tal_tensor tal_t6(float *data, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int64_t d4,
                  int64_t d5) {
    return tal_tensor_of(data, 6, (int64_t[]){d0, d1, d2, d3, d4, d5});
}

int64_t tal_tensor_numel(tal_tensor t) {
    int64_t n = 1;
    for (int i = 0; i < t.ndim; i++) n *= t.shape[i];
    return n;
}

size_t tal_tensor_bytes(tal_tensor t) { return (size_t)tal_tensor_numel(t) * sizeof(float); }

int64_t tal_tensor_cols(tal_tensor t) { return t.ndim ? t.shape[t.ndim - 1] : 1; }

int64_t tal_tensor_rows(tal_tensor t) {
    int64_t n = 1;
    for (int i = 0; i + 1 < t.ndim; i++) n *= t.shape[i];
    return n;
}

tal_tensor tal_tensor_reshape(tal_tensor t, int ndim, const int64_t *shape) {
    tal_tensor r = tal_tensor_of(t.data, ndim, shape);
    r.device = t.device;
    TAL_ASSERT_MSG(tal_tensor_numel(r) == tal_tensor_numel(t), "reshape %lld -> %lld elements",
                   (long long)tal_tensor_numel(t), (long long)tal_tensor_numel(r));
    return r;
}

tal_tensor tal_tensor_slice0(tal_tensor t, int64_t start, int64_t count) {
    TAL_ASSERT(t.ndim >= 1);
    TAL_ASSERT_MSG(start >= 0 && count >= 0 && start + count <= t.shape[0],
                   "rows [%lld, %lld) of %lld", (long long)start, (long long)(start + count),
                   (long long)t.shape[0]);
    tal_tensor r = t;
    int64_t row = t.shape[0] ? tal_tensor_numel(t) / t.shape[0] : 0;
    if (r.data) r.data += start * row;
    r.shape[0] = count;
    return r;
}

int tal_tensor_same_shape(tal_tensor a, tal_tensor b) {
    if (a.ndim != b.ndim) return 0;
    for (int i = 0; i < a.ndim; i++)
        if (a.shape[i] != b.shape[i]) return 0;
    return 1;
}

const char *tal_tensor_shape_str(tal_tensor t, char *buf, size_t size) {
    size_t n = 0;
    if (size == 0) return buf;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, size - n, "[");
    for (int i = 0; i < t.ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ", %lld" : "%lld", (long long)t.shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}
