/* Convolutions and pooling against PyTorch float64 references and finite differences: patch
 * conv3d (stride = kernel), general conv3d (3x3x3 pad 1; 1x3x3 stride (1,2,2)), conv1d (k3,
 * stride 2, depthwise, groups 2, output mask), max-pool 1D, mean over H, W, linear
 * interpolation (down, up, non-integer ratio). Scratch-taking ops: planner == real arena.
 * Tolerances: forward atol 1e-6 + rtol 1e-5 (conv3d sums up to 81 O(1) products: ~1e-6
 * absolute error, hence atol 1e-5 there), backward atol 1e-5 + rtol 1e-4 (2e-5 for conv3d). */
#include "nn_check.h"

#include <math.h>

static void cleanup(void) { test_free_all(); }
TestSuite(nn_conv, .fini = cleanup);

/* What the op under test is: one forward, one backward, shared by fixtures and FD. */
typedef enum { PATCH3D, CONV3D, CONV1D } conv_kind;

typedef struct conv_ctx {
    conv_kind kind;
    tal_tensor y, x, w, b, mask, dy;
    tal_conv3d_geom g3;
    tal_conv1d_geom g1;
    tal_arena *scratch;
} conv_ctx;

static void conv_forward(conv_ctx *c, tal_arena *scratch) {
    if (c->kind == PATCH3D) tal_patch_conv3d_forward(c->y, c->x, c->w, c->b);
    if (c->kind == CONV3D) tal_conv3d_forward(c->y, c->x, c->w, c->b, c->g3, scratch);
    if (c->kind == CONV1D) tal_conv1d_forward(c->y, c->x, c->w, c->b, c->mask, c->g1, scratch);
}

static void conv_backward(conv_ctx *c, tal_tensor dx, tal_tensor dw, tal_tensor db,
                          tal_arena *scratch) {
    if (c->kind == PATCH3D) tal_patch_conv3d_backward(dx, dw, db, c->dy, c->x, c->w);
    if (c->kind == CONV3D) tal_conv3d_backward(dx, dw, db, c->dy, c->x, c->w, c->g3, scratch);
    if (c->kind == CONV1D)
        tal_conv1d_backward(dx, dw, db, c->dy, c->x, c->w, c->mask, c->g1, scratch);
}

static double conv_loss(void *p) {
    conv_ctx *c = p;
    conv_forward(c, c->scratch);
    return test_dot(c->y, c->dy);
}

/* Planner sizes for forward and backward, then both run on an arena of exactly that size. */
static tal_arena *planned_scratch(conv_ctx *c, tal_tensor dx, tal_tensor dw, tal_tensor db) {
    if (c->kind == PATCH3D) { /* takes no scratch */
        conv_forward(c, NULL);
        return test_arena(64);
    }
    tal_arena *plan = tal_arena_create_planner();
    conv_ctx pc = *c;
    pc.y = tal_tensor_of(NULL, c->y.ndim, c->y.shape);
    if (c->mask.data) pc.mask = tal_tensor_of(NULL, c->mask.ndim, c->mask.shape);
    conv_forward(&pc, plan);
    size_t fwd = tal_arena_high_water(plan);
    conv_backward(&pc, tal_tensor_of(NULL, dx.ndim, dx.shape), tal_tensor_of(NULL, dw.ndim, dw.shape),
                  db.data ? tal_tensor_of(NULL, db.ndim, db.shape) : tal_tensor_none(), plan);
    size_t need = tal_arena_high_water(plan);
    cr_assert_eq(tal_arena_used(plan), 0);
    tal_arena_destroy(plan);
    tal_arena *a = test_arena(need ? need : 64);
    conv_forward(c, a);
    cr_assert_eq(tal_arena_high_water(a), fwd, "forward: planned %zu, used %zu", fwd,
                 tal_arena_high_water(a));
    return a;
}

