/* LayerNorm over the last dim and over the channels of [B, C, T]: against PyTorch float64
 * references (tests/fixtures_nn_dense.py), finite differences, and a double-precision reference
 * for the shapes the fixtures do not reach (C > 1024, many rows); threads must agree.
 * Tolerances: forward atol 1e-6 + rtol 1e-5 (outputs O(1) after normalisation; float rounding
 * of (x - mean) * rstd * gamma ~ 3 ulps; rows offset to mean 40: atol 1e-5, see there);
 * gradients atol 1e-5 + rtol 1e-4 (dx sums C terms that cancel by construction, scaled by rstd,
 * up to ~7 in the offset case: ~100 float ulps of the O(1) terms). Finite differences atol
 * 5e-4 + rtol 5e-3 (see fd_expect). */
#include <math.h>
#include <signal.h>

#include "testlib.h"

#define FWD_ATOL 1e-6
#define OFFSET_FWD_ATOL 1e-5
#define FWD_RTOL 1e-5
#define BWD_ATOL 1e-5
#define BWD_RTOL 1e-4

static void cleanup(void) {
    test_free_all();
    tal_threads_set(1);
}
TestSuite(nn_norm, .fini = cleanup);

typedef struct ln_ctx {
    int ct; /* 1: [B, C, T] channel variant */
    float eps;
    tal_tensor y, x, gamma, beta, dy;
} ln_ctx;

static void ln_forward(ln_ctx *l, tal_tensor mean, tal_tensor rstd) {
    if (l->ct)
        tal_layernorm_ct_forward(l->y, mean, rstd, l->x, l->gamma, l->beta, l->eps);
    else
        tal_layernorm_forward(l->y, mean, rstd, l->x, l->gamma, l->beta, l->eps);
}

static void ln_backward(ln_ctx *l, tal_tensor dx, tal_tensor dg, tal_tensor db, tal_tensor mean,
                        tal_tensor rstd) {
    if (l->ct)
        tal_layernorm_ct_backward(dx, dg, db, l->dy, l->x, l->gamma, mean, rstd);
    else
        tal_layernorm_backward(dx, dg, db, l->dy, l->x, l->gamma, mean, rstd);
}

static double ln_loss(void *c) {
    ln_ctx *l = c;
    ln_forward(l, tal_tensor_none(), tal_tensor_none());
    return test_dot(l->y, l->dy);
}

/* Central differences of sum(dy * y). LayerNorm is curved in x (third derivative ~ rstd^3), so
 * h shrinks with the input's spread: truncation ~ h^2 rstd^3 / 6, rounding ~ 6e-8 sqrt(n) / h.
 * atol 5e-4 + rtol 5e-3 (as tests/nn_check.h's fd_check): a wrong term is off by O(1). */
static void fd_expect(const char *what, tal_tensor analytic, tal_tensor x, ln_ctx *l, double h) {
    tal_tensor num = test_tensor_like(x);
    test_numeric_grad(num, x, ln_loss, l, h);
    expect_close_impl(what, analytic, num, 5e-4, 5e-3, __FILE__, __LINE__);
}

