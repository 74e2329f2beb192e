/* bench/bench_nn_gemm_libs.c: which library should serve each matrix product re2tal makes?
 * Every product shape of a Swin-T step (the linears of stages 1-4: forward, dX, dW; the window
 * attention's six products as nn/attention.c calls them, in row blocks, and whole) on ONE core,
 * four ways in alternating rounds: tal_gemm (what nn/ runs: oneDNN, or OpenBLAS with
 * RE2TAL_GEMM=openblas; before oneDNN, the hand-written thin kernel of nn/gemm_thin.c),
 * OpenBLAS's cblas_sgemm, oneDNN's dnnl_sgemm and oneDNN's matmul primitive (made once per
 * shape, as a caller would cache it). Then the attention products batched over the 3
 * heads of a window in Swin's packed qkv layout (strided views): one oneDNN batched matmul per
 * product against a loop of per-head calls.
 * GFLOP/s from the process CPU time (all its threads; other processes' load does not count),
 * best of BENCH_GEMM_ROUNDS (5) rounds; each timing repeats the call to at least ~20 ms.
 * Usage: bench_nn_gemm_libs [filter substring] */
#include <cblas.h>
#include <string.h>

#include "bench_dnnl.h"
#include "nn/nn.h"


/* C[M,N] = alpha op(A) op(B) + beta C, row-major; batch items `bstride_*` floats apart. */
typedef struct prod {
    const char *name;
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    int64_t batch, bs_a, bs_b, bs_c; /* batch 1 for a single product */
    float alpha, beta;
    const float *A, *B;
    float *C;
    dnnl_primitive_t mm; /* oneDNN matmul for this shape */
    dnnl_memory_t ma, mb, mc;
} prod;

static void md_matrix(dnnl_memory_desc_t *md, int64_t batch, int64_t rows, int64_t cols,
                      int trans, int64_t ld, int64_t bstride) {
    /* op(X) [rows, cols]: X row-major with leading dim ld, transposed or not */
    dnnl_dims_t dims = {batch, rows, cols}, strides = {bstride, trans ? 1 : ld, trans ? ld : 1};
    dnnl_dims_t dims2 = {rows, cols}, strides2 = {trans ? 1 : ld, trans ? ld : 1};
    if (batch == 1) DNNL_CHECK(dnnl_memory_desc_init_by_strides(md, 2, dims2, dnnl_f32, strides2));
    else DNNL_CHECK(dnnl_memory_desc_init_by_strides(md, 3, dims, dnnl_f32, strides));
}

static void make_matmul(prod *p) {
    dnnl_memory_desc_t a, b, c;
    md_matrix(&a, p->batch, p->M, p->K, p->ta, p->lda, p->bs_a);
    md_matrix(&b, p->batch, p->K, p->N, p->tb, p->ldb, p->bs_b);
    md_matrix(&c, p->batch, p->M, p->N, 0, p->ldc, p->bs_c);
    dnnl_matmul_desc_t desc;
    DNNL_CHECK(dnnl_matmul_desc_init(&desc, &a, &b, NULL, &c));
    dnnl_primitive_attr_t attr;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    if (p->alpha != 1.0f) DNNL_CHECK(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &p->alpha));
    if (p->beta != 0.0f) {
        dnnl_post_ops_t po;
        DNNL_CHECK(dnnl_post_ops_create(&po));
        DNNL_CHECK(dnnl_post_ops_append_sum(po, p->beta));
        DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, po));
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, g_engine, NULL));
    DNNL_CHECK(dnnl_primitive_create(&p->mm, pd));
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (getenv("BENCH_GEMM_VERBOSE")) fprintf(stderr, "%s: matmul impl %s\n", p->name, impl);
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    DNNL_CHECK(dnnl_memory_create(&p->ma, &a, g_engine, (void *)p->A));
    DNNL_CHECK(dnnl_memory_create(&p->mb, &b, g_engine, (void *)p->B));
    DNNL_CHECK(dnnl_memory_create(&p->mc, &c, g_engine, p->C));
}

static void run_ours(const prod *p) {
    for (int64_t i = 0; i < p->batch; i++)
        tal_gemm(p->ta, p->tb, p->M, p->N, p->K, p->alpha, p->A + i * p->bs_a, p->lda,
                 p->B + i * p->bs_b, p->ldb, p->beta, p->C + i * p->bs_c, p->ldc);
}

