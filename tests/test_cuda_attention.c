/* The CUDA attention (nn/attention.cu) against the CPU op on the same random inputs, forward
 * and backward, on both layouts: [B, H, N, d] with Nk != N, padded key counts, -inf masks and
 * a row of all -inf, a batch of 1, one token; Swin's packed qkv with the relative-position bias,
 * the 8 shift-mask classes picked per window by a device mask_of, the Swin-T stage-1 window
 * (392 tokens, head dim 32). The cuBLAS path and the fused forward (RE2TAL_ATTN_FUSED=1), fp32
 * and bf16, and out's bits not depending on whether probabilities are kept (what makes a
 * reversible recompute exact). Skipped without a GPU. */
#include "cuda_check.h"

#include <stdlib.h>

TestSuite(cuda_attention, .fini = cuda_test_cleanup);

static double max_abs(tal_tensor t) {
    double m = 0;
    for (int64_t i = 0; i < tal_tensor_numel(t); i++) m = fmax(m, fabs(t.data[i]));
    return m;
}

/* fp32: 1e-5 relative, plus 1e-5 of the tensor's largest entry: an entry near zero is a sum
 * of terms that large, each device rounding them in its own order. bf16: each product input
 * carries up to 2^-8 relative error, so a sum of K terms is off by about 2^-8 sqrt(K) of its
 * scale (the softmax passes the logits' error on to the probabilities). */
