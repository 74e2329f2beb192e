/* tal_gemm, tal_bmm and linear: against PyTorch float64 references (tests/fixtures_nn_dense.py),
 * a plain double-precision product, and finite differences; the thread split (rows, columns,
 * batches) must give what one thread gives.
 * Tolerances: forward atol 1e-6 + rtol 1e-5 (float32 sums of <= 12 O(1) products: rounding
 * ~1e-7); gradients atol 1e-5 + rtol 1e-4 (sums over up to 30 terms that partly cancel, so an
 * entry near zero needs an absolute floor of ~100 ulps of the O(1) terms). Large products
 * (K up to 300) against the double reference: atol 1e-4 + rtol 1e-4 (K * 6e-8 * |terms|). */
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
TestSuite(nn_gemm, .fini = cleanup);

static tal_tensor clone_of(const fixture *fx, const char *name) {
    return test_clone(fixture_get(fx, name));
}

static tal_tensor rand_tensor(int ndim, const int64_t *shape, uint64_t seed) {
    tal_tensor t = test_tensor(ndim, shape);
    test_fill_uniform(t, seed);
    return t;
}

/* C = alpha op(A) op(B) + beta C in double, for checking tal_gemm. */
static void gemm_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, double beta,
                     float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) *
                     (double)(tb ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = (float)(alpha * s + beta * C[i * ldc + j]);
        }
}

/* One product with padded leading dimensions (lda, ldb, ldc wider than the matrices) checked
 * against the reference at the given thread count; the padding must stay untouched. */
static void check_gemm(int threads, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                       float beta) {
    tal_threads_set(threads);
    int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int64_t lda = ac + 3, ldb = bc + 1, ldc = N + 2;
    tal_tensor a = rand_tensor(2, (int64_t[]){ar ? ar : 1, lda}, 1);
    tal_tensor b = rand_tensor(2, (int64_t[]){br ? br : 1, ldb}, 2);
    tal_tensor c = rand_tensor(2, (int64_t[]){M ? M : 1, ldc}, 3);
    tal_tensor want = test_clone(c);
    gemm_ref(ta, tb, M, N, K, alpha, a.data, lda, b.data, ldb, beta, want.data, ldc);
    tal_gemm(ta, tb, M, N, K, alpha, a.data, lda, b.data, ldb, beta, c.data, ldc);
    cr_assert(tal_threads_get() == threads);
    expect_close(c, want, 1e-4, 1e-4);
}

Test(nn_gemm, all_transposes_strided_one_and_two_threads) {
    for (int threads = 1; threads <= 2; threads++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                check_gemm(threads, ta, tb, 7, 5, 3, 1.0f, 0.0f);        /* small: no split */
                check_gemm(threads, ta, tb, 301, 67, 40, 0.5f, 1.0f);    /* rows split */
                check_gemm(threads, ta, tb, 3, 900, 200, -1.0f, 0.25f);  /* columns split */
            }
}

/* Shapes around the vector widths and blocks of the GEMM kernels (rows not a multiple of 6 or
 * 8, columns around 16 and 32), the window attention's 392 x 392 x 32 and 392 x 32 x 392, short
 * sums, and a long sum with a small C (a window group's weight gradients). */
Test(nn_gemm, thin_product_edges) {
    static const int64_t shapes[][3] = {{24, 1, 16},  {25, 15, 17},  {29, 16, 40}, {30, 17, 33},
                                        {31, 31, 64}, {35, 33, 100}, {41, 96, 96}, {47, 130, 20},
                                        {392, 392, 32}, {392, 32, 392}, {60, 512, 24},
                                        {40, 128, 600}, {96, 384, 200}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                check_gemm(1, ta, tb, shapes[i][0], shapes[i][1], shapes[i][2], 1.0f, 0.0f);
                check_gemm(2, ta, tb, shapes[i][0], shapes[i][1], shapes[i][2], -0.5f, 0.75f);
            }
    /* beta = 0 ignores what C held, NaN included (BLAS semantics) */
    tal_threads_set(1);
    tal_tensor a = rand_tensor(2, (int64_t[]){30, 20}, 4), b = rand_tensor(2, (int64_t[]){20, 40}, 5);
    tal_tensor c = test_tensor(2, (int64_t[]){30, 40});
    for (int64_t j = 0; j < 30 * 40; j++) c.data[j] = NAN;
    tal_gemm(0, 0, 30, 40, 20, 1.0f, a.data, 20, b.data, 40, 0.0f, c.data, 40);
    for (int64_t j = 0; j < 30 * 40; j++) cr_assert(isfinite(c.data[j]), "C[%lld] = NaN", (long long)j);
}

