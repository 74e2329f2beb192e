/* decode/convert.c: one decoded frame -> normalised float frame. YUV420P: at the native size one
 * pass from the planes to floats; resized, our resampler (resize.c). Other formats and rotated
 * video: the source rectangle is cut by pointer offsets on the planes (no copy) and scaled by
 * libswscale to the output size in packed RGB24, then one pass applies rotation, flip and
 * (x - mean) / std into the float tensor. */
#include "decode/internal.h"

#include <libavutil/pixdesc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The reference pipeline's ImageNet statistics on the 0..255 scale (spec-actionformer.md §9). */
static const float IMAGENET_MEAN[3] = {123.675f, 116.28f, 103.53f};
static const float IMAGENET_STD[3] = {58.395f, 57.12f, 57.375f};

static void set_defaults(tal_frame_transform *tf) {
    memset(tf, 0, sizeof *tf);
    memcpy(tf->mean, IMAGENET_MEAN, sizeof tf->mean);
    memcpy(tf->std, IMAGENET_STD, sizeof tf->std);
}

void tal_transform_resize_center(tal_frame_transform *tf, const tal_video_info *info,
                                 int short_side, int crop) {
    set_defaults(tf);
    double w = info->width, h = info->height, s = short_side / (w < h ? w : h);
    int rw = (int)lround(w * s), rh = (int)lround(h * s);
    if (crop <= 0) {
        tf->out_w = rw;
        tf->out_h = rh;
        return;
    }
    /* the crop of the resized frame, expressed in source pixels */
    tf->out_w = tf->out_h = crop;
    double cw = crop / s, ch = crop / s;
    if (cw > w) cw = w;
    if (ch > h) ch = h;
    tf->src_x = (w - cw) / 2;
    tf->src_y = (h - ch) / 2;
    tf->src_w = cw;
    tf->src_h = ch;
}

void tal_transform_random_resized_crop(tal_frame_transform *tf, const tal_video_info *info,
                                       int out_size, double scale_min, double scale_max,
                                       double ratio_min, double ratio_max, double flip_p,
                                       tal_rng_key key) {
    set_defaults(tf);
    tf->out_w = tf->out_h = out_size;
    double W = info->width, H = info->height, area = W * H;
    double lr0 = log(ratio_min), lr1 = log(ratio_max);
    uint64_t c = 0;
    for (int attempt = 0; attempt < 10; attempt++) { /* torchvision: 10 tries, then centre */
        double target = area * (scale_min + (scale_max - scale_min) * tal_rng_uniform(key, c++));
        double ratio = exp(lr0 + (lr1 - lr0) * tal_rng_uniform(key, c++));
        double cw = round(sqrt(target * ratio)), ch = round(sqrt(target / ratio));
        if (cw > 0 && ch > 0 && cw <= W && ch <= H) {
            tf->src_x = floor((W - cw + 1) * tal_rng_uniform(key, c++));
            tf->src_y = floor((H - ch + 1) * tal_rng_uniform(key, c++));
            tf->src_w = cw;
            tf->src_h = ch;
            goto flip;
        }
        c += 2;
    }
    { /* fallback: the largest centre crop within the ratio range */
        double r = W / H, cw = W, ch = H;
        if (r < ratio_min) ch = round(W / ratio_min);
        else if (r > ratio_max) cw = round(H * ratio_max);
        tf->src_x = (W - cw) / 2;
        tf->src_y = (H - ch) / 2;
        tf->src_w = cw;
        tf->src_h = ch;
    }
flip:
    tf->flip = tal_rng_uniform(key, 1000) < flip_p;
}

void tal_convert_free(tal_convert *c) {
    sws_freeContext(c->sws);
    sws_freeContext(c->sws2);
    sws_freeContext(c->yuv_sws);
    for (int i = 0; i < 4; i++) tal_resample_axis_free(&c->axes[i]);
    free(c->resize_buf);
    free(c->yuv);
    free(c->rgb);
    free(c->full);
    memset(c, 0, sizeof *c);
}

static int grow(uint8_t **buf, size_t *size, size_t need) {
    if (*size >= need) return 1;
    uint8_t *b = realloc(*buf, need);
    if (!b) return 0;
    *buf = b;
    *size = need;
    return 1;
}

/* 8-bit 3-plane YUV without alpha: scaled plane by plane before the RGB conversion. */
static int scales_in_yuv(int fmt) {
    return fmt == AV_PIX_FMT_YUV420P || fmt == AV_PIX_FMT_YUVJ420P || fmt == AV_PIX_FMT_YUV422P ||
           fmt == AV_PIX_FMT_YUVJ422P || fmt == AV_PIX_FMT_YUV444P || fmt == AV_PIX_FMT_YUVJ444P;
}

