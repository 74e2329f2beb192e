/* GELU (exact erf), ReLU, softmax, the elementwise ops, dropout and drop-path: against PyTorch
 * float64 references (tests/fixtures_nn_dense.py) and finite differences; aliasing; masks
 * redrawn from their keys. Tolerances: forward atol 1e-6 + rtol 1e-5 (one or two float
 * roundings of O(1) values, erff/expf within a few ulps); gradients atol 1e-5 + rtol 1e-4. */
#include <math.h>
#include <signal.h>

#include "testlib.h"

#define FWD_ATOL 1e-6
#define FWD_RTOL 1e-5
#define BWD_ATOL 1e-5
#define BWD_RTOL 1e-4

static void cleanup(void) {
    test_free_all();
    tal_threads_set(1);
}
TestSuite(nn_pointwise, .fini = cleanup);

enum { GELU, RELU, SOFTMAX };

typedef struct act_ctx {
    int op;
    tal_tensor y, x, dy;
} act_ctx;

static void act_forward(int op, tal_tensor y, tal_tensor x) {
    if (op == GELU) tal_gelu_forward(y, x);
    if (op == RELU) tal_relu_forward(y, x);
    if (op == SOFTMAX) tal_softmax_forward(y, x);
}

static void act_backward(int op, tal_tensor dx, tal_tensor dy, tal_tensor x, tal_tensor y) {
    if (op == GELU) tal_gelu_backward(dx, dy, x);
    if (op == RELU) tal_relu_backward(dx, dy, y);
    if (op == SOFTMAX) tal_softmax_backward(dx, dy, y);
}

static double act_loss(void *c) {
    act_ctx *a = c;
    act_forward(a->op, a->y, a->x);
    return test_dot(a->y, a->dy);
}

/* Central differences of sum(dy * y), h = 1e-2: third derivatives are O(1) here (GELU, softmax
 * of O(1) logits), so truncation ~2e-5; float rounding of y ~6e-8 * 10 / 2e-2 ~ 3e-5. ReLU's
 * inputs keep 0.05 away from the kink. atol 5e-4 + rtol 5e-3 (as tests/nn_check.h's fd_check).
 * -inf inputs are skipped: they cannot be perturbed and carry no gradient. */
static void fd_expect(tal_tensor analytic, act_ctx *a) {
    tal_tensor num = test_tensor_like(a->x);
    test_numeric_grad(num, a->x, act_loss, a, 1e-2);
    for (int64_t i = 0; i < tal_tensor_numel(a->x); i++)
        if (isinf(a->x.data[i])) {
            cr_assert(analytic.data[i] == 0.0f, "gradient at a -inf logit: %g", analytic.data[i]);
            num.data[i] = 0.0f;
        }
    expect_close_impl("gradient vs finite differences", analytic, num, 5e-4, 5e-3, __FILE__,
                      __LINE__);
}

static void check_activation(const char *name, int op) {
    fixture fx;
    fixture_load(&fx, name);
    act_ctx a = {op, test_tensor_like(fixture_get(&fx, "y")), test_clone(fixture_get(&fx, "x")),
                 fixture_get(&fx, "dy")};
    for (int threads = 1; threads <= 2; threads++) {
        tal_threads_set(threads);
        act_forward(op, a.y, a.x);
        expect_close(a.y, fixture_get(&fx, "y"), FWD_ATOL, FWD_RTOL);
        tal_tensor dx = test_tensor_like(a.x);
        tal_fill(dx, NAN);
        act_backward(op, dx, a.dy, a.x, a.y);
        expect_close(dx, fixture_get(&fx, "dx"), BWD_ATOL, BWD_RTOL);
        if (threads == 1) {
            fd_expect(dx, &a);
            act_forward(op, a.y, a.x); /* the last difference left y at x - h */
        }
        /* in place: y over x (forward), dx over dy (backward) */
        tal_tensor xy = test_clone(a.x), dd = test_clone(a.dy);
        act_forward(op, xy, xy);
        expect_close(xy, a.y, 0, 0);
        act_backward(op, dd, dd, a.x, a.y);
        expect_close(dd, dx, 0, 0);
    }
    fixture_free(&fx);
}

