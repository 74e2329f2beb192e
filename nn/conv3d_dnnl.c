/* nn/conv3d_dnnl.c: conv3d on oneDNN's convolution primitives (forward, backward data,
 * backward weights). oneDNN picks its own layouts (format "any": channels blocked by 16 on
 * AVX-512); the operands are reordered into them and the results back, every buffer from the
 * caller's scratch arena (oneDNN's scratchpad included), so a planner arena counts exactly what
 * a call takes. Measured at the SlowFast-R101 shapes, one core, reorders counted: 1.2-7x the
 * im2col + GEMM path it replaced in the forward, 1.2-5x in the backward (bench_nn_conv_libs,
 * bench/RESULTS.md "peers"); 1x1x1 convs stay plain GEMMs in nn/conv3d.c, which beat it. */
#include "conv3d_dnnl.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <string.h>

#define DNNL_OK(call)                                                                         \
    do {                                                                                      \
        dnnl_status_t st_ = (call);                                                           \
        TAL_ASSERT_MSG(st_ == dnnl_success, "oneDNN: %s: status %d", #call, (int)st_);        \
    } while (0)

static dnnl_engine_t g_engine;
static pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;

static void create_engine(void) { DNNL_OK(dnnl_engine_create(&g_engine, dnnl_cpu, 0)); }

static dnnl_engine_t engine(void) {
    pthread_once(&g_engine_once, create_engine);
    return g_engine;
}

/* The plain descriptors of one conv ([B, C, T, H, W], [Co, Ci, kt, kh, kw], [Co]) and the
 * "any" ones a primitive is created from, with its strides and paddings. */
typedef struct conv_mds {
    dnnl_memory_desc_t x, y, w, b, x_any, y_any, w_any;
    dnnl_dims_t stride, pad_l, pad_r;
} conv_mds;

static void md5(dnnl_memory_desc_t *md, const int64_t *shape, dnnl_format_tag_t tag) {
    dnnl_dims_t d = {shape[0], shape[1], shape[2], shape[3], shape[4]};
    DNNL_OK(dnnl_memory_desc_init_by_tag(md, 5, d, dnnl_f32, tag));
}

static conv_mds describe(tal_tensor x, tal_tensor w, tal_tensor y, tal_conv3d_geom g) {
    conv_mds m;
    md5(&m.x, x.shape, dnnl_ncdhw);
    md5(&m.y, y.shape, dnnl_ncdhw);
    md5(&m.w, w.shape, dnnl_oidhw);
    md5(&m.x_any, x.shape, dnnl_format_tag_any);
    md5(&m.y_any, y.shape, dnnl_format_tag_any);
    md5(&m.w_any, w.shape, dnnl_format_tag_any);
    dnnl_dims_t bd = {w.shape[0]};
    DNNL_OK(dnnl_memory_desc_init_by_tag(&m.b, 1, bd, dnnl_f32, dnnl_a));
    for (int i = 0; i < 3; i++) {
        m.stride[i] = g.stride[i];
        m.pad_l[i] = g.padding[i];
        /* the right padding that makes the output as long as y (a stride may leave the last
         * inputs unread: then it is below the left padding) */
        m.pad_r[i] = (y.shape[2 + i] - 1) * g.stride[i] + w.shape[2 + i] - x.shape[2 + i] -
                     g.padding[i];
    }
    return m;
}

/* Primitive attributes: the scratchpad comes from the caller (our arena). */
static dnnl_primitive_attr_t user_scratchpad(void) {
    dnnl_primitive_attr_t attr;
    DNNL_OK(dnnl_primitive_attr_create(&attr));
    DNNL_OK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    return attr;
}

static dnnl_primitive_desc_t forward_pd(const conv_mds *m, int with_bias) {
    dnnl_convolution_desc_t d;
    DNNL_OK(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct,
                                               &m->x_any, &m->w_any, with_bias ? &m->b : NULL,
                                               &m->y_any, m->stride, m->pad_l, m->pad_r));
    dnnl_primitive_attr_t attr = user_scratchpad();
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_primitive_desc_create(&pd, &d, attr, engine(), NULL));
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

/* One call's buffers: its arena (real or planner) and the execution stream. */
typedef struct call {
    tal_arena *scratch;
    int planning;
    dnnl_stream_t stream;
} call;

static void *take(call *c, const dnnl_memory_desc_t *md) {
    size_t bytes = dnnl_memory_desc_get_size(md);
    /* written before read (reorders, primitive outputs, scratchpad): no zero fill */
    return tal_arena_floats_uninit(c->scratch, (int64_t)((bytes + 3) / 4));
}