static void expect_attn_impl(const char *what, tal_tensor dev, tal_tensor want, int64_t K,
                             int bf16, const char *file, int line) {
    double scale = max_abs(want), tol = bf16 ? ldexp(1.0, -8) * sqrt((double)K) : 1e-5;
    expect_close_impl(what, host_copy(dev), want, tol * scale + 1e-7, tol, file, line);
}
#define expect_attn(dev, want, K, bf16)                                                       \
    expect_attn_impl(#dev " (cuda) vs the cpu op", (dev), (want), (K), (bf16), __FILE__, __LINE__)

/* ---------------------------------------------------------------- [B, H, N, d] ---------- */
typedef struct bhnd_case {
    int64_t B, H, N, Nk, d, M; /* M: masks (0: none) */
    int bias, inf_row;
} bhnd_case;

static void check_bhnd(bhnd_case c, int bf16) {
    tal_precision_set(bf16 ? TAL_PREC_BF16 : TAL_PREC_FP32);
    int64_t B = c.B, H = c.H, N = c.N, Nk = c.Nk, d = c.d;
    float scale = 1.0f / sqrtf((float)d);
    tal_tensor q = rand_host(4, (int64_t[]){B, H, N, d}, 1);
    tal_tensor k = rand_host(4, (int64_t[]){B, H, Nk, d}, 2);
    tal_tensor v = rand_host(4, (int64_t[]){B, H, Nk, d}, 3);
    tal_tensor dout = rand_host(4, (int64_t[]){B, H, N, d}, 4);
    tal_tensor bias = c.bias ? rand_host(3, (int64_t[]){H, N, Nk}, 5) : tal_tensor_none();
    tal_tensor mask = c.M ? rand_host(3, (int64_t[]){c.M, N, Nk}, 6) : tal_tensor_none();
    for (int64_t i = 0; c.M && i < tal_tensor_numel(mask); i++)
        if (mask.data[i] < -0.6f) mask.data[i] = -INFINITY;
    if (c.M && c.inf_row) /* the middle row of the last mask: nothing to attend to */
        for (int64_t j = 0; j < Nk; j++)
            mask.data[((c.M - 1) * N + N / 2) * Nk + j] = -INFINITY;
    tal_arena *scratch = test_arena((size_t)64 << 20);
    tal_tensor out = test_tensor_like(q), probs = test_tensor(4, (int64_t[]){B, H, N, Nk});
    tal_attention_forward(out, probs, q, k, v, bias, mask, scale);
    tal_tensor d_q = dev_copy(q), d_k = dev_copy(k), d_v = dev_copy(v);
    tal_tensor d_bias = c.bias ? dev_copy(bias) : tal_tensor_none();
    tal_tensor d_mask = c.M ? dev_copy(mask) : tal_tensor_none();
    tal_tensor d_out = dev_tensor(4, q.shape), d_probs = dev_tensor(4, probs.shape);
    tal_attention_forward(d_out, d_probs, d_q, d_k, d_v, d_bias, d_mask, scale);
    expect_attn(d_probs, probs, d, bf16);
    expect_attn(d_out, out, Nk, bf16);
    /* backward: dbias accumulates onto what is there */
    tal_tensor dq = test_tensor_like(q), dk = test_tensor_like(k), dv = test_tensor_like(v);
    tal_tensor dbias = c.bias ? rand_host(3, (int64_t[]){H, N, Nk}, 7) : tal_tensor_none();
    tal_tensor d_dbias = c.bias ? dev_copy(dbias) : tal_tensor_none();
    tal_attention_backward(dq, dk, dv, dbias, dout, q, k, v, probs, scale, scratch);
    tal_tensor d_dq = dev_tensor(4, q.shape), d_dk = dev_tensor(4, k.shape);
    tal_tensor d_dv = dev_tensor(4, v.shape);
    tal_attention_backward(d_dq, d_dk, d_dv, d_dbias, dev_copy(dout), d_q, d_k, d_v, d_probs,
                           scale, dev_arena());
    expect_attn(d_dv, dv, N, bf16);
    expect_attn(d_dq, dq, Nk * d, bf16);
    expect_attn(d_dk, dk, N * d, bf16);
    if (c.bias) expect_attn(d_dbias, dbias, B * d, bf16);
    tal_arena_destroy(scratch);
    tal_precision_set(TAL_PREC_FP32);
}

static const bhnd_case BHND[] = {
    {1, 3, 37, 29, 8, 0, 1, 0},   /* a batch of 1, Nk != N, odd lengths, bias only */
    {3, 2, 50, 50, 16, 2, 1, 1},  /* masks b % 2 with -inf entries and an all -inf row */
    {2, 1, 1, 1, 4, 0, 0, 0},     /* one token */
    {2, 4, 257, 130, 32, 1, 0, 0}, /* past a block of rows, no bias */
};
#define N_BHND (int)(sizeof BHND / sizeof BHND[0])

Test(cuda_attention, bhnd_forward_backward_match_cpu) {
    CUDA_ONLY();
    for (int i = 0; i < N_BHND; i++) check_bhnd(BHND[i], 0);
}

Test(cuda_attention, bhnd_fused_forward_matches_cpu) {
    CUDA_ONLY();
    setenv("RE2TAL_ATTN_FUSED", "1", 1);
    for (int i = 0; i < N_BHND; i++) check_bhnd(BHND[i], 0);
    bhnd_case wide = {2, 2, 70, 65, 48, 2, 1, 1}; /* head dim 48: the 64-wide kernel */
    check_bhnd(wide, 0);
}

Test(cuda_attention, bhnd_bf16_within_bf16_tolerance) {
    CUDA_ONLY();
    for (int i = 0; i < N_BHND; i++) check_bhnd(BHND[i], 1);
    setenv("RE2TAL_ATTN_FUSED", "1", 1);
    for (int i = 0; i < N_BHND; i++) check_bhnd(BHND[i], 1);
}

/* ---------------------------------------------------------------- Swin's packed layout -- */
typedef struct swin_case {
    int64_t G, n, heads, d; /* windows, tokens per window, heads, head dim */
} swin_case;

/* Shift masks as Swin makes them (0 or -100 between region ids), 8 classes. */
static tal_tensor swin_masks(int64_t n) {
    tal_tensor m = test_tensor(3, (int64_t[]){8, n, n});
    for (int64_t c = 0; c < 8; c++)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                int64_t ri = (i * (c + 1) / n) % 3, rj = (j * (c + 1) / n) % 3;
                m.data[(c * n + i) * n + j] = ri == rj ? 0.0f : -100.0f;
            }
    return m;
}

