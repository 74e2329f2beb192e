/* Max-pool 1D, spatial mean and linear interpolation against PyTorch float32 (nn_cases_pool,
 * nn_cases_interp from tests/fixtures_nn_conv.py): max-pool with padding, stride = kernel,
 * k5 s1 p2 and integer-valued inputs full of ties (PyTorch keeps the first maximum, so the
 * gradient goes there); NaN as PyTorch; interpolation up, down, same size, from one sample,
 * 100 -> 192 and 37 -> 12; backward against finite differences. */
#include "testlib.h"

#include <math.h>
#include <string.h>

static void cleanup(void) { test_free_all(); }
TestSuite(nn_pool_interp, .fini = cleanup);

static tal_tensor get(const fixture *fx, const char *pre, const char *what) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", pre, what);
    return fixture_get(fx, name);
}

/* Max-pool picks values (exact); its gradient adds at most kernel / stride values of wy per
 * element: exact up to one float rounding. */
static void check_maxpool(const char *pre) {
    fixture fx;
    fixture_load(&fx, "nn_cases_pool");
    tal_tensor x = get(&fx, pre, "x"), want = get(&fx, pre, "y"), g = get(&fx, pre, "geom");
    int k = (int)g.data[0], s = (int)g.data[1], p = (int)g.data[2];
    tal_tensor y = test_tensor_like(want), arg = test_tensor_like(want);
    tal_maxpool1d_forward(y, arg, x, k, s, p);
    expect_close(y, want, 0, 0);
    tal_tensor dx = test_tensor_like(x);
    tal_fill(dx, 9.0f); /* written, not accumulated */
    tal_maxpool1d_backward(dx, get(&fx, pre, "wy"), arg);
    expect_close(dx, get(&fx, pre, "dx"), 1e-6, 1e-6);
    /* argmax is optional in forward */
    tal_tensor y2 = test_tensor_like(want);
    tal_maxpool1d_forward(y2, tal_tensor_none(), x, k, s, p);
    expect_close(y2, want, 0, 0);
    fixture_free(&fx);
}

Test(nn_pool_interp, maxpool_k3_s2_p1) { check_maxpool("k3s2p1"); }
Test(nn_pool_interp, maxpool_k2_s2) { check_maxpool("k2s2"); }
Test(nn_pool_interp, maxpool_k5_s1_p2) { check_maxpool("k5s1p2"); }
Test(nn_pool_interp, maxpool_ties_keep_the_first_index) { check_maxpool("ties"); }

Test(nn_pool_interp, maxpool_ties_by_hand) {
    float xs[6] = {1, 3, 3, 2, 3, 0};
    float ys[3], as[3];
    tal_maxpool1d_forward(tal_t3(ys, 1, 1, 3), tal_t3(as, 1, 1, 3), tal_t3(xs, 1, 1, 6), 3, 2, 1);
    /* windows x[-1..1] = [pad, 1, 3], x[1..3] = [3, 3, 2], x[3..5] = [2, 3, 0] */
    cr_assert(ys[0] == 3 && ys[1] == 3 && ys[2] == 3);
    cr_assert(as[0] == 1 && as[1] == 1 && as[2] == 4, "argmax %g %g %g", as[0], as[1], as[2]);
}

/* A NaN in a window wins (PyTorch: `val > max || isnan(val)`), the last NaN being the index. */
Test(nn_pool_interp, maxpool_nan_propagates_like_torch) {
    float xs[5] = {1, NAN, 5, NAN, 2};
    float ys[2], as[2];
    tal_maxpool1d_forward(tal_t3(ys, 1, 1, 2), tal_t3(as, 1, 1, 2), tal_t3(xs, 1, 1, 5), 4, 1, 0);
    cr_assert(isnan(ys[0]) && isnan(ys[1]));
    cr_assert(as[0] == 3 && as[1] == 3, "argmax %g %g", as[0], as[1]);
}

typedef struct pool_ctx {
    tal_tensor x, y, wy;
    int op; /* 0 max-pool k3 s2 p1, 1 mean_hw, 2 interp */
} pool_ctx;

static double pool_loss(void *p) {
    pool_ctx *c = p;
    if (c->op == 0) tal_maxpool1d_forward(c->y, tal_tensor_none(), c->x, 3, 2, 1);
    if (c->op == 1) tal_mean_hw_forward(c->y, c->x);
    if (c->op == 2) tal_interp1d_forward(c->y, c->x);
    return test_dot(c->y, c->wy);
}

