/* The layout ops on the CPU (nn.h "ops: layout"): each against the loop the backbone ran before
 * it became an op (copied here as the reference: the CPU results must keep their bits), each
 * backward against its forward (these ops are linear: <F x, y> = <x, F^T y> in double is the
 * finite-difference check, exactly), the element offsets the CUDA kernels use
 * (nn/device_math.h) against the CPU ops, and mixed devices aborting. Odd sizes throughout:
 * padding slots, odd PatchMerging edges, a batch of 1. */
#include "nn_check.h"
#include "layout_check.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "nn/device_math.h"

TestSuite(nn_layout, .fini = test_free_all);

static tal_tensor rnd(int ndim, const int64_t *shape, uint64_t seed) {
    tal_tensor t = test_tensor(ndim, shape);
    test_fill_uniform(t, seed);
    return t;
}

static void expect_bits(tal_tensor got, tal_tensor want) {
    cr_assert_eq(tal_tensor_numel(got), tal_tensor_numel(want));
    for (int64_t i = 0; i < tal_tensor_numel(got); i++)
        cr_assert(!memcmp(&got.data[i], &want.data[i], sizeof(float)),
                  "element %lld: %.9g, expected %.9g", (long long)i, got.data[i], want.data[i]);
}

/* <a, b> in double */
static double dot(tal_tensor a, tal_tensor b) { return test_dot(a, b); }

/* F^T checked against F: <F x, y> = <x, F^T y>, to rtol (1e-12 for copies, which the double
 * dot products see exactly; about float epsilon where F^T adds in float). */
static void expect_adjoint(double fx_y, double x_fty, double rtol) {
    cr_assert(fabs(fx_y - x_fty) <= rtol * (1 + fabs(fx_y)), "<Fx, y> = %.17g, <x, F'y> = %.17g",
              fx_y, x_fty);
}

Test(nn_layout, rows_gather_scatter_match_the_backbone_loops) {
    const int64_t R = 37, S = 30, C = 5;
    int32_t *map = make_map(R, S);
    tal_index ix = host_index(map, R);
    tal_tensor src = rnd(2, (int64_t[]){S, C}, 1), dst = rnd(2, (int64_t[]){R, C}, 2);
    tal_rows_gather(dst, src, ix);
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            cr_assert_eq(dst.data[r * C + c], map[r] < 0 ? 0.0f : src.data[map[r] * C + c]);
    /* scatter: write, then accumulate; unmapped rows of the target stay as they were */
    tal_tensor x = rnd(2, (int64_t[]){S, C}, 3), want = test_clone(x);
    tal_rows_scatter(x, dst, ix, 0);
    for (int64_t r = 0; r < R; r++)
        if (map[r] >= 0) memcpy(want.data + map[r] * C, dst.data + r * C, sizeof(float) * C);
    expect_bits(x, want);
    tal_rows_scatter(x, dst, ix, 1);
    for (int64_t r = 0; r < R; r++)
        if (map[r] >= 0)
            for (int64_t c = 0; c < C; c++) want.data[map[r] * C + c] += dst.data[r * C + c];
    expect_bits(x, want);
    /* zero the padding rows */
    tal_tensor t = rnd(2, (int64_t[]){R, C}, 4);
    tal_rows_zero_unmapped(t, ix);
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) {
            if (map[r] < 0) cr_assert_eq(t.data[r * C + c], 0.0f);
            else cr_assert_neq(t.data[r * C + c], 0.0f);
        }
    /* gather and write-scatter are adjoint */
    tal_tensor y = rnd(2, (int64_t[]){R, C}, 5), xt = test_tensor(2, (int64_t[]){S, C});
    tal_rows_gather(dst, src, ix);
    tal_rows_scatter(xt, y, ix, 0);
    expect_adjoint(dot(dst, y), dot(src, xt), 1e-12);
    free(map);
}