static void run_blas(const prod *p) {
    for (int64_t i = 0; i < p->batch; i++)
        cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans,
                    p->tb ? CblasTrans : CblasNoTrans, (int)p->M, (int)p->N, (int)p->K, p->alpha,
                    p->A + i * p->bs_a, (int)p->lda, p->B + i * p->bs_b, (int)p->ldb, p->beta,
                    p->C + i * p->bs_c, (int)p->ldc);
}

static void run_dnnl_sgemm(const prod *p) {
    for (int64_t i = 0; i < p->batch; i++)
        dnnl_sgemm(p->ta ? 'T' : 'N', p->tb ? 'T' : 'N', p->M, p->N, p->K, p->alpha,
                   p->A + i * p->bs_a, p->lda, p->B + i * p->bs_b, p->ldb, p->beta,
                   p->C + i * p->bs_c, p->ldc);
}

static void run_matmul(const prod *p) {
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, p->ma}, {DNNL_ARG_WEIGHTS, p->mb}, {DNNL_ARG_DST, p->mc}};
    DNNL_CHECK(dnnl_primitive_execute(p->mm, g_stream, 3, args));
    DNNL_CHECK(dnnl_stream_wait(g_stream));
}

typedef void (*prod_fn)(const prod *);

/* A product without batch: PROD(name, ta, tb, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C) */
#define PROD(nm, ta_, tb_, M_, N_, K_, la, lb, lc, al, be, A_, B_, C_)                             \
    {.name = nm, .ta = ta_, .tb = tb_, .M = M_, .N = N_, .K = K_, .lda = la, .ldb = lb, .ldc = lc, \
     .batch = 1, .alpha = al, .beta = be, .A = A_, .B = B_, .C = C_}
/* ... and H of them, items bsa, bsb, bsc floats apart */
#define PRODB(nm, ta_, tb_, M_, N_, K_, la, lb, lc, H, bsa, bsb, bsc, al, be, A_, B_, C_)         \
    {.name = nm, .ta = ta_, .tb = tb_, .M = M_, .N = N_, .K = K_, .lda = la, .ldb = lb, .ldc = lc, \
     .batch = H, .bs_a = bsa, .bs_b = bsb, .bs_c = bsc, .alpha = al, .beta = be, .A = A_,         \
     .B = B_, .C = C_}

/* Seconds of this thread's CPU per call: the call repeated until ~20 ms have passed. */
static double time_call(prod_fn f, const prod *p, int reps) {
    double t0 = cpu_s();
    for (int r = 0; r < reps; r++) f(p);
    return (cpu_s() - t0) / reps;
}

static int reps_for(const prod *p) {
    double flop = 2.0 * (double)p->M * (double)p->N * (double)p->K * (double)p->batch;
    int reps = (int)(2e9 / flop); /* ~20 ms at 100 GFLOP/s */
    return reps < 1 ? 1 : reps > 20000 ? 20000 : reps;
}

static void bench_prod(prod *p, int rounds) {
    make_matmul(p);
    prod_fn fns[4] = {run_ours, run_blas, run_dnnl_sgemm, run_matmul};
    double best[4] = {1e30, 1e30, 1e30, 1e30};
    int reps = reps_for(p);
    for (int f = 0; f < 4; f++) fns[f](p); /* warm-up: first touch, JIT */
    for (int r = 0; r < rounds; r++)
        for (int f = 0; f < 4; f++) {
            int k = r % 2 ? 3 - f : f; /* alternate the order round by round */
            double t = time_call(fns[k], p, reps);
            if (t < best[k]) best[k] = t;
        }
    double flop = 2.0 * (double)p->M * (double)p->N * (double)p->K * (double)p->batch;
    double g[4];
    int win = 0;
    for (int f = 0; f < 4; f++) {
        g[f] = flop / best[f] * 1e-9;
        if (g[f] > g[win]) win = f;
    }
    static const char *names[4] = {"tal_gemm", "OpenBLAS", "dnnl_sgemm", "dnnl matmul"};
    printf("| %s | %lld x %lld x %lld%s%s%s | %.1f | %.1f | %.1f | %.1f | %s (%.2fx ours) |\n",
           p->name, (long long)p->M, (long long)p->N, (long long)p->K, p->ta ? " A^T" : "",
           p->tb ? " B^T" : "", p->batch > 1 ? " batched" : "", g[0], g[1], g[2], g[3],
           names[win], g[win] / g[0]);
    dnnl_primitive_destroy(p->mm);
    dnnl_memory_destroy(p->ma);
    dnnl_memory_destroy(p->mb);
    dnnl_memory_destroy(p->mc);
}

