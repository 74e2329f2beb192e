/* nn/attention_layout.h: private to nn/: where the attention's per-(item, head) matrices lie in
 * the [B, H, N, d] tensors and in Swin's packed qkv / token layouts, shared by attention.c and
 * its CUDA twin attention.cu (C and C++ both read it). */
#ifndef TAL_ATTENTION_LAYOUT_H
#define TAL_ATTENTION_LAYOUT_H

#include "nn.h"

/* Item (b, h)'s matrix of an attention operand: rows ld floats apart from
 * base + b * b_stride + h * h_stride. [B, H, N, d] tensors and Swin's packed qkv / token
 * layouts are both views, so neither needs a copy into the other. */
typedef struct attn_view {
    float *base;
    int64_t b_stride, h_stride, ld;
} attn_view;

typedef struct attn_dims {
    int64_t B, H, N, Nk, d;
} attn_dims;

static inline attn_view attn_view_make(float *base, int64_t b_stride, int64_t h_stride,
                                       int64_t ld) {
    attn_view v;
    v.base = base, v.b_stride = b_stride, v.h_stride = h_stride, v.ld = ld;
    return v;
}

static inline float *view_at(attn_view v, int64_t b, int64_t h) {
    return v.base + b * v.b_stride + h * v.h_stride;
}

static inline attn_view bhnd_view(tal_tensor t) { /* [B, H, N, d] */
    return attn_view_make(t.data, t.shape[1] * t.shape[2] * t.shape[3], t.shape[2] * t.shape[3],
                          t.shape[3]);
}

/* qkv [B, N, 3 C] (C = heads * d: q, k, v of a token side by side, heads within each) and
 * tokens [B, N, C] as views of the same (b, h) matrices. */
static inline attn_view qkv_view(tal_tensor qkv, int part, int64_t N, int64_t C, int64_t d) {
    return attn_view_make(qkv.data ? qkv.data + part * C : NULL, N * 3 * C, d, 3 * C);
}

static inline attn_view tokens_view(tal_tensor t, int64_t N, int64_t C, int64_t d) {
    return attn_view_make(t.data, N * C, d, C);
}

/* The device backward's scratch: one item's dP / dS for all heads, [H, N, Nk]. */
static inline int64_t attention_backward_cuda_floats(attn_dims s) { return s.H * s.N * s.Nk; }

#endif /* TAL_ATTENTION_LAYOUT_H */