Test(nn_layout, index_slice_and_group_by) {
    int32_t index[] = {3, 0, 2, 3, 0, 0, 1, 3};
    int64_t n = 8, rows = 5;
    int32_t out[5 + 1 + 8];
    cr_assert_eq(tal_index_group_by(out, index, n, rows), rows + 1 + n);
    const int32_t start[] = {0, 3, 4, 5, 8, 8}, members[] = {1, 4, 5, 6, 2, 0, 3, 7};
    for (int i = 0; i <= rows; i++) cr_assert_eq(out[i], start[i], "start[%d] = %d", i, out[i]);
    for (int i = 0; i < n; i++) cr_assert_eq(out[rows + 1 + i], members[i], "member %d", i);
    tal_index ix = host_index(index, n), s = tal_index_slice(ix, 2, 3);
    cr_assert_eq(s.data, index + 2);
    cr_assert_eq(s.n, 3);
    cr_assert_eq(s.device, TAL_DEV_CPU);
}

Test(nn_layout, index_from_a_planner_is_counted) {
    tal_arena *p = tal_arena_create_planner_on(TAL_DEV_CUDA);
    tal_index ix = tal_arena_index(p, 10);
    cr_assert_null(ix.data);
    cr_assert_eq(ix.device, TAL_DEV_CUDA);
    cr_assert_eq(tal_arena_high_water(p), tal_arena_round(40));
    tal_tensor t = tal_arena_tensor(p, 1, (int64_t[]){3});
    cr_assert_eq(t.device, TAL_DEV_CUDA, "a device planner's views carry its device");
    tal_arena_destroy(p);
    tal_arena *a = test_arena(1024);
    int32_t host[] = {4, -1, 7};
    ix = tal_arena_index(a, 3);
    tal_index_upload(ix, host);
    cr_assert(!memcmp(ix.data, host, sizeof host));
    tal_arena_destroy(a);
}

/* ---------------------------------------------------------------- bias table ------------ */
Test(nn_layout, bias_gather_and_its_gradient_match_the_backbone_loops) {
    int64_t rows, heads = 3;
    int32_t *ix = rel_index(2, 3, 2, 2, 3, 3, &rows); /* a clamped window: n = 12 of 18 */
    int64_t n = 12, nn = n * n;
    tal_tensor table = rnd(2, (int64_t[]){rows, heads}, 1);
    tal_tensor bias = test_tensor(3, (int64_t[]){heads, n, n});
    tal_bias_gather(bias, table, host_index(ix, nn));
    for (int64_t ij = 0; ij < nn; ij++) /* expand_bias */
        for (int64_t h = 0; h < heads; h++)
            cr_assert_eq(bias.data[h * nn + ij], table.data[ix[ij] * heads + h]);
    int32_t *grouped = malloc(sizeof(int32_t) * (size_t)(rows + 1 + nn));
    tal_index_group_by(grouped, ix, nn, rows);
    tal_tensor dbias = rnd(3, (int64_t[]){heads, n, n}, 2);
    tal_tensor dtable = rnd(2, (int64_t[]){rows, heads}, 3), want = test_clone(dtable);
    tal_bias_gather_backward(dtable, dbias, host_index(grouped, rows + 1 + nn));
    for (int64_t ij = 0; ij < nn; ij++) { /* reduce_bias_grad: serial, in ij order */
        float *row = want.data + (int64_t)ix[ij] * heads;
        for (int64_t h = 0; h < heads; h++) row[h] += dbias.data[h * nn + ij];
    }
    expect_bits(dtable, want);
    tal_fill(dtable, 0);
    tal_bias_gather_backward(dtable, dbias, host_index(grouped, rows + 1 + nn));
    expect_adjoint(dot(bias, dbias), dot(table, dtable), 1e-6); /* float sums */
    free(ix);
    free(grouped);
}

