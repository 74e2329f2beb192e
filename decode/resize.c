/* decode/resize.c: a YUV 4:2:0 frame scaled and turned into normalised float RGB in one pass of
 * our own: separable resampling filters (bilinear, antialiased when shrinking, or area), the
 * BT.601 conversion and (x - mean) / std, written straight into the output tensor. It computes
 * what the reference pipeline does (decode to rgb24, chroma repeated over its 2x2 block, then
 * resize the RGB image) but in float and without the RGB image: the filters are linear, so the
 * chroma planes are filtered with the luma filter folded onto the chroma grid and converted at
 * the output size. One difference, where the source leaves the RGB gamut: the clamp to 0..255
 * comes after the filter (as in libswscale-based readers: ffmpeg, PyAV), not per source pixel
 * (tests/test_decode_convert.c measures both). Against libswscale's plane scalers and the
 * one-pass conversion after them it cuts fractional crops exactly (they snapped to the chroma
 * grid), interpolates chroma at the output size (it was repeated after scaling) and costs ~15%
 * less (320x240 -> 299x224: ~88 us against ~105 us here; bench/RESULTS.md "decode").
 *
 * Work goes in blocks of 8 output rows: vertical filter of the 8 rows (vectorised along the
 * row), a transpose so that each source column holds its 8 rows in one vector, the horizontal
 * filter (one vector multiply-add per tap, no gathers), the colour conversion on those vectors,
 * and a transpose back into the output rows. */
#include "decode/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Clones for x86-64-v3 (AVX2 + FMA) and baseline x86-64, picked at load time. finite-math: no
 * NaN reaches these loops, and it lets the clamps be min / max instructions. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define ROW_CLONES                                                                                 \
    __attribute__((target_clones("arch=x86-64-v3", "default"),                                     \
                   optimize("tree-vectorize", "finite-math-only", "no-signed-zeros")))
#else
#define ROW_CLONES
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef float v8f_unaligned __attribute__((vector_size(32), aligned(4)));

/* libswscale's BT.601 limited-range coefficients (its fixed-point ones / 65536, times 8), so
 * that colours match the native-size pass, which is bit-equal to it. */
#define Y_GAIN (9539.0f * 8 / 65536)
#define VR_GAIN (13075.0f * 8 / 65536)
#define VG_GAIN (-6660.0f * 8 / 65536)
#define UG_GAIN (-3209.0f * 8 / 65536)
#define UB_GAIN (16525.0f * 8 / 65536)
/* Each fixed-point term is floored (>> 16): Y and V for R, three terms for G, Y and U for B. On
 * average that takes 0.5 per term off, which the native-size pass (and ffmpeg's rgb24, what the
 * reference models saw) carries; the float pass takes the same mean off so that a frame's
 * statistics do not depend on whether it was resized (tests/test_decode_resize.c measures it). */
#define R_FLOOR_MEAN 1.0f
#define G_FLOOR_MEAN 1.5f
#define B_FLOOR_MEAN 1.0f

/* Normalised channel c = clamp(y * ky + u * ku + v * kv + k0, lo, hi) of the filtered Y, U, V. */
typedef struct colour {
    float ky[3], ku[3], kv[3], k0[3], lo[3], hi[3];
} colour;

/* One frame's resize, handed to the block kernels: plane p (Y, U, V) is read over columns
 * [lo, lo + span) with filters ax[p], ay[p]; cols[p] holds one block's filtered columns
 * (32-byte aligned, 8 floats per column); out[c] is the frame's [H, W] plane of channel c. */
typedef struct resize_job {
    const uint8_t *plane[3];
    int linesize[3];
    const tal_resample_axis *ax[3], *ay[3];
    int lo[3], span[3];
    float *cols[3];
    colour colour;
    float *out[3];
    int W, H;
} resize_job;

void tal_resample_axis_free(tal_resample_axis *a) {
    free(a->first);
    free(a->w);
    memset(a, 0, sizeof *a);
}

static int axis_alloc(tal_resample_axis *a, int n_out, int taps) {
    int *first = realloc(a->first, sizeof *first * (size_t)n_out);
    if (first) a->first = first;
    float *w = realloc(a->w, sizeof *w * (size_t)n_out * taps);
    if (w) a->w = w;
    if (!first || !w) return 0;
    a->n_out = n_out;
    a->taps = taps;
    return 1;
}

