/* Scaled dot-product attention with relative-position bias and shift masks (-100 and -inf):
 * against PyTorch float64 references (tests/fixtures_nn_dense.py), finite differences, and a
 * double-precision reference on Swin-sized windows (N 49, d 32, bias and per-window masks) at
 * several thread counts (the dbias sums split across threads; the rest bit-identical to one
 * thread); an all -inf row; planner == real scratch; Swin's packed qkv / token layouts give
 * the same bits as the head layout, masks picked per item included.
 * Tolerances: forward atol 1e-6 + rtol 1e-5 (softmax of O(1) logits, sums of <= 12 terms);
 * gradients atol 1e-5 + rtol 1e-4 (dS = P (dP - rowsum) cancels; ~100 ulps floor). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "testlib.h"

#define FWD_ATOL 1e-6
#define FWD_RTOL 1e-5
#define BWD_ATOL 1e-5
#define BWD_RTOL 1e-4

static void cleanup(void) {
    test_free_all();
    tal_threads_set(1);
}
TestSuite(nn_attn, .fini = cleanup);

static tal_arena *make_arena(size_t bytes) {
    tal_arena *a = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CPU, bytes ? bytes : 64, &err), TAL_OK, "%s",
                 err.msg);
    return a;
}

typedef struct attn_case {
    tal_tensor q, k, v, bias, mask, dout, out, probs;
    float scale;
} attn_case;

static double attn_loss(void *c) {
    attn_case *a = c;
    tal_attention_forward(a->out, a->probs, a->q, a->k, a->v, a->bias, a->mask, a->scale);
    return test_dot(a->out, a->dout);
}

/* Central differences of sum(dout * out), h = 1e-2: logits move by ~scale * h, so truncation
 * ~h^2 / 6 * O(1) ~ 2e-5, float rounding ~6e-8 * sqrt(n_out) / 2h ~ 1e-4. atol 5e-4 +
 * rtol 5e-3 (as tests/nn_check.h's fd_check): a wrong term is off by O(1). */
static void fd_expect(const char *what, tal_tensor analytic, tal_tensor x, attn_case *a) {
    tal_tensor num = test_tensor_like(x);
    test_numeric_grad(num, x, attn_loss, a, 1e-2);
    for (int64_t i = 0; i < tal_tensor_numel(x); i++)
        if (isinf(x.data[i])) num.data[i] = analytic.data[i]; /* nothing to perturb */
    expect_close_impl(what, analytic, num, 5e-4, 5e-3, __FILE__, __LINE__);
}

/* Runs backward with a planned scratch arena and checks the planner counted exactly what the
 * real call took, and that the call gave it all back. dbias accumulates onto what it holds. */
static void run_backward(tal_tensor dq, tal_tensor dk, tal_tensor dv, tal_tensor dbias,
                         const attn_case *a) {
    tal_arena *plan = tal_arena_create_planner();
    tal_tensor plan_dbias = dbias.data ? tal_arena_like(plan, dbias) : tal_tensor_none();
    size_t before = tal_arena_high_water(plan);
    tal_attention_backward(dq, dk, dv, plan_dbias, a->dout, a->q, a->k, a->v, a->probs, a->scale,
                           plan);
    size_t need = tal_arena_high_water(plan) - before;
    tal_arena *scratch = make_arena(need);
    tal_attention_backward(dq, dk, dv, dbias, a->dout, a->q, a->k, a->v, a->probs, a->scale,
                           scratch);
    cr_assert_eq(tal_arena_high_water(scratch), need, "planner %zu vs real %zu", need,
                 tal_arena_high_water(scratch));
    cr_assert_eq(tal_arena_used(scratch), 0, "scratch must be given back");
    tal_arena_destroy(scratch);
    tal_arena_destroy(plan);
}