static void check_conv(const char *name, conv_kind kind, tal_conv3d_geom g3, tal_conv1d_geom g1,
                       double fwd_atol, double bwd_atol) {
    fixture fx;
    fixture_load(&fx, name);
    conv_ctx c = {.kind = kind, .g3 = g3, .g1 = g1};
    c.x = fx_clone(&fx, "x"), c.w = fx_clone(&fx, "w"), c.dy = fixture_get(&fx, "dy");
    c.b = fixture_has(&fx, "b") ? fx_clone(&fx, "b") : tal_tensor_none();
    c.mask = fixture_has(&fx, "mask") ? fixture_get(&fx, "mask") : tal_tensor_none();
    c.y = test_tensor_like(fixture_get(&fx, "y"));
    tal_tensor dx = test_tensor_like(c.x), dw = test_tensor_like(c.w);
    tal_tensor db = c.b.data ? test_tensor_like(c.b) : tal_tensor_none();
    tal_fill(c.y, 9.0f); /* forward must overwrite */
    c.scratch = planned_scratch(&c, dx, dw, db);
    expect_close(c.y, fixture_get(&fx, "y"), fwd_atol, 1e-5);
    tal_fill(dx, 9.0f); /* dx is written, dw and db accumulate */
    conv_backward(&c, dx, dw, db, c.scratch);
    cr_assert_eq(tal_arena_used(c.scratch), 0, "scratch must be given back");
    expect_close(dx, fixture_get(&fx, "dx"), bwd_atol, 1e-4);
    expect_close(dw, fixture_get(&fx, "dw"), bwd_atol, 1e-4);
    if (c.b.data) expect_close(db, fixture_get(&fx, "db"), bwd_atol, 1e-4);
    conv_backward(&c, tal_tensor_none(), dw, tal_tensor_none(), c.scratch);
    for (int64_t i = 0; i < tal_tensor_numel(dw); i++) dw.data[i] *= 0.5f; /* accumulated twice */
    expect_close(dw, fixture_get(&fx, "dw"), bwd_atol, 1e-4);
    if (c.b.data) {
        tal_fill(db, 0.0f);
        conv_backward(&c, tal_tensor_none(), tal_tensor_none(), db, c.scratch);
        expect_close(db, fixture_get(&fx, "db"), bwd_atol, 1e-4);
    }
    tal_fill(dw, 0.0f);
    conv_backward(&c, dx, dw, db, c.scratch);
    fd_check(dx, c.x, conv_loss, &c);
    fd_check(dw, c.w, conv_loss, &c);
    tal_arena_destroy(c.scratch);
    fixture_free(&fx);
}

static const tal_conv1d_geom NO1 = {0, 0, 0};
static const tal_conv3d_geom NO3 = {{0, 0, 0}, {0, 0, 0}};

Test(nn_conv, patch_conv3d) { check_conv("nn_patch_conv3d", PATCH3D, NO3, NO1, 1e-5, 2e-5); }
Test(nn_conv, conv3d_3x3x3_pad1) {
    check_conv("nn_conv3d_k3", CONV3D, (tal_conv3d_geom){{1, 1, 1}, {1, 1, 1}}, NO1, 1e-5, 2e-5);
}
Test(nn_conv, conv3d_1x3x3_stride_122) {
    check_conv("nn_conv3d_s122", CONV3D, (tal_conv3d_geom){{1, 2, 2}, {0, 1, 1}}, NO1, 1e-5, 2e-5);
}
Test(nn_conv, conv1d_k3_pad1) {
    check_conv("nn_conv1d_k3", CONV1D, NO3, (tal_conv1d_geom){1, 1, 1}, 1e-6, 1e-5);
}
Test(nn_conv, conv1d_stride2) {
    check_conv("nn_conv1d_s2", CONV1D, NO3, (tal_conv1d_geom){2, 1, 1}, 1e-6, 1e-5);
}
Test(nn_conv, conv1d_depthwise) {
    check_conv("nn_conv1d_dw", CONV1D, NO3, (tal_conv1d_geom){1, 1, 4}, 1e-6, 1e-5);
}
Test(nn_conv, conv1d_two_groups) {
    check_conv("nn_conv1d_g2", CONV1D, NO3, (tal_conv1d_geom){1, 1, 2}, 1e-6, 1e-5);
}
Test(nn_conv, conv1d_output_mask) {
    check_conv("nn_conv1d_mask", CONV1D, NO3, (tal_conv1d_geom){2, 1, 1}, 1e-6, 1e-5);
}
Test(nn_conv, conv1d_depthwise_output_mask) {
    check_conv("nn_conv1d_dw_mask", CONV1D, NO3, (tal_conv1d_geom){1, 1, 4}, 1e-6, 1e-5);
}

