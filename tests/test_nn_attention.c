/* Scaled dot-product attention against PyTorch float64 references (relative-position bias, a
 * [M, N, N] mask with -100 entries used as mask[b % M], -inf entries, Nk != N) and finite
 * differences; all -inf rows; planner == real scratch; 1 vs 2 threads.
 * Tolerances as tests/test_nn_ops.c: forward atol 1e-6 + rtol 1e-5, backward atol 1e-5 + rtol
 * 1e-4 (sums over d = 4 and N = 6..7 O(1) terms). */
#include "nn_check.h"

#include <math.h>

static void cleanup(void) { test_free_all(); }
TestSuite(nn_attention, .fini = cleanup);

typedef struct att_ctx {
    tal_tensor out, probs, q, k, v, bias, mask, dy;
    float scale;
} att_ctx;

static double att_loss(void *c) {
    att_ctx *a = c;
    tal_attention_forward(a->out, a->probs, a->q, a->k, a->v, a->bias, a->mask, a->scale);
    return test_dot(a->out, a->dy);
}

static void check_attention(const char *name, float scale) {
    fixture fx;
    fixture_load(&fx, name);
    att_ctx a = {0};
    a.q = fx_clone(&fx, "q"), a.k = fx_clone(&fx, "k"), a.v = fx_clone(&fx, "v");
    a.bias = fixture_has(&fx, "bias") ? fx_clone(&fx, "bias") : tal_tensor_none();
    a.mask = fixture_has(&fx, "mask") ? fixture_get(&fx, "mask") : tal_tensor_none();
    a.dy = fixture_get(&fx, "dy");
    a.scale = scale;
    a.out = test_tensor_like(a.q);
    a.probs = test_tensor_like(fixture_get(&fx, "probs"));
    tal_attention_forward(a.out, a.probs, a.q, a.k, a.v, a.bias, a.mask, a.scale);
    expect_close(a.out, fixture_get(&fx, "y"), 1e-6, 1e-5);
    expect_close(a.probs, fixture_get(&fx, "probs"), 1e-6, 1e-5);

    tal_tensor dq = test_tensor_like(a.q), dk = test_tensor_like(a.k), dv = test_tensor_like(a.v);
    tal_tensor dbias = a.bias.data ? test_tensor_like(a.bias) : tal_tensor_none();
    tal_arena *plan = tal_arena_create_planner();
    tal_attention_backward(dq, dk, dv, a.bias.data ? tal_tensor_of(NULL, 3, a.bias.shape)
                                                   : tal_tensor_none(),
                           a.dy, a.q, a.k, a.v, a.probs, a.scale, plan);
    size_t need = tal_arena_high_water(plan);
    cr_assert_gt(need, 0);
    /* exactly the planned size: running past it would abort */
    tal_arena *scratch = test_arena(need);
    tal_attention_backward(dq, dk, dv, dbias, a.dy, a.q, a.k, a.v, a.probs, a.scale, scratch);
    cr_assert_eq(tal_arena_high_water(scratch), need, "planner %zu vs real %zu", need,
                 tal_arena_high_water(scratch));
    cr_assert_eq(tal_arena_used(scratch), 0, "scratch must be given back");
    expect_close(dq, fixture_get(&fx, "dq"), 1e-5, 1e-4);
    expect_close(dk, fixture_get(&fx, "dk"), 1e-5, 1e-4);
    expect_close(dv, fixture_get(&fx, "dv"), 1e-5, 1e-4);
    if (a.bias.data) {
        expect_close(dbias, fixture_get(&fx, "dbias"), 1e-5, 1e-4);
        tal_attention_backward(dq, dk, dv, dbias, a.dy, a.q, a.k, a.v, a.probs, a.scale, scratch);
        for (int64_t i = 0; i < tal_tensor_numel(dbias); i++) dbias.data[i] *= 0.5f;
        expect_close(dbias, fixture_get(&fx, "dbias"), 1e-5, 1e-4); /* accumulated twice */
        expect_close(dq, fixture_get(&fx, "dq"), 1e-5, 1e-4);      /* written, not accumulated */
    }
    fd_check(dq, a.q, att_loss, &a);
    fd_check(dk, a.k, att_loss, &a);
    fd_check(dv, a.v, att_loss, &a);
    if (a.bias.data) fd_check(dbias, a.bias, att_loss, &a);
    tal_arena_destroy(scratch);
    tal_arena_destroy(plan);
    fixture_free(&fx);
}

