/* The frame converter's fast paths against independent outputs. YUV420P frames go from the
 * (scaled) planes to floats in one pass of our own; every other layout (channels_last, rotation)
 * still goes through libswscale's RGB24 converter, so reading the same frame both ways compares
 * the pass with libswscale's converter on the same planes. Frames come from raw YUV files (exact
 * planes, any size, odd ones included) made by the test itself. */
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"

/* On x86-64 libswscale converts YUV420P to RGB24 with its SIMD fixed-point code, which our pass
 * reproduces bit for bit; elsewhere its C tables may round a few values the other way. */
#if defined(__x86_64__)
#define MAX_DIFF 0.0
#define MAX_FRAC_DIFFER 0.0
#else
#define MAX_DIFF 1.0
#define MAX_FRAC_DIFFER 0.05
#endif

/* Writes a W x H yuv420p frame with the given planes pattern to TEST_TMP/<name>.yuv, wraps it as
 * a one-frame rawvideo .nut (lossless, any size) and returns the .nut path (static buffer). The
 * pattern: every (U, V) pair of a 256 x 256 chroma grid when W, H >= 512, with luma that changes
 * at every pixel; smooth 1: gentle ramps (for comparisons between different scalers), partly
 * outside the RGB gamut (its top right clamps); smooth 2: ramps inside the gamut. */
static const char *make_yuv_video(const char *name, int W, int H, int smooth) {
    static char nut[1024];
    char yuv[1024], cmd[4096];
    snprintf(yuv, sizeof yuv, "%s/%s.yuv", TEST_TMP, name);
    snprintf(nut, sizeof nut, "%s/%s.nut", TEST_TMP, name);
    int cw = (W + 1) / 2, ch = (H + 1) / 2;
    unsigned char *buf = malloc((size_t)W * H + 2 * (size_t)cw * ch);
    cr_assert(buf);
    unsigned char *Y = buf, *U = buf + (size_t)W * H, *V = U + (size_t)cw * ch;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            Y[y * W + x] = smooth == 2 ? (unsigned char)(60 + (x * 100 / W + y * 20 / H))
                           : smooth  ? (unsigned char)(16 + (x * 200 / W + y * 20 / H))
                                     : (unsigned char)(x * 7 + y * 13 + (x * y >> 5));
    for (int y = 0; y < ch; y++)
        for (int x = 0; x < cw; x++) {
            U[y * cw + x] = smooth == 2 ? (unsigned char)(110 + x * 36 / cw)
                            : smooth  ? (unsigned char)(60 + x * 120 / cw)
                                      : (unsigned char)(x + 37 * (y / 256));
            V[y * cw + x] = smooth == 2 ? (unsigned char)(146 - y * 36 / ch)
                            : smooth  ? (unsigned char)(200 - y * 120 / ch)
                                      : (unsigned char)(y + 11 * (x / 256));
        }
    FILE *f = fopen(yuv, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(buf, 1, (size_t)W * H + 2 * (size_t)cw * ch, f),
                 (size_t)W * H + 2 * (size_t)cw * ch);
    fclose(f);
    free(buf);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -f rawvideo -pix_fmt yuv420p -s %dx%d -i '%s' -c:v rawvideo "
             "'%s' 2>&1",
             W, H, yuv, nut);
    cr_assert_eq(system(cmd), 0, "ffmpeg failed: %s", cmd);
    return nut;
}

/* ffmpeg's rgb24 of the same file, W x H x 3 (caller frees). */
static unsigned char *ffmpeg_rgb24(const char *path, const char *vf, int W, int H) {
    char raw[1100], cmd[4096];
    snprintf(raw, sizeof raw, "%s.rgb", path);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -i '%s' %s%s -frames:v 1 -f rawvideo -pix_fmt rgb24 '%s' 2>&1",
             path, vf ? "-vf " : "", vf ? vf : "", raw);
    cr_assert_eq(system(cmd), 0, "ffmpeg failed: %s", cmd);
    unsigned char *rgb = malloc((size_t)W * H * 3);
    cr_assert(rgb);
    FILE *f = fopen(raw, "rb");
    cr_assert(f && fread(rgb, 1, (size_t)W * H * 3, f) == (size_t)W * H * 3, "%s", raw);
    fclose(f);
    return rgb;
}

