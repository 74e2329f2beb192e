/* The CUDA convolutions against the CPU ops on the same random inputs, forward and backward
 * (dx written, dW and db accumulated into nonzero buffers): the patch embedding (stride =
 * kernel; a batch of 1, one input channel, bias or none), the general conv3d (odd kernels,
 * strides and paddings per axis, 1x1x1 without scratch, several column chunks), conv1d
 * (depthwise, dense, grouped, pointwise; stride, padding, the length mask, a batch of 1), in
 * fp32 and bf16. The scratch arenas are device arenas, sized by the CPU ops' planner counts.
 * Tolerances: tests/cuda_check.h (K = the sum's length). Skipped without a GPU. */
#include "cuda_check.h"

static void cleanup(void) {
    tal_precision_set(TAL_PREC_FP32);
    cuda_test_cleanup();
}
TestSuite(cuda_conv, .fini = cleanup);

static tal_arena *dev_scratch(size_t bytes) {
    tal_arena *a = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CUDA, bytes, &err), TAL_OK, "%s", err.msg);
    return a;
}

static double atol_for(tal_precision mode, int64_t K) {
    return mode == TAL_PREC_BF16 ? BF16_ATOL(K) : FP32_ATOL(K);
}
static double rtol_for(tal_precision mode) { return mode == TAL_PREC_BF16 ? 0 : FP32_RTOL; }

/* ---------------------------------------------------------------- patch conv3d ---------- */
static void check_patch(int64_t B, int64_t Ci, int64_t T, int64_t H, int64_t W, int64_t Co,
                        int64_t kt, int64_t kh, int64_t kw, int bias, tal_precision mode) {
    int64_t To = T / kt, Ho = H / kh, Wo = W / kw, K = Ci * kt * kh * kw, P = To * Ho * Wo;
    tal_tensor x = rand_host(5, (int64_t[]){B, Ci, T, H, W}, 1);
    tal_tensor w = rand_host(5, (int64_t[]){Co, Ci, kt, kh, kw}, 2);
    tal_tensor b = bias ? rand_host(1, &Co, 3) : tal_tensor_none();
    tal_tensor dy = rand_host(5, (int64_t[]){B, Co, To, Ho, Wo}, 4);
    tal_tensor y = test_tensor_like(dy), dx = test_tensor_like(x);
    tal_tensor dw = rand_host(5, w.shape, 5), db = rand_host(1, &Co, 6);
    tal_tensor gx = dev_copy(x), gw = dev_copy(w), gb = bias ? dev_copy(b) : b;
    tal_tensor gy = dev_like(y), gdx = dev_like(dx), gdw = dev_copy(dw), gdb = dev_copy(db);
    tal_precision_set(mode);
    tal_patch_conv3d_forward(gy, gx, gw, gb);
    tal_patch_conv3d_backward(gdx, gdw, gdb, dev_copy(dy), gx, gw);
    tal_precision_set(TAL_PREC_FP32);
    tal_patch_conv3d_forward(y, x, w, b);
    tal_patch_conv3d_backward(dx, dw, db, dy, x, w);
    expect_dev_close(gy, y, atol_for(mode, K), rtol_for(mode));
    expect_dev_close(gdx, dx, atol_for(mode, Co), rtol_for(mode));
    expect_dev_close(gdw, dw, atol_for(mode, B * P), rtol_for(mode));
    expect_dev_close(gdb, db, FP32_ATOL(B * P), FP32_RTOL);
}

Test(cuda_conv, patch_conv3d) {
    CUDA_ONLY();
    check_patch(2, 3, 4, 8, 12, 5, 2, 4, 4, 1, TAL_PREC_FP32);
    check_patch(1, 1, 2, 4, 4, 1, 2, 4, 4, 0, TAL_PREC_FP32);
    check_patch(1, 3, 6, 20, 36, 96, 2, 4, 4, 1, TAL_PREC_FP32); /* Swin's stem, small */
    check_patch(2, 3, 4, 8, 12, 5, 2, 4, 4, 1, TAL_PREC_BF16);
}

/* ---------------------------------------------------------------- general conv3d -------- */
typedef struct conv3d_case {
    int64_t B, Ci, T, H, W, Co, kt, kh, kw;
    tal_conv3d_geom g;
} conv3d_case;

