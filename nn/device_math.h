/* nn/device_math.h: private to nn/: what the CPU code and the CUDA kernels both compute, written
 * once so both sides agree bit for bit and CPU tests check it (tests/test_nn_device_math.c):
 * Philox-4x32-10 and the draws made from it, bf16 rounding, and the index arithmetic of the
 * kernels (conv taps, im2col sources, interpolation sources). C11 and nvcc both read it. */
#ifndef TAL_DEVICE_MATH_H
#define TAL_DEVICE_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define TAL_HD __host__ __device__ static inline
#else
#define TAL_HD static inline
#endif

/* ---------------------------------------------------------------- bits of a float ------- */
TAL_HD uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

TAL_HD float float_of_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* ---------------------------------------------------------------- bf16 ------------------ */
/* Round to nearest even; a NaN stays a NaN (quiet bit set, so the truncation cannot turn a
 * signalling NaN's payload into infinity); infinities and overflow to infinity as IEEE says. */
TAL_HD uint16_t f32_to_bf16_bits(float f) {
    uint32_t bits = float_bits(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

TAL_HD float bf16_bits_to_f32(uint16_t h) { return float_of_bits((uint32_t)h << 16); }

/* f rounded to the nearest bf16, as a float: what a bf16 operand holds. */
TAL_HD float round_to_bf16(float f) { return bf16_bits_to_f32(f32_to_bf16_bits(f)); }

/* ---------------------------------------------------------------- Philox-4x32-10 -------- */
TAL_HD void philox_round(uint32_t ctr[4], const uint32_t key[2]) {
    const uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0];
    const uint64_t p1 = (uint64_t)0xCD9E8D57u * ctr[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t out0 = hi1 ^ ctr[1] ^ key[0], out2 = hi0 ^ ctr[3] ^ key[1];
    ctr[0] = out0;
    ctr[1] = lo1;
    ctr[2] = out2;
    ctr[3] = lo0;
}

TAL_HD void philox4x32_10(uint32_t ctr[4], uint64_t seed) {
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int r = 0; r < 10; r++) {
        philox_round(ctr, key);
        key[0] += 0x9E3779B9u;
        key[1] += 0xBB67AE85u;
    }
}

/* Draw i of the key (seed, step, stream): step and stream go into the counter's upper words,
 * the index into the lower ones. */
TAL_HD void philox_draw(uint64_t seed, uint64_t step, uint64_t stream, uint64_t i,
                        uint32_t out[4]) {
    uint64_t hi = step * 0x9E3779B97F4A7C15ull ^ (stream + 0x632BE59BD9B4E019ull);
    out[0] = (uint32_t)i;
    out[1] = (uint32_t)(i >> 32);
    out[2] = (uint32_t)hi;
    out[3] = (uint32_t)(hi >> 32);
    philox4x32_10(out, seed);
}

TAL_HD uint64_t philox_u64(uint64_t seed, uint64_t step, uint64_t stream, uint64_t i) {
    uint32_t r[4];
    philox_draw(seed, step, stream, i, r);
    return ((uint64_t)r[0] << 32) | r[1];
}

/* The top 24 bits of a word as a float in [0, 1): exact in float, never 1. */
TAL_HD float uniform24(uint32_t w) { return (float)(w >> 8) * (1.0f / 16777216.0f); }

TAL_HD float philox_uniform(uint64_t seed, uint64_t step, uint64_t stream, uint64_t i) {
    uint32_t r[4];
    philox_draw(seed, step, stream, i, r);
    return uniform24(r[0]);
}

/* Box-Muller on the first two words, in double (u1 in (0, 1]: the log is finite). */
TAL_HD float philox_normal(uint64_t seed, uint64_t step, uint64_t stream, uint64_t i) {
    uint32_t r[4];
    philox_draw(seed, step, stream, i, r);
    double u1 = ((double)r[0] + 1.0) / 4294967297.0;
    double u2 = (double)r[1] / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2));
}

/* Element i's dropout uniform: each draw gives two 32-bit words, so draw i / 2 serves elements
 * 2k (upper word) and 2k + 1 (lower word). Drop-path takes sample b's the same way. */
TAL_HD float dropout_uniform(uint64_t seed, uint64_t step, uint64_t stream, uint64_t i) {
    uint64_t r = philox_u64(seed, step, stream, i >> 1);
    return uniform24((i & 1) ? (uint32_t)r : (uint32_t)(r >> 32));
}