static tal_frame_transform raw_transform(int out_w, int out_h) {
    tal_frame_transform tf;
    memset(&tf, 0, sizeof tf);
    tf.out_w = out_w;
    tf.out_h = out_h;
    for (int c = 0; c < 3; c++) tf.mean[c] = 0, tf.std[c] = 1;
    return tf;
}

/* Frame 0 of path through tf as [3, 1, out_h, out_w] (the one-pass / resize paths for YUV420P). */
static tal_tensor read_first_frame(const char *path, tal_frame_transform tf) {
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, path, NULL, &err), TAL_OK, "%s", err.msg);
    cr_assert_str_eq(tal_decoder_info(dec)->pix_fmt, "yuv420p");
    tal_tensor out = test_tensor(4, (int64_t[]){3, 1, tf.out_h, tf.out_w});
    double t0 = 0;
    cr_assert_eq(tal_decoder_read_times(dec, &t0, 1, &tf, out, &err), TAL_OK, "%s", err.msg);
    tal_decoder_close(dec);
    return out;
}

/* Reads frame 0 with tf twice: [3, 1, H, W] (the one-pass path for YUV420P) and [1, H, W, 3]
 * (libswscale's RGB24 converter on the same planes); returns the largest difference and the
 * fraction of values that differ at all. */
static double both_ways(const char *path, tal_frame_transform tf, double *frac_differ) {
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, path, NULL, &err), TAL_OK, "%s", err.msg);
    int W = tf.out_w, H = tf.out_h;
    tal_tensor chw = test_tensor(4, (int64_t[]){3, 1, H, W});
    tal_tensor hwc = test_tensor(4, (int64_t[]){1, H, W, 3});
    double t0 = 0;
    cr_assert_eq(tal_decoder_read_times(dec, &t0, 1, &tf, chw, &err), TAL_OK, "%s", err.msg);
    tf.channels_last = 1;
    cr_assert_eq(tal_decoder_read_times(dec, &t0, 1, &tf, hwc, &err), TAL_OK, "%s", err.msg);
    double worst = 0, n_differ = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                double d = fabs(chw.data[(c * H + y) * W + x] - hwc.data[(y * W + x) * 3 + c]);
                worst = fmax(worst, d);
                n_differ += d > 0;
            }
    *frac_differ = n_differ / (3.0 * W * H);
    tal_decoder_close(dec);
    return worst;
}

/* Every (U, V) pair and every Y value at the native size: the one-pass conversion is ffmpeg's
 * rgb24 (bit-equal on x86-64). */
Test(decode_convert, every_yuv_value_is_ffmpeg_rgb24) {
    enum { W = 512, H = 512 };
    const char *path = make_yuv_video("grid", W, H, 0);
    unsigned char *want = ffmpeg_rgb24(path, NULL, W, H);
    tal_tensor out = read_first_frame(path, raw_transform(W, H));
    double worst = 0, n_differ = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                double d = fabs(out.data[(c * H + y) * W + x] - want[(y * W + x) * 3 + c]);
                worst = fmax(worst, d);
                n_differ += d > 0;
            }
    cr_expect_leq(worst, MAX_DIFF, "largest difference %.0f to ffmpeg's rgb24", worst);
    cr_expect_leq(n_differ / (3.0 * W * H), MAX_FRAC_DIFFER,
                  "%.0f values differ from ffmpeg's rgb24", n_differ);
    free(want);
}

