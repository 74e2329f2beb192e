/* bench/bench_nn_conv.c: convolutions at the models' shapes, forward and backward, in GFLOP/s
 * beside the ceiling measured in the same run: the same matrix products as bare tal_gemm calls
 * on ready-made operands (so the gap is the im2col / gather / col2im overhead).
 * Shapes: Swin-T patch embedding (2x4x4, 3 -> 96, 32x224x224 clip), ResNet3D bottleneck convs
 * (1x3x3 and 3x1x1, 64 ch, 8x56x56; 1x3x3 stride 2, 128 ch), ActionFormer conv1d (k 3 and
 * k 1, 512 ch, T 2304, batch 2). Usage: bench_nn_conv [threads ...] (default: all cores); BENCH_NN_REPS
 * repeats (best of, default 3). */
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"
#include "nn/nn.h"

typedef enum { PATCH, GENERAL, CONV1D } kind;

typedef struct conv {
    const char *name;
    kind k;
    tal_tensor x, w, y, dy, dx, dw;
    tal_conv3d_geom g3;
    tal_conv1d_geom g1;
    int64_t M, N, K, batch; /* the GEMM per sample: [M, K] x [K, N] */
    float *A, *Bm, *C;      /* ceiling operands */
    tal_arena *scratch;
} conv;

static void fwd(void *p) {
    conv *c = p;
    if (c->k == PATCH) tal_patch_conv3d_forward(c->y, c->x, c->w, tal_tensor_none());
    if (c->k == GENERAL)
        tal_conv3d_forward(c->y, c->x, c->w, tal_tensor_none(), c->g3, c->scratch);
    if (c->k == CONV1D)
        tal_conv1d_forward(c->y, c->x, c->w, tal_tensor_none(), tal_tensor_none(), c->g1,
                           c->scratch);
}

static void bwd(void *p) {
    conv *c = p;
    tal_tensor none = tal_tensor_none();
    if (c->k == PATCH) tal_patch_conv3d_backward(c->dx, c->dw, none, c->dy, c->x, c->w);
    if (c->k == GENERAL)
        tal_conv3d_backward(c->dx, c->dw, none, c->dy, c->x, c->w, c->g3, c->scratch);
    if (c->k == CONV1D)
        tal_conv1d_backward(c->dx, c->dw, none, c->dy, c->x, c->w, none, c->g1, c->scratch);
}

/* Forward ceiling: y = W cols per sample. Backward ceiling: dW += dy cols^T and dcols = W^T dy. */
static void ceil_fwd(void *p) {
    conv *c = p;
    for (int64_t b = 0; b < c->batch; b++)
        tal_gemm(0, 0, c->M, c->N, c->K, 1.0f, c->A, c->K, c->Bm, c->N, 0.0f, c->C, c->N);
}

static void ceil_bwd(void *p) {
    conv *c = p;
    for (int64_t b = 0; b < c->batch; b++) {
        tal_gemm(0, 1, c->M, c->K, c->N, 1.0f, c->C, c->N, c->Bm, c->N, 1.0f, c->A, c->K);
        tal_gemm(1, 0, c->K, c->N, c->M, 1.0f, c->A, c->K, c->C, c->N, 0.0f, c->Bm, c->N);
    }
}

static void setup(conv *c, const int64_t *xs, const int64_t *ws, int nd) {
    c->x = make(nd, xs, 1);
    c->w = make(nd, ws, 2);
    int64_t ys[5];
    ys[0] = xs[0];
    ys[1] = ws[0];
    if (nd == 5) {
        for (int i = 0; i < 3; i++) {
            int s = c->k == PATCH ? (int)ws[2 + i] : c->g3.stride[i];
            int pad = c->k == PATCH ? 0 : c->g3.padding[i];
            ys[2 + i] = tal_conv_out_len(xs[2 + i], (int)ws[2 + i], s, pad);
        }
    } else {
        ys[2] = tal_conv_out_len(xs[2], (int)ws[2], c->g1.stride, c->g1.padding);
    }
    c->y = make(nd, ys, 3);
    c->dy = make(nd, ys, 4);
    c->dx = tal_arena_like(g_arena, c->x);
    c->dw = tal_arena_like(g_arena, c->w);
    c->batch = xs[0];
    c->M = ws[0];
    c->K = tal_tensor_numel(c->w) / ws[0];
    c->N = tal_tensor_numel(c->y) / (ys[0] * ys[1]);
    c->A = tal_arena_floats(g_arena, c->M * c->K);
    c->Bm = tal_arena_floats(g_arena, c->K * c->N);
    c->C = tal_arena_floats(g_arena, c->M * c->N);
    tal_arena *plan = tal_arena_create_planner();
    tal_arena *keep = c->scratch;
    c->scratch = plan;
    if (c->k != PATCH) {
        tal_tensor real_y = c->y;
        c->y = tal_tensor_of(NULL, nd, ys);
        fwd(c);
        bwd(c);
        c->y = real_y;
    }
    size_t need = tal_arena_high_water(plan);
    tal_arena_destroy(plan);
    c->scratch = keep;
    tal_err err = {0};
    if (tal_arena_create(&c->scratch, TAL_DEV_CPU, need ? need : 64, &err) != TAL_OK) {
        fprintf(stderr, "bench_nn_conv: %s\n", err.msg);
        exit(1);
    }
}

