/* Dense ops (linear, batched matmul, LayerNorm on [N, C] and [B, C, T], GELU, ReLU, softmax)
 * against PyTorch float64 references (tests/fixtures_nn.py) and finite differences; dropout and
 * drop-path masks; 1 vs 2 threads.
 * Tolerances: forward atol 1e-6 + rtol 1e-5 (float32 sums of <= 30 O(1) terms: ~1e-7 error);
 * backward atol 1e-5 + rtol 1e-4 (gradients sum over more terms, some of them cancelling, so
 * near-zero entries need an absolute floor ~100 float ulps of the O(1) terms). */
#include "nn_check.h"

#include <math.h>

#define FWD_ATOL 1e-6
#define FWD_RTOL 1e-5
#define BWD_ATOL 1e-5
#define BWD_RTOL 1e-4

static void cleanup(void) { test_free_all(); }
TestSuite(nn_ops, .fini = cleanup);

/* ------------------------------------------------------------------ linear */
typedef struct lin_ctx {
    tal_tensor y, x, w, b, dy;
} lin_ctx;

static double lin_loss(void *c) {
    lin_ctx *l = c;
    tal_linear_forward(l->y, l->x, l->w, l->b);
    return test_dot(l->y, l->dy);
}

static void check_linear(const char *name, int with_bias) {
    fixture fx;
    fixture_load(&fx, name);
    lin_ctx l = {test_tensor_like(fixture_get(&fx, "y")), fx_clone(&fx, "x"), fx_clone(&fx, "w"),
                 with_bias ? fx_clone(&fx, "b") : tal_tensor_none(), fixture_get(&fx, "dy")};
    tal_linear_forward(l.y, l.x, l.w, l.b);
    expect_close(l.y, fixture_get(&fx, "y"), FWD_ATOL, FWD_RTOL);
    tal_tensor dx = test_tensor_like(l.x), dw = test_tensor_like(l.w);
    tal_tensor db = with_bias ? test_tensor_like(l.b) : tal_tensor_none();
    tal_fill(dw, 0.5f); /* dw, db accumulate: start from a known value */
    if (with_bias) tal_fill(db, 0.5f);
    tal_linear_backward(dx, dw, db, l.dy, l.x, l.w);
    tal_tensor want_dw = test_clone(fixture_get(&fx, "dw"));
    for (int64_t i = 0; i < tal_tensor_numel(want_dw); i++) want_dw.data[i] += 0.5f;
    expect_close(dx, fixture_get(&fx, "dx"), BWD_ATOL, BWD_RTOL);
    expect_close(dw, want_dw, BWD_ATOL, BWD_RTOL);
    if (with_bias) {
        tal_tensor want_db = test_clone(fixture_get(&fx, "db"));
        for (int64_t i = 0; i < tal_tensor_numel(want_db); i++) want_db.data[i] += 0.5f;
        expect_close(db, want_db, BWD_ATOL, BWD_RTOL);
    }
    tal_fill(dw, 0.0f);
    if (with_bias) tal_fill(db, 0.0f);
    tal_linear_backward(dx, dw, db, l.dy, l.x, l.w);
    fd_check(dx, l.x, lin_loss, &l);
    fd_check(dw, l.w, lin_loss, &l);
    if (with_bias) fd_check(db, l.b, lin_loss, &l);
    fixture_free(&fx);
}

Test(nn_ops, linear_3d_input_with_bias) { check_linear("nn_linear", 1); }
Test(nn_ops, linear_without_bias) { check_linear("nn_linear_nobias", 0); }

Test(nn_ops, linear_backward_skips_absent_outputs) {
    fixture fx;
    fixture_load(&fx, "nn_linear");
    tal_tensor dw = test_tensor_like(fixture_get(&fx, "w"));
    tal_linear_backward(tal_tensor_none(), dw, tal_tensor_none(), fixture_get(&fx, "dy"),
                        fixture_get(&fx, "x"), fixture_get(&fx, "w"));
    expect_close(dw, fixture_get(&fx, "dw"), BWD_ATOL, BWD_RTOL);
    fixture_free(&fx);
}