/* ---------------------------------------------------------------- convolution indices --- */
/* Input position read by output t through tap j (may be outside [0, in): zero padding). */
TAL_HD int64_t conv_tap_source(int64_t t, int64_t j, int stride, int padding) {
    return t * stride + j - padding;
}

/* The inverse: the output position that reads input s through tap j, or -1 when none does
 * (s + padding - j not a multiple of the stride, or the output outside [0, out_len)). A
 * gradient kernel gathers with it, one thread per input element, instead of scattering with
 * atomics. */
TAL_HD int64_t conv_tap_output(int64_t s, int64_t j, int stride, int padding, int64_t out_len) {
    int64_t num = s + padding - j;
    if (num < 0 || num % stride) return -1;
    int64_t t = num / stride;
    return t < out_len ? t : -1;
}

/* A 3-D convolution's geometry: input [Ci, T, H, W] of one sample, kernel (kt, kh, kw), output
 * positions To x Ho x Wo. The im2col matrix has rows k = ((ci kt + dt) kh + dh) kw + dw (the
 * weight's own flattening) and columns p = (to Ho + ho) Wo + wo. */
typedef struct conv3d_shape {
    int64_t Ci, T, H, W;
    int64_t kt, kh, kw;
    int64_t To, Ho, Wo;
    int stride[3], padding[3];
} conv3d_shape;

/* Offset in the sample [Ci, T, H, W] of im2col entry (k, p), or -1 for zero padding. */
TAL_HD int64_t conv3d_col_source(const conv3d_shape *s, int64_t k, int64_t p) {
    int64_t dw = k % s->kw, r = k / s->kw;
    int64_t dh = r % s->kh;
    r /= s->kh;
    int64_t dt = r % s->kt, ci = r / s->kt;
    int64_t wo = p % s->Wo, q = p / s->Wo;
    int64_t ho = q % s->Ho, to = q / s->Ho;
    int64_t st = conv_tap_source(to, dt, s->stride[0], s->padding[0]);
    int64_t sh = conv_tap_source(ho, dh, s->stride[1], s->padding[1]);
    int64_t sw = conv_tap_source(wo, dw, s->stride[2], s->padding[2]);
    if (st < 0 || st >= s->T || sh < 0 || sh >= s->H || sw < 0 || sw >= s->W) return -1;
    return ((ci * s->T + st) * s->H + sh) * s->W + sw;
}

/* Offset in one [T, H, W] plane (sizes in[3]) of the winner of 3-D max-pool output (t, h, w),
 * PyTorch's rule: padding never wins, strictly greater replaces (ties keep the first position
 * in (t, h, w) scan order), a NaN wins. -1 only for a window of padding alone. */
TAL_HD int64_t pool3d_window_argmax(const float *xp, const int64_t in[3], int64_t t, int64_t h,
                                    int64_t w, const int kernel[3], const int stride[3],
                                    const int padding[3]) {
    float best = -INFINITY;
    int64_t at = -1;
    for (int i = 0; i < kernel[0]; i++) {
        int64_t ti = conv_tap_source(t, i, stride[0], padding[0]);
        if (ti < 0 || ti >= in[0]) continue;
        for (int j = 0; j < kernel[1]; j++) {
            int64_t hi = conv_tap_source(h, j, stride[1], padding[1]);
            if (hi < 0 || hi >= in[1]) continue;
            for (int k = 0; k < kernel[2]; k++) {
                int64_t wi = conv_tap_source(w, k, stride[2], padding[2]);
                if (wi < 0 || wi >= in[2]) continue;
                int64_t o = (ti * in[1] + hi) * in[2] + wi;
                if (at < 0 || xp[o] > best || isnan(xp[o])) {
                    best = xp[o];
                    at = o;
                }
            }
        }
    }
    return at;
}

/* ---------------------------------------------------------------- interpolation -------- */
/* Linear interpolation source of output i (PyTorch's align_corners=False), matched weight for
 * weight against PyTorch 1.13: the scale is a float, the source index stays in double, only the
 * weight src - i0 is rounded to float; the other weight is 1 - that, in float. */