/* An odd height: libswscale's rgb24 then takes its general scaler, which interpolates chroma
 * between rows; we keep each chroma sample over its 2x2 block at every size. The same planes
 * with one row more (an even height) give ffmpeg's block-repeating rgb24: the 45 rows we return
 * are its first 45 rows. */
Test(decode_convert, odd_height_keeps_chroma_blocks) {
    enum { W = 67, H = 45 };
    unsigned char *want = ffmpeg_rgb24(make_yuv_video("even", W, H + 1, 0), NULL, W, H + 1);
    const char *path = make_yuv_video("odd_h", W, H, 0);
    tal_tensor out = read_first_frame(path, raw_transform(W, H));
    double worst = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                worst = fmax(worst, fabs(out.data[(c * H + y) * W + x] - want[(y * W + x) * 3 + c]));
    cr_expect_leq(worst, MAX_DIFF, "largest difference %.0f", worst);
    free(want);
}

/* Odd widths, crops touching each edge, mirroring: at the native size and on the chroma grid
 * the one-pass path agrees with libswscale's RGB24 converter fed the same planes (even output
 * heights: at odd ones that converter is not the block-repeating one, see above). */
Test(decode_convert, one_pass_matches_rgb24_converter_on_odd_sizes_crops_and_flips) {
    const char *path = make_yuv_video("odd", 67, 46, 0);
    static const struct {
        double x, y, w, h;
        int out_w, out_h, flip;
    } cases[] = {
        {0, 0, 0, 0, 67, 46, 0},      /* native, odd width */
        {0, 0, 0, 0, 67, 46, 1},      /* mirrored */
        {0, 0, 20, 16, 20, 16, 0},    /* top-left corner */
        {46, 30, 21, 16, 21, 16, 1},  /* bottom-right corner */
        {2, 4, 33, 40, 33, 40, 0},    /* odd width inside */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tal_frame_transform tf = raw_transform(cases[i].out_w, cases[i].out_h);
        tf.src_x = cases[i].x, tf.src_y = cases[i].y, tf.src_w = cases[i].w, tf.src_h = cases[i].h;
        tf.flip = cases[i].flip;
        double frac, worst = both_ways(path, tf, &frac);
        cr_expect_leq(worst, MAX_DIFF, "case %zu: largest difference %.0f", i, worst);
        cr_expect_leq(frac, MAX_FRAC_DIFFER, "case %zu: %.3f of the values differ", i, frac);
    }
}

/* Weights of a separable resampling filter by its definition: output o of n_out over source
 * [origin, origin + extent) of n_src pixels; triangle over the footprint (widened when
 * shrinking) or, with area when shrinking, each pixel's overlap with the footprint; pixels
 * beyond the edge repeat it. w[j] for j in 0..n_src-1, summing to 1. */
static void filter_weights(double *w, int n_src, double origin, double extent, int n_out, int o,
                           int area) {
    double scale = extent / n_out, c = origin + (o + 0.5) * scale, sum = 0;
    for (int j = 0; j < n_src; j++) w[j] = 0;
    for (int j = -n_src; j < 2 * n_src; j++) {
        double wj;
        if (area && scale > 1) wj = fmax(0, fmin(j + 1, c + scale / 2) - fmax(j, c - scale / 2));
        else wj = fmax(0, 1 - fabs(j + 0.5 - c) / fmax(scale, 1));
        w[j < 0 ? 0 : j >= n_src ? n_src - 1 : j] += wj;
        sum += wj;
    }
    for (int j = 0; j < n_src; j++) w[j] /= sum;
}

/* Resizing (and cuts off the chroma grid) computes what the reference pipeline does, decode to
 * rgb24 then resample the RGB image, here checked against that computed in double from ffmpeg's
 * rgb24 and the filter's definition: fractional and odd crops, both directions, mirroring, the
 * area filter. Differences left: libswscale floors each fixed-point term of every source pixel
 * (we take off the mean of that) and clamps per pixel before the filter (we after). */