Test(nn_pointwise, gelu_exact_erf) { check_activation("nn_dense_gelu", GELU); }
Test(nn_pointwise, relu) { check_activation("nn_dense_relu", RELU); }
Test(nn_pointwise, softmax_with_masked_and_large_logits) {
    check_activation("nn_dense_softmax", SOFTMAX);
}

Test(nn_pointwise, gelu_tails_and_zero) {
    float xs[9] = {-30.0f, -12.0f, -8.0f, -6.0f, 0.0f, 6.0f, 8.0f, 12.0f, 30.0f}, ys[9], ds[9];
    float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    tal_gelu_forward(tal_t1(ys, 9), tal_t1(xs, 9));
    tal_gelu_backward(tal_t1(ds, 9), tal_t1(ones, 9), tal_t1(xs, 9));
    for (int j = 0; j < 9; j++) cr_assert(isfinite(ys[j]) && isfinite(ds[j]), "x = %g", xs[j]);
    /* x Phi(x): Phi(-6) ~ 1e-9, so y(-6) ~ -6e-9; y(6) = 6 to float precision */
    cr_assert(ys[0] == 0.0f && fabsf(ys[1]) < 1e-30f && fabsf(ys[2]) < 1e-12f, "%g %g %g", ys[0],
              ys[1], ys[2]);
    cr_assert(fabsf(ys[3]) < 1e-7f && ys[4] == 0.0f, "%g %g", ys[3], ys[4]);
    cr_assert(ys[5] == 6.0f && ys[6] == 8.0f && ys[7] == 12.0f && ys[8] == 30.0f);
    cr_assert(ds[0] == 0.0f && fabsf(ds[1]) < 1e-20f && fabsf(ds[3]) < 1e-6f && ds[4] == 0.5f,
              "%g %g %g %g", ds[0], ds[1], ds[3], ds[4]);
    cr_assert(fabsf(ds[5] - 1) < 1e-6f && ds[6] == 1.0f && ds[7] == 1.0f && ds[8] == 1.0f,
              "%g %g %g %g", ds[5], ds[6], ds[7], ds[8]);
}

Test(nn_pointwise, softmax_is_stable_for_large_logits) {
    float x[4] = {1000.0f, 1001.0f, -1000.0f, 999.0f}, y[4];
    tal_softmax_forward(tal_t2(y, 1, 4), tal_t2(x, 1, 4));
    double s = 1 + exp(-1.0) + exp(-2.0); /* relative to the max, 1001 */
    cr_assert_float_eq(y[1], 1 / s, 1e-6, "got %g", y[1]);
    cr_assert_float_eq(y[0], exp(-1.0) / s, 1e-6, "got %g", y[0]);
    cr_assert_float_eq(y[3], exp(-2.0) / s, 1e-6, "got %g", y[3]);
    cr_assert_eq(y[2], 0.0f);
}