/* ------------------------------------------------------------------ batched matmul */
static tal_tensor transposed(tal_tensor a) { /* [Bt, r, c] -> [Bt, c, r] */
    int64_t nb = a.shape[0], r = a.shape[1], c = a.shape[2];
    tal_tensor t = test_tensor(3, (int64_t[]){nb, c, r});
    for (int64_t b = 0; b < nb; b++)
        for (int64_t i = 0; i < r; i++)
            for (int64_t j = 0; j < c; j++) t.data[(b * c + j) * r + i] = a.data[(b * r + i) * c + j];
    return t;
}

Test(nn_ops, bmm_all_transposes_and_gradients) {
    fixture fx;
    fixture_load(&fx, "nn_bmm");
    tal_tensor a = fixture_get(&fx, "a"), b = fixture_get(&fx, "b"), y = fixture_get(&fx, "y");
    tal_tensor dy = fixture_get(&fx, "dy"), at = transposed(a), bt = transposed(b);
    tal_tensor c = test_tensor_like(y);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            tal_fill(c, 7.0f); /* beta = 0 must overwrite */
            tal_bmm(c, ta ? at : a, tb ? bt : b, ta, tb, 1.0f, 0.0f);
            expect_close(c, y, FWD_ATOL, FWD_RTOL);
        }
    tal_copy(c, y); /* alpha, beta: c = 2 a b - c = a b */
    tal_bmm(c, a, b, 0, 0, 2.0f, -1.0f);
    expect_close(c, y, FWD_ATOL, FWD_RTOL);
    tal_tensor da = test_tensor_like(a), db = test_tensor_like(b);
    tal_bmm(da, dy, b, 0, 1, 1.0f, 0.0f); /* dA = dY B^T, dB = A^T dY */
    tal_bmm(db, a, dy, 1, 0, 1.0f, 0.0f);
    expect_close(da, fixture_get(&fx, "da"), BWD_ATOL, BWD_RTOL);
    expect_close(db, fixture_get(&fx, "db"), BWD_ATOL, BWD_RTOL);
    /* 2-D operands are one batch */
    tal_tensor c2 = tal_t2(c.data, 4, 6);
    tal_bmm(c2, tal_t2(a.data, 4, 5), tal_t2(b.data, 5, 6), 0, 0, 1.0f, 0.0f);
    expect_close(c2, tal_t2(y.data, 4, 6), FWD_ATOL, FWD_RTOL);
    fixture_free(&fx);
}

/* ------------------------------------------------------------------ LayerNorm */
typedef struct ln_ctx {
    tal_tensor y, mean, rstd, x, gamma, beta, dy;
    int ct;
    float eps;
} ln_ctx;

static void ln_forward(ln_ctx *l) {
    if (l->ct)
        tal_layernorm_ct_forward(l->y, l->mean, l->rstd, l->x, l->gamma, l->beta, l->eps);
    else
        tal_layernorm_forward(l->y, l->mean, l->rstd, l->x, l->gamma, l->beta, l->eps);
}

static double ln_loss(void *c) {
    ln_ctx *l = c;
    ln_forward(l);
    return test_dot(l->y, l->dy);
}

