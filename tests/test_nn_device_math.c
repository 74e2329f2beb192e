/* What the CUDA kernels compute with the CPU's own code, checked here on the CPU (CI has no
 * GPU): Philox against numbers recorded from the generator before it moved into
 * nn/device_math.h, the dropout uniforms, bf16 rounding against the bit-level definition, the
 * convolution and interpolation index helpers against plain loops and the CPU ops, and the
 * precision mode. (tests/test_nn_device_guard.c: a CPU loop never runs over a device-tagged
 * tensor; tests/test_nn_device.c: the GPU API without a GPU.) */
#include "testlib.h"

#include <math.h>
#include <signal.h>
#include <string.h>

#include "nn/device_math.h"

TestSuite(nn_device_math, .fini = test_free_all);

/* ---------------------------------------------------------------- Philox ---------------- */
/* tal_rng_u64 / uniform / normal of nn/rng.c as it was before the move (commit cc7d78f). */
static const tal_rng_key KEYS[4] = {{0, 0, 0},
                                    {42, 7, 3},
                                    {0xDEADBEEFCAFEull, 123456789ull, 99},
                                    {UINT64_MAX, UINT64_MAX, UINT64_MAX}};
static const uint64_t COUNTERS[5] = {0, 1, 12345, (1ull << 32) + 5, UINT64_MAX};
static const struct {
    int key, counter;
    uint64_t u64;
    float uniform, normal;
} RECORDED[] = {
    {0, 0, 0xa0d912bc856b938dull, 0.62831223f, -0.955554307f},
    {0, 1, 0x121248bc4f98bdeeull, 0.0705914497f, -0.860041738f},
    {0, 2, 0x70e2fa3a20a52f3bull, 0.440963387f, 0.890428841f},
    {0, 3, 0x8868227bae60c4b9ull, 0.532838941f, -0.470321417f},
    {0, 4, 0x7cbf951523e2d26cull, 0.48729831f, 0.763268888f},
    {1, 0, 0x9c05fb72184768e1ull, 0.609466255f, 0.823640704f},
    {1, 1, 0xa57df0fb0d283f45ull, 0.646452904f, 0.885800242f},
    {1, 2, 0x7d53b8d3f856c22bull, 0.489558697f, 1.17413294f},
    {1, 3, 0xa3d2641a3b32adbaull, 0.639929056f, 0.111105494f},
    {1, 4, 0x63ef9a3fecb9e63full, 0.39037478f, 1.22097719f},
    {2, 0, 0xbde191f1e1e6b535ull, 0.74172312f, 0.571508825f},
    {2, 1, 0xb2a629542ff67fe8ull, 0.697847903f, 0.325320393f},
    {2, 2, 0xdb1a23e2f223fb53ull, 0.855867565f, 0.52595526f},
    {2, 3, 0x9642ef0753246878ull, 0.586958826f, -0.467340291f},
    {2, 4, 0x0af2e966ab4f72b3ull, 0.0427690148f, -1.22087014f},
    {3, 0, 0x6e99bfa895cd1be4ull, 0.432033479f, -1.11448479f},
    {3, 1, 0x1c9229b5fe046979ull, 0.111605227f, 2.09169698f},
    {3, 2, 0x3ec83f5160291199ull, 0.245243013f, -1.19019902f},
    {3, 3, 0xb0c15a30529f988dull, 0.690450311f, -0.379862934f},
    {3, 4, 0x71c122e0e2850628ull, 0.444353223f, 0.95456928f},
};

Test(nn_device_math, philox_equals_the_recorded_generator) {
    for (size_t r = 0; r < sizeof RECORDED / sizeof RECORDED[0]; r++) {
        tal_rng_key k = KEYS[RECORDED[r].key];
        uint64_t i = COUNTERS[RECORDED[r].counter];
        cr_assert_eq(tal_rng_u64(k, i), RECORDED[r].u64, "key %d counter %d: u64 %016llx",
                     RECORDED[r].key, RECORDED[r].counter,
                     (unsigned long long)tal_rng_u64(k, i));
        cr_assert_eq(philox_u64(k.seed, k.step, k.stream, i), RECORDED[r].u64);
        cr_assert_eq(tal_rng_uniform(k, i), RECORDED[r].uniform, "key %d counter %d: %.9g",
                     RECORDED[r].key, RECORDED[r].counter, tal_rng_uniform(k, i));
        /* printed with 9 significant digits: the float they name is exact */
        cr_assert_eq(tal_rng_normal(k, i), RECORDED[r].normal, "key %d counter %d: %.9g",
                     RECORDED[r].key, RECORDED[r].counter, tal_rng_normal(k, i));
    }
}