Test(nn_pointwise, softmax_masked_entries_and_rows) {
    /* row 0: two -inf entries of four, exact halves; row 1 all masked: zeros, not NaN */
    float xm[8] = {0.5f, -INFINITY, 0.5f, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    float ym[8], dym[8] = {1, 2, 3, 4, 5, 6, 7, 8}, dxm[8];
    tal_softmax_forward(tal_t2(ym, 2, 4), tal_t2(xm, 2, 4));
    cr_assert(ym[0] == 0.5f && ym[1] == 0.0f && ym[2] == 0.5f && ym[3] == 0.0f, "%g %g %g %g",
              ym[0], ym[1], ym[2], ym[3]);
    tal_softmax_backward(tal_t2(dxm, 2, 4), tal_t2(dym, 2, 4), tal_t2(ym, 2, 4));
    /* dx = y (dy - sum(dy y)) = 0.5 * (1 - 2), 0, 0.5 * (3 - 2), 0; second row 0 */
    const float want[8] = {-0.5f, 0, 0.5f, 0, 0, 0, 0, 0};
    for (int j = 0; j < 8; j++) cr_assert_float_eq(dxm[j], want[j], 1e-7, "dx[%d] = %g", j, dxm[j]);
    /* the masked row first this time, a finite row after it */
    float x[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, 1, 2, 3, 4}, y[8], dx[8];
    float dy[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    tal_softmax_forward(tal_t2(y, 2, 4), tal_t2(x, 2, 4));
    for (int j = 0; j < 4; j++) cr_assert(y[j] == 0.0f, "y[%d] = %g", j, y[j]);
    double s = 0;
    for (int j = 4; j < 8; j++) s += y[j];
    cr_assert(fabs(s - 1.0) < 1e-6);
    tal_softmax_backward(tal_t2(dx, 2, 4), tal_t2(dy, 2, 4), tal_t2(y, 2, 4));
    for (int j = 0; j < 4; j++) cr_assert(dx[j] == 0.0f);
    /* one column: softmax is 1, its gradient 0 */
    float one = -3.0f, p, g, d1 = 5.0f;
    tal_softmax_forward(tal_t2(&p, 1, 1), tal_t2(&one, 1, 1));
    tal_softmax_backward(tal_t2(&g, 1, 1), tal_t2(&d1, 1, 1), tal_t2(&p, 1, 1));
    cr_assert(p == 1.0f && g == 0.0f);
}

Test(nn_pointwise, softmax_rows_over_threads_same_bits) {
    int64_t rows = 640, cols = 96; /* enough rows to be split over 2 threads */
    tal_tensor x = test_tensor(2, (int64_t[]){rows, cols}), dy = test_tensor_like(x);
    tal_tensor y[2], dx[2];
    test_fill_uniform(x, 1);
    test_fill_uniform(dy, 4);
    for (int t = 0; t < 2; t++) {
        cr_assert_eq(tal_threads_set(t + 1), t + 1);
        y[t] = test_tensor_like(x), dx[t] = test_tensor_like(x);
        tal_softmax_forward(y[t], x);
        tal_softmax_backward(dx[t], dy, y[t]);
    }
    expect_close(y[1], y[0], 0, 0); /* whole rows per thread */
    expect_close(dx[1], dx[0], 0, 0);
}

/* ------------------------------------------------------------------ elementwise */
Test(nn_pointwise, elementwise_ops_and_aliasing) {
    int64_t n = 100003; /* above the threading threshold, odd */
    tal_tensor a = test_tensor(1, &n), b = test_tensor(1, &n), y = test_tensor(1, &n);
    test_fill_uniform(a, 1);
    test_fill_uniform(b, 2);
    tal_threads_set(2);
    tal_add(y, a, b);
    for (int64_t i = 0; i < n; i += 997) cr_assert(y.data[i] == a.data[i] + b.data[i]);
    tal_sub(y, a, b);
    for (int64_t i = 0; i < n; i += 997) cr_assert(y.data[i] == a.data[i] - b.data[i]);
    tal_mul(y, a, b);
    for (int64_t i = 0; i < n; i += 997) cr_assert(y.data[i] == a.data[i] * b.data[i]);
    tal_scale(y, a, -3.0f);
    for (int64_t i = 0; i < n; i += 997) cr_assert(y.data[i] == -3.0f * a.data[i]);
    tal_copy(y, b);
    expect_close(y, b, 0, 0);
    tal_axpy(y, 0.5f, a);
    for (int64_t i = 0; i < n; i += 997) cr_assert(y.data[i] == b.data[i] + 0.5f * a.data[i]);
    /* aliasing: y = a + a, in place */
    tal_tensor c = test_clone(a);
    tal_add(c, c, c);
    for (int64_t i = 0; i < n; i += 997) cr_assert(c.data[i] == 2.0f * a.data[i]);
    tal_sub(c, c, a); /* back to a */
    expect_close(c, a, 0, 0);
    tal_mul(c, c, c);
    for (int64_t i = 0; i < n; i += 997) cr_assert(c.data[i] == a.data[i] * a.data[i]);
    tal_copy(c, c); /* self copy is a no-op */
    /* shapes may differ when element counts agree */
    float m[6] = {1, 2, 3, 4, 5, 6}, r[6];
    tal_copy(tal_t2(r, 2, 3), tal_t3(m, 3, 2, 1));
    cr_assert(r[5] == 6.0f);
    tal_fill(c, 0.25f);
    cr_assert(c.data[0] == 0.25f && c.data[n - 1] == 0.25f);
    tal_fill(c, -0.0f);
    cr_assert(c.data[7] == 0.0f && signbit(c.data[7]));
    tal_fill(c, 0.0f);
    cr_assert(c.data[7] == 0.0f && !signbit(c.data[7]));
    tal_tensor e = tal_t2(NULL, 0, 3); /* empty: nothing happens */
    tal_add(e, e, e);
    tal_copy(e, e);
    tal_fill(e, 1.0f);
}

Test(nn_pointwise, elementwise_size_mismatch_is_a_bug, .signal = SIGABRT) {
    float a[3], b[4];
    tal_add(tal_t1(a, 3), tal_t1(a, 3), tal_t1(b, 4));
}

/* ------------------------------------------------------------------ dropout, drop-path */
static int64_t count_kept(tal_tensor y) {
    int64_t k = 0;
    for (int64_t i = 0; i < tal_tensor_numel(y); i++) k += y.data[i] != 0.0f;
    return k;
}

Test(nn_pointwise, dropout_mask_from_key) {
    int64_t n = 200001;
    tal_tensor x = test_tensor(1, &n), y1 = test_tensor(1, &n), y2 = test_tensor(1, &n);
    tal_tensor dx = test_tensor(1, &n), ones = test_tensor(1, &n);
    test_fill_uniform(x, 3);
    for (int64_t i = 0; i < n; i++) x.data[i] += x.data[i] >= 0 ? 0.5f : -0.5f; /* never 0 */
    tal_fill(ones, 1.0f);
    const float p = 0.3f;
    tal_rng_key key = {11, 5, 2};
    tal_threads_set(1);
    tal_dropout_forward(y1, x, p, key);
    tal_threads_set(2); /* the mask depends on the key only, not the thread split */
    tal_dropout_forward(y2, x, p, key);
    expect_close(y2, y1, 0, 0);
    for (int64_t i = 0; i < n; i++)
        cr_assert(y1.data[i] == 0.0f || y1.data[i] == x.data[i] * (1.0f / 0.7f), "element %lld",
                  (long long)i);
    /* binomial: sd of the kept fraction sqrt(0.21 / n) ~ 1e-3; 5 sd */
    double frac = (double)count_kept(y1) / (double)n;
    cr_assert(fabs(frac - 0.7) < 5.2e-3, "kept fraction %g, expected 0.7", frac);
    /* even and odd elements (the two halves of one draw) are kept independently at rate 0.7 */
    int64_t both = 0;
    for (int64_t i = 0; i + 1 < n; i += 2) both += y1.data[i] != 0 && y1.data[i + 1] != 0;
    double fb = (double)both / (double)(n / 2);
    cr_assert(fabs(fb - 0.49) < 0.011, "both of a pair kept: %g, expected 0.49", fb); /* 5 sd */
    /* backward redraws the mask: dx = dy * keep / (1 - p), at the same places */
    tal_dropout_backward(dx, ones, p, key);
    for (int64_t i = 0; i < n; i++) cr_assert((dx.data[i] != 0) == (y1.data[i] != 0));
    tal_mul(dx, dx, x);
    expect_close(dx, y1, 0, 0);
    /* another key (step, stream or seed) gives another mask */
    tal_rng_key others[3] = {{11, 6, 2}, {11, 5, 3}, {12, 5, 2}};
    for (int k = 0; k < 3; k++) {
        tal_dropout_forward(y2, x, p, others[k]);
        int64_t differ = 0;
        for (int64_t i = 0; i < n; i++) differ += (y1.data[i] == 0) != (y2.data[i] == 0);
        cr_assert(differ > n / 4, "key %d: a new key must draw a new mask (%lld differ)", k,
                  (long long)differ);
    }
    /* p = 0 is the identity; in place works */
    tal_dropout_forward(y1, x, 0.0f, key);
    expect_close(y1, x, 0, 0);
    tal_tensor inplace = test_clone(x);
    tal_dropout_forward(y2, x, p, key);
    tal_dropout_forward(inplace, inplace, p, key);
    expect_close(inplace, y2, 0, 0);
}

Test(nn_pointwise, dropout_p_of_one_is_a_bug, .signal = SIGABRT) {
    float a[4] = {0};
    tal_rng_key key = {1, 2, 3};
    tal_dropout_forward(tal_t1(a, 4), tal_t1(a, 4), 1.0f, key);
}

Test(nn_pointwise, drop_path_whole_samples) {
    int64_t B = 4000, C = 3, T = 2;
    tal_tensor x = test_tensor(3, (int64_t[]){B, C, T}), y = test_tensor_like(x);
    tal_tensor y2 = test_tensor_like(x), dx = test_tensor_like(x);
    test_fill_uniform(x, 9);
    const float p = 0.2f;
    tal_rng_key key = {4, 1, 7};
    tal_drop_path_forward(y, x, p, key);
    tal_drop_path_forward(y2, x, p, key);
    expect_close(y2, y, 0, 0);
    int64_t kept = 0;
    for (int64_t b = 0; b < B; b++) {
        int keep = y.data[b * C * T] != 0.0f || x.data[b * C * T] == 0.0f;
        kept += keep;
        for (int64_t i = 0; i < C * T; i++) {
            float want = keep ? x.data[b * C * T + i] * (1.0f / 0.8f) : 0.0f;
            cr_assert(y.data[b * C * T + i] == want, "sample %lld is not kept or dropped whole",
                      (long long)b);
        }
    }
    double frac = (double)kept / (double)B; /* sd sqrt(0.16 / 4000) ~ 6.3e-3; 5 sd */
    cr_assert(fabs(frac - 0.8) < 0.032, "kept fraction %g, expected 0.8", frac);
    tal_drop_path_backward(dx, x, p, key); /* linear: the same map applied to dy */
    expect_close(dx, y, 0, 0);
    tal_drop_path_forward(y2, x, 0.0f, key);
    expect_close(y2, x, 0, 0);
    tal_tensor inplace = test_clone(x);
    tal_drop_path_forward(inplace, inplace, p, key);
    expect_close(inplace, y, 0, 0);
    /* one sample, and none */
    tal_tensor one = tal_t2(x.data, 1, C * T), out1 = test_tensor_like(one);
    tal_drop_path_forward(out1, one, p, key);
    expect_close(out1, tal_t2(y.data, 1, C * T), 0, 0);
    tal_tensor none = tal_t2(NULL, 0, 4);
    tal_drop_path_forward(none, none, p, key);
}

Test(nn_pointwise, drop_path_shape_mismatch_is_a_bug, .signal = SIGABRT) {
    float a[6] = {0};
    tal_rng_key key = {1, 2, 3};
    tal_drop_path_forward(tal_t2(a, 2, 3), tal_t2(a, 3, 2), 0.1f, key);
}

/* Non-finite inputs (a NaN run) propagate as NaN through softmax and GELU: no undefined
 * float-to-int conversion or shift inside the exponential (UBSan checks this test). */
Test(nn_pointwise, nan_inputs_give_nan_not_undefined_behaviour) {
    tal_tensor x = test_tensor(2, (int64_t[]){1, 4}), y = test_tensor_like(x);
    x.data[0] = NAN, x.data[1] = 0.5f, x.data[2] = -1.0f, x.data[3] = 2.0f;
    tal_softmax_forward(y, x);
    for (int i = 0; i < 4; i++) cr_expect(isnan(y.data[i]), "softmax[%d] = %g", i, y.data[i]);
    tal_gelu_forward(y, x);
    cr_expect(isnan(y.data[0]), "gelu(NaN) = %g", y.data[0]);
    cr_expect(isfinite(y.data[1]) && isfinite(y.data[3]));
}
