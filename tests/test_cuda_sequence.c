/* The CUDA twins of the detection head's ops (nn.h "ops: sequences") against the CPU ops on the
 * same random inputs, small and past a block (sizes that are no multiple of 256): the copies and
 * single products bit for bit, the parameter-gradient sums, the attention and the losses to
 * fp32 tolerances (other summation orders; CUDA's exp may differ in the last bit). Padded
 * columns in every mask. Skipped without a GPU. */
#include "cuda_check.h"

TestSuite(cuda_sequence, .fini = cuda_test_cleanup);

typedef struct dims {
    int64_t B, C, T;
} dims;

static const dims SIZES[] = {{1, 1, 1}, {2, 3, 7}, {2, 64, 301}, {3, 17, 1031}};
#define N_SIZES (int)(sizeof SIZES / sizeof SIZES[0])

/* mask [B, T]: item b has T - 3 b valid positions (at least 1). */
static tal_tensor mask_of(int64_t B, int64_t T) {
    tal_tensor m = test_tensor(2, (int64_t[]){B, T});
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) m.data[b * T + t] = t < T - 3 * b || t == 0 ? 1.0f : 0.0f;
    return m;
}

Test(cuda_sequence, mask_scale_position_take_every_bits) {
    CUDA_ONLY();
    for (int s = 0; s < N_SIZES; s++) {
        dims d = SIZES[s];
        int64_t sh[3] = {d.B, d.C, d.T};
        tal_tensor x = rand_host(3, sh, 1 + s), m = mask_of(d.B, d.T), y = test_tensor(3, sh);
        tal_tensor g = rand_host(1, &d.C, 2), tab = rand_host(2, (int64_t[]){d.C, d.T + 5}, 3);
        tal_tensor dx = dev_copy(x), dm = dev_copy(m), dy = dev_like(x), dg = dev_copy(g);
        tal_tensor dtab = dev_copy(tab);
        tal_mask_columns(y, x, m);
        tal_mask_columns(dy, dx, dm);
        expect_dev_bits(dy, y);
        tal_channel_scale_forward(y, x, g);
        tal_channel_scale_forward(dy, dx, dg);
        expect_dev_bits(dy, y);
        tal_add_position_table(y, x, tab, m);
        tal_add_position_table(dy, dx, dtab, dm);
        expect_dev_bits(dy, y);
        for (int st = 1; st <= 3; st++) {
            int64_t To = (d.T + st - 1) / st;
            tal_tensor h = test_tensor(2, (int64_t[]){d.B, To}), dh = dev_like(h);
            tal_take_every(h, m, st);
            tal_take_every(dh, dm, st);
            expect_dev_bits(dh, h);
        }
    }
}

Test(cuda_sequence, channel_scale_and_scale_relu_backward) {
    CUDA_ONLY();
    for (int s = 0; s < N_SIZES; s++) {
        dims d = SIZES[s];
        int64_t sh[3] = {d.B, d.C, d.T}, one = 1, n = d.B * d.C * d.T;
        tal_tensor x = rand_host(3, sh, 10 + s), dy = rand_host(3, sh, 20 + s);
        tal_tensor g = rand_host(1, &d.C, 30 + s), dx = test_tensor(3, sh);
        tal_tensor dg = rand_host(1, &d.C, 40 + s); /* accumulated into */
        tal_tensor gx = dev_copy(x), gdy = dev_copy(dy), gg = dev_copy(g), gdx = dev_like(x);
        tal_tensor gdg = dev_copy(dg);
        tal_channel_scale_backward(dx, dg, dy, x, g);
        tal_channel_scale_backward(gdx, gdg, gdy, gx, gg);
        expect_dev_bits(gdx, dx);
        expect_dev_close(gdg, dg, FP32_ATOL(d.B * d.T), FP32_RTOL);
        /* regression scale: y = relu(s x) */
        tal_tensor sc = test_tensor(1, &one), y = test_tensor(3, sh), ds = test_tensor(1, &one);
        sc.data[0] = 0.7f;
        tal_tensor gsc = dev_copy(sc), gy = dev_like(y), gds = dev_copy(ds);
        tal_scale_relu_forward(y, x, sc);
        tal_scale_relu_forward(gy, gx, gsc);
        expect_dev_bits(gy, y);
        tal_scale_relu_backward(dx, ds, dy, y, x, sc);
        tal_scale_relu_backward(gdx, gds, gdy, gy, gx, gsc);
        expect_dev_bits(gdx, dx);
        expect_dev_close(gds, ds, FP32_ATOL(n), FP32_RTOL);
        /* non-finite count */
        x.data[0] = NAN;
        x.data[n - 1] = -INFINITY;
        cr_expect_eq(tal_count_nonfinite(dev_copy(x)), tal_count_nonfinite(x));
    }
}