/* Output i (mirrored if flip) samples source [origin, origin + extent) split into n_out equal
 * footprints; source pixel j covers [j, j + 1). Bilinear: a triangle over the footprint's
 * centre, widened to the footprint when shrinking (as libswscale and PIL do, so that shrinking
 * averages instead of aliasing). Area: each pixel weighted by its overlap with the footprint
 * (bilinear when enlarging). Samples beyond the frame repeat its edge. Taps: the most nonzero
 * weights any output has (every tap costs a multiply-add per pixel). */
static int axis_build(tal_resample_axis *a, double origin, double extent, int n_src, int n_out,
                      int area, int flip) {
    double scale = extent / n_out, support = scale > 1 ? scale : 1;
    int box = area && scale > 1;
    double reach = box ? scale / 2 : support; /* nonzero weights within this of the centre */
    int wide = (int)ceil(2 * reach) + 1, taps = 1;
    if (wide > n_src) wide = n_src;
    double *acc = calloc((size_t)n_out * wide, sizeof *acc);
    int *lo_nz = malloc(sizeof *lo_nz * 2 * (size_t)n_out), *row_first = lo_nz + n_out;
    if (!acc || !lo_nz) {
        free(acc);
        free(lo_nz);
        return 0;
    }
    for (int i = 0; i < n_out; i++) {
        int o = flip ? n_out - 1 - i : i;
        double c = origin + (o + 0.5) * scale, sum = 0, *w = acc + (size_t)i * wide;
        int lo = (int)floor(c - reach - 0.5), first = lo < 0 ? 0 : lo;
        if (first > n_src - wide) first = n_src - wide;
        for (int j = lo; j <= lo + (int)ceil(2 * reach); j++) {
            double wj;
            if (box) {
                double l = fmax(j, c - scale / 2), r = fmin(j + 1, c + scale / 2);
                wj = r > l ? r - l : 0;
            } else {
                wj = 1 - fabs(j + 0.5 - c) / support;
                wj = wj > 0 ? wj : 0;
            }
            int jj = j < 0 ? 0 : j >= n_src ? n_src - 1 : j;
            w[jj - first] += wj;
            sum += wj;
        }
        int a0 = 0, a1 = wide - 1; /* the nonzero run */
        while (a0 < a1 && w[a0] == 0) a0++;
        while (a1 > a0 && w[a1] == 0) a1--;
        for (int t = 0; t < wide; t++) w[t] /= sum;
        lo_nz[i] = first + a0;
        row_first[i] = first;
        if (a1 - a0 + 1 > taps) taps = a1 - a0 + 1;
    }
    int ok = axis_alloc(a, n_out, taps);
    if (ok) {
        for (int i = 0; i < n_out; i++) {
            int first = lo_nz[i] > n_src - taps ? n_src - taps : lo_nz[i];
            for (int t = 0; t < taps; t++) {
                int at = first + t - row_first[i];
                a->w[(size_t)i * taps + t] =
                    at >= 0 && at < wide ? (float)acc[(size_t)i * wide + at] : 0;
            }
            a->first[i] = first;
        }
    }
    free(acc);
    free(lo_nz);
    return ok;
}

/* The luma filter folded onto a 2x subsampled chroma grid: luma sample j takes its colour from
 * chroma sample j / 2, so luma tap weights add up on that sample. */
static int axis_halve(tal_resample_axis *c, const tal_resample_axis *l, int n_src) {
    int taps = 1;
    for (int i = 0; i < l->n_out; i++) {
        int span = ((l->first[i] + l->taps - 1) >> 1) - (l->first[i] >> 1) + 1;
        if (span > taps) taps = span;
    }
    if (taps > n_src) taps = n_src;
    if (!axis_alloc(c, l->n_out, taps)) return 0;
    for (int i = 0; i < l->n_out; i++) {
        int first = l->first[i] >> 1;
        if (first > n_src - taps) first = n_src - taps;
        float *w = c->w + (size_t)i * taps;
        memset(w, 0, sizeof *w * taps);
        for (int t = 0; t < l->taps; t++)
            w[((l->first[i] + t) >> 1) - first] += l->w[(size_t)i * l->taps + t];
        c->first[i] = first;
    }
    return 1;
}

/* Rows y0..y0+7 of the vertical filter over source columns [lo, lo + span) -> v[8][stride],
 * zero past span (rows past the output repeat its last row; they are never written out). */