/* ---------------------------------------------------------------- PatchMerging ---------- */
Test(nn_layout, merge2x2_matches_the_kernel_offsets_and_its_adjoint) {
    const int64_t sizes[][4] = {{1, 4, 6, 3}, {2, 5, 7, 2}, {3, 1, 1, 4}, {1, 3, 2, 1}};
    for (int k = 0; k < 4; k++) {
        int64_t A = sizes[k][0], H = sizes[k][1], W = sizes[k][2], C = sizes[k][3];
        int64_t H2 = (H + 1) / 2, W2 = (W + 1) / 2;
        tal_tensor x = rnd(4, (int64_t[]){A, H, W, C}, 10 + k);
        tal_tensor m4 = rnd(4, (int64_t[]){A, H2, W2, 4 * C}, 20 + k);
        tal_merge2x2_forward(m4, x);
        /* every element as the kernel reads it (the backbone's former loop moved whole rows
         * of C to these places) */
        for (int64_t e = 0; e < tal_tensor_numel(m4); e++) {
            int64_t s = merge2x2_source(e, H, W, C);
            cr_assert_eq(m4.data[e], s < 0 ? 0.0f : x.data[s], "H %lld W %lld: m4[%lld]",
                         (long long)H, (long long)W, (long long)e);
        }
        if (H > 1 && W > 1) /* part 1 of slot (0, 0) is token (h 1, w 0), part 2 (h 0, w 1) */
            cr_assert(m4.data[C] == x.data[W * C] && m4.data[2 * C] == x.data[C]);
        tal_tensor dm4 = rnd(4, (int64_t[]){A, H2, W2, 4 * C}, 30 + k);
        tal_tensor dx = rnd(4, (int64_t[]){A, H, W, C}, 40 + k);
        tal_merge2x2_backward(dx, dm4);
        for (int64_t e = 0; e < tal_tensor_numel(dx); e++)
            cr_assert_eq(dx.data[e], dm4.data[merge2x2_slot(e, H, W, C)]);
        expect_adjoint(dot(m4, dm4), dot(x, dx), 1e-12);
    }
}

/* ---------------------------------------------------------------- transpose, pad, slice -- */
Test(nn_layout, transpose_last2_both_ways) {
    const int64_t A = 2, M = 37, N = 5;
    tal_tensor src = rnd(3, (int64_t[]){A, M, N}, 1), dst = test_tensor(3, (int64_t[]){A, N, M});
    tal_tensor back = test_tensor(3, (int64_t[]){A, M, N});
    tal_transpose_last2(dst, src);
    for (int64_t a = 0; a < A; a++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++)
                cr_assert_eq(dst.data[(a * N + n) * M + m], src.data[(a * M + m) * N + n]);
    for (int64_t e = 0; e < tal_tensor_numel(dst); e++)
        cr_assert_eq(dst.data[e], src.data[transpose_last2_source(e, M, N)]);
    tal_transpose_last2(back, dst);
    expect_bits(back, src);
}

Test(nn_layout, pad_end3_matches_the_video_padding) {
    const int64_t A = 3, T = 5, H = 3, W = 7, T2 = 6, H2 = 4, W2 = 8;
    tal_tensor src = rnd(4, (int64_t[]){A, T, H, W}, 1);
    tal_tensor dst = rnd(4, (int64_t[]){A, T2, H2, W2}, 2);
    tal_pad_end3(dst, src);
    for (int64_t e = 0; e < tal_tensor_numel(dst); e++) {
        int64_t s = pad_end3_source(e, T, H, W, T2, H2, W2);
        cr_assert_eq(dst.data[e], s < 0 ? 0.0f : src.data[s], "dst[%lld]", (long long)e);
    }
    int64_t w = W2 - 1, h = 0, t = 0, a = 1; /* a padded column reads as zero */
    cr_assert_eq(dst.data[((a * T2 + t) * H2 + h) * W2 + w], 0.0f);
    cr_assert_eq(dst.data[((a * T2 + 2) * H2 + 1) * W2 + 3],
                 src.data[((a * T + 2) * H + 1) * W + 3]);
    tal_pad_end3(dst, src); /* the same shape through: a plain copy */
    tal_tensor same = test_tensor(4, (int64_t[]){A, T, H, W});
    tal_pad_end3(same, src);
    expect_bits(same, src);
}

