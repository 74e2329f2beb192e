/* The CUDA products and norms against the CPU ops on the same random inputs: bmm and the raw
 * device gemm (every transpose, row strides wider than the matrix, alpha and beta, K = 0, a
 * batch of 1), linear and LayerNorm (last dim and [B, C, T]) forward and backward with odd
 * widths, one row, offset inputs, accumulating gradients and dx aliasing dy; the precision
 * modes (bf16 equals the CPU on bf16-rounded inputs, and stays within bf16's error of fp32);
 * and forward kernels that give the same bits run to run (the recompute needs it). Tolerances:
 * tests/cuda_check.h. Skipped without a GPU. */
#include "cuda_check.h"

#include "nn/cuda_ops.h"

static void cleanup(void) {
    tal_precision_set(TAL_PREC_FP32);
    cuda_test_cleanup();
}
TestSuite(cuda_dense, .fini = cleanup);

/* ---------------------------------------------------------------- products -------------- */
static const int64_t SHAPES[][3] = {{1, 1, 1},   {1, 37, 5},   {33, 1, 17},
                                    {65, 47, 129}, {3, 257, 2}, {40, 33, 300}};
#define N_SHAPES (int)(sizeof SHAPES / sizeof SHAPES[0])

/* one bmm case on both devices: c = alpha op(a) op(b) + beta c, batch nb (0: 2-D tensors) */
static void check_bmm(int64_t nb, int64_t M, int64_t N, int64_t K, int ta, int tb, float alpha,
                      float beta, uint64_t seed, tal_precision mode) {
    int nd = nb ? 3 : 2;
    int64_t as[3] = {nb, ta ? K : M, ta ? M : K}, bs[3] = {nb, tb ? N : K, tb ? K : N};
    int64_t cs[3] = {nb, M, N};
    tal_tensor a = rand_host(nd, nb ? as : as + 1, seed), b = rand_host(nd, nb ? bs : bs + 1,
                                                                        seed + 1);
    tal_tensor c = rand_host(nd, nb ? cs : cs + 1, seed + 2);
    tal_tensor da = dev_copy(a), db = dev_copy(b), dc = dev_copy(c);
    tal_precision_set(mode);
    tal_bmm(dc, da, db, ta, tb, alpha, beta);
    tal_precision_set(TAL_PREC_FP32);
    if (mode == TAL_PREC_BF16) { /* the same products on the CPU, of the rounded inputs */
        tal_tensor want = test_clone(c);
        tal_bmm(want, bf16_rounded(a), bf16_rounded(b), ta, tb, alpha, beta);
        expect_dev_close(dc, want, FP32_ATOL(K), FP32_RTOL);
    }
    tal_bmm(c, a, b, ta, tb, alpha, beta);
    double atol = mode == TAL_PREC_BF16   ? BF16_ATOL(K)
                  : mode == TAL_PREC_TF32 ? TF32_ATOL(K)
                                          : FP32_ATOL(K);
    expect_dev_close(dc, c, atol * fabs(alpha), mode == TAL_PREC_FP32 ? FP32_RTOL : 0);
}

Test(cuda_dense, bmm_every_transpose_and_shape) {
    CUDA_ONLY();
    for (int s = 0; s < N_SHAPES; s++)
        for (int t = 0; t < 4; t++) {
            const int64_t *d = SHAPES[s];
            check_bmm(0, d[0], d[1], d[2], t & 1, t >> 1, 1.0f, 0.0f, 10 * s + t, TAL_PREC_FP32);
            check_bmm(3, d[0], d[1], d[2], t & 1, t >> 1, 1.5f, -0.5f, 10 * s + t,
                      TAL_PREC_FP32);
            check_bmm(1, d[0], d[1], d[2], t & 1, t >> 1, 1.0f, 1.0f, 10 * s + t,
                      TAL_PREC_FP32);
        }
}

Test(cuda_dense, bmm_bf16_and_tf32_modes) {
    CUDA_ONLY();
    for (int s = 0; s < N_SHAPES; s++)
        for (int t = 0; t < 4; t++) {
            const int64_t *d = SHAPES[s];
            check_bmm(2, d[0], d[1], d[2], t & 1, t >> 1, 1.0f, 0.5f, 7 * s + t, TAL_PREC_BF16);
            check_bmm(0, d[0], d[1], d[2], t & 1, t >> 1, 1.0f, 0.0f, 7 * s + t, TAL_PREC_TF32);
        }
}