TAL_HD void interp_source(int64_t i, int64_t tin, int64_t tout, int64_t *i0, int64_t *i1,
                          float *l) {
    float scale = (float)tin / (float)tout;
    double src = (double)scale * ((double)i + 0.5) - 0.5;
    if (src < 0) src = 0;
    *i0 = (int64_t)src;
    if (*i0 > tin - 1) *i0 = tin - 1;
    *i1 = *i0 + (*i0 < tin - 1 ? 1 : 0);
    *l = (float)(src - (double)*i0);
}

/* ---------------------------------------------------------------- layout indices -------- */
/* The layout ops' element arithmetic (nn/layout.c): the CUDA kernels run one thread per output
 * element through these; the CPU ops move whole rows, and tests/test_nn_device_math.c checks
 * that both address the same elements. */

/* PatchMerging: element e of m4 [A, H2, W2, 4, C] (H2 = ceil(H/2), W2 = ceil(W/2)) reads x
 * [A, H, W, C] at the returned offset, or -1 (zero) past an odd edge. Part p of a slot holds
 * the neighbour (2i + (p & 1), 2j + (p >> 1)). */
TAL_HD int64_t merge2x2_source(int64_t e, int64_t H, int64_t W, int64_t C) {
    int64_t H2 = (H + 1) / 2, W2 = (W + 1) / 2;
    int64_t c = e % C, q = e / C;
    int64_t part = q % 4, slot = q / 4;
    int64_t j = slot % W2, i = (slot / W2) % H2, a = slot / (W2 * H2);
    int64_t h = 2 * i + (part & 1), w = 2 * j + (part >> 1);
    if (h >= H || w >= W) return -1;
    return ((a * H + h) * W + w) * C + c;
}

/* The inverse: where in m4 element e of x [A, H, W, C] went. */
TAL_HD int64_t merge2x2_slot(int64_t e, int64_t H, int64_t W, int64_t C) {
    int64_t H2 = (H + 1) / 2, W2 = (W + 1) / 2;
    int64_t c = e % C, q = e / C;
    int64_t w = q % W, h = (q / W) % H, a = q / (W * H);
    int64_t part = (h & 1) + 2 * (w & 1);
    return (((a * H2 + h / 2) * W2 + w / 2) * 4 + part) * C + c;
}

/* Element e of dst [A, N, M] reads src [A, M, N] at the returned offset. */
TAL_HD int64_t transpose_last2_source(int64_t e, int64_t M, int64_t N) {
    int64_t m = e % M, q = e / M;
    int64_t n = q % N, a = q / N;
    return (a * M + m) * N + n;
}

/* Element e of dst [A, T2, H2, W2] reads src [A, T, H, W] at the returned offset, or -1
 * (zero) past the end of an axis. */
TAL_HD int64_t pad_end3_source(int64_t e, int64_t T, int64_t H, int64_t W, int64_t T2,
                               int64_t H2, int64_t W2) {
    int64_t w = e % W2, q = e / W2;
    int64_t h = q % H2;
    q /= H2;
    int64_t t = q % T2, a = q / T2;
    if (t >= T || h >= H || w >= W) return -1;
    return ((a * T + t) * H + h) * W + w;
}

/* Element e of the slice [A, len, I] that tal_copy_slice1 copies: its offsets in dst
 * [A, Ld, I] (at d0 along the middle dim) and in src [A, Ls, I] (at s0). */
TAL_HD void slice1_offsets(int64_t e, int64_t len, int64_t I, int64_t Ld, int64_t d0,
                           int64_t Ls, int64_t s0, int64_t *dst, int64_t *src) {
    int64_t i = e % I, q = e / I;
    int64_t t = q % len, a = q / len;
    *dst = (a * Ld + d0 + t) * I + i;
    *src = (a * Ls + s0 + t) * I + i;
}

/* Frozen BatchNorm's per-channel scale and shift: s = w / sqrt(var + eps), t = b - mean s, each
 * operation rounded on its own (the device spells out what the CPU build does: x86-64 code
 * without -mfma has no fused multiply-add to contract into). */
TAL_HD void frozen_bn_affine(float w, float b, float mean, float var, float eps, float *s,
                             float *t) {
#ifdef __CUDA_ARCH__
    *s = __fdiv_rn(w, __fsqrt_rn(__fadd_rn(var, eps)));
    *t = __fsub_rn(b, __fmul_rn(mean, *s));
#else
    *s = w / sqrtf(var + eps);
    *t = b - mean * *s;
#endif
}

/* ---------------------------------------------------------------- detection head -------- */
/* Key j of entry o of query i's band in local attention of half width hw (entry o covers key
 * i - hw + o; outside [0, T) it is padding). */
