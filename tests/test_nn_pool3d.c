/* Max-pool 3D (nn/pool3d.c) against PyTorch float32 (nn_cases_pool3d from
 * tests/fixtures_nn_pool3d.py): the ResNet stem's pool, a temporal kernel with padding, and
 * post-ReLU inputs full of ties (the gradient goes to the first maximum in (t, h, w) order);
 * backward against finite differences. */
#include "testlib.h"

#include <math.h>
#include <string.h>

static void cleanup(void) { test_free_all(); }
TestSuite(nn_pool3d, .fini = cleanup);

static tal_tensor get(const fixture *fx, const char *pre, const char *what) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", pre, what);
    return fixture_get(fx, name);
}

static tal_pool3d_geom geom_of(tal_tensor g) {
    tal_pool3d_geom p;
    for (int a = 0; a < 3; a++) {
        p.kernel[a] = (int)g.data[a];
        p.stride[a] = (int)g.data[3 + a];
        p.padding[a] = (int)g.data[6 + a];
    }
    return p;
}

/* The pool picks values (exact); the gradient adds a few values of wy per element. */
static void check_case(const char *pre) {
    fixture fx;
    fixture_load(&fx, "nn_cases_pool3d");
    tal_tensor x = get(&fx, pre, "x"), want = get(&fx, pre, "y");
    tal_pool3d_geom g = geom_of(get(&fx, pre, "geom"));
    for (int a = 0; a < 3; a++)
        cr_assert_eq(tal_pool3d_out_len(x.shape[2 + a], g.kernel[a], g.stride[a], g.padding[a]),
                     want.shape[2 + a]);
    tal_tensor y = test_tensor_like(want);
    tal_maxpool3d_forward(y, x, g);
    expect_close(y, want, 0, 0);
    tal_tensor dx = test_tensor_like(x);
    tal_fill(dx, 9.0f); /* written, not accumulated */
    tal_maxpool3d_backward(dx, get(&fx, pre, "wy"), x, g);
    expect_close(dx, get(&fx, pre, "dx"), 1e-6, 1e-6);
    fixture_free(&fx);
}

Test(nn_pool3d, resnet_stem_pool_matches_torch) { check_case("stem"); }
Test(nn_pool3d, temporal_kernel_with_padding_matches_torch) { check_case("t3"); }
Test(nn_pool3d, ties_route_to_the_first_maximum_like_torch) { check_case("ties"); }

Test(nn_pool3d, ties_by_hand) {
    /* one plane 1x2x3, window (1,2,2) stride 1: windows [[0 2] [2 1]] -> first 2 at (0,1),
     * [[2 2] [1 2]] -> first 2 at (0,1) too, which gets both gradients */
    float xs[6] = {0, 2, 2, 2, 1, 2}, ys[2], gs[2] = {1, 10}, dxs[6];
    tal_pool3d_geom g = {{1, 2, 2}, {1, 1, 1}, {0, 0, 0}};
    tal_maxpool3d_forward(tal_t5(ys, 1, 1, 1, 1, 2), tal_t5(xs, 1, 1, 1, 2, 3), g);
    cr_assert(ys[0] == 2 && ys[1] == 2);
    tal_maxpool3d_backward(tal_t5(dxs, 1, 1, 1, 2, 3), tal_t5(gs, 1, 1, 1, 1, 2),
                           tal_t5(xs, 1, 1, 1, 2, 3), g);
    float want[6] = {0, 11, 0, 0, 0, 0};
    for (int i = 0; i < 6; i++) cr_assert_eq(dxs[i], want[i], "dx[%d] = %g", i, dxs[i]);
}

typedef struct fd_ctx {
    tal_tensor x, wy;
    tal_pool3d_geom g;
} fd_ctx;

static double loss(void *p) {
    fd_ctx *c = p;
    tal_tensor y = test_tensor_like(c->wy);
    tal_maxpool3d_forward(y, c->x, c->g);
    return test_dot(y, c->wy);
}

Test(nn_pool3d, backward_matches_finite_differences) {
    fd_ctx c = {.g = {{3, 3, 2}, {2, 2, 2}, {1, 1, 0}}};
    c.x = test_tensor(5, (int64_t[]){2, 2, 5, 6, 5});
    test_fill_uniform(c.x, 5); /* distinct values: the max is locally smooth */
    int64_t o[3];
    for (int a = 0; a < 3; a++)
        o[a] = tal_pool3d_out_len(c.x.shape[2 + a], c.g.kernel[a], c.g.stride[a], c.g.padding[a]);
    c.wy = test_tensor(5, (int64_t[]){2, 2, o[0], o[1], o[2]});
    test_fill_uniform(c.wy, 6);
    tal_tensor dx = test_tensor_like(c.x), num = test_tensor_like(c.x);
    tal_maxpool3d_backward(dx, c.wy, c.x, c.g);
    test_numeric_grad(num, c.x, loss, &c, 1e-3);
    expect_close(dx, num, 1e-3, 1e-3);
}