static void check_fixture(const char *name, int ct, float eps, int affine, double h,
                          double fwd_atol) {
    fixture fx;
    fixture_load(&fx, name);
    ln_ctx l = {ct, eps, test_tensor_like(fixture_get(&fx, "y")),
                test_clone(fixture_get(&fx, "x")),
                affine ? test_clone(fixture_get(&fx, "gamma")) : tal_tensor_none(),
                affine ? test_clone(fixture_get(&fx, "beta")) : tal_tensor_none(),
                fixture_get(&fx, "dy")};
    tal_tensor mean = test_tensor_like(fixture_get(&fx, "mean"));
    tal_tensor rstd = test_tensor_like(fixture_get(&fx, "rstd"));
    for (int threads = 1; threads <= 2; threads++) {
        tal_threads_set(threads);
        ln_forward(&l, mean, rstd);
        expect_close(l.y, fixture_get(&fx, "y"), fwd_atol, FWD_RTOL);
        expect_close(mean, fixture_get(&fx, "mean"), fwd_atol, FWD_RTOL);
        expect_close(rstd, fixture_get(&fx, "rstd"), fwd_atol, FWD_RTOL);
        tal_tensor dx = test_tensor_like(l.x);
        tal_tensor dg = affine ? test_tensor_like(l.gamma) : tal_tensor_none();
        tal_tensor db = affine ? test_tensor_like(l.beta) : tal_tensor_none();
        tal_fill(dx, NAN); /* written, not accumulated */
        if (affine) { /* accumulated: start from 1 */
            tal_fill(dg, 1.0f);
            tal_fill(db, 1.0f);
        }
        ln_backward(&l, dx, dg, db, mean, rstd);
        expect_close(dx, fixture_get(&fx, "dx"), BWD_ATOL, BWD_RTOL);
        if (affine) {
            tal_tensor wg = test_clone(fixture_get(&fx, "dgamma"));
            tal_tensor wb = test_clone(fixture_get(&fx, "dbeta"));
            tal_tensor ones = test_tensor_like(wg);
            tal_fill(ones, 1.0f);
            tal_add(wg, wg, ones);
            tal_add(wb, wb, ones);
            expect_close(dg, wg, BWD_ATOL, BWD_RTOL);
            expect_close(db, wb, BWD_ATOL, BWD_RTOL);
        }
        if (affine) { /* frozen norm: no dgamma, dbeta; dx still written */
            tal_tensor dx_only = test_tensor_like(l.x);
            tal_fill(dx_only, NAN);
            ln_backward(&l, dx_only, tal_tensor_none(), tal_tensor_none(), mean, rstd);
            expect_close(dx_only, dx, 0, 0);
        }
        if (threads == 1) {
            fd_expect("dx vs finite differences", dx, l.x, &l, h);
            if (affine) {
                tal_tensor dg0 = test_tensor_like(l.gamma), db0 = test_tensor_like(l.beta);
                ln_backward(&l, tal_tensor_none(), dg0, db0, mean, rstd); /* params only */
                fd_expect("dgamma vs finite differences", dg0, l.gamma, &l, h);
                fd_expect("dbeta vs finite differences", db0, l.beta, &l, h);
            }
        }
    }
    fixture_free(&fx);
}

Test(nn_norm, last_dim) { check_fixture("nn_dense_layernorm", 0, 1e-5f, 1, 1e-2, FWD_ATOL); }
/* rows with mean 40 and sd ~0.15: rstd ~7, so the smaller step; the reference normalised the
 * float64 x, the test reads it rounded to float (half an ulp at 40 is 1.9e-6), times rstd ~7 and
 * |gamma| < 1: y moves by up to ~1e-5 (7e-6 measured), so forward atol 1e-5 here */
Test(nn_norm, last_dim_offset_rows) {
    check_fixture("nn_dense_layernorm_offset", 0, 1e-5f, 1, 1e-3, OFFSET_FWD_ATOL);
}
Test(nn_norm, last_dim_without_affine) {
    check_fixture("nn_dense_layernorm_noaffine", 0, 1e-6f, 0, 1e-2, FWD_ATOL);
}
Test(nn_norm, channels_of_bct) {
    check_fixture("nn_dense_layernorm_ct", 1, 1e-6f, 1, 1e-2, FWD_ATOL);
}

/* LayerNorm of rows [n, c] in double: y, mean, rstd and the backward, for shapes past the
 * fixtures (C beyond the per-thread stack buffers, many rows over threads). */
static void ln_ref(tal_tensor y, tal_tensor dx, tal_tensor dg, tal_tensor db, tal_tensor x,
                   tal_tensor g, tal_tensor b, tal_tensor dy, float eps) {
    int64_t n = tal_tensor_rows(x), c = tal_tensor_cols(x);
    double *sg = calloc((size_t)c, sizeof(double)), *sb = calloc((size_t)c, sizeof(double));
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x.data + r * c, *dyr = dy.data + r * c;
        double mu = 0, var = 0, a = 0, bsum = 0;
        for (int64_t j = 0; j < c; j++) mu += xr[j];
        mu /= c;
        for (int64_t j = 0; j < c; j++) var += (xr[j] - mu) * (xr[j] - mu);
        double rs = 1.0 / sqrt(var / c + eps);
        for (int64_t j = 0; j < c; j++) {
            double xh = (xr[j] - mu) * rs;
            y.data[r * c + j] = (float)(xh * g.data[j] + b.data[j]);
            a += dyr[j] * g.data[j];
            bsum += dyr[j] * g.data[j] * xh;
            sg[j] += dyr[j] * xh;
            sb[j] += dyr[j];
        }
        for (int64_t j = 0; j < c; j++) {
            double xh = (xr[j] - mu) * rs;
            dx.data[r * c + j] = (float)(rs * (dyr[j] * g.data[j] - a / c - xh * bsum / c));
        }
    }
    for (int64_t j = 0; j < c; j++) dg.data[j] = (float)sg[j], db.data[j] = (float)sb[j];
    free(sg);
    free(sb);
}