Test(nn_conv, output_lengths) {
    cr_assert_eq(tal_conv_out_len(9, 3, 2, 1), 5);
    cr_assert_eq(tal_conv_out_len(8, 4, 4, 0), 2);
    cr_assert_eq(tal_conv_out_len(2, 5, 1, 0), 0);
}

Test(nn_conv, conv1d_one_and_two_threads_agree) {
    int64_t B = 3, C = 64, T = 200;
    tal_tensor x = test_tensor(3, (int64_t[]){B, C, T}), w = test_tensor(3, (int64_t[]){C, 1, 3});
    tal_tensor wd = test_tensor(3, (int64_t[]){C, C, 3}), dy = test_tensor(3, (int64_t[]){B, C, T});
    test_fill_uniform(x, 1);
    test_fill_uniform(w, 2);
    test_fill_uniform(wd, 3);
    test_fill_uniform(dy, 4);
    tal_arena *scratch = test_arena(1 << 22);
    tal_tensor y[2][2], dx[2][2], dw[2][2];
    for (int t = 0; t < 2; t++) {
        tal_threads_set(t + 1);
        for (int dense = 0; dense < 2; dense++) {
            tal_tensor ww = dense ? wd : w;
            tal_conv1d_geom g = {1, 1, dense ? 1 : (int)C};
            y[t][dense] = test_tensor_like(dy), dx[t][dense] = test_tensor_like(x);
            dw[t][dense] = test_tensor_like(ww);
            tal_conv1d_forward(y[t][dense], x, ww, tal_tensor_none(), tal_tensor_none(), g, scratch);
            tal_conv1d_backward(dx[t][dense], dw[t][dense], tal_tensor_none(), dy, x, ww,
                                tal_tensor_none(), g, scratch);
        }
    }
    /* The threads sum in other orders (through OpenBLAS, y differed by 9.5e-6 against the
     * fixed 1e-6 + 1e-5 * |y| once). Products per element: y and dx C*3 (dense) or 3
     * (depthwise), dw B*T. */
    for (int dense = 0; dense < 2; dense++) {
        double atol_in = test_reorder_atol(dense ? C * 3 : 3);
        expect_close(y[1][dense], y[0][dense], atol_in, 0);
        expect_close(dx[1][dense], dx[0][dense], atol_in, 0);
        expect_close(dw[1][dense], dw[0][dense], test_reorder_atol(B * T), 0);
    }
    tal_threads_set(1);
    tal_arena_destroy(scratch);
}

Test(nn_conv, conv3d_one_and_two_threads_agree) {
    int64_t B = 2, Ci = 8, Co = 16, T = 4, H = 12, W = 12;
    tal_tensor x = test_tensor(5, (int64_t[]){B, Ci, T, H, W});
    tal_tensor w = test_tensor(5, (int64_t[]){Co, Ci, 3, 3, 3}), b = test_tensor(1, &Co);
    tal_tensor wp = test_tensor(5, (int64_t[]){Co, Ci, 2, 4, 4});
    tal_tensor dy = test_tensor(5, (int64_t[]){B, Co, T, H, W});
    tal_tensor dyp = test_tensor(5, (int64_t[]){B, Co, T / 2, H / 4, W / 4});
    test_fill_uniform(x, 1);
    test_fill_uniform(w, 2);
    test_fill_uniform(b, 3);
    test_fill_uniform(wp, 4);
    test_fill_uniform(dy, 5);
    test_fill_uniform(dyp, 6);
    tal_conv3d_geom g = {{1, 1, 1}, {1, 1, 1}};
    tal_arena *scratch = test_arena(1 << 24);
    tal_tensor y[2], dx[2], dw[2], db[2], yp[2], dxp[2], dwp[2];
    for (int t = 0; t < 2; t++) {
        tal_threads_set(t + 1);
        y[t] = test_tensor_like(dy), dx[t] = test_tensor_like(x), dw[t] = test_tensor_like(w);
        db[t] = test_tensor_like(b), yp[t] = test_tensor_like(dyp), dxp[t] = test_tensor_like(x);
        dwp[t] = test_tensor_like(wp);
        tal_conv3d_forward(y[t], x, w, b, g, scratch);
        tal_conv3d_backward(dx[t], dw[t], db[t], dy, x, w, g, scratch);
        tal_patch_conv3d_forward(yp[t], x, wp, b);
        tal_patch_conv3d_backward(dxp[t], dwp[t], tal_tensor_none(), dyp, x, wp);
    }
    /* The threads sum in other orders. Terms per output: conv y Ci*27 + bias, dx Co*27, dW and
     * db B*T*H*W; patch y Ci*2*4*4 + bias, dx Co, dW B*(T/2)*(H/4)*(W/4). (At 1e-5 + 1e-5 * |y|,
     * conv y passed here by luck: the same 216-term sums differ by 1.3e-5 in
     * test_nn_conv_cases.) */
    const int64_t positions = B * T * H * W;
    expect_close(y[1], y[0], test_reorder_atol(Ci * 27 + 1), 0);
    expect_close(dx[1], dx[0], test_reorder_atol(Co * 27), 0);
    expect_close(dw[1], dw[0], test_reorder_atol(positions), 0);
    expect_close(db[1], db[0], test_reorder_atol(positions), 0);
    expect_close(yp[1], yp[0], test_reorder_atol(Ci * 2 * 4 * 4 + 1), 0);
    expect_close(dxp[1], dxp[0], test_reorder_atol(Co), 0);
    expect_close(dwp[1], dwp[0], test_reorder_atol(positions / 32), 0);
    tal_threads_set(1);
    tal_arena_destroy(scratch);
}

