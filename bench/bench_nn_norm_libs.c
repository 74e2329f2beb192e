/* bench/bench_nn_norm_libs.c: LayerNorm over the last dim at the Swin-T stages' shapes and
 * softmax over the window attention's rows (64 windows x 3 heads x 392 queries, 392 keys),
 * forward + backward, on one core: nn/layernorm.c and nn/softmax.c against oneDNN's layer
 * normalization and softmax primitives on the same plain row-major tensors (primitives made
 * once, as a caller would cache them). Milliseconds of process CPU time, best of
 * BENCH_NORM_ROUNDS (5) alternating rounds. */
#include "bench_dnnl.h"
#include "nn/nn.h"


static dnnl_memory_t mem(const dnnl_memory_desc_t *md, void *data) {
    dnnl_memory_t m;
    DNNL_CHECK(dnnl_memory_create(&m, md, g_engine, data));
    return m;
}

static void exec(dnnl_primitive_t p, int n, dnnl_exec_arg_t *args) {
    DNNL_CHECK(dnnl_primitive_execute(p, g_stream, n, args));
    DNNL_CHECK(dnnl_stream_wait(g_stream));
}

/* ---- LayerNorm [rows, C] ---- */
typedef struct ln {
    tal_tensor x, y, dy, dx, g, b, dg, db, mean, rstd, var, ss, dss;
    dnnl_primitive_t fwd, bwd;
    dnnl_exec_arg_t fargs[5], bargs[8];
} ln;

static void ln_ours(void *p) {
    ln *l = p;
    tal_layernorm_forward(l->y, l->mean, l->rstd, l->x, l->g, l->b, 1e-5f);
    tal_layernorm_backward(l->dx, l->dg, l->db, l->dy, l->x, l->g, l->mean, l->rstd);
}

static void ln_dnnl(void *p) {
    ln *l = p;
    exec(l->fwd, 5, l->fargs);
    exec(l->bwd, 7, l->bargs);
}

static void bench_ln(int64_t rows, int64_t C, int rounds) {
    size_t mark = tal_arena_mark(g_arena);
    ln l;
    int64_t s2[2] = {rows, C}, s1[1] = {C}, sr[1] = {rows}, sss[2] = {2, C};
    l.x = make(2, s2, 1), l.y = make(2, s2, 2), l.dy = make(2, s2, 3), l.dx = make(2, s2, 4);
    l.g = make(1, s1, 5), l.b = make(1, s1, 6), l.dg = make(1, s1, 7), l.db = make(1, s1, 8);
    l.mean = make(1, sr, 9), l.rstd = make(1, sr, 10), l.var = make(1, sr, 11);
    l.ss = make(2, sss, 12), l.dss = make(2, sss, 13);
    dnnl_memory_desc_t data, stat, ssmd;
    dnnl_dims_t dd = {rows, C}, sd = {rows}, ssd = {2, C};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&data, 2, dd, dnnl_f32, dnnl_ab));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&stat, 1, sd, dnnl_f32, dnnl_a));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&ssmd, 2, ssd, dnnl_f32, dnnl_ab));
    dnnl_layer_normalization_desc_t fd, bd;
    DNNL_CHECK(dnnl_layer_normalization_forward_desc_init(&fd, dnnl_forward_training, &data, &stat,
                                                          1e-5f, dnnl_use_scaleshift));
    dnnl_primitive_desc_t fpd, bpd;
    DNNL_CHECK(dnnl_primitive_desc_create(&fpd, &fd, NULL, g_engine, NULL));
    DNNL_CHECK(dnnl_layer_normalization_backward_desc_init(&bd, dnnl_backward, &data, &data, &stat,
                                                           1e-5f, dnnl_use_scaleshift));
    DNNL_CHECK(dnnl_primitive_desc_create(&bpd, &bd, NULL, g_engine, fpd));
    DNNL_CHECK(dnnl_primitive_create(&l.fwd, fpd));
    DNNL_CHECK(dnnl_primitive_create(&l.bwd, bpd));
    dnnl_memory_t mx = mem(&data, l.x.data), my = mem(&data, l.y.data);
    dnnl_memory_t mm = mem(&stat, l.mean.data), mv = mem(&stat, l.var.data);
    dnnl_memory_t mss = mem(&ssmd, l.ss.data), mdss = mem(&ssmd, l.dss.data);
    dnnl_memory_t mdy = mem(&data, l.dy.data), mdx = mem(&data, l.dx.data);
    l.fargs[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mx};
    l.fargs[1] = (dnnl_exec_arg_t){DNNL_ARG_DST, my};
    l.fargs[2] = (dnnl_exec_arg_t){DNNL_ARG_MEAN, mm};
    l.fargs[3] = (dnnl_exec_arg_t){DNNL_ARG_VARIANCE, mv};
    l.fargs[4] = (dnnl_exec_arg_t){DNNL_ARG_SCALE_SHIFT, mss};
    l.bargs[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mx};
    l.bargs[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, mdy};
    l.bargs[2] = (dnnl_exec_arg_t){DNNL_ARG_MEAN, mm};
    l.bargs[3] = (dnnl_exec_arg_t){DNNL_ARG_VARIANCE, mv};
    l.bargs[4] = (dnnl_exec_arg_t){DNNL_ARG_SCALE_SHIFT, mss};
    l.bargs[5] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, mdx};
    l.bargs[6] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SCALE_SHIFT, mdss};
    ln_ours(&l), ln_dnnl(&l);
    double t_ours = 1e30, t_dnnl = 1e30;
    for (int r = 0; r < rounds; r++) {
        double a = best_cpu(ln_ours, &l, 1), b = best_cpu(ln_dnnl, &l, 1);
        t_ours = a < t_ours ? a : t_ours, t_dnnl = b < t_dnnl ? b : t_dnnl;
    }
    printf("| LayerNorm %lld x %lld fwd+bwd | %.2f | %.2f (%s) | %.2fx |\n", (long long)rows,
           (long long)C, 1e3 * t_ours, 1e3 * t_dnnl, "dnnl layer_normalization",
           t_ours / t_dnnl);
    dnnl_primitive_destroy(l.fwd), dnnl_primitive_destroy(l.bwd);
    dnnl_primitive_desc_destroy(fpd), dnnl_primitive_desc_destroy(bpd);
    dnnl_memory_t ms[8] = {mx, my, mm, mv, mss, mdss, mdy, mdx};
    for (int i = 0; i < 8; i++) dnnl_memory_destroy(ms[i]);
    tal_arena_release(g_arena, mark);
}