Test(nn_layout, copy_slice1_moves_a_window_of_the_middle_dim) {
    const int64_t A = 3, Ls = 11, Ld = 5, I = 4, s0 = 6, d0 = 1, len = 4;
    tal_tensor src = rnd(3, (int64_t[]){A, Ls, I}, 1), dst = rnd(3, (int64_t[]){A, Ld, I}, 2);
    tal_tensor want = test_clone(dst);
    tal_copy_slice1(dst, d0, src, s0, len);
    for (int64_t a = 0; a < A; a++)
        memcpy(want.data + (a * Ld + d0) * I, src.data + (a * Ls + s0) * I,
               sizeof(float) * len * I);
    expect_bits(dst, want);
    for (int64_t e = 0; e < A * len * I; e++) {
        int64_t od, os;
        slice1_offsets(e, len, I, Ld, d0, Ls, s0, &od, &os);
        cr_assert_eq(dst.data[od], src.data[os]);
    }
    tal_copy_slice1(dst, 0, src, 0, 0); /* nothing */
    expect_bits(dst, want);
}

/* ---------------------------------------------------------------- channels -------------- */
Test(nn_layout, mean_hw_last_matches_the_backbone_loops) {
    const int64_t B = 2, D = 3, S = 7, C = 5;
    tal_tensor x = rnd(4, (int64_t[]){B, D, S, C}, 1), y = test_tensor(3, (int64_t[]){B, C, D});
    tal_mean_hw_last_forward(y, x);
    for (int64_t b = 0; b < B; b++)
        for (int64_t d = 0; d < D; d++)
            for (int64_t c = 0; c < C; c++) {
                double acc = 0;
                for (int64_t t = 0; t < S; t++) acc += x.data[((b * D + d) * S + t) * C + c];
                cr_assert_eq(y.data[(b * C + c) * D + d], (float)(acc / (double)S));
            }
    tal_tensor dy = rnd(3, (int64_t[]){B, C, D}, 2), dx = test_tensor_like(x);
    tal_mean_hw_last_backward(dx, dy);
    float inv = 1.0f / (float)S;
    for (int64_t e = 0; e < tal_tensor_numel(dx); e++) {
        int64_t c = e % C, bd = e / (S * C);
        cr_assert_eq(dx.data[e], dy.data[((bd / D) * C + c) * D + bd % D] * inv);
    }
    expect_adjoint(dot(y, dy), dot(x, dx), 1e-6); /* the float mean and 1 / S rounded */
}

Test(nn_layout, batchnorm_frozen_matches_the_resnet_loops) {
    const int64_t B = 2, C = 3, S = 10;
    tal_tensor x = rnd(3, (int64_t[]){B, C, S}, 1), y = test_tensor_like(x);
    tal_tensor w = rnd(1, (int64_t[]){C}, 2), b = rnd(1, (int64_t[]){C}, 3);
    tal_tensor mean = rnd(1, (int64_t[]){C}, 4), var = rnd(1, (int64_t[]){C}, 5);
    for (int64_t c = 0; c < C; c++) var.data[c] = fabsf(var.data[c]) + 0.1f;
    tal_batchnorm_frozen_forward(y, x, w, b, mean, var, 1e-5f);
    for (int64_t n = 0; n < B; n++)
        for (int64_t c = 0; c < C; c++) {
            float s = w.data[c] / sqrtf(var.data[c] + 1e-5f), t = b.data[c] - mean.data[c] * s;
            for (int64_t i = 0; i < S; i++)
                cr_assert_eq(y.data[(n * C + c) * S + i], x.data[(n * C + c) * S + i] * s + t);
        }
    tal_tensor dy = rnd(3, (int64_t[]){B, C, S}, 6), dx = test_tensor_like(x);
    tal_batchnorm_frozen_backward(dx, dy, w, var, 1e-5f);
    for (int64_t n = 0; n < B; n++)
        for (int64_t c = 0; c < C; c++) {
            float s = w.data[c] / sqrtf(var.data[c] + 1e-5f);
            for (int64_t i = 0; i < S; i++)
                cr_assert_eq(dx.data[(n * C + c) * S + i], dy.data[(n * C + c) * S + i] * s);
        }
    tal_batchnorm_frozen_forward(x, x, w, b, mean, var, 1e-5f); /* in place */
    expect_bits(x, y);
}

