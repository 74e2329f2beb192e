/* bench/bench_nn_linear.c: linear forward + backward at the Swin-T stage-1 shapes (25088 rows,
 * C 96 -> 288 and the MLP 96 -> 384 -> 96) and window attention (392-token windows, d 32),
 * in GFLOP/s beside the sgemm ceiling measured in the same run: the same products as one
 * cblas_sgemm each with OpenBLAS's own threads, and as tal_gemm's row split.
 * Usage: bench_nn_linear [threads ...] (default: all cores); BENCH_NN_REPS repeats (best of,
 * default 5). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"
#include "nn/nn.h"

void openblas_set_num_threads(int num_threads);

/* ---- one linear layer's three products, three ways ---- */
typedef struct lin {
    int64_t rows, cin, cout;
    tal_tensor x, w, b, y, dy, dx, dw, db;
    int blas_threads; /* for the ceiling with OpenBLAS's own threads */
} lin;

static void run_ours(void *c) {
    lin *l = c;
    tal_linear_forward(l->y, l->x, l->w, l->b);
    tal_linear_backward(l->dx, l->dw, l->db, l->dy, l->x, l->w);
}

/* The three GEMMs alone (no bias, no db), as three sgemm calls using OpenBLAS threading. */
static void run_blas(void *c) {
    lin *l = c;
    int R = (int)l->rows, Ci = (int)l->cin, Co = (int)l->cout;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, Co, Ci, 1.0f, l->x.data, Ci, l->w.data,
                Ci, 0.0f, l->y.data, Co);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, Ci, Co, 1.0f, l->dy.data, Co,
                l->w.data, Ci, 0.0f, l->dx.data, Ci);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Co, Ci, R, 1.0f, l->dy.data, Co, l->x.data,
                Ci, 1.0f, l->dw.data, Ci);
}

static void run_split(void *c) {
    lin *l = c;
    int64_t R = l->rows, Ci = l->cin, Co = l->cout;
    tal_gemm(0, 1, R, Co, Ci, 1.0f, l->x.data, Ci, l->w.data, Ci, 0.0f, l->y.data, Co);
    tal_gemm(0, 0, R, Ci, Co, 1.0f, l->dy.data, Co, l->w.data, Ci, 0.0f, l->dx.data, Ci);
    tal_gemm(1, 0, Co, Ci, R, 1.0f, l->dy.data, Co, l->x.data, Ci, 1.0f, l->dw.data, Ci);
}

static void bench_linear(const char *name, lin *layers, int n_layers, int threads, int reps) {
    double flops = 0, t_ours = 0, t_blas = 0, t_split = 0;
    for (int i = 0; i < n_layers; i++) {
        lin *l = &layers[i];
        flops += 3.0 * 2.0 * (double)l->rows * (double)l->cin * (double)l->cout;
        t_ours += best_time(run_ours, l, reps);
        openblas_set_num_threads(threads);
        t_blas += best_time(run_blas, l, reps);
        openblas_set_num_threads(1);
        t_split += best_time(run_split, l, reps);
    }
    double g_ours = flops / t_ours * 1e-9, g_blas = flops / t_blas * 1e-9;
    double g_split = flops / t_split * 1e-9;
    double ceiling = g_blas > g_split ? g_blas : g_split;
    printf("%-34s %8.2f ms %7.1f GFLOP/s | sgemm own-threads %7.1f, row-split %7.1f | "
           "ours/ceiling %5.1f%%\n",
           name, t_ours * 1e3, g_ours, g_blas, g_split, 100.0 * g_ours / ceiling);
}

static lin make_lin(int64_t rows, int64_t cin, int64_t cout, uint64_t seed) {
    lin l = {.rows = rows, .cin = cin, .cout = cout};
    l.x = make(2, (int64_t[]){rows, cin}, seed);
    l.w = make(2, (int64_t[]){cout, cin}, seed + 1);
    l.b = make(1, (int64_t[]){cout}, seed + 2);
    l.y = make(2, (int64_t[]){rows, cout}, seed + 3);
    l.dy = make(2, (int64_t[]){rows, cout}, seed + 4);
    l.dx = make(2, (int64_t[]){rows, cin}, seed + 5);
    l.dw = make(2, (int64_t[]){cout, cin}, seed + 6);
    l.db = make(1, (int64_t[]){cout}, seed + 7);
    return l;
}

/* ---- window attention ---- */
typedef struct attn {
    int64_t B, H, N, d;
    tal_tensor q, k, v, out, probs, bias, mask, dout, dq, dk, dv, dbias;
    tal_arena *scratch;
} attn;