static void check_conv3d(conv3d_case c, int bias, tal_precision mode) {
    int64_t To = tal_conv_out_len(c.T, (int)c.kt, c.g.stride[0], c.g.padding[0]);
    int64_t Ho = tal_conv_out_len(c.H, (int)c.kh, c.g.stride[1], c.g.padding[1]);
    int64_t Wo = tal_conv_out_len(c.W, (int)c.kw, c.g.stride[2], c.g.padding[2]);
    int64_t K = c.Ci * c.kt * c.kh * c.kw, P = To * Ho * Wo;
    tal_tensor x = rand_host(5, (int64_t[]){c.B, c.Ci, c.T, c.H, c.W}, 11);
    tal_tensor w = rand_host(5, (int64_t[]){c.Co, c.Ci, c.kt, c.kh, c.kw}, 12);
    tal_tensor b = bias ? rand_host(1, &c.Co, 13) : tal_tensor_none();
    tal_tensor dy = rand_host(5, (int64_t[]){c.B, c.Co, To, Ho, Wo}, 14);
    tal_tensor y = test_tensor_like(dy), dx = test_tensor_like(x);
    tal_tensor dw = rand_host(5, w.shape, 15), db = rand_host(1, &c.Co, 16);
    /* the scratch the CPU op's planner counts, on the device */
    tal_arena *plan = tal_arena_create_planner();
    tal_conv3d_forward(y, x, w, b, c.g, plan);
    tal_conv3d_backward(dx, dw, db, dy, x, w, c.g, plan);
    tal_arena *scratch = dev_scratch(tal_arena_high_water(plan));
    tal_arena *cpu_scratch = test_arena(tal_arena_high_water(plan));
    tal_arena_destroy(plan);
    tal_tensor gx = dev_copy(x), gw = dev_copy(w), gb = bias ? dev_copy(b) : b;
    tal_tensor gy = dev_like(y), gdx = dev_like(dx), gdw = dev_copy(dw), gdb = dev_copy(db);
    tal_precision_set(mode);
    tal_conv3d_forward(gy, gx, gw, gb, c.g, scratch);
    tal_conv3d_backward(gdx, gdw, gdb, dev_copy(dy), gx, gw, c.g, scratch);
    tal_precision_set(TAL_PREC_FP32);
    cr_assert_eq(tal_arena_used(scratch), 0, "the scratch is released");
    tal_conv3d_forward(y, x, w, b, c.g, cpu_scratch);
    tal_conv3d_backward(dx, dw, db, dy, x, w, c.g, cpu_scratch);
    expect_dev_close(gy, y, atol_for(mode, K), rtol_for(mode));
    expect_dev_close(gdx, dx, atol_for(mode, c.Co * c.kt * c.kh * c.kw), rtol_for(mode));
    expect_dev_close(gdw, dw, atol_for(mode, c.B * P), rtol_for(mode));
    expect_dev_close(gdb, db, FP32_ATOL(c.B * P), FP32_RTOL);
    tal_arena_destroy(scratch);
    tal_arena_destroy(cpu_scratch);
}