Test(nn_gemm, three_threads_uneven_rows) {
    check_gemm(3, 0, 1, 101, 96, 64, 1.0f, 0.0f);
    check_gemm(3, 1, 0, 96, 64, 301, 1.0f, 1.0f); /* a dW-like product: K = rows */
}

Test(nn_gemm, empty_sum_applies_beta_and_empty_outputs_are_no_ops) {
    tal_threads_set(2);
    float c[6] = {1, 2, 3, 4, 5, 6}, a[1] = {7}, b[1] = {8};
    tal_gemm(0, 0, 2, 3, 0, 1.0f, a, 1, b, 3, 0.5f, c, 3); /* K = 0: C = beta C */
    for (int i = 0; i < 6; i++) cr_assert_float_eq(c[i], 0.5f * (float)(i + 1), 0);
    c[4] = NAN;
    tal_gemm(0, 0, 2, 3, 0, 1.0f, a, 1, b, 3, 0.0f, c, 3); /* beta 0 clears, even NaN */
    for (int i = 0; i < 6; i++) cr_assert(c[i] == 0.0f);
    c[0] = 9;
    tal_gemm(0, 0, 0, 3, 4, 1.0f, NULL, 4, b, 3, 0.0f, NULL, 3); /* M = 0 */
    tal_gemm(0, 0, 2, 0, 4, 1.0f, a, 4, NULL, 1, 0.0f, c, 1);    /* N = 0 */
    cr_assert(c[0] == 9.0f);
}

/* ------------------------------------------------------------------ bmm */
Test(nn_gemm, bmm_all_transposes_match_torch) {
    fixture fx, ft;
    fixture_load(&fx, "nn_dense_bmm");
    fixture_load(&ft, "nn_dense_bmm_t");
    tal_tensor a = fixture_get(&fx, "a"), b = fixture_get(&fx, "b");
    tal_tensor at = fixture_get(&ft, "at"), bt = fixture_get(&ft, "bt");
    tal_tensor want = fixture_get(&fx, "y");
    for (int threads = 1; threads <= 4; threads *= 2) { /* 4 > 3 batches: rows split */
        tal_threads_set(threads);
        for (int form = 0; form < 4; form++) {
            int ta = form & 1, tb = form >> 1;
            tal_tensor c = test_tensor_like(want);
            tal_bmm(c, ta ? at : a, tb ? bt : b, ta, tb, 1.0f, 0.0f);
            expect_close(c, want, FWD_ATOL, FWD_RTOL);
        }
    }
    /* gradients as products: da = dy b^T, db = a^T dy */
    tal_tensor dy = fixture_get(&fx, "dy"), da = test_tensor_like(a), db = test_tensor_like(b);
    tal_bmm(da, dy, b, 0, 1, 1.0f, 0.0f);
    tal_bmm(db, a, dy, 1, 0, 1.0f, 0.0f);
    expect_close(da, fixture_get(&fx, "da"), BWD_ATOL, BWD_RTOL);
    expect_close(db, fixture_get(&fx, "db"), BWD_ATOL, BWD_RTOL);
    /* alpha, beta, and a 2-D call on one batch item */
    tal_tensor c = test_clone(want);
    tal_bmm(c, a, b, 0, 0, 2.0f, -1.0f); /* 2 y - y = y */
    expect_close(c, want, FWD_ATOL, FWD_RTOL);
    tal_tensor c2 = test_tensor(2, (int64_t[]){4, 6});
    tal_bmm(c2, tal_t2(a.data + 20, 4, 5), tal_t2(b.data + 30, 5, 6), 0, 0, 1.0f, 0.0f);
    expect_close(c2, tal_t2(want.data + 24, 4, 6), FWD_ATOL, FWD_RTOL);
    fixture_free(&fx);
    fixture_free(&ft);
}

Test(nn_gemm, bmm_many_windows_threads_agree) {
    int64_t nb = 37, n = 49, d = 32; /* Swin-like: window logits q k^T */
    tal_tensor q = rand_tensor(3, (int64_t[]){nb, n, d}, 4), k = rand_tensor(3, (int64_t[]){nb, n, d}, 5);
    tal_tensor c1 = test_tensor(3, (int64_t[]){nb, n, n}), c2 = test_tensor_like(c1);
    tal_tensor want = test_tensor_like(c1);
    for (int64_t i = 0; i < nb; i++)
        gemm_ref(0, 1, n, n, d, 1.0, q.data + i * n * d, d, k.data + i * n * d, d, 0.0,
                 want.data + i * n * n, n);
    tal_threads_set(1);
    tal_bmm(c1, q, k, 0, 1, 1.0f, 0.0f);
    tal_threads_set(2);
    tal_bmm(c2, q, k, 0, 1, 1.0f, 0.0f);
    expect_close(c1, want, 1e-5, 1e-4);
    expect_close(c2, c1, 0, 0); /* whole products per thread: bit-identical */
}

