/* conv3d and conv1d on the geometries the models use, against PyTorch float32 (fixture file
 * nn_cases_conv3d / nn_cases_conv1d from tests/fixtures_nn_conv.py): patch 2x4x4 with bias on a
 * non-square input, ResNet3D 3x3x3 / 1x3x3 / 3x1x1 / 1x1x1 kernels with stride 1 or 2 per axis, the
 * 1x7x7 stride-2 stem; conv1d dense + mask, groups 2 + stride 2, depthwise + mask, depthwise with
 * channel multiplier, k = 1. Each: forward, backward (loss sum(wy * y)), finite differences, and
 * the scratch arena handed back as it was. */
#include "testlib.h"

#include <math.h>
#include <signal.h>
#include <string.h>

static void cleanup(void) { test_free_all(); }
TestSuite(nn_conv_cases, .fini = cleanup);

/* Both sides are float32 sums of up to 147 O(1) products (stem: 3 x 7 x 7), so an output near 0
 * carries ~1e-6 absolute rounding: atol 2e-5 + rtol 1e-5 forward. Gradients sum up to a few
 * hundred such products: atol 1e-4 + rtol 1e-4. */
#define FWD_ATOL 2e-5
#define FWD_RTOL 1e-5
#define BWD_ATOL 1e-4
#define BWD_RTOL 1e-4

typedef struct conv_case {
    int dims;                /* 3 or 1 */
    int patch;               /* conv3d with stride = kernel through the patch path */
    tal_tensor x, w, b, mask, y, wy;
    tal_conv3d_geom g3;
    tal_conv1d_geom g1;
    tal_arena *scratch;
} conv_case;

static tal_tensor get(const fixture *fx, const char *pre, const char *what) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", pre, what);
    return fixture_get(fx, name);
}

static int has(const fixture *fx, const char *pre, const char *what) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", pre, what);
    return fixture_has(fx, name);
}

static tal_arena *new_arena(size_t bytes) {
    tal_arena *a = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CPU, bytes, &err), TAL_OK, "%s", err.msg);
    return a;
}

static conv_case load_case(const fixture *fx, const char *pre, int dims, int patch) {
    conv_case c = {0};
    c.dims = dims;
    c.patch = patch;
    c.x = test_clone(get(fx, pre, "x"));
    c.w = test_clone(get(fx, pre, "w"));
    c.b = has(fx, pre, "b") ? test_clone(get(fx, pre, "b")) : tal_tensor_none();
    c.mask = has(fx, pre, "mask") ? get(fx, pre, "mask") : tal_tensor_none();
    c.wy = get(fx, pre, "wy");
    c.y = test_tensor_like(c.wy);
    if (dims == 3 && !patch) {
        tal_tensor g = get(fx, pre, "geom");
        for (int i = 0; i < 3; i++) {
            c.g3.stride[i] = (int)g.data[i];
            c.g3.padding[i] = (int)g.data[3 + i];
        }
    }
    if (dims == 1) {
        tal_tensor g = get(fx, pre, "geom");
        c.g1 = (tal_conv1d_geom){(int)g.data[0], (int)g.data[1], (int)g.data[2]};
    }
    c.scratch = new_arena(4 << 20);
    return c;
}

static void forward(conv_case *c) {
    size_t used = tal_arena_used(c->scratch);
    if (c->patch)
        tal_patch_conv3d_forward(c->y, c->x, c->w, c->b);
    else if (c->dims == 3)
        tal_conv3d_forward(c->y, c->x, c->w, c->b, c->g3, c->scratch);
    else
        tal_conv1d_forward(c->y, c->x, c->w, c->b, c->mask, c->g1, c->scratch);
    cr_assert_eq(tal_arena_used(c->scratch), used, "forward must release its scratch");
}

static void backward(conv_case *c, tal_tensor dx, tal_tensor dw, tal_tensor db) {
    size_t used = tal_arena_used(c->scratch);
    if (c->patch)
        tal_patch_conv3d_backward(dx, dw, db, c->wy, c->x, c->w);
    else if (c->dims == 3)
        tal_conv3d_backward(dx, dw, db, c->wy, c->x, c->w, c->g3, c->scratch);
    else
        tal_conv1d_backward(dx, dw, db, c->wy, c->x, c->w, c->mask, c->g1, c->scratch);
    cr_assert_eq(tal_arena_used(c->scratch), used, "backward must release its scratch");
}