/* ------------------------------------------------------------------ pooling, interpolation */
typedef struct simple_ctx {
    tal_tensor y, x, dy, argmax;
    int which; /* 0 maxpool, 1 mean_hw, 2 interp */
} simple_ctx;

static void simple_forward(simple_ctx *s) {
    if (s->which == 0) tal_maxpool1d_forward(s->y, s->argmax, s->x, 3, 2, 1);
    if (s->which == 1) tal_mean_hw_forward(s->y, s->x);
    if (s->which == 2) tal_interp1d_forward(s->y, s->x);
}

static double simple_loss(void *p) {
    simple_ctx *s = p;
    simple_forward(s);
    return test_dot(s->y, s->dy);
}

static void check_simple(const char *name, int which) {
    fixture fx;
    fixture_load(&fx, name);
    simple_ctx s = {test_tensor_like(fixture_get(&fx, "y")), fx_clone(&fx, "x"),
                    fixture_get(&fx, "dy"), tal_tensor_none(), which};
    if (which == 0) s.argmax = test_tensor_like(s.y);
    simple_forward(&s);
    expect_close(s.y, fixture_get(&fx, "y"), 1e-6, 1e-5);
    tal_tensor dx = test_tensor_like(s.x);
    tal_fill(dx, 9.0f); /* written, not accumulated */
    if (which == 0) tal_maxpool1d_backward(dx, s.dy, s.argmax);
    if (which == 1) tal_mean_hw_backward(dx, s.dy);
    if (which == 2) tal_interp1d_backward(dx, s.dy);
    expect_close(dx, fixture_get(&fx, "dx"), 1e-5, 1e-4);
    /* max-pool: inputs are >= 0.1 apart, so h = 1e-2 never changes which one wins */
    fd_check(dx, s.x, simple_loss, &s);
    fixture_free(&fx);
}

Test(nn_conv, maxpool1d_k3_s2_p1) { check_simple("nn_maxpool1d", 0); }
Test(nn_conv, mean_over_hw) { check_simple("nn_mean_hw", 1); }
Test(nn_conv, interp_down_by_two) { check_simple("nn_interp_down", 2); }
Test(nn_conv, interp_up_non_integer) { check_simple("nn_interp_up", 2); }
Test(nn_conv, interp_down_non_integer) { check_simple("nn_interp_frac", 2); }
Test(nn_conv, interp_384_to_192) { check_simple("nn_interp_384_192", 2); }
Test(nn_conv, interp_100_to_192) { check_simple("nn_interp_100_192", 2); }

Test(nn_conv, maxpool_all_padding_window_is_never_chosen) {
    float x[3] = {-5.0f, -7.0f, -9.0f}, y[2], am[2];
    /* k 3, s 2, p 1 on T 3: windows {pad, 0, 1} and {1, 2, pad}; -inf padding never wins */
    tal_maxpool1d_forward(tal_t3(y, 1, 1, 2), tal_t3(am, 1, 1, 2), tal_t3(x, 1, 1, 3), 3, 2, 1);
    cr_assert(y[0] == -5.0f && y[1] == -7.0f && am[0] == 0.0f && am[1] == 1.0f);
}