/* Displayed rectangle -> rectangle of the coded frame, for the display rotation. */
static void coded_rect(const tal_video_info *in, double x, double y, double w, double h, double *cx,
                       double *cy, double *cw, double *ch) {
    double Wc = in->coded_width, Hc = in->coded_height;
    switch (in->rotation) {
    case 90: *cx = y; *cy = Hc - (x + w); *cw = h; *ch = w; break;
    case 180: *cx = Wc - (x + w); *cy = Hc - (y + h); *cw = w; *ch = h; break;
    case 270: *cx = Wc - (y + h); *cy = x; *cw = h; *ch = w; break;
    default: *cx = x; *cy = y; *cw = w; *ch = h;
    }
}

/* One RGB24 row -> three normalised float rows, mirrored if flip. Vectorised for the machine
 * it runs on (AVX2 where present: the build targets baseline x86-64, where the stride-3 loads
 * stay scalar). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx2", "default"), optimize("tree-vectorize")))
#endif
static void normalise_row(float *restrict r, float *restrict g, float *restrict b,
                          const uint8_t *restrict rgb, int W, int flip, const float scale[3],
                          const float shift[3]) {
    const float s0 = scale[0], s1 = scale[1], s2 = scale[2];
    const float h0 = shift[0], h1 = shift[1], h2 = shift[2];
    if (flip) {
        const uint8_t *p = rgb + (size_t)(W - 1) * 3;
        for (int x = 0; x < W; x++) {
            r[x] = p[-3 * x] * s0 + h0;
            g[x] = p[-3 * x + 1] * s1 + h1;
            b[x] = p[-3 * x + 2] * s2 + h2;
        }
        return;
    }
    for (int x = 0; x < W; x++) {
        r[x] = rgb[3 * x] * s0 + h0;
        g[x] = rgb[3 * x + 1] * s1 + h1;
        b[x] = rgb[3 * x + 2] * s2 + h2;
    }
}

/* 4:2:0 limited-range YUV -> RGB in libswscale's fixed point, bit-equal to the YUV420P -> RGB24
 * converter behind ffmpeg's and PyAV's rgb24 on x86 (measured against it: tests/
 * test_decode_convert.c): Y' = 8Y - 128, C' = 8C - 1024, each term (a * coeff) >> 16, the sum
 * clamped to 0..255. Chroma is repeated over each pair of pixels, never interpolated. */
enum { Y_COEFF = 9539, VR_COEFF = 13075, VG_COEFF = -6660, UG_COEFF = -3209, UB_COEFF = 16525 };

static inline float yuv_channel(int v, float scale, float shift) {
    v = v < 0 ? 0 : v; /* two selects (min, max): a nested ?: stops the vectoriser */
    v = v > 255 ? 255 : v;
    return (float)v * scale + shift;
}

/* Pairs [i0, i1) of one row: Y, U, V -> three normalised float rows, mirrored if flip (a
 * constant in each caller, so that both loops vectorise). */
static inline __attribute__((always_inline)) void
yuv420_pairs(float *restrict r, float *restrict g, float *restrict b, const uint8_t *restrict Y,
             const uint8_t *restrict U, const uint8_t *restrict V, int W, int flip,
             const float scale[3], const float shift[3]) {
    const float s0 = scale[0], s1 = scale[1], s2 = scale[2];
    const float h0 = shift[0], h1 = shift[1], h2 = shift[2];
    const int pairs = W / 2;
    for (int i = 0; i < pairs; i++) {
        int u = 8 * U[i] - 1024, v = 8 * V[i] - 1024;
        int cr = (v * VR_COEFF) >> 16, cb = (u * UB_COEFF) >> 16;
        int cg = ((u * UG_COEFF) >> 16) + ((v * VG_COEFF) >> 16);
        int y0 = ((8 * Y[2 * i] - 128) * Y_COEFF) >> 16;
        int y1 = ((8 * Y[2 * i + 1] - 128) * Y_COEFF) >> 16;
        if (flip) {
            int x = W - 2 - 2 * i; /* pixel 2i lands at W - 1 - 2i, pixel 2i + 1 just left */
            r[x + 1] = yuv_channel(y0 + cr, s0, h0);
            g[x + 1] = yuv_channel(y0 + cg, s1, h1);
            b[x + 1] = yuv_channel(y0 + cb, s2, h2);
            r[x] = yuv_channel(y1 + cr, s0, h0);
            g[x] = yuv_channel(y1 + cg, s1, h1);
            b[x] = yuv_channel(y1 + cb, s2, h2);
        } else {
            r[2 * i] = yuv_channel(y0 + cr, s0, h0);
            g[2 * i] = yuv_channel(y0 + cg, s1, h1);
            b[2 * i] = yuv_channel(y0 + cb, s2, h2);
            r[2 * i + 1] = yuv_channel(y1 + cr, s0, h0);
            g[2 * i + 1] = yuv_channel(y1 + cg, s1, h1);
            b[2 * i + 1] = yuv_channel(y1 + cb, s2, h2);
        }
    }
}