static double loss(void *ctx) {
    conv_case *c = ctx;
    forward(c);
    return test_dot(c->y, c->wy);
}

/* fd: also check dx and dw by central differences (the conv is linear in each, so the only
 * error is float rounding of y, ~1e-6 * sum|wy y| / h). */
static void check(const char *file, const char *pre, int dims, int patch, int fd) {
    fixture fx;
    fixture_load(&fx, file);
    conv_case c = load_case(&fx, pre, dims, patch);
    forward(&c);
    expect_close(c.y, get(&fx, pre, "y"), FWD_ATOL, FWD_RTOL);

    /* dx is written (garbage before must vanish), dw and db accumulate onto what is there */
    tal_tensor dx = test_tensor_like(c.x), dw = test_tensor_like(c.w);
    tal_fill(dx, 123.0f);
    tal_fill(dw, 0.5f);
    tal_tensor db = tal_tensor_none();
    if (c.b.data) {
        db = test_tensor_like(c.b);
        tal_fill(db, -0.25f);
    }
    backward(&c, dx, dw, db);
    expect_close(dx, get(&fx, pre, "dx"), BWD_ATOL, BWD_RTOL);
    tal_tensor want_dw = test_clone(get(&fx, pre, "dw"));
    for (int64_t i = 0; i < tal_tensor_numel(want_dw); i++) want_dw.data[i] += 0.5f;
    expect_close(dw, want_dw, BWD_ATOL, BWD_RTOL);
    if (c.b.data) {
        tal_tensor want_db = test_clone(get(&fx, pre, "db"));
        for (int64_t i = 0; i < tal_tensor_numel(want_db); i++) want_db.data[i] -= 0.25f;
        expect_close(db, want_db, BWD_ATOL, BWD_RTOL);
    }

    /* each gradient alone (the others skipped) gives the same numbers */
    tal_tensor dx1 = test_tensor_like(c.x), dw1 = test_tensor_like(c.w);
    backward(&c, dx1, tal_tensor_none(), tal_tensor_none());
    expect_close(dx1, dx, 0, 0);
    backward(&c, tal_tensor_none(), dw1, tal_tensor_none());
    expect_close(dw1, get(&fx, pre, "dw"), BWD_ATOL, BWD_RTOL);

    if (fd) {
        tal_tensor num = test_tensor_like(c.x);
        test_numeric_grad(num, c.x, loss, &c, 1e-2);
        expect_close(dx, num, 2e-3, 1e-3);
        num = test_tensor_like(c.w);
        test_numeric_grad(num, c.w, loss, &c, 1e-2);
        expect_close(dw1, num, 2e-3, 1e-3);
    }
    tal_arena_destroy(c.scratch);
    fixture_free(&fx);
}

Test(nn_conv_cases, patch_2x4x4_with_bias) { check("nn_cases_conv3d", "patch", 3, 1, 1); }
Test(nn_conv_cases, conv3d_3x3x3_stride_122_pad_1) { check("nn_cases_conv3d", "k333", 3, 0, 0); }
Test(nn_conv_cases, conv3d_1x3x3_stride_121_pad_011) { check("nn_cases_conv3d", "k133", 3, 0, 1); }
Test(nn_conv_cases, conv3d_3x1x1_stride_2_pad_100) { check("nn_cases_conv3d", "k311", 3, 0, 1); }
Test(nn_conv_cases, conv3d_1x1x1_stride_122) { check("nn_cases_conv3d", "k111", 3, 0, 1); }
Test(nn_conv_cases, conv3d_stem_1x7x7_stride_2_pad_3) { check("nn_cases_conv3d", "stem", 3, 0, 0); }
Test(nn_conv_cases, conv1d_dense_with_mask) { check("nn_cases_conv1d", "dense", 1, 0, 1); }
Test(nn_conv_cases, conv1d_groups_2_stride_2) { check("nn_cases_conv1d", "stride2", 1, 0, 1); }
Test(nn_conv_cases, conv1d_depthwise_with_mask) { check("nn_cases_conv1d", "depthwise", 1, 0, 1); }
Test(nn_conv_cases, conv1d_depthwise_multiplier_2) { check("nn_cases_conv1d", "dw_mult", 1, 0, 1); }
Test(nn_conv_cases, conv1d_kernel_1_with_mask) { check("nn_cases_conv1d", "k1", 1, 0, 1); }
Test(nn_conv_cases, conv1d_kernel_1_groups_2) { check("nn_cases_conv1d", "k1g2", 1, 0, 1); }