/* The dropout kernels draw element i from word (i & 1) of draw i / 2, as nn/dropout.c does. */
Test(nn_device_math, dropout_uniform_takes_both_words_of_a_draw) {
    tal_rng_key k = {7, 3, 11};
    for (uint64_t i = 0; i < 4096; i++) {
        uint64_t r = tal_rng_u64(k, i / 2);
        uint32_t w = (i % 2) ? (uint32_t)(r & 0xffffffffu) : (uint32_t)(r >> 32);
        float want = (float)(w >> 8) / 16777216.0f;
        cr_assert_eq(dropout_uniform(k.seed, k.step, k.stream, i), want, "element %llu",
                     (unsigned long long)i);
    }
}

/* ---------------------------------------------------------------- bf16 ------------------ */
/* The definition, bit by bit: keep the upper 16 bits, round up when the lower 16 are above half
 * or exactly half with an odd upper half; NaN keeps its sign and payload top, made quiet. */
static uint16_t bf16_reference(uint32_t bits) {
    uint32_t upper = bits >> 16, lower = bits & 0xffffu;
    int is_nan = ((bits >> 23) & 0xff) == 0xff && (bits & 0x7fffff);
    if (is_nan) return (uint16_t)(upper | 0x40);
    if (lower > 0x8000u || (lower == 0x8000u && (upper & 1))) upper++;
    return (uint16_t)upper;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

Test(nn_device_math, bf16_rounding_edge_cases) {
    const struct {
        uint32_t in;
        uint16_t out;
        const char *what;
    } cases[] = {
        {0x3f808000u, 0x3f80, "tie, even upper: down"},
        {0x3f818000u, 0x3f82, "tie, odd upper: up"},
        {0x3f808001u, 0x3f81, "just above the tie: up"},
        {0x3f807fffu, 0x3f80, "just below the tie: down"},
        {0xbf818000u, 0xbf82, "negative tie, odd: away from zero"},
        {0x7f800000u, 0x7f80, "+inf"},
        {0xff800000u, 0xff80, "-inf"},
        {0x7f7fffffu, 0x7f80, "largest float rounds to +inf"},
        {0x7f7f7fffu, 0x7f7f, "largest bf16 stays"},
        {0x7fc00000u, 0x7fc0, "quiet NaN"},
        {0x7f800001u, 0x7fc0, "signalling NaN, low payload: stays NaN, not inf"},
        {0xff812345u, 0xffc1, "negative NaN keeps sign and payload top"},
        {0x00000000u, 0x0000, "+0"},
        {0x80000000u, 0x8000, "-0"},
        {0x00008000u, 0x0000, "subnormal tie, even: to zero"},
        {0x00018000u, 0x0002, "subnormal tie, odd: up"},
        {0x007fffffu, 0x0080, "largest subnormal rounds to the smallest normal"},
        {0x80008001u, 0x8001, "negative subnormal above the tie"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float f = from_bits(cases[i].in);
        cr_assert_eq(f32_to_bf16_bits(f), cases[i].out, "%s: %08x -> %04x, expected %04x",
                     cases[i].what, cases[i].in, f32_to_bf16_bits(f), cases[i].out);
        cr_assert_eq(tal_f32_to_bf16(f), cases[i].out, "%s (tal_f32_to_bf16)", cases[i].what);
        cr_assert_eq(bf16_reference(cases[i].in), cases[i].out, "%s (reference)", cases[i].what);
        float r = round_to_bf16(f);
        uint32_t rb;
        memcpy(&rb, &r, 4);
        cr_assert_eq(rb, (uint32_t)cases[i].out << 16, "%s: round_to_bf16", cases[i].what);
    }
}

Test(nn_device_math, bf16_rounding_matches_the_definition_on_random_bits) {
    tal_rng_key k = {5, 0, 0};
    for (uint64_t i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)tal_rng_u64(k, i);
        float f = from_bits(bits);
        cr_assert_eq(f32_to_bf16_bits(f), bf16_reference(bits), "bits %08x", bits);
        cr_assert_eq(tal_f32_to_bf16(f), bf16_reference(bits), "bits %08x", bits);
        if (!isnan(f)) cr_assert_eq(tal_bf16_to_f32(tal_f32_to_bf16(f)), round_to_bf16(f));
    }
}

/* ---------------------------------------------------------------- conv indices ---------- */
Test(nn_device_math, conv_tap_output_inverts_conv_tap_source) {
    for (int stride = 1; stride <= 3; stride++)
        for (int pad = 0; pad <= 3; pad++)
            for (int k = 1; k <= 5; k++)
                for (int64_t in = 1; in <= 9; in++) {
                    int64_t out = tal_conv_out_len(in, k, stride, pad);
                    for (int64_t s = 0; s < in; s++)
                        for (int64_t j = 0; j < k; j++) {
                            int64_t want = -1; /* plain search over every output */
                            for (int64_t t = 0; t < out; t++)
                                if (conv_tap_source(t, j, stride, pad) == s) want = t;
                            cr_assert_eq(conv_tap_output(s, j, stride, pad, out), want,
                                         "s %lld tap %lld stride %d pad %d in %lld",
                                         (long long)s, (long long)j, stride, pad, (long long)in);
                        }
                }
}

/* conv3d_col_source against the CPU conv: the im2col matrix it describes, times the weights,
 * is the CPU op's output (general strides and paddings, and the patch embedding's stride =
 * kernel case). */
static void check_col_source(int64_t Ci, int64_t T, int64_t H, int64_t W, int64_t kt, int64_t kh,
                             int64_t kw, tal_conv3d_geom g, int patch) {
    int64_t Co = 3;
    tal_tensor x = test_tensor(5, (int64_t[]){1, Ci, T, H, W});
    tal_tensor w = test_tensor(5, (int64_t[]){Co, Ci, kt, kh, kw});
    test_fill_uniform(x, 1);
    test_fill_uniform(w, 2);
    conv3d_shape s = {Ci, T, H, W, kt, kh, kw,
                      tal_conv_out_len(T, (int)kt, g.stride[0], g.padding[0]),
                      tal_conv_out_len(H, (int)kh, g.stride[1], g.padding[1]),
                      tal_conv_out_len(W, (int)kw, g.stride[2], g.padding[2]),
                      {g.stride[0], g.stride[1], g.stride[2]},
                      {g.padding[0], g.padding[1], g.padding[2]}};
    tal_tensor y = test_tensor(5, (int64_t[]){1, Co, s.To, s.Ho, s.Wo});
    if (patch) {
        tal_patch_conv3d_forward(y, x, w, tal_tensor_none());
    } else {
        tal_arena *scratch = NULL;
        tal_err err = {0};
        cr_assert_eq(tal_arena_create(&scratch, TAL_DEV_CPU, 1 << 22, &err), TAL_OK);
        tal_conv3d_forward(y, x, w, tal_tensor_none(), g, scratch);
        tal_arena_destroy(scratch);
    }
    int64_t K = Ci * kt * kh * kw, P = s.To * s.Ho * s.Wo;
    tal_tensor want = test_tensor_like(y);
    for (int64_t co = 0; co < Co; co++)
        for (int64_t p = 0; p < P; p++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) {
                int64_t src = conv3d_col_source(&s, k, p);
                if (src >= 0) acc += (double)w.data[co * K + k] * x.data[src];
            }
            want.data[co * P + p] = (float)acc;
        }
    expect_close(y, want, 1e-5, 1e-5); /* float sums of K <= 81 O(1) terms */
}