static float *buf(int64_t floats, uint64_t seed) {
    return make(1, &floats, seed).data;
}

/* The three products of a linear layer (rows x cin -> cout) as nn/linear.c makes them. */
static void bench_linear(const char *stage, int64_t rows, int64_t cin, int64_t cout, int rounds,
                         const char *filter) {
    char n_fwd[96], n_dx[96], n_dw[96], n_dwt[96];
    snprintf(n_fwd, sizeof n_fwd, "%s %lld->%lld forward X W^T", stage, (long long)cin,
             (long long)cout);
    snprintf(n_dx, sizeof n_dx, "%s %lld->%lld dX = dY W", stage, (long long)cin, (long long)cout);
    snprintf(n_dw, sizeof n_dw, "%s %lld->%lld dW = dY^T X", stage, (long long)cin,
             (long long)cout);
    snprintf(n_dwt, sizeof n_dwt, "%s %lld->%lld dW^T = X^T dY", stage, (long long)cin,
             (long long)cout);
    size_t mark = tal_arena_mark(g_arena);
    float *x = buf(rows * cin, 1), *w = buf(cout * cin, 2), *y = buf(rows * cout, 3);
    float *dx = buf(rows * cin, 4), *dw = buf(cout * cin, 5);
    prod ps[4] = {
        PROD(n_fwd, 0, 1, rows, cout, cin, cin, cin, cout, 1.0f, 0.0f, x, w, y),
        PROD(n_dx, 0, 0, rows, cin, cout, cout, cin, cin, 1.0f, 0.0f, y, w, dx),
        PROD(n_dw, 1, 0, cout, cin, rows, cout, cin, cin, 1.0f, 1.0f, y, x, dw),
        PROD(n_dwt, 1, 0, cin, cout, rows, cin, cout, cout, 1.0f, 0.0f, x, y, dw),
    };
    for (int i = 0; i < 4; i++) {
        if (i == 3 && !(cin > 128 && cout <= 128)) continue; /* only where linear.c uses it */
        if (!filter || strstr(ps[i].name, filter)) bench_prod(&ps[i], rounds);
    }
    tal_arena_release(g_arena, mark);
}

/* The window attention's products for one (b, h) pair, as nn/attention.c calls them: blocks of
 * rb query rows (rb = N: whole). q, k, v, dO in Swin's packed layouts (row stride 3C or C). */
static void bench_attention(int64_t N, int64_t d, int64_t C, int64_t rb, int rounds,
                            const char *filter) {
    size_t mark = tal_arena_mark(g_arena);
    float *qkv = buf(N * 3 * C, 11), *go = buf(N * C, 12), *p = buf(N * N, 13);
    float *s = buf(rb * N, 14), *o = buf(N * C, 15), *dkv = buf(N * 3 * C, 16);
    const float *q = qkv, *k = qkv + C, *v = qkv + 2 * C;
    int64_t l3 = 3 * C;
    char n[6][96];
    const char *what[6] = {"Q K^T", "P V", "dO V^T", "P^T dO", "dS K", "dS^T Q"};
    for (int i = 0; i < 6; i++)
        snprintf(n[i], sizeof n[i], "attention %s, %lld-row block", what[i], (long long)rb);
    prod ps[6] = {
        PROD(n[0], 0, 1, rb, N, d, l3, l3, N, 0.17f, 0.0f, q, k, s),
        PROD(n[1], 0, 0, rb, d, N, N, l3, C, 1.0f, 0.0f, s, v, o),
        PROD(n[2], 0, 1, rb, N, d, C, l3, N, 1.0f, 0.0f, go, v, s),
        PROD(n[3], 1, 0, N, d, rb, N, C, l3, 1.0f, 1.0f, p, go, dkv + 2 * C),
        PROD(n[4], 0, 0, rb, d, N, N, l3, l3, 0.17f, 0.0f, s, k, dkv),
        PROD(n[5], 1, 0, N, d, rb, N, l3, l3, 0.17f, 1.0f, s, q, dkv + C),
    };
    for (int i = 0; i < 6; i++)
        if (!filter || strstr(ps[i].name, filter)) bench_prod(&ps[i], rounds);
    tal_arena_release(g_arena, mark);
}