static void check_layernorm(const char *name, int ct, float eps) {
    fixture fx;
    fixture_load(&fx, name);
    tal_tensor mean_want = fixture_get(&fx, "mean");
    ln_ctx l = {test_tensor_like(fixture_get(&fx, "y")), test_tensor_like(mean_want),
                test_tensor_like(mean_want), fx_clone(&fx, "x"), fx_clone(&fx, "gamma"),
                fx_clone(&fx, "beta"), fixture_get(&fx, "dy"), ct, eps};
    if (!ct) { /* [N] statistics for [2, 3, 8] */
        l.mean = tal_t1(l.mean.data, 6);
        l.rstd = tal_t1(l.rstd.data, 6);
    }
    ln_forward(&l);
    expect_close(l.y, fixture_get(&fx, "y"), FWD_ATOL, FWD_RTOL);
    expect_close(l.mean, mean_want, FWD_ATOL, FWD_RTOL);
    expect_close(l.rstd, fixture_get(&fx, "rstd"), FWD_ATOL, FWD_RTOL);
    tal_tensor dx = test_tensor_like(l.x), dg = test_tensor_like(l.gamma);
    tal_tensor dbeta = test_tensor_like(l.beta);
    if (ct)
        tal_layernorm_ct_backward(dx, dg, dbeta, l.dy, l.x, l.gamma, l.mean, l.rstd);
    else
        tal_layernorm_backward(dx, dg, dbeta, l.dy, l.x, l.gamma, l.mean, l.rstd);
    expect_close(dx, fixture_get(&fx, "dx"), BWD_ATOL, BWD_RTOL);
    expect_close(dg, fixture_get(&fx, "dgamma"), BWD_ATOL, BWD_RTOL);
    expect_close(dbeta, fixture_get(&fx, "dbeta"), BWD_ATOL, BWD_RTOL);
    fd_check(dx, l.x, ln_loss, &l);
    fd_check(dg, l.gamma, ln_loss, &l);
    fd_check(dbeta, l.beta, ln_loss, &l);
    fixture_free(&fx);
}

Test(nn_ops, layernorm_last_dim) { check_layernorm("nn_layernorm", 0, 1e-5f); }
Test(nn_ops, layernorm_over_channels) { check_layernorm("nn_layernorm_ct", 1, 1e-6f); }

Test(nn_ops, layernorm_backward_accumulates_and_skips_frozen_affine) {
    for (int ct = 0; ct < 2; ct++) {
        fixture fx;
        fixture_load(&fx, ct ? "nn_layernorm_ct" : "nn_layernorm");
        tal_tensor x = fixture_get(&fx, "x"), g = fixture_get(&fx, "gamma");
        tal_tensor mean = fixture_get(&fx, "mean"), rstd = fixture_get(&fx, "rstd");
        tal_tensor dy = fixture_get(&fx, "dy"), dx = test_tensor_like(x);
        tal_tensor dg = test_tensor_like(g), db = test_tensor_like(g);
        tal_fill(dg, 2.0f);
        tal_fill(db, -1.0f);
        if (ct)
            tal_layernorm_ct_backward(dx, dg, db, dy, x, g, mean, rstd);
        else
            tal_layernorm_backward(dx, dg, db, dy, x, g, mean, rstd);
        tal_tensor want_g = test_clone(fixture_get(&fx, "dgamma"));
        tal_tensor want_b = test_clone(fixture_get(&fx, "dbeta"));
        for (int64_t i = 0; i < tal_tensor_numel(g); i++) want_g.data[i] += 2, want_b.data[i] -= 1;
        expect_close(dg, want_g, BWD_ATOL, BWD_RTOL);
        expect_close(db, want_b, BWD_ATOL, BWD_RTOL);
        tal_fill(dx, 5.0f); /* frozen norm: no dgamma, dbeta; dx still written */
        if (ct)
            tal_layernorm_ct_backward(dx, tal_tensor_none(), tal_tensor_none(), dy, x, g, mean, rstd);
        else
            tal_layernorm_backward(dx, tal_tensor_none(), tal_tensor_none(), dy, x, g, mean, rstd);
        expect_close(dx, fixture_get(&fx, "dx"), BWD_ATOL, BWD_RTOL);
        fixture_free(&fx);
    }
}

Test(nn_ops, layernorm_without_affine_or_saved_stats) {
    fixture fx;
    fixture_load(&fx, "nn_layernorm");
    tal_tensor x = fixture_get(&fx, "x"), y = test_tensor_like(x), y2 = test_tensor_like(x);
    tal_tensor ones = test_tensor_like(fixture_get(&fx, "gamma")), zeros = test_tensor_like(ones);
    tal_fill(ones, 1.0f);
    tal_layernorm_forward(y, tal_tensor_none(), tal_tensor_none(), x, tal_tensor_none(),
                          tal_tensor_none(), 1e-5f);
    tal_layernorm_forward(y2, tal_tensor_none(), tal_tensor_none(), x, ones, zeros, 1e-5f);
    expect_close(y, y2, 0, 0);
    fixture_free(&fx);
}