/* The patch path and the general im2col path agree when stride = kernel and padding = 0. */
Test(nn_conv_cases, patch_equals_general_conv3d) {
    fixture fx;
    fixture_load(&fx, "nn_cases_conv3d");
    conv_case c = load_case(&fx, "patch", 3, 1);
    c.patch = 0;
    c.g3 = (tal_conv3d_geom){{2, 4, 4}, {0, 0, 0}};
    forward(&c);
    expect_close(c.y, get(&fx, "patch", "y"), FWD_ATOL, FWD_RTOL);
    tal_tensor dx = test_tensor_like(c.x), dw = test_tensor_like(c.w), db = test_tensor_like(c.b);
    backward(&c, dx, dw, db);
    expect_close(dx, get(&fx, "patch", "dx"), BWD_ATOL, BWD_RTOL);
    expect_close(dw, get(&fx, "patch", "dw"), BWD_ATOL, BWD_RTOL);
    expect_close(db, get(&fx, "patch", "db"), BWD_ATOL, BWD_RTOL);
    tal_arena_destroy(c.scratch);
    fixture_free(&fx);
}

/* A planner counts what forward and backward take; an arena of exactly that size suffices. */
Test(nn_conv_cases, planner_sizes_the_scratch_exactly) {
    fixture fx;
    fixture_load(&fx, "nn_cases_conv3d");
    conv_case c = load_case(&fx, "stem", 3, 0);
    tal_arena *plan = tal_arena_create_planner();
    tal_tensor ny = tal_tensor_of(NULL, c.y.ndim, c.y.shape);
    tal_conv3d_forward(ny, c.x, c.w, c.b, c.g3, plan);
    tal_conv3d_backward(c.x, c.w, tal_tensor_none(), c.wy, c.x, c.w, c.g3, plan);
    size_t need = tal_arena_high_water(plan);
    cr_assert_gt(need, 0);
    cr_assert_eq(tal_arena_used(plan), 0);
    tal_arena_destroy(plan);
    tal_arena_destroy(c.scratch);
    c.scratch = new_arena(need);
    forward(&c);
    expect_close(c.y, get(&fx, "stem", "y"), FWD_ATOL, FWD_RTOL);
    tal_tensor dx = test_tensor_like(c.x);
    backward(&c, dx, tal_tensor_none(), tal_tensor_none());
    expect_close(dx, get(&fx, "stem", "dx"), BWD_ATOL, BWD_RTOL);
    tal_arena_destroy(c.scratch);
    fixture_free(&fx);

    fixture_load(&fx, "nn_cases_conv1d");
    c = load_case(&fx, "dense", 1, 0);
    plan = tal_arena_create_planner();
    ny = tal_tensor_of(NULL, c.y.ndim, c.y.shape);
    tal_conv1d_forward(ny, c.x, c.w, c.b, c.mask, c.g1, plan);
    tal_conv1d_backward(c.x, c.w, c.b, c.wy, c.x, c.w, c.mask, c.g1, plan);
    need = tal_arena_high_water(plan);
    tal_arena_destroy(plan);
    tal_arena_destroy(c.scratch);
    c.scratch = new_arena(need);
    forward(&c);
    expect_close(c.y, get(&fx, "dense", "y"), FWD_ATOL, FWD_RTOL);
    dx = test_tensor_like(c.x);
    tal_tensor dw = test_tensor_like(c.w), db = test_tensor_like(c.b);
    backward(&c, dx, dw, db);
    expect_close(dx, get(&fx, "dense", "dx"), BWD_ATOL, BWD_RTOL);
    tal_arena_destroy(c.scratch);
    fixture_free(&fx);
}