ROW_CLONES
static void filter_vertical(float *restrict v, int stride, const uint8_t *restrict plane,
                            int linesize, int lo, int span, const tal_resample_axis *ay, int y0) {
    for (int r = 0; r < 8; r++) {
        int y = y0 + r < ay->n_out ? y0 + r : ay->n_out - 1;
        const float *w = ay->w + (size_t)y * ay->taps;
        const uint8_t *src = plane + (size_t)ay->first[y] * linesize + lo;
        float *restrict d = v + (size_t)r * stride;
        /* two taps per pass over the row: half the loads and stores of d */
        int t = ay->taps & 1 ? 1 : 2;
        if (t == 1) {
            float w0 = w[0];
            for (int j = 0; j < span; j++) d[j] = w0 * src[j];
        } else {
            const uint8_t *s1 = src + linesize;
            float w0 = w[0], w1 = w[1];
            for (int j = 0; j < span; j++) d[j] = w0 * src[j] + w1 * s1[j];
        }
        for (; t < ay->taps; t += 2) {
            const uint8_t *s0 = src + (size_t)t * linesize, *s1 = s0 + linesize;
            float w0 = w[t], w1 = w[t + 1];
            for (int j = 0; j < span; j++) d[j] += w0 * s0[j] + w1 * s1[j];
        }
        for (int j = span; j < stride; j++) d[j] = 0;
    }
}

#define SHUF __builtin_shufflevector
/* The 8 x 8 transpose: vectors c[0..7] (8 lanes each) -> 8 vectors stored W floats apart from
 * o (lane k of every c[i] forms the k-th), each stored as soon as it is formed: through a local
 * array the compiler spills them, and reloading a spilled vector can wait on the output stores
 * before it (they alias in the low address bits). */