static void check_against_reference(int64_t n, int64_t c) {
    tal_tensor x = test_tensor(2, (int64_t[]){n, c}), dy = test_tensor_like(x);
    tal_tensor g = test_tensor(1, &c), b = test_tensor(1, &c);
    test_fill_uniform(x, 1);
    test_fill_uniform(dy, 2);
    test_fill_uniform(g, 3);
    test_fill_uniform(b, 4);
    tal_tensor y_ref = test_tensor_like(x), dx_ref = test_tensor_like(x);
    tal_tensor dg_ref = test_tensor_like(g), db_ref = test_tensor_like(b);
    ln_ref(y_ref, dx_ref, dg_ref, db_ref, x, g, b, dy, 1e-5f);
    tal_tensor first_y = tal_tensor_none(), first_dg = tal_tensor_none();
    for (int threads = 1; threads <= 3; threads++) {
        tal_threads_set(threads);
        tal_tensor y = test_tensor_like(x), dx = test_tensor_like(x), mean = test_tensor(1, &n);
        tal_tensor rstd = test_tensor(1, &n), dg = test_tensor_like(g), db = test_tensor_like(b);
        tal_layernorm_forward(y, mean, rstd, x, g, b, 1e-5f);
        tal_layernorm_backward(dx, dg, db, dy, x, g, mean, rstd);
        expect_close(y, y_ref, FWD_ATOL, FWD_RTOL);
        expect_close(dx, dx_ref, BWD_ATOL, BWD_RTOL);
        expect_close(dg, dg_ref, 1e-3, 1e-4); /* sums over n rows */
        expect_close(db, db_ref, 1e-3, 1e-4);
        if (threads == 1) first_y = y, first_dg = dg;
        expect_close(y, first_y, 0, 0); /* rows are split whole: the same bits */
        /* the same thread count twice gives the same bits (fixed summation order) */
        tal_tensor dg2 = test_tensor_like(g), db2 = test_tensor_like(b);
        tal_layernorm_backward(tal_tensor_none(), dg2, db2, dy, x, g, mean, rstd);
        expect_close(dg2, dg, 0, 0);
        expect_close(db2, db, 0, 0);
    }
    cr_assert(first_y.data && first_dg.data);
}

Test(nn_norm, many_rows_over_threads) { check_against_reference(1001, 96); }
Test(nn_norm, wide_rows_past_the_stack_buffers) { check_against_reference(37, 1500); }

Test(nn_norm, dx_may_alias_dy) {
    int64_t n = 300, c = 64;
    tal_tensor x = test_tensor(2, (int64_t[]){n, c}), dy = test_tensor_like(x);
    tal_tensor g = test_tensor(1, &c), mean = test_tensor(1, &n), rstd = test_tensor(1, &n);
    test_fill_uniform(x, 5);
    test_fill_uniform(dy, 6);
    test_fill_uniform(g, 7);
    tal_tensor y = test_tensor_like(x);
    tal_layernorm_forward(y, mean, rstd, x, g, tal_tensor_none(), 1e-5f);
    tal_tensor dx = test_tensor_like(x), dg = test_tensor_like(g), inplace = test_clone(dy);
    tal_tensor dg2 = test_tensor_like(g);
    tal_threads_set(2);
    tal_layernorm_backward(dx, dg, tal_tensor_none(), dy, x, g, mean, rstd);
    tal_layernorm_backward(inplace, dg2, tal_tensor_none(), inplace, x, g, mean, rstd);
    expect_close(inplace, dx, 0, 0);
    expect_close(dg2, dg, 0, 0);
    /* [B, C, T] likewise */
    tal_tensor x3 = tal_t3(x.data, 3, 64, 100), dy3 = tal_t3(dy.data, 3, 64, 100);
    tal_tensor m3 = test_tensor(2, (int64_t[]){3, 100}), r3 = test_tensor_like(m3);
    tal_layernorm_ct_forward(test_tensor_like(x3), m3, r3, x3, g, tal_tensor_none(), 1e-6f);
    tal_tensor dx3 = test_tensor_like(x3), in3 = test_clone(dy3);
    tal_tensor dg3 = test_tensor_like(g), dgi = test_tensor_like(g);
    tal_layernorm_ct_backward(dx3, dg3, tal_tensor_none(), dy3, x3, g, m3, r3);
    tal_layernorm_ct_backward(in3, dgi, tal_tensor_none(), in3, x3, g, m3, r3);
    expect_close(in3, dx3, 0, 0);
    expect_close(dgi, dg3, 0, 0);
}