Test(nn_attention, bias_and_mask_per_window_class) { check_attention("nn_attention", 0.5f); }
Test(nn_attention, minus_inf_mask_entries) { check_attention("nn_attention_inf", 0.5f); }
Test(nn_attention, keys_longer_than_queries) { check_attention("nn_attention_cross", 0.5f); }

Test(nn_attention, all_minus_inf_row_gives_zeros_not_nan) {
    int64_t N = 3, d = 2;
    tal_tensor q = test_tensor(4, (int64_t[]){1, 1, N, d}), k = test_tensor_like(q);
    tal_tensor v = test_tensor_like(q), out = test_tensor_like(q), dout = test_tensor_like(q);
    tal_tensor probs = test_tensor(4, (int64_t[]){1, 1, N, N}), mask = test_tensor(3, (int64_t[]){1, N, N});
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
    tal_arena *scratch = test_arena(1 << 20);
    tal_attention_backward(dq, dk, dv, tal_tensor_none(), dout, q, k, v, probs, 1.0f, scratch);
    for (int i = 0; i < N * d; i++)
        cr_assert(isfinite(dq.data[i]) && isfinite(dk.data[i]) && isfinite(dv.data[i]));
    for (int j = 0; j < d; j++) cr_assert_eq(dq.data[1 * d + j], 0.0f);
    tal_arena_destroy(scratch);
}

Test(nn_attention, one_and_two_threads_agree) {
    int64_t B = 6, H = 3, N = 20, d = 8;
    tal_tensor q = test_tensor(4, (int64_t[]){B, H, N, d}), k = test_tensor_like(q);
    tal_tensor v = test_tensor_like(q), dout = test_tensor_like(q);
    tal_tensor bias = test_tensor(3, (int64_t[]){H, N, N}), mask = test_tensor(3, (int64_t[]){2, N, N});
    test_fill_uniform(q, 1);
    test_fill_uniform(k, 2);
    test_fill_uniform(v, 3);
    test_fill_uniform(dout, 4);
    test_fill_uniform(bias, 5);
    for (int64_t i = 0; i < N * N; i++) mask.data[N * N + i] = (i % 3 == 0) ? -100.0f : 0.0f;
    tal_tensor out[2], dq[2], dk[2], dv[2], db[2];
    tal_tensor probs = test_tensor(4, (int64_t[]){B, H, N, N});
    tal_arena *scratch = test_arena(1 << 22);
    for (int t = 0; t < 2; t++) {
        tal_threads_set(t + 1);
        out[t] = test_tensor_like(q), dq[t] = test_tensor_like(q), dk[t] = test_tensor_like(q);
        dv[t] = test_tensor_like(q), db[t] = test_tensor_like(bias);
        tal_attention_forward(out[t], probs, q, k, v, bias, mask, 0.35f);
        tal_attention_backward(dq[t], dk[t], dv[t], db[t], dout, q, k, v, probs, 0.35f, scratch);
    }
    expect_close(out[1], out[0], 0, 0); /* same per-(b, h) work either way */
    expect_close(dq[1], dq[0], 0, 0);
    expect_close(dk[1], dk[0], 0, 0);
    expect_close(dv[1], dv[0], 0, 0);
    expect_close(db[1], db[0], 1e-6, 1e-6); /* per-thread partial sums add in another order */
    tal_threads_set(1);
    tal_arena_destroy(scratch);
}