Test(nn_pool_interp, maxpool_backward_matches_finite_differences) {
    /* distinct values 0.1 apart, so a step of 1e-2 never changes the argmax */
    tal_tensor x = test_tensor(3, (int64_t[]){2, 3, 13});
    for (int64_t i = 0; i < tal_tensor_numel(x); i++) x.data[i] = (float)((i * 17) % 78) * 0.1f;
    tal_tensor y = test_tensor(3, (int64_t[]){2, 3, 7}), arg = test_tensor_like(y);
    tal_tensor wy = test_tensor_like(y), dx = test_tensor_like(x), num = test_tensor_like(x);
    test_fill_uniform(wy, 5);
    tal_maxpool1d_forward(y, arg, x, 3, 2, 1);
    tal_maxpool1d_backward(dx, wy, arg);
    pool_ctx c = {x, y, wy, 0};
    test_numeric_grad(num, x, pool_loss, &c, 1e-2);
    expect_close(dx, num, 1e-4, 1e-4);
}

/* Means over 30 values: float32 sums in either order, ~1e-7 relative. */
Test(nn_pool_interp, mean_hw_forward_backward) {
    fixture fx;
    fixture_load(&fx, "nn_cases_pool");
    tal_tensor x = test_clone(get(&fx, "mean", "x")), wy = get(&fx, "mean", "wy");
    tal_tensor y = test_tensor_like(wy), dx = test_tensor_like(x), num = test_tensor_like(x);
    tal_mean_hw_forward(y, x);
    expect_close(y, get(&fx, "mean", "y"), 1e-6, 1e-5);
    tal_fill(dx, 4.0f);
    tal_mean_hw_backward(dx, wy);
    expect_close(dx, get(&fx, "mean", "dx"), 1e-7, 1e-5);
    pool_ctx c = {x, y, wy, 1};
    test_numeric_grad(num, x, pool_loss, &c, 1e-2);
    expect_close(dx, num, 1e-4, 1e-3);
    fixture_free(&fx);
}

/* Interpolation mixes two inputs with float weights computed as PyTorch does: forward within a
 * couple of roundings (atol 1e-6 + rtol 1e-5); the gradient sums at most ceil(Tout / Tin) + 1
 * such terms per input (atol 1e-5 + rtol 1e-4). */
static void check_interp(const char *pre) {
    fixture fx;
    fixture_load(&fx, "nn_cases_interp");
    tal_tensor x = test_clone(get(&fx, pre, "x")), wy = get(&fx, pre, "wy");
    tal_tensor y = test_tensor_like(wy), dx = test_tensor_like(x), num = test_tensor_like(x);
    tal_interp1d_forward(y, x);
    expect_close(y, get(&fx, pre, "y"), 1e-6, 1e-5);
    tal_fill(dx, -3.0f);
    tal_interp1d_backward(dx, wy);
    expect_close(dx, get(&fx, pre, "dx"), 1e-5, 1e-4);
    pool_ctx c = {x, y, wy, 2};
    test_numeric_grad(num, x, pool_loss, &c, 1e-2);
    expect_close(dx, num, 2e-3, 1e-3);
    fixture_free(&fx);
}

Test(nn_pool_interp, interp_up_7_to_16) { check_interp("up"); }
Test(nn_pool_interp, interp_down_16_to_5) { check_interp("down"); }
Test(nn_pool_interp, interp_same_size_is_a_copy) { check_interp("same"); }
Test(nn_pool_interp, interp_from_one_sample) { check_interp("one"); }
Test(nn_pool_interp, interp_5_to_3) { check_interp("odd"); }
Test(nn_pool_interp, interp_100_to_192) { check_interp("feat"); }
Test(nn_pool_interp, interp_37_to_12) { check_interp("down3"); }

/* Upsampling by 2 by hand: sources (i + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25,
 * 1.75, 2.25 (-> index 2, neighbour clamped to 2). */
Test(nn_pool_interp, interp_by_hand) {
    float xs[3] = {0, 4, 8}, ys[6];
    tal_interp1d_forward(tal_t3(ys, 1, 1, 6), tal_t3(xs, 1, 1, 3));
    const float want[6] = {0, 1, 3, 5, 7, 8};
    for (int i = 0; i < 6; i++) cr_assert_float_eq(ys[i], want[i], 1e-6, "y[%d] = %g", i, ys[i]);
}