Test(nn_layout, max_abs_diff_in_double_skipping_nans) {
    tal_tensor a = rnd(1, (int64_t[]){1001}, 1), b = test_clone(a);
    cr_assert_eq(tal_max_abs_diff(a, b), 0.0);
    b.data[500] += 0.25f;
    b.data[7] = NAN;
    cr_assert_eq(tal_max_abs_diff(a, b), fabs((double)a.data[500] - b.data[500]));
    cr_assert_eq(tal_max_abs_diff(tal_t1(NULL, 0), tal_t1(NULL, 0)), 0.0);
}

/* ---------------------------------------------------------------- devices --------------- */
/* A device-tagged tensor (a fake: host memory) among host tensors is a bug: abort. */
static tal_tensor fake_device(tal_tensor t) {
    t.device = TAL_DEV_CUDA;
    return t;
}

Test(nn_layout, mixed_devices_abort_gather, .signal = SIGABRT) {
    int32_t map[2] = {0, -1};
    tal_rows_gather(fake_device(rnd(2, (int64_t[]){2, 3}, 1)), rnd(2, (int64_t[]){2, 3}, 2),
                    host_index(map, 2));
}

Test(nn_layout, index_on_another_device_aborts, .signal = SIGABRT) {
    int32_t map[2] = {0, -1};
    tal_index ix = host_index(map, 2);
    ix.device = TAL_DEV_CUDA;
    tal_rows_gather(rnd(2, (int64_t[]){2, 3}, 1), rnd(2, (int64_t[]){2, 3}, 2), ix);
}

Test(nn_layout, mixed_devices_abort_merge, .signal = SIGABRT) {
    tal_merge2x2_forward(rnd(4, (int64_t[]){1, 1, 1, 4}, 1),
                         fake_device(rnd(4, (int64_t[]){1, 2, 2, 1}, 2)));
}

Test(nn_layout, mixed_devices_abort_mean, .signal = SIGABRT) {
    tal_mean_hw_last_forward(rnd(3, (int64_t[]){1, 2, 1}, 1),
                             fake_device(rnd(4, (int64_t[]){1, 1, 3, 2}, 2)));
}

Test(nn_layout, mixed_devices_abort_batchnorm, .signal = SIGABRT) {
    tal_tensor c = rnd(1, (int64_t[]){2}, 3);
    tal_batchnorm_frozen_forward(rnd(2, (int64_t[]){1, 2}, 1), rnd(2, (int64_t[]){1, 2}, 2), c,
                                 c, fake_device(c), c, 1e-5f);
}

Test(nn_layout, mixed_devices_abort_attention, .signal = SIGABRT) {
    tal_tensor q = rnd(4, (int64_t[]){1, 1, 2, 2}, 1), o = test_tensor_like(q);
    tal_tensor p = test_tensor_like(q); /* [1, 1, 2, 2]: N = Nk = 2 */
    tal_attention_forward(o, p, q, q, fake_device(test_clone(q)), tal_tensor_none(),
                          tal_tensor_none(), 1.0f);
}