/* The attention's forward and backward, global (window -1) and band (window w). */
static void check_attention(dims d, int heads, int window) {
    int64_t sh[3] = {d.B, d.C, d.T}, cols = tal_attention_ct_probs_cols(d.T, window);
    int64_t psh[4] = {d.B, heads, d.T, cols};
    tal_tensor q = rand_host(3, sh, 51), k = rand_host(3, sh, 52), v = rand_host(3, sh, 53);
    tal_tensor m = mask_of(d.B, d.T), dout = rand_host(3, sh, 54);
    tal_mask_columns(v, v, m);
    tal_tensor out = test_tensor(3, sh), probs = test_tensor(4, psh);
    tal_tensor gq = dev_copy(q), gk = dev_copy(k), gv = dev_copy(v), gm = dev_copy(m);
    tal_tensor gout = dev_like(out), gprobs = dev_like(probs), gdout = dev_copy(dout);
    tal_attention_ct_forward(out, probs, q, k, v, m, m, heads, window);
    tal_attention_ct_forward(gout, gprobs, gq, gk, gv, gm, gm, heads, window);
    int64_t hd = d.C / heads;
    expect_dev_close(gprobs, probs, FP32_ATOL(hd), FP32_RTOL);
    expect_dev_close(gout, out, FP32_ATOL(cols), FP32_RTOL);
    /* the backward from the CPU's probabilities on both: each op checked on its own */
    tal_tensor dq = test_tensor(3, sh), dk = test_tensor(3, sh), dv = test_tensor(3, sh);
    tal_tensor dl = test_tensor(4, psh);
    tal_tensor gdq = dev_like(dq), gdk = dev_like(dk), gdv = dev_like(dv), gdl = dev_like(dl);
    tal_tensor gp = dev_copy(probs);
    tal_attention_ct_backward(dq, dk, dv, dl, dout, q, k, v, probs, heads, window);
    tal_attention_ct_backward(gdq, gdk, gdv, gdl, gdout, gq, gk, gv, gp, heads, window);
    expect_dev_close(gdl, dl, FP32_ATOL(hd + cols), FP32_RTOL);
    expect_dev_close(gdv, dv, FP32_ATOL(cols), FP32_RTOL);
    expect_dev_close(gdq, dq, FP32_ATOL(cols * hd), FP32_RTOL);
    expect_dev_close(gdk, dk, FP32_ATOL(cols * hd), FP32_RTOL);
}

Test(cuda_sequence, global_attention_matches_cpu) {
    CUDA_ONLY();
    check_attention((dims){2, 4, 7}, 2, -1);
    check_attention((dims){2, 64, 301}, 4, -1);
}

Test(cuda_sequence, band_attention_matches_cpu) {
    CUDA_ONLY();
    check_attention((dims){2, 4, 7}, 2, 3);
    check_attention((dims){2, 64, 301}, 4, 19);
    check_attention((dims){1, 32, 1031}, 4, 9);
}

Test(cuda_sequence, focal_and_diou_losses_match_cpu) {
    CUDA_ONLY();
    for (int s = 1; s < N_SIZES; s++) {
        dims d = SIZES[s];
        int64_t sh[3] = {d.B, d.C, d.T}, rsh[3] = {d.B, 2, d.T};
        tal_tensor x = rand_range(3, sh, 61 + s, -4, 4), t = rand_host(3, sh, 62 + s);
        for (int64_t i = 0; i < tal_tensor_numel(t); i++) t.data[i] = t.data[i] > 0.5f ? 0.9f : 0.02f;
        tal_tensor m = mask_of(d.B, d.T), dx = test_tensor(3, sh), gdx = dev_like(dx);
        double want = tal_focal_loss_masked(dx, x, t, m, 0.25f, 2.0f, 0.1f);
        double got = tal_focal_loss_masked(gdx, dev_copy(x), dev_copy(t), dev_copy(m), 0.25f,
                                           2.0f, 0.1f);
        cr_expect(fabs(got - want) <= 1e-12 * fabs(want) + 1e-12, "focal sum %.17g vs cpu %.17g",
                  got, want);
        expect_dev_close(gdx, dx, 1e-7, 1e-6);
        /* DIoU over the points m marks, offsets > 0 */
        tal_tensor r = rand_range(3, rsh, 71 + s, 0.1f, 5), rt = rand_range(3, rsh, 72 + s, 0.1f, 5);
        tal_tensor dr = test_tensor(3, rsh), gdr = dev_like(dr);
        want = tal_diou_loss_offsets(dr, r, rt, m, 4.0f, 0.1f);
        got = tal_diou_loss_offsets(gdr, dev_copy(r), dev_copy(rt), dev_copy(m), 4.0f, 0.1f);
        cr_expect(fabs(got - want) <= 1e-12 * fabs(want) + 1e-12, "diou sum %.17g vs cpu %.17g",
                  got, want);
        expect_dev_close(gdr, dr, 1e-7, 1e-6);
    }
}