/* An empty sum (K = 0) scales C by beta; beta 0 clears it, NaN included. */
Test(cuda_dense, bmm_empty_sum_applies_beta) {
    CUDA_ONLY();
    tal_tensor a = test_tensor(3, (int64_t[]){2, 3, 0}), b = test_tensor(3, (int64_t[]){2, 0, 4});
    tal_tensor c = rand_host(3, (int64_t[]){2, 3, 4}, 5);
    c.data[0] = NAN;
    tal_tensor dc = dev_copy(c), da = dev_like(a), db = dev_like(b);
    tal_bmm(dc, da, db, 0, 0, 1.0f, 0.5f);
    tal_tensor want = test_clone(c);
    tal_bmm(want, a, b, 0, 0, 1.0f, 0.5f);
    expect_dev_bits(dc, want);
    tal_bmm(dc, da, db, 0, 0, 1.0f, 0.0f);
    tal_bmm(want, a, b, 0, 0, 1.0f, 0.0f);
    expect_dev_bits(dc, want);
}

#ifdef TAL_HAVE_CUDA
/* The device gemm on sub-matrices: row strides wider than the rows (lda, ldb, ldc). */
Test(cuda_dense, gemm_with_row_strides) {
    CUDA_ONLY();
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        int64_t M = 19, N = 23, K = 45, pad = 7;
        int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
        int64_t lda = ac + pad, ldb = bc + pad + 1, ldc = N + pad + 2;
        tal_tensor a = rand_host(2, (int64_t[]){ar, lda}, 1 + t);
        tal_tensor b = rand_host(2, (int64_t[]){br, ldb}, 2 + t);
        tal_tensor c = rand_host(2, (int64_t[]){M, ldc}, 3 + t);
        tal_tensor da = dev_copy(a), db = dev_copy(b), dc = dev_copy(c);
        gemm_cuda(ta, tb, M, N, K, 0.75f, da.data, lda, db.data, ldb, 0.25f, dc.data, ldc);
        tal_gemm(ta, tb, M, N, K, 0.75f, a.data, lda, b.data, ldb, 0.25f, c.data, ldc);
        expect_dev_close(dc, c, FP32_ATOL(K), FP32_RTOL); /* the padding too: left untouched */
    }
}
#endif

/* ---------------------------------------------------------------- linear ---------------- */
static void check_linear(int64_t rows, int64_t cin, int64_t cout, int bias, tal_precision mode,
                         uint64_t seed) {
    tal_tensor x = rand_host(2, (int64_t[]){rows, cin}, seed);
    tal_tensor w = rand_host(2, (int64_t[]){cout, cin}, seed + 1);
    tal_tensor b = bias ? rand_host(1, (int64_t[]){cout}, seed + 2) : tal_tensor_none();
    tal_tensor dy = rand_host(2, (int64_t[]){rows, cout}, seed + 3);
    tal_tensor y = test_tensor(2, (int64_t[]){rows, cout}), dx = test_tensor_like(x);
    tal_tensor dw = rand_host(2, w.shape, seed + 4); /* accumulated into */
    tal_tensor db = rand_host(1, (int64_t[]){cout}, seed + 5);
    tal_tensor gx = dev_copy(x), gw = dev_copy(w), gb = bias ? dev_copy(b) : tal_tensor_none();
    tal_tensor gdy = dev_copy(dy), gy = dev_like(y), gdx = dev_like(dx), gdw = dev_copy(dw);
    tal_tensor gdb = dev_copy(db);
    tal_precision_set(mode);
    tal_linear_forward(gy, gx, gw, gb);
    tal_linear_backward(gdx, gdw, gdb, gdy, gx, gw);
    tal_precision_set(TAL_PREC_FP32);
    tal_linear_forward(y, x, w, b);
    tal_linear_backward(dx, dw, db, dy, x, w);
    int bf = mode == TAL_PREC_BF16;
    expect_dev_close(gy, y, bf ? BF16_ATOL(cin) : FP32_ATOL(cin), bf ? 0 : FP32_RTOL);
    expect_dev_close(gdx, dx, bf ? BF16_ATOL(cout) : FP32_ATOL(cout), bf ? 0 : FP32_RTOL);
    expect_dev_close(gdw, dw, bf ? BF16_ATOL(rows) : FP32_ATOL(rows), bf ? 0 : FP32_RTOL);
    expect_dev_close(gdb, db, FP32_ATOL(rows), FP32_RTOL); /* a plain sum in both modes */
}