static void check_fixture(const char *name) {
    fixture fx;
    fixture_load(&fx, name);
    int has_bias = fixture_has(&fx, "bias"), has_mask = fixture_has(&fx, "mask");
    attn_case a = {test_clone(fixture_get(&fx, "q")), test_clone(fixture_get(&fx, "k")),
                   test_clone(fixture_get(&fx, "v")),
                   has_bias ? test_clone(fixture_get(&fx, "bias")) : tal_tensor_none(),
                   has_mask ? fixture_get(&fx, "mask") : tal_tensor_none(),
                   fixture_get(&fx, "dy"), test_tensor_like(fixture_get(&fx, "y")),
                   test_tensor_like(fixture_get(&fx, "probs")), 0};
    const char *meta = fx.set.metadata_json, *at = meta ? strstr(meta, "\"scale\":\"") : NULL;
    cr_assert(at && sscanf(at + 9, "%f", &a.scale) == 1, "%s: no scale in the metadata", name);
    for (int threads = 1; threads <= 3; threads++) {
        tal_threads_set(threads);
        tal_attention_forward(a.out, a.probs, a.q, a.k, a.v, a.bias, a.mask, a.scale);
        expect_close(a.out, fixture_get(&fx, "y"), FWD_ATOL, FWD_RTOL);
        expect_close(a.probs, fixture_get(&fx, "probs"), FWD_ATOL, FWD_RTOL);
        tal_tensor dq = test_tensor_like(a.q), dk = test_tensor_like(a.k);
        tal_tensor dv = test_tensor_like(a.v);
        tal_fill(dq, NAN);
        tal_fill(dk, NAN);
        tal_fill(dv, NAN);
        tal_tensor db = has_bias ? test_tensor_like(a.bias) : tal_tensor_none();
        if (has_bias) tal_fill(db, 1.0f); /* accumulated */
        run_backward(dq, dk, dv, db, &a);
        expect_close(dq, fixture_get(&fx, "dq"), BWD_ATOL, BWD_RTOL);
        expect_close(dk, fixture_get(&fx, "dk"), BWD_ATOL, BWD_RTOL);
        expect_close(dv, fixture_get(&fx, "dv"), BWD_ATOL, BWD_RTOL);
        if (has_bias) {
            tal_tensor want = test_clone(fixture_get(&fx, "dbias")), ones = test_tensor_like(db);
            tal_fill(ones, 1.0f);
            tal_add(want, want, ones);
            expect_close(db, want, BWD_ATOL, BWD_RTOL);
        }
        if (threads == 1) {
            fd_expect("dq vs finite differences", dq, a.q, &a);
            fd_expect("dk vs finite differences", dk, a.k, &a);
            fd_expect("dv vs finite differences", dv, a.v, &a);
            if (has_bias) {
                tal_tensor db0 = test_tensor_like(a.bias);
                tal_attention_forward(a.out, a.probs, a.q, a.k, a.v, a.bias, a.mask, a.scale);
                run_backward(dq, dk, dv, db0, &a);
                fd_expect("dbias vs finite differences", db0, a.bias, &a);
            }
        }
    }
    fixture_free(&fx);
}

Test(nn_attn, swin_windows_bias_and_shift_mask) { check_fixture("nn_dense_attention_swin"); }
Test(nn_attn, minus_inf_masks) { check_fixture("nn_dense_attention_inf"); }
Test(nn_attn, cross_attention_nk_differs) { check_fixture("nn_dense_attention_cross"); }
Test(nn_attn, single_token) { check_fixture("nn_dense_attention_n1"); }

/* ------------------------------------------------------------------ Swin-sized reference */
/* Attention for one (b, h) in double: out, probs, and the backward into dq, dk, dv, and
 * dbias (accumulated). */