static dnnl_memory_t memory_at(const dnnl_memory_desc_t *md, void *data) {
    dnnl_memory_t m;
    DNNL_OK(dnnl_memory_create(&m, md, engine(), data ? data : DNNL_MEMORY_NONE));
    return m;
}

/* dst = src (accumulate: dst += src) between two layouts of one tensor. */
static void reorder(call *c, const dnnl_memory_desc_t *from_md, void *from,
                    const dnnl_memory_desc_t *to_md, void *to, int accumulate) {
    dnnl_primitive_attr_t attr = NULL;
    if (accumulate) {
        dnnl_post_ops_t po;
        DNNL_OK(dnnl_post_ops_create(&po));
        DNNL_OK(dnnl_post_ops_append_sum(po, 1.0f));
        DNNL_OK(dnnl_primitive_attr_create(&attr));
        DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, po));
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_reorder_primitive_desc_create(&pd, from_md, engine(), to_md, engine(), attr));
    dnnl_primitive_t r;
    DNNL_OK(dnnl_primitive_create(&r, pd));
    dnnl_memory_t a = memory_at(from_md, from), b = memory_at(to_md, to);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
    DNNL_OK(dnnl_primitive_execute(r, c->stream, 2, args));
    DNNL_OK(dnnl_stream_wait(c->stream));
    dnnl_memory_destroy(a);
    dnnl_memory_destroy(b);
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
}

/* An input in the layout the primitive wants: the tensor itself when the layouts agree, else a
 * reordered copy in the arena (planning: only counted). */
static void *input_as(call *c, dnnl_primitive_desc_t pd, dnnl_query_t what,
                      const dnnl_memory_desc_t *plain, float *data) {
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, what, 0);
    if (dnnl_memory_desc_equal(want, plain)) return data;
    void *copy = take(c, want);
    if (!c->planning) reorder(c, plain, data, want, copy, 0);
    return copy;
}

/* Where the primitive writes an output: the tensor itself when the layouts agree (and it is
 * not accumulated into), else an arena buffer moved back by output_back. */
static void *output_as(call *c, dnnl_primitive_desc_t pd, dnnl_query_t what,
                       const dnnl_memory_desc_t *plain, float *data, int accumulate) {
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, what, 0);
    if (!accumulate && dnnl_memory_desc_equal(want, plain)) return data;
    return take(c, want);
}

static void output_back(call *c, dnnl_primitive_desc_t pd, dnnl_query_t what, void *out,
                        const dnnl_memory_desc_t *plain, float *data, int accumulate) {
    if (c->planning || out == data) return;
    reorder(c, dnnl_primitive_desc_query_md(pd, what, 0), out, plain, data, accumulate);
}

/* Runs pd with args (kind, data) and its scratchpad from the arena. */
static void execute(call *c, dnnl_primitive_desc_t pd, int n, const int *kinds, void **data) {
    void *pad = take(c, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    if (c->planning) return;
    dnnl_exec_arg_t args[6];
    TAL_ASSERT(n <= 5);
    for (int i = 0; i < n; i++) {
        dnnl_query_t q = kinds[i] == DNNL_ARG_SRC            ? dnnl_query_src_md
                         : kinds[i] == DNNL_ARG_WEIGHTS      ? dnnl_query_weights_md
                         : kinds[i] == DNNL_ARG_BIAS         ? dnnl_query_weights_md
                         : kinds[i] == DNNL_ARG_DST          ? dnnl_query_dst_md
                         : kinds[i] == DNNL_ARG_DIFF_SRC     ? dnnl_query_diff_src_md
                         : kinds[i] == DNNL_ARG_DIFF_DST     ? dnnl_query_diff_dst_md
                                                             : dnnl_query_diff_weights_md;
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(pd, q, kinds[i] == DNNL_ARG_BIAS ? 1 : 0);
        args[i] = (dnnl_exec_arg_t){kinds[i], memory_at(md, data[i])};
    }
    args[n] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD,
                                memory_at(dnnl_primitive_desc_query_md(
                                              pd, dnnl_query_scratchpad_md, 0),
                                          pad)};
    dnnl_primitive_t p;
    DNNL_OK(dnnl_primitive_create(&p, pd));
    DNNL_OK(dnnl_primitive_execute(p, c->stream, n + 1, args));
    DNNL_OK(dnnl_stream_wait(c->stream));
    dnnl_primitive_destroy(p);
    for (int i = 0; i <= n; i++) dnnl_memory_destroy(args[i].memory);
}

static call begin(tal_arena *scratch) {
    call c = {scratch, tal_arena_is_planner(scratch), NULL};
    if (!c.planning) DNNL_OK(dnnl_stream_create(&c.stream, engine(), dnnl_stream_default_flags));
    return c;
}