static void run_attn(void *c) {
    attn *a = c;
    tal_attention_forward(a->out, a->probs, a->q, a->k, a->v, a->bias, a->mask, 0.17677669f);
    tal_attention_backward(a->dq, a->dk, a->dv, a->dbias, a->dout, a->q, a->k, a->v, a->probs,
                           0.17677669f, a->scratch);
}

/* The six products per (b, h) alone, as sgemm calls with OpenBLAS threading inside each. */
static void run_attn_blas(void *c) {
    attn *a = c;
    int N = (int)a->N, d = (int)a->d;
    for (int64_t bh = 0; bh < a->B * a->H; bh++) {
        const float *q = a->q.data + bh * N * d, *k = a->k.data + bh * N * d;
        const float *v = a->v.data + bh * N * d, *go = a->dout.data + bh * N * d;
        float *p = a->probs.data + bh * N * N;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, d, 1.0f, q, d, k, d, 0.0f, p,
                    N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, d, N, 1.0f, p, N, v, d, 0.0f,
                    a->out.data + bh * N * d, d);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, d, N, 1.0f, p, N, go, d, 0.0f,
                    a->dv.data + bh * N * d, d);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, d, 1.0f, go, d, v, d, 0.0f, p,
                    N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, d, N, 1.0f, p, N, k, d, 0.0f,
                    a->dq.data + bh * N * d, d);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, d, N, 1.0f, p, N, q, d, 0.0f,
                    a->dk.data + bh * N * d, d);
    }
}

/* The same six products as tal_bmm calls (batches spread over threads). */
static void run_attn_bmm(void *c) {
    attn *a = c;
    int64_t BH = a->B * a->H, N = a->N, d = a->d;
    tal_tensor q = tal_t3(a->q.data, BH, N, d), k = tal_t3(a->k.data, BH, N, d);
    tal_tensor v = tal_t3(a->v.data, BH, N, d), go = tal_t3(a->dout.data, BH, N, d);
    tal_tensor p = tal_t3(a->probs.data, BH, N, N), o = tal_t3(a->out.data, BH, N, d);
    tal_bmm(p, q, k, 0, 1, 1.0f, 0.0f);
    tal_bmm(o, p, v, 0, 0, 1.0f, 0.0f);
    tal_bmm(tal_t3(a->dv.data, BH, N, d), p, go, 1, 0, 1.0f, 0.0f);
    tal_bmm(p, go, v, 0, 1, 1.0f, 0.0f);
    tal_bmm(tal_t3(a->dq.data, BH, N, d), p, k, 0, 0, 1.0f, 0.0f);
    tal_bmm(tal_t3(a->dk.data, BH, N, d), p, q, 1, 0, 1.0f, 0.0f);
}

static void bench_attention(int64_t B, int64_t H, int64_t N, int64_t d, int threads, int reps) {
    attn a = {.B = B, .H = H, .N = N, .d = d};
    int64_t s4[4] = {B, H, N, d};
    a.q = make(4, s4, 100), a.k = make(4, s4, 101), a.v = make(4, s4, 102);
    a.out = make(4, s4, 103), a.dout = make(4, s4, 104);
    a.dq = make(4, s4, 105), a.dk = make(4, s4, 106), a.dv = make(4, s4, 107);
    a.probs = make(4, (int64_t[]){B, H, N, N}, 108);
    a.bias = make(3, (int64_t[]){H, N, N}, 109);
    a.dbias = make(3, (int64_t[]){H, N, N}, 110);
    a.mask = make(3, (int64_t[]){4, N, N}, 111);
    tal_arena *plan = tal_arena_create_planner();
    tal_attention_backward(a.dq, a.dk, a.dv, a.dbias, a.dout, a.q, a.k, a.v, a.probs, 1.0f, plan);
    tal_err err = {0};
    if (tal_arena_create(&a.scratch, TAL_DEV_CPU, tal_arena_high_water(plan), &err) != TAL_OK) {
        fprintf(stderr, "bench_nn_linear: %s\n", err.msg);
        exit(1);
    }
    tal_arena_destroy(plan);
    double flops = 6.0 * 2.0 * (double)(B * H) * (double)N * (double)N * (double)d;
    double t_ours = best_time(run_attn, &a, reps);
    openblas_set_num_threads(threads);
    double t_blas = best_time(run_attn_blas, &a, reps);
    openblas_set_num_threads(1);
    double t_bmm = best_time(run_attn_bmm, &a, reps);
    double g_ours = flops / t_ours * 1e-9, g_blas = flops / t_blas * 1e-9;
    double g_bmm = flops / t_bmm * 1e-9, ceiling = g_blas > g_bmm ? g_blas : g_bmm;
    char name[96];
    snprintf(name, sizeof name, "attention %lldx%lld, N %lld, d %lld fwd+bwd", (long long)B,
             (long long)H, (long long)N, (long long)d);
    printf("%-34s %8.2f ms %7.1f GFLOP/s | sgemm own-threads %7.1f, tal_bmm   %7.1f | "
           "ours/ceiling %5.1f%%\n",
           name, t_ours * 1e3, g_ours, g_blas, g_bmm, 100.0 * g_ours / ceiling);
    tal_arena_destroy(a.scratch);
}