/* One row: Y (W samples), U and V ((W + 1) / 2) -> three normalised float rows, mirrored if
 * flip. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx2", "default"), optimize("tree-vectorize")))
#endif
static void yuv420_row(float *restrict r, float *restrict g, float *restrict b,
                       const uint8_t *restrict Y, const uint8_t *restrict U,
                       const uint8_t *restrict V, int W, int flip, const float scale[3],
                       const float shift[3]) {
    if (flip) {
        /* an odd width shifts the pairs by one pixel: the mirrored rows start at 1 */
        int o = W & 1;
        yuv420_pairs(r + o, g + o, b + o, Y, U, V, W - o, 1, scale, shift);
    } else {
        yuv420_pairs(r, g, b, Y, U, V, W, 0, scale, shift);
    }
    if (W & 1) { /* the odd last pixel has a chroma sample of its own */
        int last = W - 1, u = 8 * U[last / 2] - 1024, v = 8 * V[last / 2] - 1024;
        int y = ((8 * Y[last] - 128) * Y_COEFF) >> 16, x = flip ? 0 : last;
        r[x] = yuv_channel(y + ((v * VR_COEFF) >> 16), scale[0], shift[0]);
        g[x] = yuv_channel(y + ((u * UG_COEFF) >> 16) + ((v * VG_COEFF) >> 16), scale[1], shift[1]);
        b[x] = yuv_channel(y + ((u * UB_COEFF) >> 16), scale[2], shift[2]);
    }
}

static void normalise_coeffs(const tal_frame_transform *tf, float scale[3], float shift[3]) {
    for (int ch_i = 0; ch_i < 3; ch_i++) {
        scale[ch_i] = tf->std[ch_i] > 0 ? 1.0f / tf->std[ch_i] : 1.0f;
        shift[ch_i] = -tf->mean[ch_i] * scale[ch_i];
    }
}