/* ---- softmax over rows of [rows, n] ---- */
typedef struct sm {
    tal_tensor x, y, dy, dx;
    dnnl_primitive_t fwd, bwd;
    dnnl_exec_arg_t fargs[2], bargs[3];
} sm;

static void sm_ours(void *p) {
    sm *s = p;
    tal_softmax_forward(s->y, s->x);
    tal_softmax_backward(s->dx, s->dy, s->y);
}

static void sm_dnnl(void *p) {
    sm *s = p;
    exec(s->fwd, 2, s->fargs);
    exec(s->bwd, 3, s->bargs);
}

static void bench_softmax(int64_t rows, int64_t n, int rounds) {
    size_t mark = tal_arena_mark(g_arena);
    sm s;
    int64_t s2[2] = {rows, n};
    s.x = make(2, s2, 21), s.y = make(2, s2, 22), s.dy = make(2, s2, 23), s.dx = make(2, s2, 24);
    dnnl_memory_desc_t data;
    dnnl_dims_t dd = {rows, n};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&data, 2, dd, dnnl_f32, dnnl_ab));
    dnnl_softmax_desc_t fd, bd;
    DNNL_CHECK(dnnl_softmax_forward_desc_init(&fd, dnnl_forward_training, &data, 1));
    dnnl_primitive_desc_t fpd, bpd;
    DNNL_CHECK(dnnl_primitive_desc_create(&fpd, &fd, NULL, g_engine, NULL));
    DNNL_CHECK(dnnl_softmax_backward_desc_init(&bd, &data, &data, 1));
    DNNL_CHECK(dnnl_primitive_desc_create(&bpd, &bd, NULL, g_engine, fpd));
    DNNL_CHECK(dnnl_primitive_create(&s.fwd, fpd));
    DNNL_CHECK(dnnl_primitive_create(&s.bwd, bpd));
    dnnl_memory_t mx = mem(&data, s.x.data), my = mem(&data, s.y.data);
    dnnl_memory_t mdy = mem(&data, s.dy.data), mdx = mem(&data, s.dx.data);
    s.fargs[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mx};
    s.fargs[1] = (dnnl_exec_arg_t){DNNL_ARG_DST, my};
    s.bargs[0] = (dnnl_exec_arg_t){DNNL_ARG_DST, my};
    s.bargs[1] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, mdy};
    s.bargs[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, mdx};
    sm_ours(&s), sm_dnnl(&s);
    double t_ours = 1e30, t_dnnl = 1e30;
    for (int r = 0; r < rounds; r++) {
        double a = best_cpu(sm_ours, &s, 1), b = best_cpu(sm_dnnl, &s, 1);
        t_ours = a < t_ours ? a : t_ours, t_dnnl = b < t_dnnl ? b : t_dnnl;
    }
    printf("| softmax %lld rows x %lld fwd+bwd | %.2f | %.2f (dnnl softmax) | %.2fx |\n",
           (long long)rows, (long long)n, 1e3 * t_ours, 1e3 * t_dnnl, t_ours / t_dnnl);
    dnnl_primitive_destroy(s.fwd), dnnl_primitive_destroy(s.bwd);
    dnnl_primitive_desc_destroy(fpd), dnnl_primitive_desc_destroy(bpd);
    dnnl_memory_t ms[4] = {mx, my, mdy, mdx};
    for (int i = 0; i < 4; i++) dnnl_memory_destroy(ms[i]);
    tal_arena_release(g_arena, mark);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *r_env = getenv("BENCH_NORM_ROUNDS");
    int rounds = r_env && atoi(r_env) > 0 ? atoi(r_env) : 5;
    tal_err err = {0};
    if (tal_arena_create(&g_arena, TAL_DEV_CPU, (size_t)1024 << 20, &err) != TAL_OK) {
        fprintf(stderr, "bench_nn_norm_libs: %s\n", err.msg);
        return 1;
    }
    dnnl_bench_start();
    printf("one core, ms of process CPU time, best of %d alternating rounds\n"
           "| op | re2tal | oneDNN | re2tal / oneDNN time |\n|---|---|---|---|\n", rounds);
    bench_ln(25088, 96, rounds);
    bench_ln(6272, 192, rounds);
    bench_ln(1568, 384, rounds);
    bench_ln(392, 768, rounds);
    bench_softmax(64 * 3 * 392, 392, rounds);
    dnnl_bench_end();
    tal_arena_destroy(g_arena);
    return 0;
}