Test(cuda_conv, general_conv3d) {
    CUDA_ONLY();
    conv3d_case cases[] = {
        {2, 3, 5, 6, 7, 4, 3, 3, 3, {{1, 1, 1}, {1, 1, 1}}},
        {1, 2, 7, 5, 9, 3, 3, 1, 2, {{2, 1, 3}, {1, 0, 2}}},  /* per-axis geometry */
        {2, 5, 4, 4, 4, 6, 1, 1, 1, {{1, 1, 1}, {0, 0, 0}}},  /* 1x1x1: no scratch */
        {1, 3, 4, 9, 9, 2, 1, 3, 3, {{1, 2, 2}, {0, 1, 1}}},  /* stride 2 */
        {1, 1, 1, 1, 1, 1, 1, 1, 1, {{1, 1, 1}, {0, 0, 0}}},
        {1, 2, 8, 64, 64, 3, 3, 7, 7, {{1, 2, 2}, {1, 3, 3}}}, /* a stem: two column chunks */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_conv3d(cases[i], (int)i % 2, TAL_PREC_FP32);
    check_conv3d(cases[0], 1, TAL_PREC_BF16);
}

/* ---------------------------------------------------------------- conv1d ---------------- */
static void check_conv1d(int64_t B, int64_t Ci, int64_t T, int64_t Co, int64_t k,
                         tal_conv1d_geom g, int bias, int masked, tal_precision mode) {
    int64_t To = tal_conv_out_len(T, (int)k, g.stride, g.padding);
    tal_tensor x = rand_host(3, (int64_t[]){B, Ci, T}, 21);
    tal_tensor w = rand_host(3, (int64_t[]){Co, Ci / g.groups, k}, 22);
    tal_tensor b = bias ? rand_host(1, &Co, 23) : tal_tensor_none();
    tal_tensor mask = tal_tensor_none();
    if (masked) { /* sample b valid on its first To - 3 b positions */
        mask = test_tensor(2, (int64_t[]){B, To});
        for (int64_t bi = 0; bi < B; bi++)
            for (int64_t t = 0; t < To; t++) mask.data[bi * To + t] = t < To - 3 * bi ? 1.0f : 0.0f;
    }
    tal_tensor dy = rand_host(3, (int64_t[]){B, Co, To}, 24);
    tal_tensor y = test_tensor_like(dy), dx = test_tensor_like(x);
    tal_tensor dw = rand_host(3, w.shape, 25), db = rand_host(1, &Co, 26);
    tal_arena *plan = tal_arena_create_planner();
    tal_conv1d_forward(y, x, w, b, mask, g, plan);
    tal_conv1d_backward(dx, dw, db, dy, x, w, mask, g, plan);
    size_t need = tal_arena_high_water(plan) + 64;
    tal_arena_destroy(plan);
    tal_arena *scratch = dev_scratch(need), *cpu_scratch = test_arena(need);
    tal_tensor gx = dev_copy(x), gw = dev_copy(w), gb = bias ? dev_copy(b) : b;
    tal_tensor gm = masked ? dev_copy(mask) : mask;
    tal_tensor gy = dev_like(y), gdx = dev_like(dx), gdw = dev_copy(dw), gdb = dev_copy(db);
    tal_precision_set(mode);
    tal_conv1d_forward(gy, gx, gw, gb, gm, g, scratch);
    tal_conv1d_backward(gdx, gdw, gdb, dev_copy(dy), gx, gw, gm, g, scratch);
    tal_precision_set(TAL_PREC_FP32);
    cr_assert_eq(tal_arena_used(scratch), 0, "the scratch is released");
    tal_conv1d_forward(y, x, w, b, mask, g, cpu_scratch);
    tal_conv1d_backward(dx, dw, db, dy, x, w, mask, g, cpu_scratch);
    int64_t cig = Ci / g.groups, cog = Co / g.groups;
    expect_dev_close(gy, y, atol_for(mode, cig * k), rtol_for(mode));
    expect_dev_close(gdx, dx, atol_for(mode, cog * k), rtol_for(mode));
    expect_dev_close(gdw, dw, atol_for(mode, B * To), rtol_for(mode));
    expect_dev_close(gdb, db, FP32_ATOL(B * To), FP32_RTOL);
    tal_arena_destroy(scratch);
    tal_arena_destroy(cpu_scratch);
}

Test(cuda_conv, conv1d_dense_grouped_pointwise) {
    CUDA_ONLY();
    check_conv1d(2, 6, 37, 4, 3, (tal_conv1d_geom){1, 1, 1}, 1, 0, TAL_PREC_FP32);
    check_conv1d(2, 6, 37, 4, 3, (tal_conv1d_geom){2, 1, 1}, 1, 1, TAL_PREC_FP32);
    check_conv1d(1, 8, 50, 6, 5, (tal_conv1d_geom){1, 2, 2}, 0, 1, TAL_PREC_FP32);
    check_conv1d(3, 16, 65, 8, 1, (tal_conv1d_geom){1, 0, 1}, 1, 1, TAL_PREC_FP32); /* k = 1 */
    check_conv1d(1, 1, 1, 1, 1, (tal_conv1d_geom){1, 0, 1}, 1, 0, TAL_PREC_FP32);
    check_conv1d(2, 64, 300, 64, 3, (tal_conv1d_geom){1, 1, 1}, 1, 1, TAL_PREC_BF16);
}

Test(cuda_conv, conv1d_depthwise) {
    CUDA_ONLY();
    check_conv1d(2, 7, 40, 7, 3, (tal_conv1d_geom){1, 1, 7}, 1, 1, TAL_PREC_FP32);
    check_conv1d(1, 5, 33, 5, 5, (tal_conv1d_geom){2, 2, 5}, 0, 0, TAL_PREC_FP32);
    check_conv1d(3, 4, 9000, 4, 3, (tal_conv1d_geom){1, 1, 4}, 1, 1, TAL_PREC_FP32); /* chunks */
}