static void attn_ref_bh(float *out, float *probs, float *dq, float *dk, float *dv, double *dbias,
                        const float *q, const float *k, const float *v, const float *bias,
                        const float *mask, const float *dout, int64_t N, int64_t d, double scale) {
    double *p = calloc((size_t)(N * N), sizeof(double)), *ds = calloc((size_t)(N * N), sizeof(double));
    for (int64_t i = 0; i < N; i++) {
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < N; j++) {
            double l = 0;
            for (int64_t c = 0; c < d; c++) l += (double)q[i * d + c] * k[j * d + c];
            l = scale * l + (bias ? bias[i * N + j] : 0) + (mask ? mask[i * N + j] : 0);
            p[i * N + j] = l;
            if (l > m) m = l;
        }
        for (int64_t j = 0; j < N; j++) s += p[i * N + j] = exp(p[i * N + j] - m);
        for (int64_t j = 0; j < N; j++) p[i * N + j] /= s, probs[i * N + j] = (float)p[i * N + j];
    }
    for (int64_t i = 0; i < N; i++)
        for (int64_t c = 0; c < d; c++) {
            double o = 0;
            for (int64_t j = 0; j < N; j++) o += p[i * N + j] * v[j * d + c];
            out[i * d + c] = (float)o;
        }
    for (int64_t i = 0; i < N; i++) {
        double rs = 0;
        for (int64_t j = 0; j < N; j++) {
            double dp = 0;
            for (int64_t c = 0; c < d; c++) dp += (double)dout[i * d + c] * v[j * d + c];
            ds[i * N + j] = dp;
            rs += dp * p[i * N + j];
        }
        for (int64_t j = 0; j < N; j++) {
            ds[i * N + j] = p[i * N + j] * (ds[i * N + j] - rs);
            if (dbias) dbias[i * N + j] += ds[i * N + j];
        }
    }
    for (int64_t j = 0; j < N; j++)
        for (int64_t c = 0; c < d; c++) {
            double a = 0, b = 0;
            for (int64_t i = 0; i < N; i++) {
                a += p[i * N + j] * dout[i * d + c];
                b += ds[i * N + j] * q[i * d + c];
            }
            dv[j * d + c] = (float)a;
            dk[j * d + c] = (float)(scale * b);
        }
    for (int64_t i = 0; i < N; i++)
        for (int64_t c = 0; c < d; c++) {
            double a = 0;
            for (int64_t j = 0; j < N; j++) a += ds[i * N + j] * k[j * d + c];
            dq[i * d + c] = (float)(scale * a);
        }
    free(p);
    free(ds);
}

/* B windows x H heads of N tokens against the double reference, at 1, 2, 3 and 5 threads;
 * M window classes of masks. */
