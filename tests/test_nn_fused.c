/* The speed paths of nn/: arena blocks handed out without the zero fill (their accounting equals
 * the zeroed ones', sanitizer builds poison them with NaN, other builds leave old contents), and
 * attention's one-pass bias + mask + row maximum against a softmax computed in double here. */
#include "testlib.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define POISONED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POISONED 1
#endif
#endif
#ifndef POISONED
#define POISONED 0
#endif

Test(nn_fused, uninit_blocks_count_like_zeroed_ones) {
    tal_arena *plan = tal_arena_create_planner(), *plan_u = tal_arena_create_planner();
    tal_arena_tensor(plan, 2, (int64_t[]){3, 7});
    tal_arena_floats(plan, 1);
    tal_arena_like(plan, tal_t2(NULL, 5, 5));
    tal_tensor t = tal_arena_tensor_uninit(plan_u, 2, (int64_t[]){3, 7});
    cr_assert_null(t.data);
    cr_assert(t.ndim == 2 && t.shape[0] == 3 && t.shape[1] == 7);
    cr_assert_null(tal_arena_floats_uninit(plan_u, 1));
    tal_arena_like_uninit(plan_u, tal_t2(NULL, 5, 5));
    cr_assert_eq(tal_arena_used(plan), tal_arena_used(plan_u));
    cr_assert_eq(tal_arena_high_water(plan), tal_arena_high_water(plan_u));
    tal_arena_destroy(plan);
    tal_arena_destroy(plan_u);
}

Test(nn_fused, uninit_blocks_skip_the_zero_fill) {
    tal_arena *a = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CPU, 1 << 16, &err), TAL_OK);
    size_t mark = tal_arena_mark(a);
    float *old = tal_arena_floats(a, 100);
    for (int i = 0; i < 100; i++) old[i] = (float)i + 0.5f;
    tal_arena_release(a, mark);
    tal_tensor t = tal_arena_tensor_uninit(a, 2, (int64_t[]){10, 10});
    cr_assert_eq(t.data, old, "the same block comes back");
    cr_assert_eq((uintptr_t)t.data % 64, 0);
    for (int i = 0; i < 100; i++) {
        if (POISONED)
            cr_assert(isnan(t.data[i]), "sanitizer build: element %d is %g, not NaN", i,
                      (double)t.data[i]);
        else
            cr_assert_eq(t.data[i], (float)i + 0.5f, "element %d was rewritten", i);
    }
    tal_arena_release(a, mark);
    float *z = tal_arena_floats(a, 100); /* the zeroing call still zeroes */
    for (int i = 0; i < 100; i++) cr_assert_eq(z[i], 0.0f);
    tal_arena_destroy(a);
}

/* probs of one (b, h) item computed in double: softmax(scale q k^T + bias + mask) by rows;
 * an all -inf row gives zeros. */
static void reference_probs(double *p, const float *q, const float *k, const float *bias,
                            const float *mask, int N, int Nk, int d, float scale) {
    for (int i = 0; i < N; i++) {
        double m = -INFINITY;
        for (int j = 0; j < Nk; j++) {
            double s = 0;
            for (int c = 0; c < d; c++) s += (double)q[i * d + c] * k[j * d + c];
            s *= scale;
            if (bias) s += bias[i * Nk + j];
            if (mask) s += mask[i * Nk + j];
            p[i * Nk + j] = s;
            if (s > m) m = s;
        }
        double sum = 0;
        for (int j = 0; j < Nk; j++) {
            p[i * Nk + j] = m == -INFINITY ? 0 : exp(p[i * Nk + j] - m);
            sum += p[i * Nk + j];
        }
        for (int j = 0; j < Nk; j++) p[i * Nk + j] = sum > 0 ? p[i * Nk + j] / sum : 0;
    }
}

/* B = 4 items, H = 2 heads, N = Nk = 37 (not a multiple of the vector width: the loop tails
 * hold some row maxima), mask with M = 2 (item b uses mask[b % 2]); one mask row is all -inf
 * and one row has its maximum in the last element. */
static void check_softmax_paths(int with_bias, int with_mask) {
    const int B = 4, H = 2, N = 37, d = 5;
    const float scale = 0.7f;
    tal_tensor q = test_tensor(4, (int64_t[]){B, H, N, d}), k = test_tensor_like(q);
    tal_tensor v = test_tensor_like(q), out = test_tensor_like(q);
    tal_tensor probs = test_tensor(4, (int64_t[]){B, H, N, N});
    tal_tensor bias = test_tensor(3, (int64_t[]){H, N, N});
    tal_tensor mask = test_tensor(3, (int64_t[]){2, N, N});
    test_fill_uniform(q, 1);
    test_fill_uniform(k, 2);
    test_fill_uniform(v, 3);
    test_fill_uniform(bias, 4);
    for (int64_t i = 0; i < tal_tensor_numel(mask); i++)
        mask.data[i] = (i * 7 % 5 == 0) ? -100.0f : 0.0f;
    for (int j = 0; j < N; j++) mask.data[1 * N * N + 3 * N + j] = -INFINITY; /* mask 1, row 3 */
    bias.data[0 * N * N + 5 * N + N - 1] = 30.0f; /* head 0, row 5: maximum in the tail */
    tal_tensor b_arg = with_bias ? bias : tal_tensor_none();
    tal_tensor m_arg = with_mask ? mask : tal_tensor_none();
    tal_attention_forward(out, probs, q, k, v, b_arg, m_arg, scale);
    double want[37 * 37];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int64_t bh = b * H + h;
            reference_probs(want, q.data + bh * N * d, k.data + bh * N * d,
                            with_bias ? bias.data + h * N * N : NULL,
                            with_mask ? mask.data + (b % 2) * N * N : NULL, N, N, d, scale);
            const float *got = probs.data + bh * N * N;
            for (int i = 0; i < N * N; i++)
                cr_assert(fabs(got[i] - want[i]) <= 1e-6 + 1e-5 * fabs(want[i]),
                          "bias %d mask %d item %d head %d entry %d: %.9g, want %.9g", with_bias,
                          with_mask, b, h, i, (double)got[i], want[i]);
            if (with_mask && b % 2 == 1)
                for (int j = 0; j < N; j++)
                    cr_assert_eq(got[3 * N + j], 0.0f, "an all -inf row gives zeros");
            /* out = P V */
            for (int i = 0; i < N; i++)
                for (int c = 0; c < d; c++) {
                    double s = 0;
                    for (int j = 0; j < N; j++) s += want[i * N + j] * v.data[(bh * N + j) * d + c];
                    double o = out.data[(bh * N + i) * d + c];
                    cr_assert(fabs(o - s) <= 1e-5 + 1e-5 * fabs(s), "out[%d][%d] %g, want %g", i,
                              c, o, s);
                }
        }
    test_free_all();
}

Test(nn_fused, softmax_with_bias_and_mask) { check_softmax_paths(1, 1); }
Test(nn_fused, softmax_with_bias_only) { check_softmax_paths(1, 0); }
Test(nn_fused, softmax_with_mask_only) { check_softmax_paths(0, 1); }
Test(nn_fused, softmax_plain) { check_softmax_paths(0, 0); }