/* Output lengths as PyTorch: floor((in + 2p - k) / s) + 1, and 0 when the kernel does not fit. */
Test(nn_conv_cases, out_len) {
    cr_assert_eq(tal_conv_out_len(7, 3, 2, 1), 4);
    cr_assert_eq(tal_conv_out_len(8, 3, 2, 1), 4);
    cr_assert_eq(tal_conv_out_len(9, 7, 2, 3), 5);
    cr_assert_eq(tal_conv_out_len(5, 1, 1, 0), 5);
    cr_assert_eq(tal_conv_out_len(2, 5, 1, 0), 0);
}

/* 1 and 2 threads give the same results (threads own disjoint outputs, no racy sums). */
static void threads_agree(const char *file, const char *pre, int dims, int patch) {
    fixture fx;
    fixture_load(&fx, file);
    tal_tensor out[2][3];
    for (int r = 0; r < 2; r++) {
        tal_threads_set(r + 1);
        conv_case c = load_case(&fx, pre, dims, patch);
        forward(&c);
        tal_tensor dx = test_tensor_like(c.x), dw = test_tensor_like(c.w);
        backward(&c, dx, dw, tal_tensor_none());
        out[r][0] = c.y, out[r][1] = dx, out[r][2] = dw;
        tal_arena_destroy(c.scratch);
    }
    tal_threads_set(1);
    for (int i = 0; i < 3; i++) expect_close(out[1][i], out[0][i], 1e-6, 1e-6);
    fixture_free(&fx);
}

Test(nn_conv_cases, threads_agree_patch) { threads_agree("nn_cases_conv3d", "patch", 3, 1); }

/* Sizes past the thresholds above which im2col and col2im run threaded (K * P > 65536). */
Test(nn_conv_cases, threads_agree_general_conv3d_and_conv1d) {
    tal_arena *scratch = new_arena(64 << 20);
    tal_conv3d_geom g = {{1, 2, 2}, {1, 1, 1}};
    tal_tensor x = test_tensor(5, (int64_t[]){2, 8, 6, 20, 20});
    tal_tensor w = test_tensor(5, (int64_t[]){16, 8, 3, 3, 3});
    tal_tensor dy = test_tensor(5, (int64_t[]){2, 16, 6, 10, 10});
    tal_tensor x1 = test_tensor(3, (int64_t[]){2, 64, 1200});
    tal_tensor w1 = test_tensor(3, (int64_t[]){64, 64, 3});
    tal_tensor dy1 = test_tensor(3, (int64_t[]){2, 64, 1200});
    test_fill_uniform(x, 1);
    test_fill_uniform(w, 2);
    test_fill_uniform(dy, 3);
    test_fill_uniform(x1, 4);
    test_fill_uniform(w1, 5);
    test_fill_uniform(dy1, 6);
    tal_conv1d_geom g1 = {1, 1, 1};
    tal_tensor out[2][6];
    for (int r = 0; r < 2; r++) {
        tal_threads_set(r + 1);
        out[r][0] = test_tensor_like(dy);
        out[r][1] = test_tensor_like(x);
        out[r][2] = test_tensor_like(w);
        tal_conv3d_forward(out[r][0], x, w, tal_tensor_none(), g, scratch);
        tal_conv3d_backward(out[r][1], out[r][2], tal_tensor_none(), dy, x, w, g, scratch);
        out[r][3] = test_tensor_like(dy1);
        out[r][4] = test_tensor_like(x1);
        out[r][5] = test_tensor_like(w1);
        tal_conv1d_forward(out[r][3], x1, w1, tal_tensor_none(), tal_tensor_none(), g1, scratch);
        tal_conv1d_backward(out[r][4], out[r][5], tal_tensor_none(), dy1, x1, w1,
                            tal_tensor_none(), g1, scratch);
    }
    tal_threads_set(1);
    /* The threads sum in other orders. Products per element: y Ci*27, dx Co*27, dw B*To*Ho*Wo;
     * conv1d C*3, C*3, B*T. Measured on AVX-512: dw differs by 2e-5 (its atol 5e-3). */
    const int64_t n_products[6] = {8 * 27, 16 * 27, 2 * 6 * 10 * 10, 64 * 3, 64 * 3, 2 * 1200};
    for (int i = 0; i < 6; i++)
        expect_close(out[1][i], out[0][i], test_reorder_atol(n_products[i]), 0);
    tal_arena_destroy(scratch);
}