static inline __attribute__((always_inline)) void transpose8_store(float *o, int64_t W,
                                                                   const v8f *c) {
    v8f t0 = SHUF(c[0], c[1], 0, 8, 1, 9, 4, 12, 5, 13);
    v8f t1 = SHUF(c[0], c[1], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f t2 = SHUF(c[2], c[3], 0, 8, 1, 9, 4, 12, 5, 13);
    v8f t3 = SHUF(c[2], c[3], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f t4 = SHUF(c[4], c[5], 0, 8, 1, 9, 4, 12, 5, 13);
    v8f t5 = SHUF(c[4], c[5], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f t6 = SHUF(c[6], c[7], 0, 8, 1, 9, 4, 12, 5, 13);
    v8f t7 = SHUF(c[6], c[7], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f s0 = SHUF(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13), s4 = SHUF(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
    *(v8f_unaligned *)o = SHUF(s0, s4, 0, 1, 2, 3, 8, 9, 10, 11);
    *(v8f_unaligned *)(o + 4 * W) = SHUF(s0, s4, 4, 5, 6, 7, 12, 13, 14, 15);
    v8f s1 = SHUF(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
    v8f s5 = SHUF(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
    *(v8f_unaligned *)(o + W) = SHUF(s1, s5, 0, 1, 2, 3, 8, 9, 10, 11);
    *(v8f_unaligned *)(o + 5 * W) = SHUF(s1, s5, 4, 5, 6, 7, 12, 13, 14, 15);
    v8f s2 = SHUF(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13), s6 = SHUF(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
    *(v8f_unaligned *)(o + 2 * W) = SHUF(s2, s6, 0, 1, 2, 3, 8, 9, 10, 11);
    *(v8f_unaligned *)(o + 6 * W) = SHUF(s2, s6, 4, 5, 6, 7, 12, 13, 14, 15);
    v8f s3 = SHUF(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
    v8f s7 = SHUF(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
    *(v8f_unaligned *)(o + 3 * W) = SHUF(s3, s7, 0, 1, 2, 3, 8, 9, 10, 11);
    *(v8f_unaligned *)(o + 7 * W) = SHUF(s3, s7, 4, 5, 6, 7, 12, 13, 14, 15);
}

/* v[8][stride] -> cols[stride]: column j's 8 rows in one vector. stride is a multiple of 8. */
ROW_CLONES
static void to_columns(v8f *restrict cols, const float *restrict v, int stride) {
    for (int j = 0; j < stride; j += 8) {
        v8f r[8];
        for (int k = 0; k < 8; k++) r[k] = *(const v8f_unaligned *)(v + (size_t)k * stride + j);
        transpose8_store((float *)(cols + j), 8, r);
    }
}

/* out[i] = sum over taps of w * cols[first[i] - lo + t]: 8 output rows at once. */
ROW_CLONES
static void filter_horizontal(v8f *restrict out, const v8f *restrict cols,
                              const tal_resample_axis *ax, int lo) {
    const int taps = ax->taps;
    for (int i = 0; i < ax->n_out; i++) {
        const float *w = ax->w + (size_t)i * taps;
        const v8f *c = cols + (ax->first[i] - lo);
        v8f acc = c[0] * w[0];
        for (int t = 1; t < taps; t++) acc += c[t] * w[t];
        out[i] = acc;
    }
}

/* The same for the two chroma planes, which share their filter. */
ROW_CLONES
static void filter_horizontal2(v8f *restrict out_u, v8f *restrict out_v, const v8f *restrict u,
                               const v8f *restrict v, const tal_resample_axis *ax, int lo) {
    const int taps = ax->taps;
    for (int i = 0; i < ax->n_out; i++) {
        const float *w = ax->w + (size_t)i * taps;
        const v8f *a = u + (ax->first[i] - lo), *b = v + (ax->first[i] - lo);
        v8f acc_u = a[0] * w[0], acc_v = b[0] * w[0];
        for (int t = 1; t < taps; t++) {
            acc_u += a[t] * w[t];
            acc_v += b[t] * w[t];
        }
        out_u[i] = acc_u;
        out_v[i] = acc_v;
    }
}

/* The BT.601 conversion, its clamp to 0..255 and (x - mean) / std folded into one
 * multiply-add and clamp per channel (1 / std > 0 keeps the clamp's order). */
static colour colour_for(const tal_frame_transform *tf) {
    static const float ku[3] = {0, UG_GAIN, UB_GAIN}, kv[3] = {VR_GAIN, VG_GAIN, 0};
    static const float floor_mean[3] = {R_FLOOR_MEAN, G_FLOOR_MEAN, B_FLOOR_MEAN};
    colour cc;
    for (int i = 0; i < 3; i++) {
        float s = tf->std[i] > 0 ? 1.0f / tf->std[i] : 1.0f, h = -tf->mean[i] * s;
        cc.ky[i] = Y_GAIN * s;
        cc.ku[i] = ku[i] * s;
        cc.kv[i] = kv[i] * s;
        cc.k0[i] = (-16 * Y_GAIN - 128 * (ku[i] + kv[i]) - floor_mean[i]) * s + h;
        cc.lo[i] = h;
        cc.hi[i] = 255 * s + h;
    }
    return cc;
}

/* Filtered Y, U, V -> normalised R, G, B in place, n values each (8 rows per column). */
ROW_CLONES
static void yuv_to_rgb(float *restrict y, float *restrict u, float *restrict v, int n,
                       const colour *cc) {
    const float ry = cc->ky[0], rv = cc->kv[0], r0 = cc->k0[0], rlo = cc->lo[0], rhi = cc->hi[0];
    const float gy = cc->ky[1], gu = cc->ku[1], gv = cc->kv[1], g0 = cc->k0[1];
    const float glo = cc->lo[1], ghi = cc->hi[1];
    const float by = cc->ky[2], bu = cc->ku[2], b0 = cc->k0[2], blo = cc->lo[2], bhi = cc->hi[2];
    for (int i = 0; i < n; i++) {
        float Y = y[i], U = u[i], V = v[i];
        float r = Y * ry + V * rv + r0, g = Y * gy + U * gu + V * gv + g0, b = Y * by + U * bu + b0;
        r = r < rlo ? rlo : r; /* one select per line: nested ?: stops the vectoriser */
        r = r > rhi ? rhi : r;
        g = g < glo ? glo : g;
        g = g > ghi ? ghi : g;
        b = b < blo ? blo : b;
        b = b > bhi ? bhi : b;
        y[i] = r;
        u[i] = g;
        v[i] = b;
    }
}

/* Channel vectors ch[W] (8 rows each) -> rows y0.. (at most `rows`) of a [H, W] plane. */
ROW_CLONES
static void store_rows(float *restrict plane, int W, int y0, int rows, const v8f *restrict ch) {
    int x = 0;
    if (rows == 8)
        for (; x + 8 <= W; x += 8) transpose8_store(plane + (size_t)y0 * W + x, W, ch + x);
    for (; x < W; x++)
        for (int r = 0; r < rows; r++) plane[(size_t)(y0 + r) * W + x] = ch[x][r];
}

static int grow_floats(tal_convert *c, size_t n) {
    if (c->resize_floats >= n) return 1;
    free(c->resize_buf);
    c->resize_buf = aligned_alloc(32, (n * sizeof(float) + 31) / 32 * 32);
    c->resize_floats = c->resize_buf ? n : 0;
    return c->resize_buf != NULL;
}

/* The filters for this geometry, rebuilt only when it changes (a clip keeps one transform). */
static int ensure_axes(tal_convert *c, const AVFrame *f, const double rect[4], int out_w,
                       int out_h, int flip, int area) {
    tal_resize_key key;
    memset(&key, 0, sizeof key); /* compared with memcmp: no stray padding bytes */
    memcpy(key.rect, rect, sizeof key.rect);
    key.src_w = f->width, key.src_h = f->height, key.out_w = out_w, key.out_h = out_h;
    key.flip = flip, key.area = area;
    if (c->resize_ready && !memcmp(&key, &c->resize_key, sizeof key)) return 1;
    c->resize_ready = 0;
    int cw = (f->width + 1) / 2, ch = (f->height + 1) / 2;
    if (!axis_build(&c->axes[0], rect[0], rect[2], f->width, out_w, area, flip) ||
        !axis_build(&c->axes[1], rect[1], rect[3], f->height, out_h, area, 0) ||
        !axis_halve(&c->axes[2], &c->axes[0], cw) || !axis_halve(&c->axes[3], &c->axes[1], ch))
        return 0;
    c->resize_key = key;
    c->resize_ready = 1;
    return 1;
}

/* Source columns [lo, lo + span) the horizontal filter reads. */
static void column_span(const tal_resample_axis *ax, int *lo, int *span) {
    int a = ax->first[0], b = ax->first[0];
    for (int i = 1; i < ax->n_out; i++) { /* first[] is monotonic, reversed when flipped */
        if (ax->first[i] < a) a = ax->first[i];
        if (ax->first[i] > b) b = ax->first[i];
    }
    *lo = a;
    *span = b + ax->taps - a;
}

/* Rows y0..y0+7 in portable C (vectorised by the compiler): vertical filter, transpose,
 * horizontal filter, colour, transpose into the output. rows: [8][stride of the widest plane]. */
static void resize_block(const resize_job *job, int y0, float *rows, v8f *ch[3]) {
    for (int p = 0; p < 3; p++) {
        int stride = (job->span[p] + 7) / 8 * 8;
        filter_vertical(rows, stride, job->plane[p], job->linesize[p], job->lo[p], job->span[p],
                        job->ay[p], y0);
        to_columns((v8f *)job->cols[p], rows, stride);
    }
    filter_horizontal(ch[0], (const v8f *)job->cols[0], job->ax[0], job->lo[0]);
    filter_horizontal2(ch[1], ch[2], (const v8f *)job->cols[1], (const v8f *)job->cols[2],
                       job->ax[1], job->lo[1]);
    yuv_to_rgb((float *)ch[0], (float *)ch[1], (float *)ch[2], 8 * job->W, &job->colour);
    int n_rows = job->H - y0 < 8 ? job->H - y0 : 8;
    for (int c = 0; c < 3; c++) store_rows(job->out[c], job->W, y0, n_rows, ch[c]);
}

tal_status tal_resize_yuv420(tal_convert *c, const AVFrame *f, const double rect[4],
                             const tal_frame_transform *tf, tal_tensor out, int k, int n,
                             tal_err *err) {
    const int W = tf->out_w, H = tf->out_h;
    if (!ensure_axes(c, f, rect, W, H, tf->flip, tf->area))
        return tal_err_set(err, TAL_ENOMEM, "out of memory for the %dx%d resize filters", W, H);
    resize_job job;
    memset(&job, 0, sizeof job);
    job.W = W, job.H = H;
    job.colour = colour_for(tf);
    int stride[3], widest = 8;
    for (int p = 0; p < 3; p++) {
        job.plane[p] = f->data[p];
        job.linesize[p] = f->linesize[p];
        job.ax[p] = &c->axes[p ? 2 : 0];
        job.ay[p] = &c->axes[p ? 3 : 1];
        column_span(job.ax[p], &job.lo[p], &job.span[p]);
        stride[p] = (job.span[p] + 7) / 8 * 8;
        widest = stride[p] > widest ? stride[p] : widest;
        job.out[p] = out.data + (size_t)p * n * H * W + (size_t)k * H * W;
    }
    /* rows [8][widest], columns [stride] x 8 per plane, R, G, B at the output width x 8 */
    size_t need = (size_t)8 * (widest + stride[0] + stride[1] + stride[2]) + (size_t)24 * W;
    if (!grow_floats(c, need))
        return tal_err_set(err, TAL_ENOMEM, "out of memory for a %dx%d resize", W, H);
    float *rows = c->resize_buf;
    job.cols[0] = rows + (size_t)8 * widest;
    job.cols[1] = job.cols[0] + (size_t)8 * stride[0];
    job.cols[2] = job.cols[1] + (size_t)8 * stride[1];
    v8f *ch[3] = {(v8f *)(job.cols[2] + (size_t)8 * stride[2])};
    ch[1] = ch[0] + W;
    ch[2] = ch[1] + W;
    for (int y0 = 0; y0 < H; y0 += 8) resize_block(&job, y0, rows, ch);
    return TAL_OK;
}