/* ------------------------------------------------------------------ activations, softmax */
typedef struct act_ctx {
    tal_tensor y, x, dy;
    void (*fwd)(tal_tensor, tal_tensor);
} act_ctx;

static double act_loss(void *c) {
    act_ctx *a = c;
    a->fwd(a->y, a->x);
    return test_dot(a->y, a->dy);
}

/* which: 0 GELU, 1 ReLU (backward reads y), 2 softmax (backward reads y) */
static void check_activation(const char *name, int which) {
    static void (*const fwd[3])(tal_tensor, tal_tensor) = {tal_gelu_forward, tal_relu_forward,
                                                           tal_softmax_forward};
    fixture fx;
    fixture_load(&fx, name);
    act_ctx a = {test_tensor_like(fixture_get(&fx, "x")), fx_clone(&fx, "x"),
                 fixture_get(&fx, "dy"), fwd[which]};
    a.fwd(a.y, a.x);
    expect_close(a.y, fixture_get(&fx, "y"), FWD_ATOL, FWD_RTOL);
    tal_tensor dx = test_tensor_like(a.x);
    if (which == 0) tal_gelu_backward(dx, a.dy, a.x);
    if (which == 1) tal_relu_backward(dx, a.dy, a.y);
    if (which == 2) tal_softmax_backward(dx, a.dy, a.y);
    expect_close(dx, fixture_get(&fx, "dx"), BWD_ATOL, BWD_RTOL);
    fd_check(dx, a.x, act_loss, &a);
    /* in place: y may alias x */
    tal_tensor inplace = fx_clone(&fx, "x");
    a.fwd(inplace, inplace);
    expect_close(inplace, fixture_get(&fx, "y"), FWD_ATOL, FWD_RTOL);
    fixture_free(&fx);
}

Test(nn_ops, gelu_exact_erf) { check_activation("nn_gelu", 0); }
Test(nn_ops, relu) { check_activation("nn_relu", 1); }
Test(nn_ops, softmax_last_dim) { check_activation("nn_softmax", 2); }

Test(nn_ops, softmax_is_stable_for_large_logits) {
    float x[4] = {1000.0f, 1001.0f, -1000.0f, 999.0f}, y[4];
    tal_softmax_forward(tal_t2(y, 1, 4), tal_t2(x, 1, 4));
    double s = 1 + exp(-1.0) + exp(-2.0); /* relative to the max, 1001 */
    cr_assert_float_eq(y[1], 1 / s, 1e-6, "got %g", y[1]);
    cr_assert_eq(y[2], 0.0f);
    cr_assert(isfinite(y[0]) && isfinite(y[3]));
}