static void report(conv *c, int threads, int reps) {
    double flop = 2.0 * (double)c->M * (double)c->N * (double)c->K * (double)c->batch;
    double tf = best_time(fwd, c, reps), tcf = best_time(ceil_fwd, c, reps);
    double tb = best_time(bwd, c, reps), tcb = best_time(ceil_bwd, c, reps);
    printf("%-34s %2d  fwd %7.2f ms %6.1f GF/s (gemm %6.1f, %3.0f%%)  bwd %7.2f ms %6.1f GF/s "
           "(gemm %6.1f, %3.0f%%)\n",
           c->name, threads, 1e3 * tf, flop / tf * 1e-9, flop / tcf * 1e-9, 100 * tcf / tf,
           1e3 * tb, 2 * flop / tb * 1e-9, 2 * flop / tcb * 1e-9, 100 * tcb / tb);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int reps = getenv("BENCH_NN_REPS") ? atoi(getenv("BENCH_NN_REPS")) : 3;
    tal_err err = {0};
    if (tal_arena_create(&g_arena, TAL_DEV_CPU, (size_t)512 << 20, &err) != TAL_OK) {
        fprintf(stderr, "bench_nn_conv: %s\n", err.msg);
        return 1;
    }
    conv cs[6] = {
        {.name = "patch 2x4x4 3->96 32x224x224", .k = PATCH},
        {.name = "conv3d 1x3x3 64->64 8x56x56", .k = GENERAL, .g3 = {{1, 1, 1}, {0, 1, 1}}},
        {.name = "conv3d 3x1x1 64->64 8x56x56", .k = GENERAL, .g3 = {{1, 1, 1}, {1, 0, 0}}},
        {.name = "conv3d 1x3x3 s2 128->128 8x56x56", .k = GENERAL, .g3 = {{1, 2, 2}, {0, 1, 1}}},
        {.name = "conv1d k3 512->512 T2304 B2", .k = CONV1D, .g1 = {1, 1, 1}},
        {.name = "conv1d k1 512->512 T2304 B2", .k = CONV1D, .g1 = {1, 0, 1}},
    };
    setup(&cs[0], (int64_t[]){1, 3, 32, 224, 224}, (int64_t[]){96, 3, 2, 4, 4}, 5);
    setup(&cs[1], (int64_t[]){1, 64, 8, 56, 56}, (int64_t[]){64, 64, 1, 3, 3}, 5);
    setup(&cs[2], (int64_t[]){1, 64, 8, 56, 56}, (int64_t[]){64, 64, 3, 1, 1}, 5);
    setup(&cs[3], (int64_t[]){1, 128, 8, 56, 56}, (int64_t[]){128, 128, 1, 3, 3}, 5);
    setup(&cs[4], (int64_t[]){2, 512, 2304}, (int64_t[]){512, 512, 3}, 3);
    setup(&cs[5], (int64_t[]){2, 512, 2304}, (int64_t[]){512, 512, 1}, 3);
    printf("%-34s %2s  forward and backward (dx + dw); gemm = the same products, bare\n", "shape",
           "th");
    int n_threads = argc > 1 ? argc - 1 : 1;
    for (int i = 0; i < n_threads; i++) {
        int t = tal_threads_set(argc > 1 ? atoi(argv[1 + i]) : 0);
        for (int c = 0; c < 6; c++) report(&cs[c], t, reps);
    }
    for (int c = 0; c < 6; c++) tal_arena_destroy(cs[c].scratch);
    tal_arena_destroy(g_arena);
    return 0;
}
