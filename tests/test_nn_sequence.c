/* The detection head's ops on [B, C, T] sequences (nn.h "ops: sequences") on the CPU: each
 * forward against a plain loop written here, each backward against finite differences (the
 * attention's dense and band forms, with padded keys and queries; the focal and DIoU losses'
 * gradients against their returned sums). Their CUDA twins: test_cuda_sequence.c. */
#include "nn_check.h"

#include <math.h>

TestSuite(nn_sequence, .fini = test_free_all);

static tal_tensor rand_t(int ndim, const int64_t *shape, uint64_t seed) {
    tal_tensor t = test_tensor(ndim, shape);
    test_fill_uniform(t, seed);
    return t;
}

/* mask [B, T]: item b has T - 2 b valid positions (the rest 0). */
static tal_tensor length_mask(int64_t B, int64_t T) {
    tal_tensor m = test_tensor(2, (int64_t[]){B, T});
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) m.data[b * T + t] = t < T - 2 * b ? 1.0f : 0.0f;
    return m;
}

Test(nn_sequence, elementwise_forwards_match_plain_loops) {
    int64_t B = 2, C = 3, T = 7;
    int64_t sh[3] = {B, C, T};
    tal_tensor x = rand_t(3, sh, 1), m = length_mask(B, T), y = test_tensor(3, sh);
    tal_tensor g = rand_t(1, &C, 2), table = rand_t(2, (int64_t[]){C, T + 3}, 3);
    tal_mask_columns(y, x, m);
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t t = 0; t < T; t++) {
                int64_t i = (b * C + c) * T + t;
                cr_expect_eq(y.data[i], x.data[i] * m.data[b * T + t], "mask at %lld", (long long)i);
            }
    tal_channel_scale_forward(y, x, g);
    for (int64_t i = 0; i < B * C * T; i++)
        cr_expect_eq(y.data[i], g.data[(i / T) % C] * x.data[i], "scale at %lld", (long long)i);
    tal_add_position_table(y, x, table, m);
    for (int64_t i = 0; i < B * C * T; i++) {
        int64_t t = i % T, c = (i / T) % C, b = i / (C * T);
        cr_expect_eq(y.data[i], x.data[i] + table.data[c * (T + 3) + t] * m.data[b * T + t],
                     "position table at %lld", (long long)i);
    }
    /* in place */
    tal_tensor z = test_clone(x);
    tal_mask_columns(z, z, m);
    tal_mask_columns(y, x, m);
    expect_close(z, y, 0, 0);
    /* every 2nd of 7 -> 4, every 3rd -> 3 */
    for (int s = 2; s <= 3; s++) {
        int64_t To = (T + s - 1) / s;
        tal_tensor d = test_tensor(2, (int64_t[]){B, To});
        tal_take_every(d, m, s);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < To; t++)
                cr_expect_eq(d.data[b * To + t], m.data[b * T + t * s]);
    }
    tal_tensor nf = test_clone(x);
    cr_expect_eq(tal_count_nonfinite(nf), 0);
    nf.data[3] = NAN, nf.data[5] = INFINITY, nf.data[8] = -INFINITY;
    cr_expect_eq(tal_count_nonfinite(nf), 3);
}

/* ---- channel scale and scale-ReLU backward against finite differences ---- */
typedef struct scale_ctx {
    tal_tensor x, g, y, w;
    int relu;
} scale_ctx;

static double scale_loss(void *p) {
    scale_ctx *c = p;
    if (c->relu) tal_scale_relu_forward(c->y, c->x, c->g);
    else tal_channel_scale_forward(c->y, c->x, c->g);
    return test_dot(c->y, c->w);
}

Test(nn_sequence, channel_scale_backward_matches_finite_differences) {
    int64_t C = 4, sh[3] = {2, C, 5};
    scale_ctx c = {rand_t(3, sh, 4), rand_t(1, &C, 5), test_tensor(3, sh), rand_t(3, sh, 6), 0};
    tal_tensor dx = test_tensor(3, sh), dg = test_tensor(1, &C);
    tal_fill(dg, 0.5f); /* accumulates */
    tal_channel_scale_backward(dx, dg, c.w, c.x, c.g);
    for (int64_t i = 0; i < C; i++) dg.data[i] -= 0.5f;
    fd_check(dx, c.x, scale_loss, &c);
    fd_check(dg, c.g, scale_loss, &c);
    /* dx may be dy itself; dg none skips */
    tal_tensor dy = test_clone(c.w);
    tal_channel_scale_backward(dy, (tal_tensor){0}, dy, c.x, c.g);
    expect_close(dy, dx, 0, 0);
}

