/* bench/bench_nn_conv_libs.c: conv3d at the SlowFast-R101 shapes (32 frames at 224: slow path
 * T 8, fast path T 32 with 1/8 of the channels), forward and backward (dx + dw), on one core:
 * nn/conv3d.c against oneDNN's convolution primitives on the same [B, C, T, H, W] tensors
 * (plain ncdhw / oidhw), and oneDNN in its own blocked layouts (format "any") with the
 * reorders in and out counted. Milliseconds of process CPU time, best of BENCH_CONV_ROUNDS (3)
 * alternating rounds. Usage: bench_nn_conv_libs [filter substring] */
#include <string.h>

#include "bench_dnnl.h"
#include "nn/nn.h"


typedef struct shape {
    const char *name;
    int64_t Ci, Co, T, H, W, k[3], s[3], p[3];
} shape;

/* One oneDNN primitive with its memories: user (plain) memories and, when the primitive wants
 * another layout, internal ones reordered to and from. */
typedef struct prim {
    dnnl_primitive_t p;
    int nargs;
    dnnl_exec_arg_t args[4];
    dnnl_primitive_t reorder_in[2], reorder_out; /* NULL when not needed */
    dnnl_memory_t in_user[2], in_prim[2], out_user, out_prim;
    dnnl_memory_t scratch;
} prim;

typedef struct conv {
    shape s;
    int64_t To, Ho, Wo;
    tal_tensor x, w, y, dy, dx, dw;
    tal_conv3d_geom g;
    tal_arena *scratch;
    prim fwd, bwd_data, bwd_w;
} conv;

static void md_plain(dnnl_memory_desc_t *md, const int64_t *dims, dnnl_format_tag_t tag) {
    dnnl_dims_t d = {dims[0], dims[1], dims[2], dims[3], dims[4]};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(md, 5, d, dnnl_f32, tag));
}

/* Memory for what the primitive wants (`want`), from a user buffer in `plain`: the same when
 * they agree, else a new buffer and a reorder in the given direction. */