TAL_HD int64_t band_key(int64_t i, int64_t o, int64_t hw) { return i - hw + o; }
/* The band entry of key j in query i's row (o in [0, 2 hw] when j is in the band). */
TAL_HD int64_t band_entry(int64_t i, int64_t j, int64_t hw) { return j - i + hw; }

/* Sigmoid focal loss of one logit x against its (smoothed) target t, in double; *dx (when not
 * NULL) = gscale d(loss)/dx. spec-actionformer.md §7 (torchvision's sigmoid_focal_loss). */
TAL_HD double focal_loss_term(float x, float t, float alpha, float gamma, float gscale,
                              float *dx) {
    double xi = x, ti = t;
    double p = 1.0 / (1.0 + exp(-xi));
    /* stable BCE with logits: max(x, 0) - x t + log(1 + exp(-|x|)) */
    double ce = (xi > 0 ? xi : 0) - xi * ti + log1p(exp(-fabs(xi)));
    double q = p + ti - 2 * p * ti; /* 1 - p_t */
    double at = alpha * ti + (1 - alpha) * (1 - ti);
    double qg = pow(q, (double)gamma);
    if (dx) {
        double dq = (1 - 2 * ti) * p * (1 - p);
        /* gamma - 1 in float, then double: what the C expression pow(q, gamma - 1) does */
        double dqg = gamma == 0 ? 0 : gamma * pow(q, (double)(gamma - 1)) * dq;
        *dx = (float)(gscale * at * (dqg * ce + qg * (p - ti)));
    }
    return at * qg * ce;
}

/* 1-D DIoU loss of the predicted segment [ps, pe] against the target [gs, ge], in double;
 * *dps, *dpe (when dps is not NULL) = gscale d(loss)/d(ps), d(loss)/d(pe). */
TAL_HD double diou_loss_term(float ps_f, float pe_f, float gs_f, float ge_f, float gscale,
                             float *dps, float *dpe) {
    const double eps = 1e-7;
    double ps = ps_f, pe = pe_f, gs = gs_f, ge = ge_f;
    double lo = ps > gs ? ps : gs, hi = pe < ge ? pe : ge;
    double inter = hi - lo > 0 ? hi - lo : 0;
    double uni = (pe - ps) + (ge - gs) - inter;
    double U = uni > eps ? uni : eps;
    double iou = inter / U;
    double cl = ps < gs ? ps : gs, cr = pe > ge ? pe : ge;
    double c2 = (cr - cl) * (cr - cl);
    double C2 = c2 > eps ? c2 : eps;
    double rho = 0.5 * (ps + pe) - 0.5 * (gs + ge);
    if (dps) { /* through inter, union, enclosing length and centre distance */
        double dI_ps = inter > 0 && ps > gs ? -1 : 0, dI_pe = inter > 0 && pe < ge ? 1 : 0;
        double dU_ps = uni > eps ? -1 - dI_ps : 0, dU_pe = uni > eps ? 1 - dI_pe : 0;
        double diou_ps = (dI_ps * U - inter * dU_ps) / (U * U);
        double diou_pe = (dI_pe * U - inter * dU_pe) / (U * U);
        double dc_ps = ps < gs ? -1 : 0, dc_pe = pe > ge ? 1 : 0;
        double dC2_ps = c2 > eps ? 2 * (cr - cl) * dc_ps : 0;
        double dC2_pe = c2 > eps ? 2 * (cr - cl) * dc_pe : 0;
        double dr_ps = (rho / C2) - rho * rho * dC2_ps / (C2 * C2);
        double dr_pe = (rho / C2) - rho * rho * dC2_pe / (C2 * C2);
        *dps = (float)(gscale * (-diou_ps + dr_ps));
        *dpe = (float)(gscale * (-diou_pe + dr_pe));
    }
    return 1 - iou + rho * rho / C2;
}

/* Point i of a level with stride s: its predicted (or target) segment from the offsets
 * (start, end) = (p - left s, p + right s), p = i s, rounded to float as the head does. */
TAL_HD void offsets_to_segment(int64_t i, double s, float left, float right, float *start,
                               float *end) {
    double p = (double)i * s;
    *start = (float)(p - left * s);
    *end = (float)(p + right * s);
}

#endif /* TAL_DEVICE_MATH_H */