Test(nn_sequence, scale_relu_backward_matches_finite_differences) {
    int64_t n = 40, one = 1;
    scale_ctx c = {rand_t(1, &n, 7), test_tensor(1, &one), test_tensor(1, &n), rand_t(1, &n, 8), 1};
    c.g.data[0] = 1.3f;
    for (int64_t i = 0; i < n; i++) /* away from the kink: h never crosses it */
        if (fabsf(c.x.data[i]) < 0.05f) c.x.data[i] = 0.3f;
    tal_scale_relu_forward(c.y, c.x, c.g);
    tal_tensor dx = test_tensor(1, &n), ds = test_tensor(1, &one);
    tal_scale_relu_backward(dx, ds, c.w, c.y, c.x, c.g);
    fd_check(dx, c.x, scale_loss, &c);
    fd_check(ds, c.g, scale_loss, &c);
}

/* ---- attention on channel-first tensors ---- */
typedef struct attn_ctx {
    tal_tensor q, k, v, vm, out, probs, qmask, kvmask, w;
    int heads, window;
} attn_ctx;

/* vm = v masked by the keys' mask, as the head hands it in */
static double attn_loss(void *p) {
    attn_ctx *c = p;
    tal_mask_columns(c->vm, c->v, c->kvmask);
    tal_attention_ct_forward(c->out, c->probs, c->q, c->k, c->vm, c->qmask, c->kvmask, c->heads,
                             c->window);
    return test_dot(c->out, c->w);
}

static void check_attention(int window) {
    int64_t B = 2, C = 4, T = 7, sh[3] = {B, C, T};
    int heads = 2;
    int64_t cols = tal_attention_ct_probs_cols(T, window);
    attn_ctx c = {rand_t(3, sh, 11), rand_t(3, sh, 12), rand_t(3, sh, 13), test_tensor(3, sh),
                  test_tensor(3, sh), test_tensor(4, (int64_t[]){B, heads, T, cols}),
                  length_mask(B, T), length_mask(B, T), rand_t(3, sh, 14), heads, window};
    double base = attn_loss(&c);
    cr_assert(isfinite(base));
    /* every row of probabilities sums to 1, or is all zeros (a padded query in the band) */
    for (int64_t r = 0; r < B * heads * T; r++) {
        double s = 0;
        for (int64_t j = 0; j < cols; j++) s += c.probs.data[r * cols + j];
        int64_t b = r / (heads * T), i = r % T;
        int padded_query = window > 0 && c.qmask.data[b * T + i] <= 0;
        cr_expect(fabs(s - (padded_query ? 0.0 : 1.0)) < 1e-5, "row %lld sums to %g",
                  (long long)r, s);
    }
    tal_tensor dq = test_tensor(3, sh), dk = test_tensor(3, sh), dvm = test_tensor(3, sh);
    tal_tensor dlog = test_tensor(4, c.probs.shape), dv = test_tensor(3, sh);
    tal_attention_ct_backward(dq, dk, dvm, dlog, c.w, c.q, c.k, c.vm, c.probs, heads, window);
    tal_mask_columns(dv, dvm, c.kvmask); /* through vm = v kvmask */
    fd_check(dq, c.q, attn_loss, &c);
    fd_check(dk, c.k, attn_loss, &c);
    fd_check(dv, c.v, attn_loss, &c);
}

Test(nn_sequence, global_attention_backward_matches_finite_differences) { check_attention(-1); }

Test(nn_sequence, band_attention_backward_matches_finite_differences) {
    check_attention(3);
    check_attention(5);
}

/* The band's entries are the softmax of the logits of the keys within w / 2 of the query. */
Test(nn_sequence, band_probabilities_are_the_dense_rows) {
    int64_t B = 1, C = 2, T = 9, sh[3] = {B, C, T};
    int w = 5;
    tal_tensor q = rand_t(3, sh, 21), k = rand_t(3, sh, 22), vm = rand_t(3, sh, 23);
    tal_tensor m = test_tensor(2, (int64_t[]){B, T});
    tal_fill(m, 1.0f);
    tal_tensor pb = test_tensor(4, (int64_t[]){B, 1, T, w}), ob = test_tensor(3, sh);
    tal_attention_ct_forward(ob, pb, q, k, vm, m, m, 1, w);
    /* the softmax of the band's logits, in double */
    for (int64_t i = 0; i < T; i++) {
        double z = 0, logits[9];
        for (int64_t j = 0; j < T; j++) {
            double s = 0;
            for (int64_t d = 0; d < C; d++) s += (double)q.data[d * T + i] * k.data[d * T + j];
            logits[j] = s / sqrt((double)C);
            if (labs((long)(j - i)) <= w / 2) z += exp(logits[j]);
        }
        for (int o = 0; o < w; o++) {
            int64_t j = i - w / 2 + o;
            double want = j >= 0 && j < T ? exp(logits[j]) / z : 0;
            cr_expect(fabs(pb.data[i * w + o] - want) < 1e-6, "query %lld entry %d: %g vs %g",
                      (long long)i, o, pb.data[i * w + o], want);
        }
    }
}