Test(cuda_dense, linear_forward_backward) {
    CUDA_ONLY();
    check_linear(1, 1, 1, 1, TAL_PREC_FP32, 1);
    check_linear(1, 37, 29, 1, TAL_PREC_FP32, 2);
    check_linear(300, 130, 70, 1, TAL_PREC_FP32, 3);
    check_linear(33, 96, 384, 0, TAL_PREC_FP32, 4);
    check_linear(17000, 2, 3, 1, TAL_PREC_FP32, 5); /* db over several reduction chunks */
    check_linear(300, 130, 70, 1, TAL_PREC_BF16, 6);
}

/* x [..., Cin] with leading dims: rows are their product */
Test(cuda_dense, linear_on_leading_dims_and_no_outputs_wanted) {
    CUDA_ONLY();
    tal_tensor x = rand_host(3, (int64_t[]){2, 3, 37}, 1), w = rand_host(2, (int64_t[]){5, 37}, 2);
    tal_tensor dy = rand_host(3, (int64_t[]){2, 3, 5}, 3);
    tal_tensor y = test_tensor(3, (int64_t[]){2, 3, 5}), dw = test_tensor_like(w);
    tal_tensor gx = dev_copy(x), gw = dev_copy(w), gy = dev_like(y), gdw = dev_like(dw);
    tal_linear_forward(gy, gx, gw, tal_tensor_none());
    tal_linear_forward(y, x, w, tal_tensor_none());
    expect_dev_close(gy, y, FP32_ATOL(37), FP32_RTOL);
    tal_linear_backward(tal_tensor_none(), gdw, tal_tensor_none(), dev_copy(dy), gx, gw);
    tal_linear_backward(tal_tensor_none(), dw, tal_tensor_none(), dy, x, w);
    expect_dev_close(gdw, dw, FP32_ATOL(6), FP32_RTOL);
}

/* ---------------------------------------------------------------- LayerNorm ------------- */
static void check_layernorm(int64_t rows, int64_t C, float offset, int affine, int alias,
                            uint64_t seed) {
    tal_tensor x = rand_range(2, (int64_t[]){rows, C}, seed, offset - 1, offset + 1);
    tal_tensor g = affine ? rand_range(1, &C, seed + 1, 0.5f, 1.5f) : tal_tensor_none();
    tal_tensor b = affine ? rand_host(1, &C, seed + 2) : tal_tensor_none();
    tal_tensor dy = rand_host(2, x.shape, seed + 3);
    tal_tensor y = test_tensor_like(x), mean = test_tensor(1, &rows), rstd = test_tensor(1, &rows);
    tal_tensor dg = rand_host(1, &C, seed + 4), dbt = rand_host(1, &C, seed + 5);
    tal_tensor gx = dev_copy(x), gg = affine ? dev_copy(g) : g, gb = affine ? dev_copy(b) : b;
    tal_tensor gy = dev_like(y), gm = dev_like(mean), gr = dev_like(rstd), gdy = dev_copy(dy);
    tal_tensor gdg = affine ? dev_copy(dg) : tal_tensor_none();
    tal_tensor gdb = affine ? dev_copy(dbt) : tal_tensor_none();
    tal_layernorm_forward(gy, gm, gr, gx, gg, gb, 1e-5f);
    tal_layernorm_forward(y, mean, rstd, x, g, b, 1e-5f);
    expect_dev_close(gy, y, 1e-5, 1e-5); /* normalised O(1) values, double statistics */
    expect_dev_close(gm, mean, 0, 1e-6);
    expect_dev_close(gr, rstd, 0, 1e-6);
    tal_tensor dx = alias ? dy : test_tensor_like(x), gdx = alias ? gdy : dev_like(x);
    tal_layernorm_backward(gdx, gdg, gdb, gdy, gx, gg, gm, gr);
    tal_layernorm_backward(dx, affine ? dg : tal_tensor_none(), affine ? dbt : tal_tensor_none(),
                           dy, x, g, mean, rstd);
    expect_dev_close(gdx, dx, FP32_ATOL(C), FP32_RTOL);
    if (affine) {
        expect_dev_close(gdg, dg, FP32_ATOL(rows), FP32_RTOL);
        expect_dev_close(gdb, dbt, FP32_ATOL(rows), FP32_RTOL);
    }
}

Test(cuda_dense, layernorm_last_dim) {
    CUDA_ONLY();
    check_layernorm(1, 1, 0, 1, 0, 1);
    check_layernorm(7, 31, 0, 1, 0, 2);
    check_layernorm(1030, 96, 5.0f, 1, 0, 3); /* offset rows: the mean's rounding matters */
    check_layernorm(3, 1000, 0, 0, 0, 4);
    check_layernorm(9000, 3, 0, 1, 1, 5); /* dgamma over several chunks; dx aliases dy */
}