tal_status tal_convert_frame(tal_convert *c, const AVFrame *f, const tal_video_info *info,
                             const tal_frame_transform *tf, tal_tensor out, int k, int n,
                             tal_err *err) {
    int rot = info->rotation, swap = rot == 90 || rot == 270;
    int bw = swap ? tf->out_h : tf->out_w, bh = swap ? tf->out_w : tf->out_h; /* coded-oriented */
    double x = 0, y = 0, w = info->width, h = info->height;
    if (tf->src_w > 0 && tf->src_h > 0) x = tf->src_x, y = tf->src_y, w = tf->src_w, h = tf->src_h;
    double cx, cy, cw, ch;
    coded_rect(info, x, y, w, h, &cx, &cy, &cw, &ch);
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(f->format);
    if (!desc) return tal_err_set(err, TAL_EFORMAT, "unknown pixel format %d", f->format);
    int flags = tf->area ? SWS_AREA : SWS_BILINEAR;
    /* rows padded to whole groups of 16 pixels, plus a spare row: libswscale's SIMD converters
     * store whole vectors past the width, and its YUV420P -> RGB24 one silently skips the last
     * group of a row (leaving it unwritten) when the stride cannot hold it */
    const int row = ((bw + 15) / 16 * 16 * 3 + 63) / 64 * 64;
    if (!grow(&c->rgb, &c->rgb_size, (size_t)row * (bh + 1)))
        return tal_err_set(err, TAL_ENOMEM, "out of memory for a %dx%d frame", bw, bh);
    int planar = (desc->flags & AV_PIX_FMT_FLAG_PLANAR) && !(desc->flags & AV_PIX_FMT_FLAG_PAL) &&
                 !(desc->flags & AV_PIX_FMT_FLAG_HWACCEL) && !(desc->flags & AV_PIX_FMT_FLAG_BITSTREAM);
    uint8_t *dst[4] = {c->rgb, NULL, NULL, NULL};
    int dst_stride[4] = {row, 0, 0, 0};
    /* where R, G, B of buffer pixel (0, 0) are, and the bytes between neighbouring pixels of one
     * channel. Packed RGB24 out, never planar GBRP: swscale's GBRP output interpolates 4:2:0
     * chroma where RGB24 (ffmpeg's and PyAV's rgb24, what the reference models saw) repeats each
     * sample, so GBRP blurs coloured edges (mean |diff| ~7 / 255 on testsrc2; small objects lose
     * their colour). */
    const uint8_t *base[3] = {c->rgb, c->rgb + 1, c->rgb + 2};
    int px_step = 3;
    if (planar && f->format == AV_PIX_FMT_YUV420P && rot == 0 && !tf->channels_last &&
        !(cw == bw && ch == bh && cx == floor(cx) && cy == floor(cy) && (int)cx % 2 == 0 &&
          (int)cy % 2 == 0)) { /* the training path when it resizes (or cuts off the chroma grid) */
        const double rect[4] = {cx, cy, cw, ch};
        return tal_resize_yuv420(c, f, rect, tf, out, k, n, err);
    }
    if (planar) {
        /* align the cut to the chroma grid so every plane starts on a whole sample */
        int ax = 1 << desc->log2_chroma_w, ay = 1 << desc->log2_chroma_h;
        int x0 = (int)floor(cx) / ax * ax, y0 = (int)floor(cy) / ay * ay;
        int x1 = (int)ceil(cx + cw), y1 = (int)ceil(cy + ch);
        if (x1 > f->width) x1 = f->width;
        if (y1 > f->height) y1 = f->height;
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 <= x0) x1 = x0 + 1;
        if (y1 <= y0) y1 = y0 + 1;
        const uint8_t *src[4] = {0};
        int stride[4] = {0};
        for (int p = 0; p < 4 && f->data[p]; p++) {
            int chroma = (p == 1 || p == 2) && desc->nb_components >= 3;
            int sx = chroma ? desc->log2_chroma_w : 0, sy = chroma ? desc->log2_chroma_h : 0;
            int step = desc->comp[p < desc->nb_components ? p : 0].step;
            src[p] = f->data[p] + (size_t)(y0 >> sy) * f->linesize[p] + (size_t)(x0 >> sx) * step;
            stride[p] = f->linesize[p];
        }
        int sw = x1 - x0, sh = y1 - y0;
        if ((sw != bw || sh != bh) && scales_in_yuv(f->format)) {
            /* Scale the Y, U, V planes (SIMD scalers), then convert at the output size with the
             * unscaled YUV -> RGB24 converter, the one behind ffmpeg's rgb24 at native size: it
             * repeats each chroma sample as RGB24 does, never interpolating across 4:2:0 blocks.
             * libswscale's scaled YUV -> packed RGB path costs ~4x the decode of a 320x240
             * H.264 frame. */
            int cbw = -((-bw) >> desc->log2_chroma_w), cbh = -((-bh) >> desc->log2_chroma_h);
            int ls = (bw + 63) / 64 * 64, cs = (cbw + 63) / 64 * 64; /* padded, as above */
            size_t luma = (size_t)ls * (bh + 1), chroma = (size_t)cs * (cbh + 1);
            if (!grow(&c->yuv, &c->yuv_size, luma + 2 * chroma))
                return tal_err_set(err, TAL_ENOMEM, "out of memory for a %dx%d frame", bw, bh);
            uint8_t *yuv[4] = {c->yuv, c->yuv + luma, c->yuv + luma + chroma, NULL};
            int yuv_stride[4] = {ls, cs, cs, 0};
            c->yuv_sws = sws_getCachedContext(c->yuv_sws, sw, sh, f->format, bw, bh, f->format,
                                              flags, NULL, NULL, NULL);
            if (!c->yuv_sws)
                return tal_err_set(err, TAL_EFORMAT, "no %s scaler", desc->name);
            sws_scale(c->yuv_sws, src, stride, 0, sh, yuv, yuv_stride);
            for (int p = 0; p < 3; p++) src[p] = yuv[p], stride[p] = yuv_stride[p];
            sw = bw;
            sh = bh;
        }
        if (f->format == AV_PIX_FMT_YUV420P && sw == bw && sh == bh && rot == 0 &&
            !tf->channels_last) { /* the training path: one pass from the planes to floats */
            float scale[3], shift[3];
            normalise_coeffs(tf, scale, shift);
            size_t plane = (size_t)n * bh * bw;
            for (int yy = 0; yy < bh; yy++) {
                float *o = out.data + ((size_t)k * bh + yy) * bw;
                yuv420_row(o, o + plane, o + 2 * plane, src[0] + (size_t)yy * stride[0],
                           src[1] + (size_t)(yy >> 1) * stride[1],
                           src[2] + (size_t)(yy >> 1) * stride[2], bw, tf->flip, scale, shift);
            }
            return TAL_OK;
        }
        c->sws = sws_getCachedContext(c->sws, sw, sh, f->format, bw, bh, AV_PIX_FMT_RGB24,
                                      flags, NULL, NULL, NULL);
        if (!c->sws) return tal_err_set(err, TAL_EFORMAT, "no conversion from %s", desc->name);
        sws_scale(c->sws, src, stride, 0, sh, dst, dst_stride);
    } else {
        /* packed or paletted: whole frame to RGB24 first, then cut and scale that */
        if (!grow(&c->full, &c->full_size, (size_t)f->width * f->height * 3))
            return tal_err_set(err, TAL_ENOMEM, "out of memory for a %dx%d frame", f->width,
                               f->height);
        c->sws2 = sws_getCachedContext(c->sws2, f->width, f->height, f->format, f->width, f->height,
                                       AV_PIX_FMT_RGB24, SWS_POINT, NULL, NULL, NULL);
        if (!c->sws2) return tal_err_set(err, TAL_EFORMAT, "no conversion from %s", desc->name);
        uint8_t *full[4] = {c->full, NULL, NULL, NULL};
        int full_stride[4] = {f->width * 3, 0, 0, 0};
        sws_scale(c->sws2, (const uint8_t *const *)f->data, f->linesize, 0, f->height, full,
                  full_stride);
        int x0 = (int)floor(cx), y0 = (int)floor(cy);
        int x1 = (int)ceil(cx + cw), y1 = (int)ceil(cy + ch);
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 > f->width) x1 = f->width;
        if (y1 > f->height) y1 = f->height;
        if (x1 <= x0) x1 = x0 + 1;
        if (y1 <= y0) y1 = y0 + 1;
        const uint8_t *src[4] = {c->full + ((size_t)y0 * f->width + x0) * 3, NULL, NULL, NULL};
        int stride[4] = {f->width * 3, 0, 0, 0};
        c->sws = sws_getCachedContext(c->sws, x1 - x0, y1 - y0, AV_PIX_FMT_RGB24, bw, bh,
                                      AV_PIX_FMT_RGB24, flags, NULL, NULL, NULL);
        if (!c->sws) return tal_err_set(err, TAL_EFORMAT, "no RGB scaler");
        sws_scale(c->sws, src, stride, 0, y1 - y0, dst, dst_stride);
    }
    /* one pass: displayed (x', y') <- buffer pixel through rotation and flip, then normalise */
    const int W = tf->out_w, H = tf->out_h;
    float scale[3], shift[3];
    normalise_coeffs(tf, scale, shift);
    const int step = px_step;
    if (rot == 0 && !tf->channels_last) { /* the common case: contiguous rows in and out */
        size_t plane = (size_t)n * H * W;
        for (int yy = 0; yy < H; yy++) {
            float *o = out.data + ((size_t)k * H + yy) * W;
            normalise_row(o, o + plane, o + 2 * plane, c->rgb + (size_t)yy * row, W, tf->flip,
                          scale, shift);
        }
        return TAL_OK;
    }
    for (int yy = 0; yy < H; yy++)
        for (int xx = 0; xx < W; xx++) {
            int xd = tf->flip ? W - 1 - xx : xx, bx, by;
            switch (rot) {
            case 90: bx = yy; by = bh - 1 - xd; break;
            case 180: bx = bw - 1 - xd; by = bh - 1 - yy; break;
            case 270: bx = bw - 1 - yy; by = xd; break;
            default: bx = xd; by = yy;
            }
            size_t at = (size_t)by * row + (size_t)bx * step;
            for (int ch_i = 0; ch_i < 3; ch_i++) {
                float v = base[ch_i][at] * scale[ch_i] + shift[ch_i];
                size_t idx = tf->channels_last
                                 ? (((size_t)k * H + yy) * W + xx) * 3 + ch_i
                                 : (((size_t)ch_i * n + k) * H + yy) * W + xx;
                out.data[idx] = v;
            }
        }
    return TAL_OK;
}