Test(nn_ops, softmax_minus_inf_entries_and_rows) {
    float x[8] = {0.5f, -INFINITY, 0.5f, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    float y[8], dy[8] = {1, 2, 3, 4, 5, 6, 7, 8}, dx[8];
    tal_softmax_forward(tal_t2(y, 2, 4), tal_t2(x, 2, 4));
    cr_assert(y[0] == 0.5f && y[1] == 0.0f && y[2] == 0.5f && y[3] == 0.0f, "%g %g %g %g", y[0],
              y[1], y[2], y[3]);
    for (int j = 4; j < 8; j++) cr_assert_eq(y[j], 0.0f, "an all -inf row gives zeros, not NaN");
    tal_softmax_backward(tal_t2(dx, 2, 4), tal_t2(dy, 2, 4), tal_t2(y, 2, 4));
    /* dx = y (dy - sum(dy y)) = 0.5 * (1 - 2), 0, 0.5 * (3 - 2), 0; second row 0 */
    const float want[8] = {-0.5f, 0, 0.5f, 0, 0, 0, 0, 0};
    for (int j = 0; j < 8; j++) cr_assert_float_eq(dx[j], want[j], 1e-7, "dx[%d] = %g", j, dx[j]);
}

Test(nn_ops, gelu_far_tails) {
    float x[4] = {-12.0f, -6.0f, 6.0f, 12.0f}, y[4], dy[4] = {1, 1, 1, 1}, dx[4];
    tal_gelu_forward(tal_t1(y, 4), tal_t1(x, 4));
    tal_gelu_backward(tal_t1(dx, 4), tal_t1(dy, 4), tal_t1(x, 4));
    /* x Phi(x): Phi(-6) ~ 1e-9, so y(-6) ~ -6e-9; y(6) = 6 to float precision */
    cr_assert(y[0] == 0.0f || fabsf(y[0]) < 1e-30f, "y(-12) = %g", y[0]);
    cr_assert(fabsf(y[1]) < 1e-7f && y[2] == 6.0f && y[3] == 12.0f, "%g %g %g", y[1], y[2], y[3]);
    cr_assert(fabsf(dx[0]) < 1e-20f && fabsf(dx[1]) < 1e-6f && fabsf(dx[2] - 1) < 1e-6f &&
              dx[3] == 1.0f, "%g %g %g %g", dx[0], dx[1], dx[2], dx[3]);
    for (int j = 0; j < 4; j++) cr_assert(isfinite(y[j]) && isfinite(dx[j]));
}

/* ------------------------------------------------------------------ elementwise */
Test(nn_ops, elementwise) {
    float a[3] = {1, 2, 3}, b[3] = {4, -5, 6}, y[3];
    tal_tensor ta = tal_t1(a, 3), tb = tal_t1(b, 3), ty = tal_t1(y, 3);
    tal_add(ty, ta, tb);
    cr_assert(y[0] == 5 && y[1] == -3 && y[2] == 9);
    tal_sub(ty, ta, tb);
    cr_assert(y[0] == -3 && y[1] == 7 && y[2] == -3);
    tal_mul(ty, ta, tb);
    cr_assert(y[0] == 4 && y[1] == -10 && y[2] == 18);
    tal_scale(ty, ta, -2);
    cr_assert(y[0] == -2 && y[1] == -4 && y[2] == -6);
    tal_axpy(ty, 0.5f, tb);
    cr_assert(y[0] == 0 && y[1] == -6.5f && y[2] == -3);
    tal_fill(ty, 1.5f);
    cr_assert(y[0] == 1.5f && y[2] == 1.5f);
    tal_copy(ty, ta);
    cr_assert(y[0] == 1 && y[1] == 2 && y[2] == 3);
}

/* ------------------------------------------------------------------ dropout, drop-path */
Test(nn_ops, dropout_same_key_same_mask_and_right_keep_fraction) {
    int64_t n = 200000;
    tal_tensor x = test_tensor(1, &n), y1 = test_tensor(1, &n), y2 = test_tensor(1, &n);
    tal_tensor dx = test_tensor(1, &n);
    tal_fill(x, 1.0f);
    const float p = 0.3f;
    tal_rng_key key = {11, 5, 2}, other = {11, 6, 2};
    tal_dropout_forward(y1, x, p, key);
    tal_dropout_forward(y2, x, p, key);
    expect_close(y1, y2, 0, 0);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert(y1.data[i] == 0.0f || fabsf(y1.data[i] - 1.0f / 0.7f) < 1e-6f, "value %g",
                  y1.data[i]);
        kept += y1.data[i] != 0.0f;
    }
    /* binomial: sd of the kept fraction = sqrt(0.3 * 0.7 / n) ~ 1e-3; 5 sd */
    double frac = (double)kept / (double)n;
    cr_assert(fabs(frac - 0.7) < 5.2e-3, "kept fraction %g, expected 0.7", frac);
    /* backward redraws the mask: dx = dy * keep / (1 - p) at the same places */
    tal_dropout_backward(dx, x, p, key);
    expect_close(dx, y1, 0, 0);
    /* another step gives another mask */
    tal_dropout_forward(y2, x, p, other);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) differ += (y1.data[i] == 0) != (y2.data[i] == 0);
    cr_assert(differ > n / 4, "a new key must draw a new mask (%lld differ)", (long long)differ);
    /* the mask depends on the key and the index only, not on the thread count */
    tal_threads_set(2);
    tal_dropout_forward(y2, x, p, key);
    tal_threads_set(1);
    expect_close(y2, y1, 0, 0);
    /* p = 0 is the identity */
    test_fill_uniform(x, 3);
    tal_dropout_forward(y1, x, 0.0f, key);
    expect_close(y1, x, 0, 0);
}