static void check_against_double_reference(int64_t B, int64_t H, int64_t N, int64_t d,
                                           int64_t M) {
    float scale = 1.0f / sqrtf((float)d);
    int64_t s4[4] = {B, H, N, d};
    attn_case a = {test_tensor(4, s4), test_tensor(4, s4), test_tensor(4, s4),
                   test_tensor(3, (int64_t[]){H, N, N}), test_tensor(3, (int64_t[]){M, N, N}),
                   test_tensor(4, s4), test_tensor(4, s4),
                   test_tensor(4, (int64_t[]){B, H, N, N}), scale};
    test_fill_uniform(a.q, 1);
    test_fill_uniform(a.k, 2);
    test_fill_uniform(a.v, 3);
    test_fill_uniform(a.bias, 4);
    test_fill_uniform(a.dout, 5);
    for (int64_t m = 1; m < M; m++) /* window classes 1..3: Swin's shift masks, -100 */
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < N; j++)
                if ((i * m / 17) % 2 != (j * m / 17) % 2) a.mask.data[(m * N + i) * N + j] = -100;
    tal_tensor out_ref = test_tensor_like(a.out), p_ref = test_tensor_like(a.probs);
    tal_tensor dq_ref = test_tensor(4, s4), dk_ref = test_tensor(4, s4), dv_ref = test_tensor(4, s4);
    tal_tensor db_ref = test_tensor_like(a.bias);
    double *dbias = calloc((size_t)(H * N * N), sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            int64_t o = (b * H + h) * N * d, op = (b * H + h) * N * N;
            attn_ref_bh(out_ref.data + o, p_ref.data + op, dq_ref.data + o, dk_ref.data + o,
                        dv_ref.data + o, dbias + h * N * N, a.q.data + o, a.k.data + o,
                        a.v.data + o, a.bias.data + h * N * N, a.mask.data + (b % M) * N * N,
                        a.dout.data + o, N, d, scale);
        }
    for (int64_t i = 0; i < H * N * N; i++) db_ref.data[i] = (float)dbias[i];
    free(dbias);
    int counts[4] = {1, 2, 3, 5};
    tal_tensor out1 = test_tensor(4, s4), dq1 = test_tensor(4, s4), dk1 = test_tensor(4, s4);
    tal_tensor dv1 = test_tensor(4, s4), db1 = test_tensor_like(a.bias);
    for (int t = 0; t < 4; t++) {
        tal_threads_set(counts[t]);
        tal_attention_forward(a.out, a.probs, a.q, a.k, a.v, a.bias, a.mask, a.scale);
        expect_close(a.out, out_ref, 1e-5, 1e-4);   /* sums of 49 terms */
        expect_close(a.probs, p_ref, 1e-6, 1e-4);
        tal_tensor dq = test_tensor(4, s4), dk = test_tensor(4, s4), dv = test_tensor(4, s4);
        tal_tensor db = test_tensor_like(a.bias), db2 = test_tensor_like(a.bias);
        run_backward(dq, dk, dv, db, &a);
        expect_close(dq, dq_ref, 1e-5, 1e-3);
        expect_close(dk, dk_ref, 1e-5, 1e-3);
        expect_close(dv, dv_ref, 1e-5, 1e-4);
        expect_close(db, db_ref, 1e-5, 1e-3); /* sums over 7 windows */
        run_backward(dq, dk, dv, db2, &a); /* same threads: the same bits, every run */
        expect_close(db2, db, 0, 0);
        /* without dbias: same dq, dk, dv */
        tal_tensor dq2 = test_tensor(4, s4), dk2 = test_tensor(4, s4), dv2 = test_tensor(4, s4);
        run_backward(dq2, dk2, dv2, tal_tensor_none(), &a);
        expect_close(dq2, dq, 0, 0);
        expect_close(dk2, dk, 0, 0);
        expect_close(dv2, dv, 0, 0);
        /* against one thread: each (b, h) is one thread's work, so the same bits; dbias adds
         * per-thread partial sums in another order */
        if (t == 0) {
            tal_copy(out1, a.out);
            tal_copy(dq1, dq);
            tal_copy(dk1, dk);
            tal_copy(dv1, dv);
            tal_copy(db1, db);
        }
        expect_close(a.out, out1, 0, 0);
        expect_close(dq, dq1, 0, 0);
        expect_close(dk, dk1, 0, 0);
        expect_close(dv, dv1, 0, 0);
        expect_close(db, db1, 1e-6, 1e-6);
    }
}

Test(nn_attn, swin_sized_windows_match_double_reference_at_any_thread_count) {
    check_against_double_reference(7, 3, 49, 32, 4); /* 7 windows x 3 heads: dbias runs split */
}

/* Windows of 392 (Swin-T's 8x7x7) and 200 tokens go in several blocks of query rows, the last
 * one short (and not a whole number of the kernel's 6-row tiles): dV and dK sum over blocks. */
Test(nn_attn, long_windows_in_row_blocks_match_double_reference) {
    check_against_double_reference(3, 2, 392, 32, 2);
    check_against_double_reference(2, 3, 200, 16, 2);
}

/* Swin's packed layouts (qkv [B, N, 3 C] as the qkv linear writes it, tokens [B, N, C] for the
 * output and its gradient) give the same bits as the [B, H, N, d] call on the same numbers
 * copied apart: same products in the same order, read in place. Window sizes 49 and 392. */