/* 1x1x1 stride 1 multiplies the sample directly: right numbers and no scratch at all. */
Test(nn_conv_cases, conv3d_pointwise_needs_no_scratch) {
    check("nn_cases_conv3d", "pointwise", 3, 0, 1);
    fixture fx;
    fixture_load(&fx, "nn_cases_conv3d");
    conv_case c = load_case(&fx, "pointwise", 3, 0);
    tal_arena *plan = tal_arena_create_planner();
    tal_conv3d_forward(tal_tensor_of(NULL, 5, c.y.shape), c.x, c.w, c.b, c.g3, plan);
    tal_conv3d_backward(c.x, c.w, c.b, c.wy, c.x, c.w, c.g3, plan);
    cr_assert_eq(tal_arena_high_water(plan), 0);
    tal_arena_destroy(plan);
    tal_arena_destroy(c.scratch);
    fixture_free(&fx);
}

/* Caller bugs abort with the file, line and the shapes (TAL_ASSERT), never run on garbage. */
Test(nn_conv_cases, patch_input_not_a_multiple_of_the_kernel_aborts, .signal = SIGABRT) {
    float buf[3 * 2 * 6 * 6];
    float wb[4 * 3 * 2 * 4 * 4], yb[64];
    tal_patch_conv3d_forward(tal_t5(yb, 1, 4, 1, 1, 1), tal_t5(buf, 1, 3, 2, 6, 6),
                             tal_t5(wb, 4, 3, 2, 4, 4), tal_tensor_none());
}

Test(nn_conv_cases, conv3d_output_shape_disagreeing_with_geometry_aborts, .signal = SIGABRT) {
    tal_arena *a = new_arena(1 << 20);
    tal_tensor x = test_tensor(5, (int64_t[]){1, 2, 4, 6, 6});
    tal_tensor w = test_tensor(5, (int64_t[]){3, 2, 3, 3, 3});
    tal_tensor y = test_tensor(5, (int64_t[]){1, 3, 4, 6, 6}); /* stride 2 gives 4 x 3 x 3 */
    tal_conv3d_forward(y, x, w, tal_tensor_none(), (tal_conv3d_geom){{1, 2, 2}, {1, 1, 1}}, a);
}

Test(nn_conv_cases, conv1d_groups_not_dividing_channels_aborts, .signal = SIGABRT) {
    tal_arena *a = new_arena(1 << 20);
    tal_tensor x = test_tensor(3, (int64_t[]){1, 6, 10});
    tal_tensor w = test_tensor(3, (int64_t[]){4, 1, 3});
    tal_tensor y = test_tensor(3, (int64_t[]){1, 4, 10});
    tal_conv1d_forward(y, x, w, tal_tensor_none(), tal_tensor_none(), (tal_conv1d_geom){1, 1, 4},
                       a);
}

Test(nn_conv_cases, conv_without_scratch_aborts, .signal = SIGABRT) {
    tal_tensor x = test_tensor(3, (int64_t[]){1, 4, 10});
    tal_tensor w = test_tensor(3, (int64_t[]){4, 4, 3});
    tal_tensor y = test_tensor(3, (int64_t[]){1, 4, 10});
    tal_conv1d_forward(y, x, w, tal_tensor_none(), tal_tensor_none(), (tal_conv1d_geom){1, 1, 1},
                       NULL);
}

/* Clips big enough that im2col runs in several chunks of output positions (a chunk boundary
 * falls inside an output row), against a direct 7-loop convolution in double. */