static void check_resize_against_filtered_rgb24(int pattern) {
    enum { W = 67, H = 46 };
    const char *path = make_yuv_video(pattern == 2 ? "resize_gamut" : "resize_ref", W, H, pattern);
    unsigned char *rgb = ffmpeg_rgb24(path, NULL, W, H);
    static const struct {
        double x, y, w, h;
        int out_w, out_h, flip, area;
    } cases[] = {
        {0, 0, 0, 0, 37, 28, 0, 0},            /* shrunk to an odd width */
        {0, 0, 0, 0, 37, 28, 1, 0},            /* mirrored */
        {30, 0, 37, 46, 17, 22, 1, 0},         /* right edge, shrunk */
        {0, 0, 0, 0, 121, 81, 0, 0},           /* enlarged, odd height */
        {47, 31, 20, 15, 20, 15, 0, 0},        /* odd offsets at the native size */
        {3.3, 5.7, 40.5, 30.25, 32, 24, 0, 0}, /* fractional crop (random-resized crop) */
        {0, 0, 0, 0, 22, 15, 0, 1},            /* area filter, a third of the size */
        {0, 0, 0, 0, 22, 15, 1, 0},            /* the same with the triangle */
        /* inside the gamut only (below): over the wide footprints of these, clamping each
         * source pixel first (the reference) or the filtered value (us, as libswscale-based
         * readers do) differs by tens of levels where the pattern leaves the gamut */
        {0, 0, 0, 0, 3, 2, 0, 0},              /* shrunk 20x: wide filters */
        {0, 0, 0, 0, 3, 2, 0, 1},
        {0, 0, 0, 0, 200, 140, 1, 0},          /* enlarged 3x */
        {10.5, 7.25, 5, 3, 48, 30, 0, 0},      /* a 5 x 3 sliver enlarged ~10x */
    };
    double *wx = malloc(sizeof *wx * W), *wy = malloc(sizeof *wy * H);
    cr_assert(wx && wy);
    size_t n_cases = pattern == 2 ? sizeof cases / sizeof cases[0] : 8;
    for (size_t i = 0; i < n_cases; i++) {
        int OW = cases[i].out_w, OH = cases[i].out_h;
        tal_frame_transform tf = raw_transform(OW, OH);
        tf.src_x = cases[i].x, tf.src_y = cases[i].y, tf.src_w = cases[i].w, tf.src_h = cases[i].h;
        tf.flip = cases[i].flip, tf.area = cases[i].area;
        double rx = cases[i].w > 0 ? cases[i].x : 0, rw = cases[i].w > 0 ? cases[i].w : W;
        double ry = cases[i].h > 0 ? cases[i].y : 0, rh = cases[i].h > 0 ? cases[i].h : H;
        tal_tensor out = read_first_frame(path, tf);
        double mad = 0, worst = 0, bias[3] = {0};
        for (int y = 0; y < OH; y++) {
            filter_weights(wy, H, ry, rh, OH, y, tf.area);
            for (int x = 0; x < OW; x++) {
                filter_weights(wx, W, rx, rw, OW, tf.flip ? OW - 1 - x : x, tf.area);
                for (int c = 0; c < 3; c++) {
                    double want = 0;
                    for (int sy = 0; sy < H; sy++)
                        for (int sx = 0; sx < W; sx++)
                            if (wy[sy] != 0 && wx[sx] != 0)
                                want += wy[sy] * wx[sx] * rgb[(sy * W + sx) * 3 + c];
                    double d = out.data[(c * OH + y) * OW + x] - want;
                    mad += fabs(d);
                    worst = fmax(worst, fabs(d));
                    bias[c] += d;
                }
            }
        }
        int n = OW * OH;
        mad /= 3 * n;
        cr_log_info("pattern %d case %zu: mean |diff| %.3f, largest %.2f, bias %.3f %.3f %.3f",
                    pattern, i, mad, worst, bias[0] / n, bias[1] / n, bias[2] / n);
        cr_expect_lt(mad, 0.6, "case %zu: mean |diff| %.3f", i, mad);
        /* up to a few levels where a footprint straddles the edge of the RGB gamut */
        cr_expect_lt(worst, 5.0, "case %zu: largest difference %.2f", i, worst);
        /* the mean of the floors holds over many source pixels, not over a 5 x 3 sliver */
        for (int c = 0; c < 3 && rw * rh >= 100; c++)
            cr_expect_lt(fabs(bias[c] / n), 0.35, "case %zu: channel %d off by %.3f on average", i,
                         c, bias[c] / n);
    }
    free(wx);
    free(wy);
    free(rgb);
}