static void check_qkv_layout(int64_t B, int64_t H, int64_t N, int64_t d) {
    int64_t C = H * d, s4[4] = {B, H, N, d};
    float scale = 1.0f / sqrtf((float)d);
    tal_tensor qkv = test_tensor(3, (int64_t[]){B, N, 3 * C});
    tal_tensor dout_tok = test_tensor(3, (int64_t[]){B, N, C});
    tal_tensor bias = test_tensor(3, (int64_t[]){H, N, N}), mask = test_tensor(3, (int64_t[]){2, N, N});
    test_fill_uniform(qkv, 11);
    test_fill_uniform(dout_tok, 12);
    test_fill_uniform(bias, 13);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) mask.data[(N + i) * N + j] = (i / 7) % 2 != (j / 7) % 2 ? -100 : 0;
    tal_tensor q = test_tensor(4, s4), k = test_tensor(4, s4), v = test_tensor(4, s4);
    tal_tensor dout = test_tensor(4, s4);
    tal_tensor parts[3] = {q, k, v};
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < N; t++)
                for (int64_t e = 0; e < d; e++) {
                    for (int part = 0; part < 3; part++)
                        parts[part].data[((b * H + h) * N + t) * d + e] =
                            qkv.data[(b * N + t) * 3 * C + part * C + h * d + e];
                    dout.data[((b * H + h) * N + t) * d + e] = dout_tok.data[(b * N + t) * C + h * d + e];
                }
    /* item b takes mask class mask_of[b] (not b % 2); the head call gets them spelled out */
    uint8_t *mask_of = malloc((size_t)B);
    tal_tensor per_item = test_tensor(3, (int64_t[]){B, N, N});
    for (int64_t b = 0; b < B; b++) {
        mask_of[b] = (uint8_t)((b * 7 / 3 + 1) % 2);
        memcpy(per_item.data + b * N * N, mask.data + mask_of[b] * N * N, sizeof(float) * N * N);
    }
    tal_tensor out = test_tensor(4, s4), probs = test_tensor(4, (int64_t[]){B, H, N, N});
    tal_tensor out_tok = test_tensor(3, (int64_t[]){B, N, C}), probs2 = test_tensor_like(probs);
    tal_attention_forward(out, probs, q, k, v, bias, per_item, scale);
    tal_attention_qkv_forward(out_tok, probs2, 0, qkv, H, bias, mask, mask_of, scale);
    free(mask_of);
    expect_close(probs2, probs, 0, 0);
    tal_arena *scratch = make_arena((size_t)4 * 4 * N * N * sizeof(float)); /* 2 threads x 2 */
    tal_tensor dq = test_tensor(4, s4), dk = test_tensor(4, s4), dv = test_tensor(4, s4);
    tal_tensor db = test_tensor_like(bias), db2 = test_tensor_like(bias);
    tal_tensor dqkv = test_tensor_like(qkv);
    tal_attention_backward(dq, dk, dv, db, dout, q, k, v, probs, scale, scratch);
    tal_attention_qkv_backward(dqkv, db2, dout_tok, qkv, probs2, H, scale, scratch);
    expect_close(db2, db, 0, 0);
    tal_tensor grads[3] = {dq, dk, dv};
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < N; t++)
                for (int64_t e = 0; e < d; e++) {
                    cr_assert_eq(out_tok.data[(b * N + t) * C + h * d + e],
                                 out.data[((b * H + h) * N + t) * d + e]);
                    for (int part = 0; part < 3; part++)
                        cr_assert_eq(dqkv.data[(b * N + t) * 3 * C + part * C + h * d + e],
                                     grads[part].data[((b * H + h) * N + t) * d + e],
                                     "part %d at b %lld h %lld t %lld", part, (long long)b,
                                     (long long)h, (long long)t);
                }
    tal_arena_destroy(scratch);
}