Test(nn_norm, forward_in_place_and_empty) {
    int64_t n = 5, c = 7;
    tal_tensor x = test_tensor(2, (int64_t[]){n, c}), y = test_tensor_like(x);
    test_fill_uniform(x, 8);
    tal_layernorm_forward(y, tal_tensor_none(), tal_tensor_none(), x, tal_tensor_none(),
                          tal_tensor_none(), 1e-5f);
    tal_layernorm_forward(x, tal_tensor_none(), tal_tensor_none(), x, tal_tensor_none(),
                          tal_tensor_none(), 1e-5f);
    expect_close(x, y, 0, 0);
    /* zero rows, and [B, C, 0]: nothing to do, nothing touched */
    tal_tensor e = tal_t2(NULL, 0, c);
    tal_layernorm_forward(e, tal_t1(NULL, 0), tal_t1(NULL, 0), e, tal_tensor_none(),
                          tal_tensor_none(), 1e-5f);
    tal_tensor g = test_tensor(1, &c), dg = test_tensor(1, &c);
    tal_fill(g, 1.0f);
    tal_layernorm_backward(e, dg, tal_tensor_none(), e, e, g, tal_t1(NULL, 0), tal_t1(NULL, 0));
    for (int i = 0; i < c; i++) cr_assert(dg.data[i] == 0.0f);
    tal_tensor e3 = tal_t3(NULL, 2, c, 0);
    tal_layernorm_ct_forward(e3, tal_t2(NULL, 2, 0), tal_t2(NULL, 2, 0), e3, g, tal_tensor_none(),
                             1e-6f);
}

Test(nn_norm, no_affine_is_gamma_one_beta_zero) {
    int64_t n = 6, c = 8;
    tal_tensor x = test_tensor(2, (int64_t[]){n, c}), y = test_tensor_like(x);
    tal_tensor y2 = test_tensor_like(x), ones = test_tensor(1, &c), zeros = test_tensor(1, &c);
    test_fill_uniform(x, 12);
    tal_fill(ones, 1.0f);
    tal_fill(zeros, 0.0f);
    tal_layernorm_forward(y, tal_tensor_none(), tal_tensor_none(), x, tal_tensor_none(),
                          tal_tensor_none(), 1e-5f);
    tal_layernorm_forward(y2, tal_tensor_none(), tal_tensor_none(), x, ones, zeros, 1e-5f);
    expect_close(y, y2, 0, 0);
}

Test(nn_norm, constant_rows_give_beta) {
    /* variance 0: y = beta exactly (eps keeps rstd finite), and the gradient stays finite */
    int64_t n = 3, c = 8;
    tal_tensor x = test_tensor(2, (int64_t[]){n, c}), y = test_tensor_like(x);
    tal_tensor g = test_tensor(1, &c), b = test_tensor(1, &c);
    tal_fill(x, 2.5f);
    test_fill_uniform(g, 9);
    test_fill_uniform(b, 10);
    tal_tensor mean = test_tensor(1, &n), rstd = test_tensor(1, &n);
    tal_layernorm_forward(y, mean, rstd, x, g, b, 1e-5f);
    for (int64_t r = 0; r < n; r++)
        expect_close(tal_t1(y.data + r * c, c), b, 0, 0);
    tal_tensor dx = test_tensor_like(x), dy = test_tensor_like(x);
    test_fill_uniform(dy, 11);
    tal_layernorm_backward(dx, tal_tensor_none(), tal_tensor_none(), dy, x, g, mean, rstd);
    for (int64_t i = 0; i < n * c; i++) cr_assert(isfinite(dx.data[i]));
}

Test(nn_norm, gamma_of_wrong_length_is_a_bug, .signal = SIGABRT) {
    tal_tensor x = test_tensor(2, (int64_t[]){2, 4}), g = test_tensor(1, (int64_t[]){5});
    tal_layernorm_forward(test_tensor_like(x), tal_tensor_none(), tal_tensor_none(), x, g,
                          tal_tensor_none(), 1e-5f);
}

Test(nn_norm, backward_without_saved_stats_is_a_bug, .signal = SIGABRT) {
    tal_tensor x = test_tensor(2, (int64_t[]){2, 4});
    tal_layernorm_backward(test_tensor_like(x), tal_tensor_none(), tal_tensor_none(), x, x,
                           tal_tensor_none(), tal_tensor_none(), tal_tensor_none());
}

Test(nn_norm, ct_needs_three_dims, .signal = SIGABRT) {
    tal_tensor x = test_tensor(2, (int64_t[]){2, 4});
    tal_layernorm_ct_forward(test_tensor_like(x), tal_tensor_none(), tal_tensor_none(), x,
                             tal_tensor_none(), tal_tensor_none(), 1e-6f);
}