/* ------------------------------------------------------------------ linear */
typedef struct lin_ctx {
    tal_tensor y, x, w, b, dy;
} lin_ctx;

static double lin_loss(void *c) {
    lin_ctx *l = c;
    tal_linear_forward(l->y, l->x, l->w, l->b);
    return test_dot(l->y, l->dy);
}

/* Finite differences of sum(dy * y), h = 1e-2: y is linear in each input, so there is no
 * truncation error and only float rounding of y (~6e-8 |y| per term, summed in double over
 * <= 30 outputs, / 2h) remains: ~1e-5. atol 1e-4, rtol 1e-3. */
static void fd_expect(const char *what, tal_tensor analytic, tal_tensor x, lin_ctx *l) {
    tal_tensor num = test_tensor_like(x);
    test_numeric_grad(num, x, lin_loss, l, 1e-2);
    expect_close_impl(what, analytic, num, 1e-4, 1e-3, __FILE__, __LINE__);
}

static void check_linear(const char *name, int with_bias) {
    fixture fx;
    fixture_load(&fx, name);
    lin_ctx l = {test_tensor_like(fixture_get(&fx, "y")), clone_of(&fx, "x"), clone_of(&fx, "w"),
                 with_bias ? clone_of(&fx, "b") : tal_tensor_none(), fixture_get(&fx, "dy")};
    tal_linear_forward(l.y, l.x, l.w, l.b);
    expect_close(l.y, fixture_get(&fx, "y"), FWD_ATOL, FWD_RTOL);
    tal_tensor dx = test_tensor_like(l.x), dw = test_tensor_like(l.w);
    tal_tensor db = with_bias ? test_tensor_like(l.b) : tal_tensor_none();
    tal_fill(dx, NAN); /* dx is written, not accumulated */
    tal_linear_backward(dx, dw, db, l.dy, l.x, l.w);
    expect_close(dx, fixture_get(&fx, "dx"), BWD_ATOL, BWD_RTOL);
    expect_close(dw, fixture_get(&fx, "dw"), BWD_ATOL, BWD_RTOL);
    if (with_bias) expect_close(db, fixture_get(&fx, "db"), BWD_ATOL, BWD_RTOL);
    fd_expect("dx vs finite differences", dx, l.x, &l);
    fd_expect("dw vs finite differences", dw, l.w, &l);
    if (with_bias) fd_expect("db vs finite differences", db, l.b, &l);
    /* dw, db accumulate: a second backward doubles them */
    tal_linear_backward(tal_tensor_none(), dw, db, l.dy, l.x, l.w);
    tal_tensor dw2 = test_clone(fixture_get(&fx, "dw"));
    tal_scale(dw2, dw2, 2.0f);
    expect_close(dw, dw2, BWD_ATOL, BWD_RTOL);
    if (with_bias) {
        tal_tensor db2 = test_clone(fixture_get(&fx, "db"));
        tal_scale(db2, db2, 2.0f);
        expect_close(db, db2, BWD_ATOL, BWD_RTOL);
    }
    fixture_free(&fx);
}

Test(nn_gemm, linear_3d_input_with_bias) { check_linear("nn_dense_linear", 1); }
Test(nn_gemm, linear_without_bias) { check_linear("nn_dense_linear_nobias", 0); }
Test(nn_gemm, linear_single_row) { check_linear("nn_dense_linear_row", 1); }

Test(nn_gemm, linear_backward_skips_absent_outputs) {
    fixture fx;
    fixture_load(&fx, "nn_dense_linear");
    tal_tensor x = fixture_get(&fx, "x"), w = fixture_get(&fx, "w"), dy = fixture_get(&fx, "dy");
    tal_tensor db = test_tensor_like(fixture_get(&fx, "b"));
    tal_linear_backward(tal_tensor_none(), tal_tensor_none(), db, dy, x, w); /* only db */
    expect_close(db, fixture_get(&fx, "db"), BWD_ATOL, BWD_RTOL);
    tal_tensor dx = test_tensor_like(x);
    tal_linear_backward(dx, tal_tensor_none(), tal_tensor_none(), dy, x, w); /* only dx */
    expect_close(dx, fixture_get(&fx, "dx"), BWD_ATOL, BWD_RTOL);
    tal_tensor dw = test_tensor_like(w);
    tal_linear_backward(tal_tensor_none(), dw, tal_tensor_none(), dy, x, w); /* only dw */
    expect_close(dw, fixture_get(&fx, "dw"), BWD_ATOL, BWD_RTOL);
    fixture_free(&fx);
}