Test(decode_convert, resize_is_the_filtered_native_rgb24) {
    check_resize_against_filtered_rgb24(1);
    check_resize_against_filtered_rgb24(2);
}

/* The normalisation is (x - mean) / std of the same pixels whichever path ran. */
Test(decode_convert, normalised_one_pass_equals_normalised_rgb24) {
    const char *path = make_yuv_video("norm", 64, 48, 0);
    tal_frame_transform tf = raw_transform(64, 48);
    const float mean[3] = {123.675f, 116.28f, 103.53f}, std[3] = {58.395f, 57.12f, 57.375f};
    memcpy(tf.mean, mean, sizeof mean);
    memcpy(tf.std, std, sizeof std);
    double frac, worst = both_ways(path, tf, &frac);
    cr_expect_leq(worst, MAX_DIFF / 57.12 + 1e-6, "largest difference %g", worst);
    cr_expect_leq(frac, MAX_FRAC_DIFFER, "%.3f of the values differ", frac);
}

/* Resized output against an independent float reference of the same geometry: ffmpeg's
 * bilinear scale of the same frame to rgb24 (libswscale's packed-RGB scaler: it interpolates the
 * scaled chroma horizontally where we repeat it, so small differences are expected), and
 * against a box average of ffmpeg's native rgb24 over each output pixel's footprint. */
Test(decode_convert, resized_output_matches_independent_references) {
    enum { W = 160, H = 120, OW = 80, OH = 60 };
    const char *path = make_yuv_video("resize", W, H, 1);
    unsigned char *native = ffmpeg_rgb24(path, NULL, W, H);
    unsigned char *scaled = ffmpeg_rgb24(path, "scale=80:60:flags=bilinear", OW, OH);
    tal_tensor out = read_first_frame(path, raw_transform(OW, OH));
    double mad_ff = 0, mad_box = 0, mad_shift = 0;
    for (int y = 0; y < OH; y++)
        for (int x = 0; x < OW; x++)
            for (int c = 0; c < 3; c++) {
                double a = out.data[(c * OH + y) * OW + x];
                mad_ff += fabs(a - scaled[(y * OW + x) * 3 + c]);
                double box = 0; /* 2x2 footprint of output pixel (x, y) at scale 1/2 */
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        box += native[((2 * y + dy) * W + 2 * x + dx) * 3 + c];
                mad_box += fabs(a - box / 4);
                int xs = x + 1 < OW ? x + 1 : x; /* a one-pixel shift must look worse */
                double box_s = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        box_s += native[((2 * y + dy) * W + 2 * xs + dx) * 3 + c];
                mad_shift += fabs(a - box_s / 4);
            }
    int n = OW * OH * 3;
    mad_ff /= n, mad_box /= n, mad_shift /= n;
    cr_expect_lt(mad_ff, 2.0, "mean |diff| %.2f to ffmpeg's bilinear rgb24", mad_ff);
    cr_expect_lt(mad_box, 2.0, "mean |diff| %.2f to the box-filtered native frame", mad_box);
    cr_expect_gt(mad_shift, 2 * mad_box, "shifted reference %.2f vs %.2f", mad_shift, mad_box);
    free(native);
    free(scaled);
}