/* The same products for the H heads of one window at once: oneDNN as one batched matmul on
 * strided views (head h's q, k, v are d floats apart in the packed qkv rows), the others as
 * one call per head. */
static void bench_attention_batched(int64_t H, int64_t N, int64_t d, int rounds,
                                    const char *filter) {
    size_t mark = tal_arena_mark(g_arena);
    int64_t C = H * d, l3 = 3 * C;
    float *qkv = buf(N * l3, 21), *go = buf(N * C, 22);
    float *p = buf(H * N * N, 23), *o = buf(N * C, 24), *dkv = buf(N * l3, 25);
    const char *what[6] = {"Q K^T", "P V", "dO V^T", "P^T dO", "dS K", "dS^T Q"};
    char n[6][96];
    for (int i = 0; i < 6; i++)
        snprintf(n[i], sizeof n[i], "attention %s, %lld heads batched", what[i], (long long)H);
    const float *q = qkv, *k = qkv + C, *v = qkv + 2 * C;
    prod ps[6] = {
        PRODB(n[0], 0, 1, N, N, d, l3, l3, N, H, d, d, N * N, 0.17f, 0.0f, q, k, p),
        PRODB(n[1], 0, 0, N, d, N, N, l3, C, H, N * N, d, d, 1.0f, 0.0f, p, v, o),
        PRODB(n[2], 0, 1, N, N, d, C, l3, N, H, d, d, N * N, 1.0f, 0.0f, go, v, p),
        PRODB(n[3], 1, 0, N, d, N, N, C, l3, H, N * N, d, d, 1.0f, 0.0f, p, go, dkv + 2 * C),
        PRODB(n[4], 0, 0, N, d, N, N, l3, l3, H, N * N, d, d, 0.17f, 0.0f, p, k, dkv),
        PRODB(n[5], 1, 0, N, d, N, N, l3, l3, H, N * N, d, d, 0.17f, 0.0f, p, q, dkv + C),
    };
    for (int i = 0; i < 6; i++)
        if (!filter || strstr(ps[i].name, filter)) bench_prod(&ps[i], rounds);
    tal_arena_release(g_arena, mark);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *r_env = getenv("BENCH_GEMM_ROUNDS");
    int rounds = r_env && atoi(r_env) > 0 ? atoi(r_env) : 5;
    tal_err err = {0};
    if (tal_arena_create(&g_arena, TAL_DEV_CPU, (size_t)1024 << 20, &err) != TAL_OK) {
        fprintf(stderr, "bench_nn_gemm_libs: %s\n", err.msg);
        return 1;
    }
    dnnl_bench_start(); /* one core: OpenMP (tal_gemm, oneDNN) and OpenBLAS */
    const dnnl_version_t *ver = dnnl_version();
    printf("one core; GFLOP/s from process CPU time, best of %d alternating rounds; oneDNN "
           "%d.%d.%d (cpu isa hints: default)\n", rounds, ver->major, ver->minor, ver->patch);
    printf("| product | M x N x K | tal_gemm | OpenBLAS | dnnl_sgemm | "
           "dnnl matmul | fastest |\n|---|---|---|---|---|---|---|\n");
    /* Swin-T: stage s has 25088 / 4^(s-1) tokens of C = 96 * 2^(s-1) (16 frames at 224) */
    static const struct { const char *name; int64_t rows, c; } st[4] = {
        {"stage 1", 25088, 96}, {"stage 2", 6272, 192}, {"stage 3", 1568, 384},
        {"stage 4", 392, 768}};
    for (int s = 0; s < 4; s++) {
        bench_linear(st[s].name, st[s].rows, st[s].c, 3 * st[s].c, rounds, filter); /* qkv */
        bench_linear(st[s].name, st[s].rows, st[s].c, st[s].c, rounds, filter);     /* proj */
        bench_linear(st[s].name, st[s].rows, st[s].c, 4 * st[s].c, rounds, filter); /* fc1 */
        bench_linear(st[s].name, st[s].rows, 4 * st[s].c, st[s].c, rounds, filter); /* fc2 */
    }
    bench_attention(392, 32, 96, 60, rounds, filter);  /* nn/attention.c's row blocks */
    bench_attention(392, 32, 96, 392, rounds, filter); /* whole pair */
    bench_attention_batched(3, 392, 32, rounds, filter);
    dnnl_bench_end();
    tal_arena_destroy(g_arena);
    return 0;
}