static void end(call *c) {
    if (c->stream) dnnl_stream_destroy(c->stream);
}

void conv3d_forward_dnnl(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                         tal_conv3d_geom g, tal_arena *scratch) {
    conv_mds m = describe(x, w, y, g);
    size_t mark = tal_arena_mark(scratch);
    call c = begin(scratch);
    dnnl_primitive_desc_t pd = forward_pd(&m, b.data != NULL || b.ndim > 0);
    void *args[4];
    int kinds[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    args[0] = input_as(&c, pd, dnnl_query_src_md, &m.x, x.data);
    args[1] = input_as(&c, pd, dnnl_query_weights_md, &m.w, w.data);
    args[2] = output_as(&c, pd, dnnl_query_dst_md, &m.y, y.data, 0);
    args[3] = b.data;
    execute(&c, pd, b.data || b.ndim > 0 ? 4 : 3, kinds, args);
    output_back(&c, pd, dnnl_query_dst_md, args[2], &m.y, y.data, 0);
    dnnl_primitive_desc_destroy(pd);
    end(&c);
    tal_arena_release(scratch, mark);
}

void conv3d_backward_dnnl(tal_tensor dx, tal_tensor dw, tal_tensor dy, tal_tensor x,
                          tal_tensor w, tal_conv3d_geom g, tal_arena *scratch) {
    conv_mds m = describe(x, w, dy, g);
    int want_dx = dx.data || dx.ndim > 0, want_dw = dw.data || dw.ndim > 0;
    if (!want_dx && !want_dw) return;
    size_t mark = tal_arena_mark(scratch);
    call c = begin(scratch);
    dnnl_primitive_desc_t fpd = forward_pd(&m, 0); /* the hint both backward passes need */
    dnnl_primitive_attr_t attr = user_scratchpad();
    dnnl_primitive_desc_t dpd = NULL, wpd = NULL;
    if (want_dx) {
        dnnl_convolution_desc_t d;
        DNNL_OK(dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &m.x_any,
                                                         &m.w_any, &m.y_any, m.stride, m.pad_l,
                                                         m.pad_r));
        DNNL_OK(dnnl_primitive_desc_create(&dpd, &d, attr, engine(), fpd));
    }
    if (want_dw) {
        dnnl_convolution_desc_t d;
        DNNL_OK(dnnl_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct,
                                                            &m.x_any, &m.w_any, NULL, &m.y_any,
                                                            m.stride, m.pad_l, m.pad_r));
        DNNL_OK(dnnl_primitive_desc_create(&wpd, &d, attr, engine(), fpd));
    }
    /* dy once in the layout both passes read when they agree (they do on AVX-512) */
    void *dy_data = NULL;
    const dnnl_memory_desc_t *dy_md = NULL;
    if (want_dx) {
        int kinds[3] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
        void *args[3];
        args[0] = dy_data = input_as(&c, dpd, dnnl_query_diff_dst_md, &m.y, dy.data);
        dy_md = dnnl_primitive_desc_query_md(dpd, dnnl_query_diff_dst_md, 0);
        size_t inner = tal_arena_mark(scratch);
        args[1] = input_as(&c, dpd, dnnl_query_weights_md, &m.w, w.data);
        args[2] = output_as(&c, dpd, dnnl_query_diff_src_md, &m.x, dx.data, 0);
        execute(&c, dpd, 3, kinds, args);
        output_back(&c, dpd, dnnl_query_diff_src_md, args[2], &m.x, dx.data, 0);
        tal_arena_release(scratch, inner);
    }
    if (want_dw) { /* oneDNN overwrites its diff weights: added into dw by the reorder back */
        int kinds[3] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS};
        void *args[3];
        args[0] = input_as(&c, wpd, dnnl_query_src_md, &m.x, x.data);
        const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_dst_md,
                                                                      0);
        args[1] = dy_md && dnnl_memory_desc_equal(want, dy_md)
                      ? dy_data
                      : input_as(&c, wpd, dnnl_query_diff_dst_md, &m.y, dy.data);
        args[2] = output_as(&c, wpd, dnnl_query_diff_weights_md, &m.w, dw.data, 1);
        execute(&c, wpd, 3, kinds, args);
        output_back(&c, wpd, dnnl_query_diff_weights_md, args[2], &m.w, dw.data, 1);
    }
    if (dpd) dnnl_primitive_desc_destroy(dpd);
    if (wpd) dnnl_primitive_desc_destroy(wpd);
    dnnl_primitive_attr_destroy(attr);
    dnnl_primitive_desc_destroy(fpd);
    end(&c);
    tal_arena_release(scratch, mark);
}