static void check_chunked(const int64_t *xs, const int64_t *ws, tal_conv3d_geom g) {
    tal_tensor x = test_tensor(5, xs), w = test_tensor(5, ws), b = test_tensor(1, ws);
    int64_t ys[5] = {xs[0], ws[0], 0, 0, 0};
    for (int i = 0; i < 3; i++)
        ys[2 + i] = tal_conv_out_len(xs[2 + i], (int)ws[2 + i], g.stride[i], g.padding[i]);
    tal_tensor y = test_tensor(5, ys), dy = test_tensor(5, ys);
    test_fill_uniform(x, 11);
    test_fill_uniform(w, 12);
    test_fill_uniform(b, 13);
    test_fill_uniform(dy, 14);
    int64_t K = ws[1] * ws[2] * ws[3] * ws[4], P = ys[2] * ys[3] * ys[4];
    cr_assert_gt(K * P, 1 << 21, "the case must need more than one chunk");
    tal_tensor ry = test_tensor_like(y), rdx = test_tensor_like(x), rdw = test_tensor_like(w);
    for (int64_t bi = 0; bi < xs[0]; bi++)
        for (int64_t co = 0; co < ws[0]; co++)
            for (int64_t p = 0; p < P; p++) {
                int64_t t = p / (ys[3] * ys[4]), h = p / ys[4] % ys[3], wo = p % ys[4];
                int64_t yi = (bi * ws[0] + co) * P + p;
                double acc = b.data[co], gy = dy.data[yi];
                for (int64_t ci = 0; ci < ws[1]; ci++)
                    for (int64_t kt = 0; kt < ws[2]; kt++)
                        for (int64_t kh = 0; kh < ws[3]; kh++)
                            for (int64_t kw = 0; kw < ws[4]; kw++) {
                                int64_t st = t * g.stride[0] + kt - g.padding[0];
                                int64_t sh = h * g.stride[1] + kh - g.padding[1];
                                int64_t sw = wo * g.stride[2] + kw - g.padding[2];
                                if (st < 0 || st >= xs[2] || sh < 0 || sh >= xs[3] || sw < 0 ||
                                    sw >= xs[4])
                                    continue;
                                int64_t xi = (((bi * xs[1] + ci) * xs[2] + st) * xs[3] + sh) *
                                                 xs[4] + sw;
                                int64_t wi = (((co * ws[1] + ci) * ws[2] + kt) * ws[3] + kh) *
                                                 ws[4] + kw;
                                acc += (double)w.data[wi] * x.data[xi];
                                rdx.data[xi] += (float)(gy * w.data[wi]);
                                rdw.data[wi] += (float)(gy * x.data[xi]);
                            }
                ry.data[yi] = (float)acc;
            }
    tal_arena *a = new_arena(64 << 20);
    tal_conv3d_forward(y, x, w, b, g, a);
    /* sums of up to 216-540 products of values in [-1, 1): float error ~1e-5 */
    expect_close(y, ry, 1e-4, 1e-5);
    tal_tensor dx = test_tensor_like(x), dw = test_tensor_like(w);
    tal_conv3d_backward(dx, dw, tal_tensor_none(), dy, x, w, g, a);
    expect_close(dx, rdx, 1e-4, 1e-4);
    expect_close(dw, rdw, 2e-3, 1e-4); /* sums over B * P ~ 20000 products */
    cr_assert_eq(tal_arena_used(a), 0);
    tal_arena_destroy(a);
}

Test(nn_conv_cases, conv3d_in_chunks_3x3x3_pad_1) {
    check_chunked((int64_t[]){2, 8, 10, 32, 32}, (int64_t[]){16, 8, 3, 3, 3},
                  (tal_conv3d_geom){{1, 1, 1}, {1, 1, 1}});
}

Test(nn_conv_cases, conv3d_in_chunks_3x5x3_stride_212) {
    check_chunked((int64_t[]){1, 12, 9, 60, 40}, (int64_t[]){6, 12, 3, 5, 3},
                  (tal_conv3d_geom){{2, 1, 2}, {0, 2, 1}});
}