/* ---- the losses ---- */
typedef struct loss_ctx {
    tal_tensor x, t, mask;
    float stride;
} loss_ctx;

static double focal_sum(void *p) {
    loss_ctx *c = p;
    return tal_focal_loss_masked((tal_tensor){0}, c->x, c->t, c->mask, 0.25f, 2.0f, 1.0f);
}

static double diou_sum(void *p) {
    loss_ctx *c = p;
    return tal_diou_loss_offsets((tal_tensor){0}, c->x, c->t, c->mask, c->stride, 1.0f);
}

Test(nn_sequence, focal_loss_gradient_and_mask) {
    int64_t B = 2, K = 3, T = 6, sh[3] = {B, K, T};
    loss_ctx c = {rand_t(3, sh, 31), rand_t(3, sh, 32), length_mask(B, T), 1};
    for (int64_t i = 0; i < B * K * T; i++) {
        c.x.data[i] *= 3.0f;
        c.t.data[i] = c.t.data[i] > 0.3f ? 0.9f : 0.05f; /* smoothed 0 / 1 targets */
    }
    tal_tensor dx = test_tensor(3, sh);
    double sum = tal_focal_loss_masked(dx, c.x, c.t, c.mask, 0.25f, 2.0f, 1.0f);
    /* the sum is the elements' terms over the valid columns, in b, t, k order */
    double want = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t k = 0; k < K; k++) {
                int64_t e = (b * K + k) * T + t;
                float d;
                if (c.mask.data[b * T + t] > 0)
                    want += tal_focal_loss_one(c.x.data[e], c.t.data[e], 0.25f, 2.0f, 1.0f, &d);
                else
                    cr_expect_eq(dx.data[e], 0.0f, "masked column %lld has a gradient",
                                 (long long)e);
            }
    cr_expect_eq(sum, want);
    fd_check(dx, c.x, focal_sum, &c);
    /* gscale scales the gradient only */
    tal_tensor dx2 = test_tensor(3, sh);
    cr_expect_eq(tal_focal_loss_masked(dx2, c.x, c.t, c.mask, 0.25f, 2.0f, 0.5f), sum);
    for (int64_t i = 0; i < B * K * T; i++) cr_expect_eq(dx2.data[i], (float)(0.5 * dx.data[i]));
}

Test(nn_sequence, diou_loss_gradient_over_positive_points) {
    int64_t B = 2, T = 5, sh[3] = {B, 2, T};
    loss_ctx c = {rand_t(3, sh, 41), rand_t(3, sh, 42), length_mask(B, T), 2.0f};
    for (int64_t i = 0; i < B * 2 * T; i++) { /* offsets > 0, predictions off the targets */
        c.x.data[i] = 1.5f + c.x.data[i];
        c.t.data[i] = 2.0f + 0.8f * c.t.data[i];
    }
    tal_tensor dr = test_tensor(3, sh);
    double sum = tal_diou_loss_offsets(dr, c.x, c.t, c.mask, c.stride, 1.0f);
    double want = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < T; i++) {
            if (c.mask.data[b * T + i] <= 0) {
                cr_expect(dr.data[b * 2 * T + i] == 0 && dr.data[b * 2 * T + T + i] == 0);
                continue;
            }
            double p = (double)i * c.stride;
            const float *r = c.x.data + b * 2 * T, *g = c.t.data + b * 2 * T;
            want += tal_diou_loss_one((float)(p - r[i] * c.stride), (float)(p + r[T + i] * c.stride),
                                      (float)(p - g[i] * c.stride), (float)(p + g[T + i] * c.stride),
                                      1.0f, NULL, NULL);
        }
    cr_expect_eq(sum, want);
    /* a smaller step: the loss has kinks where segment ends cross */
    fd_check_impl("dr vs finite differences", dr, c.x, diou_sum, &c, 1e-3, 2e-3, 1e-2, __FILE__,
                  __LINE__);
}