/* ---- pointwise ops at the MLP hidden size: ours beside glibc erff/expf loops ---- */
typedef struct pw {
    tal_tensor x, y, dy, dx, g, b, mean, rstd, xc, yc;
} pw;

static void run_gelu(void *c) {
    pw *p = c;
    tal_gelu_forward(p->y, p->x);
    tal_gelu_backward(p->dx, p->dy, p->x);
}

static void run_gelu_libm(void *c) {
    pw *p = c;
    int64_t n = tal_tensor_numel(p->x);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float v = p->x.data[i];
        p->y.data[i] = 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float v = p->x.data[i];
        float cdf = 0.5f * (1.0f + erff(v * (float)M_SQRT1_2));
        p->dx.data[i] = p->dy.data[i] * (cdf + v * 0.3989422804f * expf(-0.5f * v * v));
    }
}

static void run_layernorm(void *c) {
    pw *p = c;
    tal_layernorm_forward(p->yc, p->mean, p->rstd, p->xc, p->g, p->b, 1e-5f);
    tal_layernorm_backward(p->yc, p->g, p->b, p->xc, p->xc, p->g, p->mean, p->rstd);
}

static void bench_pointwise(int64_t rows, int reps) {
    pw p;
    p.x = make(2, (int64_t[]){rows, 384}, 200), p.y = make(2, (int64_t[]){rows, 384}, 201);
    p.dy = make(2, (int64_t[]){rows, 384}, 202), p.dx = make(2, (int64_t[]){rows, 384}, 203);
    p.xc = make(2, (int64_t[]){rows, 96}, 204), p.yc = make(2, (int64_t[]){rows, 96}, 205);
    p.g = make(1, (int64_t[]){96}, 206), p.b = make(1, (int64_t[]){96}, 207);
    p.mean = make(1, &rows, 208), p.rstd = make(1, &rows, 209);
    double t_gelu = best_time(run_gelu, &p, reps), t_libm = best_time(run_gelu_libm, &p, reps);
    double t_ln = best_time(run_layernorm, &p, reps);
    printf("gelu %lld x 384 fwd+bwd            %8.2f ms | glibc erff/expf loops %.2f ms (x%.1f)\n",
           (long long)rows, t_gelu * 1e3, t_libm * 1e3, t_libm / t_gelu);
    printf("layernorm %lld x 96 fwd+bwd        %8.2f ms (%.1f GB/s moved)\n", (long long)rows,
           t_ln * 1e3, 5.0 * 4.0 * (double)rows * 96.0 / t_ln * 1e-9);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines appear as measured, also through a pipe */
    const char *reps_env = getenv("BENCH_NN_REPS");
    int reps = reps_env && atoi(reps_env) > 0 ? atoi(reps_env) : 5;
    tal_err err = {0};
    if (tal_arena_create(&g_arena, TAL_DEV_CPU, (size_t)1024 << 20, &err) != TAL_OK) {
        fprintf(stderr, "bench_nn_linear: %s\n", err.msg);
        return 1;
    }
    const int64_t rows = 25088; /* Swin-T stage 1: 8 x 56 x 56 tokens */
    lin qkv = make_lin(rows, 96, 288, 1);
    lin mlp[2] = {make_lin(rows, 96, 384, 20), make_lin(rows, 384, 96, 40)};
    for (int a = 1; a < argc || a == 1; a++) {
        int threads = tal_threads_set(a < argc ? atoi(argv[a]) : 0);
        printf("threads %d, best of %d; GFLOP/s counts the GEMM flops only (3 products per "
               "linear layer, 6 per attention head)\n", threads, reps);
        bench_linear("linear 25088 x 96->288 fwd+bwd", &qkv, 1, threads, reps);
        bench_linear("mlp 25088 x 96->384->96 fwd+bwd", mlp, 2, threads, reps);
        size_t mark = tal_arena_mark(g_arena);
        bench_attention(64, 3, 392, 32, threads, reps);
        bench_pointwise(rows, reps);
        tal_arena_release(g_arena, mark);
        if (argc <= 1) break;
    }
    tal_arena_destroy(g_arena);
    return 0;
}