Test(nn_device_math, conv3d_col_source_matches_the_cpu_conv) {
    check_col_source(2, 5, 6, 7, 3, 3, 3, (tal_conv3d_geom){{1, 1, 1}, {1, 1, 1}}, 0);
    check_col_source(3, 7, 5, 9, 3, 1, 2, (tal_conv3d_geom){{2, 1, 3}, {1, 0, 2}}, 0);
    check_col_source(1, 4, 4, 4, 1, 1, 1, (tal_conv3d_geom){{1, 1, 1}, {0, 0, 0}}, 0);
    check_col_source(2, 4, 8, 12, 2, 4, 4, (tal_conv3d_geom){{2, 4, 4}, {0, 0, 0}}, 1);
}

Test(nn_device_math, interp_source_brackets_the_source_position) {
    for (int64_t tin = 1; tin <= 40; tin++)
        for (int64_t tout = 1; tout <= 40; tout++)
            for (int64_t i = 0; i < tout; i++) {
                int64_t i0, i1;
                float l;
                interp_source(i, tin, tout, &i0, &i1, &l);
                double src = ((double)i + 0.5) * (double)tin / (double)tout - 0.5;
                if (src < 0) src = 0;
                cr_assert(i0 >= 0 && i0 < tin && i1 == (i0 + 1 < tin ? i0 + 1 : tin - 1));
                cr_assert(l >= 0.0f && l <= 1.0f, "weight %g", l); /* 1 - 1e-9 rounds to 1 */
                /* i0 + l is the source position, up to the float scale's rounding (6e-8 of
                 * src) and the weight's (6e-8) */
                cr_assert(fabs((double)i0 + l - src) < 1e-6 * (tin + 1),
                          "tin %lld tout %lld i %lld: %lld + %g vs %g", (long long)tin,
                          (long long)tout, (long long)i, (long long)i0, l, src);
            }
}

/* ---------------------------------------------------------------- GPU API --------------- */
Test(nn_device_math, precision_mode_round_trips) {
    cr_assert_eq(tal_precision_get(), TAL_PREC_FP32, "fp32 by default");
    tal_precision_set(TAL_PREC_BF16);
    cr_assert_eq(tal_precision_get(), TAL_PREC_BF16);
    cr_assert_str_eq(tal_precision_name(TAL_PREC_BF16), "bf16");
    cr_assert_str_eq(tal_precision_name(TAL_PREC_TF32), "tf32");
    tal_precision_set(TAL_PREC_FP32);
    cr_assert_str_eq(tal_precision_name(tal_precision_get()), "fp32");
}