static void check_layernorm_ct(int64_t B, int64_t C, int64_t T, int affine, uint64_t seed) {
    tal_tensor x = rand_range(3, (int64_t[]){B, C, T}, seed, 1.0f, 3.0f);
    tal_tensor g = affine ? rand_range(1, &C, seed + 1, 0.5f, 1.5f) : tal_tensor_none();
    tal_tensor b = affine ? rand_host(1, &C, seed + 2) : tal_tensor_none();
    tal_tensor dy = rand_host(3, x.shape, seed + 3);
    int64_t BT = B * T;
    tal_tensor y = test_tensor_like(x), mean = test_tensor(1, &BT), rstd = test_tensor(1, &BT);
    tal_tensor dx = test_tensor_like(x), dg = rand_host(1, &C, 8), dbt = rand_host(1, &C, 9);
    tal_tensor gx = dev_copy(x), gg = affine ? dev_copy(g) : g, gb = affine ? dev_copy(b) : b;
    tal_tensor gy = dev_like(y), gm = dev_like(mean), gr = dev_like(rstd), gdx = dev_like(dx);
    tal_tensor gdg = affine ? dev_copy(dg) : tal_tensor_none();
    tal_tensor gdb = affine ? dev_copy(dbt) : tal_tensor_none();
    tal_layernorm_ct_forward(gy, gm, gr, gx, gg, gb, 1e-6f);
    tal_layernorm_ct_forward(y, mean, rstd, x, g, b, 1e-6f);
    expect_dev_close(gy, y, 1e-5, 1e-5);
    expect_dev_close(gm, mean, 0, 1e-6);
    expect_dev_close(gr, rstd, 0, 1e-6);
    tal_layernorm_ct_backward(gdx, gdg, gdb, dev_copy(dy), gx, gg, gm, gr);
    tal_layernorm_ct_backward(dx, affine ? dg : tal_tensor_none(),
                              affine ? dbt : tal_tensor_none(), dy, x, g, mean, rstd);
    expect_dev_close(gdx, dx, FP32_ATOL(C), FP32_RTOL);
    if (affine) {
        expect_dev_close(gdg, dg, FP32_ATOL(BT), FP32_RTOL);
        expect_dev_close(gdb, dbt, FP32_ATOL(BT), FP32_RTOL);
    }
}

Test(cuda_dense, layernorm_over_channels) {
    CUDA_ONLY();
    check_layernorm_ct(1, 1, 1, 1, 1);
    check_layernorm_ct(2, 33, 65, 1, 2);
    check_layernorm_ct(3, 512, 7, 0, 3);
    check_layernorm_ct(1, 4, 9000, 1, 4);
}

/* ---------------------------------------------------------------- determinism ----------- */
/* The reversible backward recomputes each block's forward and subtracts: the device must give
 * the same bits every time it runs the same forward. */
Test(cuda_dense, forwards_repeat_bit_for_bit) {
    CUDA_ONLY();
    tal_tensor x = rand_host(2, (int64_t[]){513, 96}, 1), w = rand_host(2, (int64_t[]){384, 96}, 2);
    tal_tensor b = rand_host(1, (int64_t[]){384}, 3), g = rand_host(1, (int64_t[]){96}, 4);
    tal_tensor gx = dev_copy(x), gw = dev_copy(w), gb = dev_copy(b), gg = dev_copy(g);
    for (int mode = TAL_PREC_FP32; mode <= TAL_PREC_BF16; mode++) {
        tal_precision_set((tal_precision)mode);
        tal_tensor y1 = dev_tensor(2, (int64_t[]){513, 384}), y2 = dev_like(y1);
        tal_linear_forward(y1, gx, gw, gb);
        tal_linear_forward(y2, gx, gw, gb);
        expect_dev_bits(y2, host_copy(y1));
        tal_tensor n1 = dev_like(gx), n2 = dev_like(gx);
        tal_layernorm_forward(n1, tal_tensor_none(), tal_tensor_none(), gx, gg, tal_tensor_none(),
                              1e-5f);
        tal_layernorm_forward(n2, tal_tensor_none(), tal_tensor_none(), gx, gg, tal_tensor_none(),
                              1e-5f);
        expect_dev_bits(n2, host_copy(n1));
    }
}