static dnnl_memory_t bind(const dnnl_memory_desc_t *want, const dnnl_memory_desc_t *plain,
                          float *user, int to_prim, dnnl_memory_t *user_mem,
                          dnnl_primitive_t *reorder) {
    DNNL_CHECK(dnnl_memory_create(user_mem, plain, g_engine, user));
    *reorder = NULL;
    if (dnnl_memory_desc_equal(want, plain)) return *user_mem;
    dnnl_memory_t m;
    DNNL_CHECK(dnnl_memory_create(&m, want, g_engine, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd;
    if (to_prim)
        DNNL_CHECK(dnnl_reorder_primitive_desc_create(&rpd, plain, g_engine, want, g_engine, NULL));
    else
        DNNL_CHECK(dnnl_reorder_primitive_desc_create(&rpd, want, g_engine, plain, g_engine, NULL));
    DNNL_CHECK(dnnl_primitive_create(reorder, rpd));
    dnnl_primitive_desc_destroy(rpd);
    return m;
}

static void run_reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    DNNL_CHECK(dnnl_primitive_execute(r, g_stream, 2, a));
}

static void run_prim(prim *q) {
    for (int i = 0; i < 2; i++)
        if (q->reorder_in[i]) run_reorder(q->reorder_in[i], q->in_user[i], q->in_prim[i]);
    DNNL_CHECK(dnnl_primitive_execute(q->p, g_stream, q->nargs, q->args));
    if (q->reorder_out) run_reorder(q->reorder_out, q->out_prim, q->out_user);
    DNNL_CHECK(dnnl_stream_wait(g_stream));
}

static const char *impl_of(dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    return impl ? impl : "?";
}

/* Makes fwd, bwd_data, bwd_weights; any = 1: oneDNN picks the layouts. Returns the impls. */
static void make_prims(conv *c, int any, char *impls, size_t n) {
    shape s = c->s;
    int64_t xd[5] = {1, s.Ci, s.T, s.H, s.W}, yd[5] = {1, s.Co, c->To, c->Ho, c->Wo};
    int64_t wd[5] = {s.Co, s.Ci, s.k[0], s.k[1], s.k[2]};
    dnnl_memory_desc_t x_plain, y_plain, w_plain, x_md, y_md, w_md;
    md_plain(&x_plain, xd, dnnl_ncdhw);
    md_plain(&y_plain, yd, dnnl_ncdhw);
    md_plain(&w_plain, wd, dnnl_oidhw);
    md_plain(&x_md, xd, any ? dnnl_format_tag_any : dnnl_ncdhw);
    md_plain(&y_md, yd, any ? dnnl_format_tag_any : dnnl_ncdhw);
    md_plain(&w_md, wd, any ? dnnl_format_tag_any : dnnl_oidhw);
    dnnl_dims_t st = {s.s[0], s.s[1], s.s[2]}, pl = {s.p[0], s.p[1], s.p[2]};
    dnnl_dims_t pr = {s.p[0], s.p[1], s.p[2]};
    /* right padding so that the output size matches (stride may leave some input unread) */
    int64_t outs[3] = {c->To, c->Ho, c->Wo}, ins[3] = {s.T, s.H, s.W};
    for (int i = 0; i < 3; i++) pr[i] = (outs[i] - 1) * s.s[i] + s.k[i] - ins[i] - s.p[i];
    dnnl_primitive_attr_t attr;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    DNNL_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_library));

    dnnl_convolution_desc_t fd, bdd, bwd;
    DNNL_CHECK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training,
                                                  dnnl_convolution_direct, &x_md, &w_md, NULL,
                                                  &y_md, st, pl, pr));
    dnnl_primitive_desc_t fpd, bdpd, bwpd;
    DNNL_CHECK(dnnl_primitive_desc_create(&fpd, &fd, attr, g_engine, NULL));
    DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct, &x_md, &w_md,
                                                        &y_md, st, pl, pr));
    DNNL_CHECK(dnnl_primitive_desc_create(&bdpd, &bdd, attr, g_engine, fpd));
    DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(&bwd, dnnl_convolution_direct, &x_md,
                                                           &w_md, NULL, &y_md, st, pl, pr));
    DNNL_CHECK(dnnl_primitive_desc_create(&bwpd, &bwd, attr, g_engine, fpd));
    snprintf(impls, n, "%s / %s / %s", impl_of(fpd), impl_of(bdpd), impl_of(bwpd));

    const dnnl_memory_desc_t *q;
    prim *f = &c->fwd, *d = &c->bwd_data, *g = &c->bwd_w;
    memset(f, 0, sizeof *f), memset(d, 0, sizeof *d), memset(g, 0, sizeof *g);
    /* forward: src x, weights w -> dst y */
    q = dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0);
    f->in_prim[0] = bind(q, &x_plain, c->x.data, 1, &f->in_user[0], &f->reorder_in[0]);
    q = dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0);
    f->in_prim[1] = bind(q, &w_plain, c->w.data, 1, &f->in_user[1], &f->reorder_in[1]);
    q = dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0);
    f->out_prim = bind(q, &y_plain, c->y.data, 0, &f->out_user, &f->reorder_out);
    f->nargs = 3;
    f->args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, f->in_prim[0]};
    f->args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, f->in_prim[1]};
    f->args[2] = (dnnl_exec_arg_t){DNNL_ARG_DST, f->out_prim};
    DNNL_CHECK(dnnl_primitive_create(&f->p, fpd));
    /* backward data: diff_dst dy, weights w -> diff_src dx */
    q = dnnl_primitive_desc_query_md(bdpd, dnnl_query_diff_dst_md, 0);
    d->in_prim[0] = bind(q, &y_plain, c->dy.data, 1, &d->in_user[0], &d->reorder_in[0]);
    q = dnnl_primitive_desc_query_md(bdpd, dnnl_query_weights_md, 0);
    d->in_prim[1] = bind(q, &w_plain, c->w.data, 1, &d->in_user[1], &d->reorder_in[1]);
    q = dnnl_primitive_desc_query_md(bdpd, dnnl_query_diff_src_md, 0);
    d->out_prim = bind(q, &x_plain, c->dx.data, 0, &d->out_user, &d->reorder_out);
    d->nargs = 3;
    d->args[0] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, d->in_prim[0]};
    d->args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, d->in_prim[1]};
    d->args[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, d->out_prim};
    DNNL_CHECK(dnnl_primitive_create(&d->p, bdpd));
    /* backward weights: src x, diff_dst dy -> diff_weights dw (overwritten; ours adds) */
    q = dnnl_primitive_desc_query_md(bwpd, dnnl_query_src_md, 0);
    g->in_prim[0] = bind(q, &x_plain, c->x.data, 1, &g->in_user[0], &g->reorder_in[0]);
    q = dnnl_primitive_desc_query_md(bwpd, dnnl_query_diff_dst_md, 0);
    g->in_prim[1] = bind(q, &y_plain, c->dy.data, 1, &g->in_user[1], &g->reorder_in[1]);
    q = dnnl_primitive_desc_query_md(bwpd, dnnl_query_diff_weights_md, 0);
    g->out_prim = bind(q, &w_plain, c->dw.data, 0, &g->out_user, &g->reorder_out);
    g->nargs = 3;
    g->args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, g->in_prim[0]};
    g->args[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, g->in_prim[1]};
    g->args[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, g->out_prim};
    DNNL_CHECK(dnnl_primitive_create(&g->p, bwpd));
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(bdpd);
    dnnl_primitive_desc_destroy(bwpd);
    dnnl_primitive_attr_destroy(attr);
}