static void check_swin(swin_case c, int bf16, int fused) {
    if (fused) setenv("RE2TAL_ATTN_FUSED", "1", 1);
    else unsetenv("RE2TAL_ATTN_FUSED");
    tal_precision_set(bf16 ? TAL_PREC_BF16 : TAL_PREC_FP32);
    int64_t G = c.G, n = c.n, H = c.heads, C = c.heads * c.d;
    float scale = 1.0f / sqrtf((float)c.d);
    tal_tensor qkv = rand_host(3, (int64_t[]){G, n, 3 * C}, 1);
    tal_tensor dout = rand_host(3, (int64_t[]){G, n, C}, 2);
    tal_tensor bias = rand_host(3, (int64_t[]){H, n, n}, 3), mask = swin_masks(n);
    uint8_t *mask_of = malloc((size_t)G);
    for (int64_t b = 0; b < G; b++) mask_of[b] = (uint8_t)((b * 5 + 3) % 8);
    uint8_t *d_mask_of = tal_arena_bytes(dev_arena(), (size_t)G);
    tal_err err = {0};
    cr_assert_eq(tal_copy_bytes(d_mask_of, TAL_DEV_CUDA, mask_of, TAL_DEV_CPU, (size_t)G, &err),
                 TAL_OK, "%s", err.msg);
    tal_arena *scratch = test_arena((size_t)64 << 20);
    tal_tensor out = test_tensor_like(dout), probs = test_tensor(4, (int64_t[]){G, H, n, n});
    tal_attention_qkv_forward(out, probs, 1, qkv, H, bias, mask, mask_of, scale);
    tal_tensor d_qkv = dev_copy(qkv), d_bias = dev_copy(bias), d_mask = dev_copy(mask);
    tal_tensor d_out = dev_tensor(3, out.shape), d_probs = dev_tensor(4, probs.shape);
    tal_attention_qkv_forward(d_out, d_probs, 1, d_qkv, H, d_bias, d_mask, d_mask_of, scale);
    expect_attn(d_probs, probs, c.d, bf16);
    expect_attn(d_out, out, n, bf16);
    /* inference (no probabilities): out has the same bits */
    tal_tensor d_out2 = dev_tensor(3, out.shape);
    tal_attention_qkv_forward(d_out2, tal_tensor_none(), 0, d_qkv, H, d_bias, d_mask, d_mask_of,
                              scale);
    expect_dev_bits(d_out2, host_copy(d_out));
    tal_tensor dqkv = test_tensor_like(qkv), dbias = rand_host(3, (int64_t[]){H, n, n}, 4);
    tal_tensor d_dbias = dev_copy(dbias), d_dqkv = dev_tensor(3, qkv.shape);
    tal_attention_qkv_backward(dqkv, dbias, dout, qkv, probs, H, scale, scratch);
    tal_attention_qkv_backward(d_dqkv, d_dbias, dev_copy(dout), d_qkv, d_probs, H, scale,
                               dev_arena());
    expect_attn(d_dqkv, dqkv, n * c.d, bf16);
    expect_attn(d_dbias, dbias, G * c.d, bf16);
    free(mask_of);
    tal_arena_destroy(scratch);
    tal_precision_set(TAL_PREC_FP32);
    unsetenv("RE2TAL_ATTN_FUSED");
}

static const swin_case SWIN[] = {
    {4, 98, 3, 32},  /* Swin-T's window clamped to 2 frames */
    {1, 27, 2, 5},   /* a batch of 1, odd sizes */
    {3, 64, 4, 16},  /* swin_small_test's 4x4x4 window */
};

Test(cuda_attention, swin_qkv_with_bias_and_shift_masks_matches_cpu) {
    CUDA_ONLY();
    for (int i = 0; i < 3; i++) check_swin(SWIN[i], 0, 0);
}

Test(cuda_attention, swin_qkv_fused_forward_matches_cpu) {
    CUDA_ONLY();
    for (int i = 0; i < 3; i++) check_swin(SWIN[i], 0, 1);
}

Test(cuda_attention, swin_qkv_bf16_within_bf16_tolerance) {
    CUDA_ONLY();
    for (int i = 0; i < 3; i++) {
        check_swin(SWIN[i], 1, 0);
        check_swin(SWIN[i], 1, 1);
    }
}

Test(cuda_attention, swin_t_stage1_window_matches_cpu) {
    CUDA_ONLY();
    swin_case t = {4, 392, 3, 32}; /* 8 x 7 x 7 tokens, 96 channels in 3 heads */
    check_swin(t, 0, 0);
    check_swin(t, 0, 1);
    check_swin(t, 1, 0);
}

Test(cuda_attention, out_bits_do_not_depend_on_kept_probabilities) {
    CUDA_ONLY();
    int64_t B = 3, H = 2, N = 45, d = 16;
    tal_tensor q = dev_copy(rand_host(4, (int64_t[]){B, H, N, d}, 1));
    tal_tensor bias = dev_copy(rand_host(3, (int64_t[]){H, N, N}, 2));
    for (int fused = 0; fused < 2; fused++) {
        if (fused) setenv("RE2TAL_ATTN_FUSED", "1", 1);
        tal_tensor a = dev_tensor(4, q.shape), b = dev_tensor(4, q.shape);
        tal_tensor probs = dev_tensor(4, (int64_t[]){B, H, N, N});
        tal_attention_forward(a, probs, q, q, q, bias, tal_tensor_none(), 0.25f);
        tal_attention_forward(b, probs, q, q, q, bias, tal_tensor_none(), 0.25f); /* again */
        expect_dev_bits(b, host_copy(a)); /* deterministic: no atomics */
    }
}