Test(nn_ops, drop_path_drops_whole_samples) {
    int64_t B = 4000, C = 6;
    tal_tensor x = test_tensor(2, (int64_t[]){B, C}), y = test_tensor_like(x);
    tal_tensor y2 = test_tensor_like(x), dx = test_tensor_like(x);
    test_fill_uniform(x, 9);
    const float p = 0.2f;
    tal_rng_key key = {4, 1, 7};
    tal_drop_path_forward(y, x, p, key);
    tal_drop_path_forward(y2, x, p, key);
    expect_close(y, y2, 0, 0);
    int64_t kept = 0;
    for (int64_t b = 0; b < B; b++) {
        int keep = y.data[b * C] != 0.0f;
        kept += keep;
        for (int64_t c = 0; c < C; c++) {
            float want = keep ? x.data[b * C + c] / 0.8f : 0.0f;
            cr_assert(fabsf(y.data[b * C + c] - want) < 1e-6f, "sample %lld is not all kept or all "
                      "dropped", (long long)b);
        }
    }
    /* sd = sqrt(0.2 * 0.8 / 4000) ~ 6.3e-3; 5 sd */
    double frac = (double)kept / (double)B;
    cr_assert(fabs(frac - 0.8) < 0.032, "kept fraction %g, expected 0.8", frac);
    tal_drop_path_backward(dx, x, p, key);
    expect_close(dx, y, 0, 0);
    tal_drop_path_forward(y, x, 0.0f, key);
    expect_close(y, x, 0, 0);
}

/* ------------------------------------------------------------------ threads */
Test(nn_ops, one_and_two_threads_agree) {
    int64_t rows = 640, cin = 96, cout = 72;
    tal_tensor x = test_tensor(2, (int64_t[]){rows, cin}), w = test_tensor(2, (int64_t[]){cout, cin});
    tal_tensor b = test_tensor(1, &cout), dy = test_tensor(2, (int64_t[]){rows, cout});
    test_fill_uniform(x, 1);
    test_fill_uniform(w, 2);
    test_fill_uniform(b, 3);
    test_fill_uniform(dy, 4);
    tal_tensor y[2], dx[2], dw[2], db[2], ln[2], sm[2], mean[2], rstd[2], bm[2];
    tal_tensor ba = test_tensor(3, (int64_t[]){5, 40, 96}), bb = test_tensor(3, (int64_t[]){5, 96, 70});
    test_fill_uniform(ba, 5);
    test_fill_uniform(bb, 6);
    for (int t = 0; t < 2; t++) {
        cr_assert_eq(tal_threads_set(t + 1), t + 1);
        y[t] = test_tensor_like(dy), dx[t] = test_tensor_like(x), dw[t] = test_tensor_like(w);
        db[t] = test_tensor_like(b), ln[t] = test_tensor_like(x), sm[t] = test_tensor_like(x);
        mean[t] = test_tensor(1, &rows), rstd[t] = test_tensor(1, &rows);
        tal_linear_forward(y[t], x, w, b);
        tal_linear_backward(dx[t], dw[t], db[t], dy, x, w);
        tal_layernorm_forward(ln[t], mean[t], rstd[t], x, tal_tensor_none(), tal_tensor_none(),
                              1e-5f);
        tal_softmax_forward(sm[t], x);
        bm[t] = test_tensor(3, (int64_t[]){5, 40, 70});
        tal_bmm(bm[t], ba, bb, 0, 0, 1.0f, 0.0f); /* 5 batches >= 2 threads: spread */
    }
    /* the row split changes nothing per element; dW sums over rows in another blocking */
    expect_close(y[1], y[0], 1e-6, 1e-5);
    expect_close(dx[1], dx[0], 1e-6, 1e-5);
    expect_close(dw[1], dw[0], 1e-5, 1e-5);
    expect_close(db[1], db[0], 1e-6, 1e-6);
    expect_close(ln[1], ln[0], 0, 0);
    expect_close(sm[1], sm[0], 0, 0);
    expect_close(bm[1], bm[0], 1e-6, 1e-5);
    tal_threads_set(1);
}