static void free_prim(prim *q) {
    dnnl_primitive_destroy(q->p);
    for (int i = 0; i < 2; i++) {
        if (q->reorder_in[i]) {
            dnnl_primitive_destroy(q->reorder_in[i]);
            dnnl_memory_destroy(q->in_prim[i]);
        }
        dnnl_memory_destroy(q->in_user[i]);
    }
    if (q->reorder_out) {
        dnnl_primitive_destroy(q->reorder_out);
        dnnl_memory_destroy(q->out_prim);
    }
    dnnl_memory_destroy(q->out_user);
}

static void ours_fwd(void *p) {
    conv *c = p;
    tal_conv3d_forward(c->y, c->x, c->w, tal_tensor_none(), c->g, c->scratch);
}
static void ours_bwd(void *p) {
    conv *c = p;
    tal_conv3d_backward(c->dx, c->dw, tal_tensor_none(), c->dy, c->x, c->w, c->g, c->scratch);
}
static void dnnl_fwd(void *p) { run_prim(&((conv *)p)->fwd); }
static void dnnl_bwd(void *p) {
    conv *c = p;
    run_prim(&c->bwd_data);
    run_prim(&c->bwd_w);
}

static void bench_shape(shape s, int rounds) {
    conv c = {.s = s};
    c.To = (s.T + 2 * s.p[0] - s.k[0]) / s.s[0] + 1;
    c.Ho = (s.H + 2 * s.p[1] - s.k[1]) / s.s[1] + 1;
    c.Wo = (s.W + 2 * s.p[2] - s.k[2]) / s.s[2] + 1;
    for (int i = 0; i < 3; i++) c.g.stride[i] = (int)s.s[i], c.g.padding[i] = (int)s.p[i];
    size_t mark = tal_arena_mark(g_arena);
    int64_t xs[5] = {1, s.Ci, s.T, s.H, s.W}, ys[5] = {1, s.Co, c.To, c.Ho, c.Wo};
    int64_t ws[5] = {s.Co, s.Ci, s.k[0], s.k[1], s.k[2]};
    c.x = make(5, xs, 1), c.dx = make(5, xs, 2), c.y = make(5, ys, 3), c.dy = make(5, ys, 4);
    c.w = make(5, ws, 5), c.dw = make(5, ws, 6);
    tal_arena *plan = tal_arena_create_planner();
    tal_conv3d_backward(c.dx, c.dw, tal_tensor_none(), c.dy, c.x, c.w, c.g, plan);
    tal_conv3d_forward(c.y, c.x, c.w, tal_tensor_none(), c.g, plan);
    tal_err err = {0};
    if (tal_arena_create(&c.scratch, TAL_DEV_CPU, tal_arena_high_water(plan) + 64, &err)) {
        fprintf(stderr, "bench_nn_conv_libs: %s\n", err.msg);
        exit(1);
    }
    tal_arena_destroy(plan);
    double flop = 2.0 * (double)(s.Co * c.To * c.Ho * c.Wo) * (double)(s.Ci * s.k[0] * s.k[1] *
                                                                        s.k[2]);
    double t[3][2]; /* ours, dnnl plain, dnnl blocked; fwd, bwd */
    char impl[2][256];
    for (int v = 0; v < 3; v++) t[v][0] = t[v][1] = 1e30;
    conv cp = c, cb = c;
    make_prims(&cp, 0, impl[0], sizeof impl[0]);
    make_prims(&cb, 1, impl[1], sizeof impl[1]);
    for (int r = 0; r < rounds; r++) {
        double a;
        if ((a = best_cpu(ours_fwd, &c, 1)) < t[0][0]) t[0][0] = a;
        if ((a = best_cpu(dnnl_fwd, &cp, 1)) < t[1][0]) t[1][0] = a;
        if ((a = best_cpu(dnnl_fwd, &cb, 1)) < t[2][0]) t[2][0] = a;
        if ((a = best_cpu(ours_bwd, &c, 1)) < t[0][1]) t[0][1] = a;
        if ((a = best_cpu(dnnl_bwd, &cp, 1)) < t[1][1]) t[1][1] = a;
        if ((a = best_cpu(dnnl_bwd, &cb, 1)) < t[2][1]) t[2][1] = a;
    }
    printf("| %s | %.1f | %.2f / %.2f | %.2f / %.2f (%.2fx / %.2fx) | %.2f / %.2f (%.2fx / %.2fx) "
           "| %s | %s |\n",
           s.name, flop * 1e-9, 1e3 * t[0][0], 1e3 * t[0][1], 1e3 * t[1][0], 1e3 * t[1][1],
           t[0][0] / t[1][0], t[0][1] / t[1][1], 1e3 * t[2][0], 1e3 * t[2][1], t[0][0] / t[2][0],
           t[0][1] / t[2][1], impl[0], impl[1]);
    free_prim(&cp.fwd), free_prim(&cp.bwd_data), free_prim(&cp.bwd_w);
    free_prim(&cb.fwd), free_prim(&cb.bwd_data), free_prim(&cb.bwd_w);
    tal_arena_destroy(c.scratch);
    tal_arena_release(g_arena, mark);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *r_env = getenv("BENCH_CONV_ROUNDS");
    int rounds = r_env && atoi(r_env) > 0 ? atoi(r_env) : 3;
    tal_err err = {0};
    if (tal_arena_create(&g_arena, TAL_DEV_CPU, (size_t)2048 << 20, &err) != TAL_OK) {
        fprintf(stderr, "bench_nn_conv_libs: %s\n", err.msg);
        return 1;
    }
    dnnl_bench_start();
    static const shape shapes[] = {
        {"slow stem 1x7x7 s(1,2,2) 3->64, 8x224^2", 3, 64, 8, 224, 224, {1, 7, 7}, {1, 2, 2},
         {0, 3, 3}},
        {"slow res2 conv2 1x3x3 64->64, 8x56^2", 64, 64, 8, 56, 56, {1, 3, 3}, {1, 1, 1},
         {0, 1, 1}},
        {"slow res2 conv1 1x1x1 256->64, 8x56^2", 256, 64, 8, 56, 56, {1, 1, 1}, {1, 1, 1},
         {0, 0, 0}},
        {"slow res3 conv2 1x3x3 128->128, 8x28^2", 128, 128, 8, 28, 28, {1, 3, 3}, {1, 1, 1},
         {0, 1, 1}},
        {"slow res4 conv1 3x1x1 1024->256, 8x14^2", 1024, 256, 8, 14, 14, {3, 1, 1}, {1, 1, 1},
         {1, 0, 0}},
        {"slow res4 conv2 1x3x3 256->256, 8x14^2", 256, 256, 8, 14, 14, {1, 3, 3}, {1, 1, 1},
         {0, 1, 1}},
        {"slow res4 conv3 1x1x1 256->1024, 8x14^2", 256, 1024, 8, 14, 14, {1, 1, 1}, {1, 1, 1},
         {0, 0, 0}},
        {"slow res5 conv2 1x3x3 512->512, 8x7^2", 512, 512, 8, 7, 7, {1, 3, 3}, {1, 1, 1},
         {0, 1, 1}},
        {"fast stem 5x7x7 s(1,2,2) 3->8, 32x224^2", 3, 8, 32, 224, 224, {5, 7, 7}, {1, 2, 2},
         {2, 3, 3}},
        {"fast res2 conv1 3x1x1 32->8, 32x56^2", 32, 8, 32, 56, 56, {3, 1, 1}, {1, 1, 1},
         {1, 0, 0}},
        {"fast res2 conv2 1x3x3 8->8, 32x56^2", 8, 8, 32, 56, 56, {1, 3, 3}, {1, 1, 1},
         {0, 1, 1}},
        {"fast res4 conv1 3x1x1 128->32, 32x14^2", 128, 32, 32, 14, 14, {3, 1, 1}, {1, 1, 1},
         {1, 0, 0}},
        {"fast res4 conv2 1x3x3 32->32, 32x14^2", 32, 32, 32, 14, 14, {1, 3, 3}, {1, 1, 1},
         {0, 1, 1}},
        {"lateral 7x1x1 s(4,1,1) 8->16, 32x56^2", 8, 16, 32, 56, 56, {7, 1, 1}, {4, 1, 1},
         {3, 0, 0}},
    };
    printf("one core, ms of process CPU time, best of %d alternating rounds; fwd / bwd (dx + dw)"
           "\n| conv | GFLOP fwd | nn/conv3d.c | oneDNN plain ncdhw (speed-up) | oneDNN blocked + "
           "reorders (speed-up) | impl plain | impl blocked |\n|---|---|---|---|---|---|---|\n",
           rounds);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!filter || strstr(shapes[i].name, filter)) bench_shape(shapes[i], rounds);
    dnnl_bench_end();
    tal_arena_destroy(g_arena);
    return 0;
}