/* A layer against double references at 1, 2 and 3 threads; dW and db accumulate onto 0.5. */
static void check_linear_large(int64_t rows, int64_t cin, int64_t cout) {
    tal_tensor x = rand_tensor(2, (int64_t[]){rows, cin}, 10);
    tal_tensor w = rand_tensor(2, (int64_t[]){cout, cin}, 11);
    tal_tensor b = rand_tensor(1, &cout, 12), dy = rand_tensor(2, (int64_t[]){rows, cout}, 13);
    tal_tensor y_ref = test_tensor(2, (int64_t[]){rows, cout}), dx_ref = test_tensor_like(x);
    tal_tensor dw_ref = test_tensor_like(w), db_ref = test_tensor_like(b);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < cout; o++) y_ref.data[r * cout + o] = b.data[o];
    gemm_ref(0, 1, rows, cout, cin, 1, x.data, cin, w.data, cin, 1, y_ref.data, cout);
    gemm_ref(0, 0, rows, cin, cout, 1, dy.data, cout, w.data, cin, 0, dx_ref.data, cin);
    tal_fill(dw_ref, 0.5f);
    gemm_ref(1, 0, cout, cin, rows, 1, dy.data, cout, x.data, cin, 1, dw_ref.data, cin);
    for (int64_t o = 0; o < cout; o++) {
        double s = 0.5;
        for (int64_t r = 0; r < rows; r++) s += dy.data[r * cout + o];
        db_ref.data[o] = (float)s;
    }
    for (int threads = 1; threads <= 3; threads++) {
        tal_threads_set(threads);
        tal_tensor y = test_tensor_like(y_ref), dx = test_tensor_like(x);
        tal_tensor dw = test_tensor_like(w), db = test_tensor_like(b);
        tal_fill(dw, 0.5f);
        tal_fill(db, 0.5f);
        tal_linear_forward(y, x, w, b);
        tal_linear_backward(dx, dw, db, dy, x, w);
        expect_close(y, y_ref, 1e-5, 1e-4);
        expect_close(dx, dx_ref, 1e-5, 1e-4);
        expect_close(dw, dw_ref, 1e-3, 1e-4); /* K = rows */
        expect_close(db, db_ref, 1e-5, 1e-5);  /* double sums: rounding of the result only */
    }
}

/* Swin-T-like layer (rows not a multiple of the 256-row block, Cout past the 64-column db
 * block). */
Test(nn_gemm, linear_large_matches_reference_at_any_thread_count) {
    check_linear_large(600, 96, 150);
}

/* A narrowing layer (Cin > 128 >= Cout, like the MLP's fc2) over enough rows that dW goes as
 * dW^T = x^T dy and is added transposed (nn/linear.c, where the thin kernel runs). */
Test(nn_gemm, linear_narrowing_layer_weight_grad_matches_reference) {
    check_linear_large(1100, 200, 40);
}

Test(nn_gemm, linear_zero_rows) {
    tal_threads_set(2);
    int64_t cin = 4, cout = 3;
    tal_tensor x = tal_t2(NULL, 0, cin), y = tal_t2(NULL, 0, cout), dy = tal_t2(NULL, 0, cout);
    tal_tensor w = rand_tensor(2, (int64_t[]){cout, cin}, 20), b = rand_tensor(1, &cout, 21);
    tal_tensor dw = test_tensor_like(w), db = test_tensor_like(b);
    tal_fill(dw, 1.0f);
    tal_fill(db, 2.0f);
    tal_linear_forward(y, x, w, b);
    tal_linear_backward(tal_t2(NULL, 0, cin), dw, db, dy, x, w); /* sums over no rows */
    for (int i = 0; i < cout * cin; i++) cr_assert(dw.data[i] == 1.0f);
    for (int i = 0; i < cout; i++) cr_assert(db.data[i] == 2.0f);
}

Test(nn_gemm, linear_wrong_weight_shape_is_a_bug, .signal = SIGABRT) {
    tal_tensor x = test_tensor(2, (int64_t[]){3, 4}), w = test_tensor(2, (int64_t[]){2, 5});
    tal_tensor y = test_tensor(2, (int64_t[]){3, 2});
    tal_linear_forward(y, x, w, tal_tensor_none());
}

Test(nn_gemm, bmm_mismatched_inner_dim_is_a_bug, .signal = SIGABRT) {
    tal_tensor a = test_tensor(3, (int64_t[]){2, 3, 4}), b = test_tensor(3, (int64_t[]){2, 5, 6});
    tal_tensor c = test_tensor(3, (int64_t[]){2, 3, 6});
    tal_bmm(c, a, b, 0, 0, 1.0f, 0.0f);
}