Test(nn_attn, packed_qkv_and_token_layouts_equal_the_head_layout) {
    tal_threads_set(2);
    check_qkv_layout(5, 3, 49, 32);
    check_qkv_layout(2, 3, 392, 32);
    check_qkv_layout(3, 2, 20, 8); /* small d: OpenBLAS's products */
}

Test(nn_attn, all_minus_inf_row_gives_zeros_not_nan) {
    int64_t N = 3, d = 2; /* torch gives NaN here: no fixture, the expected values by hand */
    tal_tensor q = test_tensor(4, (int64_t[]){1, 1, N, d}), k = test_tensor_like(q);
    tal_tensor v = test_tensor_like(q), out = test_tensor_like(q), dout = test_tensor_like(q);
    tal_tensor probs = test_tensor(4, (int64_t[]){1, 1, N, N});
    tal_tensor mask = test_tensor(3, (int64_t[]){1, N, N});
    test_fill_uniform(q, 1);
    test_fill_uniform(k, 2);
    test_fill_uniform(v, 3);
    test_fill_uniform(dout, 4);
    for (int j = 0; j < N; j++) mask.data[1 * N + j] = -INFINITY; /* row 1 sees nothing */
    tal_attention_forward(out, probs, q, k, v, tal_tensor_none(), mask, 1.0f);
    for (int j = 0; j < d; j++) cr_assert_eq(out.data[1 * d + j], 0.0f, "got %g", out.data[1 * d + j]);
    for (int j = 0; j < N; j++) cr_assert_eq(probs.data[1 * N + j], 0.0f);
    for (int i = 0; i < N * d; i++) cr_assert(isfinite(out.data[i]));
    tal_tensor dq = test_tensor_like(q), dk = test_tensor_like(q), dv = test_tensor_like(q);
    attn_case a = {q, k, v, tal_tensor_none(), mask, dout, out, probs, 1.0f};
    run_backward(dq, dk, dv, tal_tensor_none(), &a);
    for (int i = 0; i < N * d; i++)
        cr_assert(isfinite(dq.data[i]) && isfinite(dk.data[i]) && isfinite(dv.data[i]));
    for (int j = 0; j < d; j++) cr_assert_eq(dq.data[1 * d + j], 0.0f);
}

Test(nn_attn, empty_batch_is_a_no_op) {
    tal_threads_set(2);
    tal_tensor e = tal_t4(NULL, 0, 2, 3, 4), p = tal_t4(NULL, 0, 2, 3, 3);
    tal_tensor bias = test_tensor(3, (int64_t[]){2, 3, 3}), db = test_tensor_like(bias);
    tal_attention_forward(e, p, e, e, e, bias, tal_tensor_none(), 1.0f);
    tal_arena *scratch = make_arena(1 << 16);
    tal_attention_backward(e, e, e, db, e, e, e, e, p, 1.0f, scratch);
    for (int i = 0; i < 18; i++) cr_assert(db.data[i] == 0.0f);
    tal_arena_destroy(scratch);
}

Test(nn_attn, bias_of_wrong_shape_is_a_bug, .signal = SIGABRT) {
    int64_t s4[4] = {1, 2, 3, 4};
    tal_tensor q = test_tensor(4, s4), p = test_tensor(4, (int64_t[]){1, 2, 3, 3});
    tal_tensor bias = test_tensor(3, (int64_t[]){3, 3, 3}); /* H is 2 */
    tal_attention_forward(test_tensor(4, s4), p, q, q, q, bias, tal_tensor_none(), 1.0f);
}

Test(nn_attn, probs_of_wrong_size_is_a_bug, .signal = SIGABRT) {
    int64_t s4[4] = {1, 2, 3, 4};
    tal_tensor q = test_tensor(4, s4), p = test_tensor(4, (int64_t[]){1, 2, 3, 4});
    tal_attention_forward(test_tensor(4, s4), p, q, q, q, tal_tensor_none(), tal_tensor_none(),
                          1.0f);
}
