/* data/sampler.c: which frames one sample decodes and where its targets lie (spec-actionformer.md
 * §8.4, §9): THUMOS random truncation (training), ActivityNet resize, test sliding windows, and
 * padding masks for batches. Units: "sampled frames" are the frames the backbone gets (every
 * frame_stride-th original frame); one feature position covers snippet_stride / frame_stride of
 * them. GT seconds become original frames as floor(t / duration * n_frames) (OpenTAD). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

void tal_clip_free(tal_clip *c) {
    free(c->frame_idx);
    free(c->segments);
    memset(c, 0, sizeof *c);
}

void tal_trunc_opts_default(tal_trunc_opts *o) {
    o->trunc_len = 1024;
    o->frame_stride = 2;
    o->snippet_stride = 4;
    o->trunc_thresh = 0.75;
    o->crop_ratio_min = 0.9;
    o->crop_ratio_max = 1.0;
    o->max_trials = 200;
    o->feat_map = NULL;
}

void tal_resize_opts_default(tal_resize_opts *o) {
    o->n_frames = 768;
    o->resize_len = 192;
    o->min_gt_frac = 0.01;
    o->class_agnostic = 0;
}

void tal_window_opts_default(tal_window_opts *o) {
    o->window_len = 1024;
    o->window_stride = 512;
    o->frame_stride = 2;
    o->snippet_stride = 4;
    o->feat_map = NULL;
}

tal_video_meta tal_video_meta_of(const tal_video_anno *v) {
    tal_video_meta m = {v->n_frames, v->duration_s, v->segments, v->n_segments};
    if (m.n_frames <= 0 && v->fps > 0 && v->duration_s > 0)
        m.n_frames = (int64_t)llround(v->fps * v->duration_s);
    return m;
}

static tal_status check_video(const tal_video_meta *v, tal_err *err) {
    if (v->n_frames < 1 || !(v->duration_s > 0) || !isfinite(v->duration_s))
        return tal_err_set(err, TAL_EINVAL,
                           "sampler: video needs frames and a duration (got %lld frames, %g s)",
                           (long long)v->n_frames, v->duration_s);
    if (v->n_segments < 0 || (v->n_segments > 0 && !v->segments))
        return tal_err_set(err, TAL_EINVAL, "sampler: %d segments but no array", v->n_segments);
    return TAL_OK;
}

static tal_status check_strides(int frame_stride, int snippet_stride, int len, const char *what,
                                tal_err *err) {
    if (frame_stride < 1 || snippet_stride < frame_stride || snippet_stride % frame_stride)
        return tal_err_set(err, TAL_EINVAL,
                           "sampler: snippet stride %d must be a multiple of frame stride %d",
                           snippet_stride, frame_stride);
    int fpf = snippet_stride / frame_stride;
    if (len < fpf || len % fpf)
        return tal_err_set(err, TAL_EINVAL, "sampler: %s %d must be a multiple of %d", what, len,
                           fpf);
    return TAL_OK;
}

/* Allocates the clip's arrays. */
static tal_status clip_alloc(tal_clip *c, int n_frames, int n_segments, tal_err *err) {
    memset(c, 0, sizeof *c);
    c->frame_idx = malloc((size_t)n_frames * sizeof *c->frame_idx);
    c->segments = malloc((size_t)(n_segments > 0 ? n_segments : 1) * sizeof *c->segments);
    if (!c->frame_idx || !c->segments) {
        tal_clip_free(c);
        return tal_err_set(err, TAL_ENOMEM, "sampler: out of memory for %d frames", n_frames);
    }
    c->n_frames = n_frames;
    return TAL_OK;
}

/* A GT segment in sampled-frame units (original frame floor(t / duration * n_frames)). */
static void gt_sampled(double *s, double *e, const tal_video_meta *v, const tal_segment *g,
                       int frame_stride, const tal_time_map *feat_map) {
    if (feat_map) { /* feature positions, as ActionFormer converts them: no flooring */
        *s = tal_time_s_to_feat(feat_map, g->start_s) / frame_stride;
        *e = tal_time_s_to_feat(feat_map, g->end_s) / frame_stride;
        return;
    }
    double scale = (double)v->n_frames / v->duration_s;
    *s = floor(g->start_s * scale) / frame_stride;
    *e = floor(g->end_s * scale) / frame_stride;
}

/* Fraction of [s, e] inside [w0, w1]; a zero-length segment counts 1 if inside. */
static double inside_frac(double s, double e, double w0, double w1) {
    if (e <= s) return (s >= w0 && s <= w1) ? 1.0 : 0.0;
    double ov = fmin(e, w1) - fmax(s, w0);
    return ov > 0 ? ov / (e - s) : 0.0;
}

/* Window [start, start + L) in sampled frames: frame indices (padded with the last), mask
 * length, GT kept by `keep` (>= thresh inside, clipped) in feature units. */
static void fill_window(tal_clip *c, const tal_video_meta *v, int64_t start, int64_t L,
                        int frame_stride, int snippet_stride, double thresh,
                        const tal_time_map *feat_map) {
    int fpf = snippet_stride / frame_stride;
    for (int i = 0; i < c->n_frames; i++)
        c->frame_idx[i] = (start + (i < L ? i : L - 1)) * frame_stride;
    c->n_valid_frames = (int)L;
    c->n_feat = c->n_frames / fpf;
    c->n_valid_feat = (int)((L + fpf - 1) / fpf);
    c->n_segments = 0;
    for (int i = 0; i < v->n_segments; i++) {
        double s, e;
        gt_sampled(&s, &e, v, &v->segments[i], frame_stride, feat_map);
        double f = inside_frac(s, e, (double)start, (double)(start + L));
        if (f <= 0 || f < thresh) continue;
        tal_segment *g = &c->segments[c->n_segments++];
        g->start_s = (fmax(s, (double)start) - start) / fpf; /* feature units, not seconds */
        g->end_s = (fmin(e, (double)(start + L)) - start) / fpf;
        g->label = v->segments[i].label;
    }
    c->time = (tal_time_map){.fps = v->n_frames / v->duration_s,
                             .snippet_stride = snippet_stride,
                             .window_start_frame = (double)(start * frame_stride),
                             .offset_frames = 0,
                             .duration_s = v->duration_s,
                             .resize_len = 0};
    if (feat_map) { /* position x of this window is position start + x of the file */
        c->time = *feat_map;
        c->time.window_start_frame += (double)(start * frame_stride) * feat_map->snippet_stride;
    }
}

static int64_t n_sampled(int64_t n_frames, int frame_stride) {
    return (n_frames + frame_stride - 1) / frame_stride;
}

/* Uniform whole number in [lo, hi]. */
static int64_t uniform_int(tal_rng_key key, uint64_t i, int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    int64_t r = lo + (int64_t)(tal_rng_uniform(key, i) * (double)(hi - lo + 1));
    return r > hi ? hi : r;
}

tal_status tal_sample_trunc(tal_clip *out, const tal_video_meta *v, const tal_trunc_opts *o,
                            tal_rng_key key, tal_err *err) {
    memset(out, 0, sizeof *out);
    tal_status s = check_video(v, err);
    if (s == TAL_OK) s = check_strides(o->frame_stride, o->snippet_stride, o->trunc_len,
                                       "trunc_len", err);
    if (s != TAL_OK) return s;
    if (!(o->trunc_thresh >= 0 && o->trunc_thresh <= 1) || !(o->crop_ratio_min > 0) ||
        !(o->crop_ratio_max >= o->crop_ratio_min && o->crop_ratio_max <= 1) || o->max_trials < 1)
        return tal_err_set(err, TAL_EINVAL,
                           "sampler: trunc_thresh %g must be in [0, 1], crop ratio [%g, %g] in "
                           "(0, 1], trials %d >= 1",
                           o->trunc_thresh, o->crop_ratio_min, o->crop_ratio_max, o->max_trials);
    if ((s = clip_alloc(out, o->trunc_len, v->n_segments, err)) != TAL_OK) return s;
    int64_t n = n_sampled(v->n_frames, o->frame_stride), L = o->trunc_len;
    uint64_t draw = 0;
    if (n <= o->trunc_len) { /* short video: random crop length, then truncate as usual */
        L = uniform_int(key, draw++, llround(o->crop_ratio_min * n),
                        llround(o->crop_ratio_max * n));
        if (L > n) L = n;
        if (L < 1) L = 1;
    }
    int64_t start = 0;
    for (int t = 0; t < o->max_trials; t++) {
        start = uniform_int(key, draw++, 0, n - L);
        fill_window(out, v, start, L, o->frame_stride, o->snippet_stride, o->trunc_thresh,
                    o->feat_map);
        /* Accept the first window that keeps a GT; without GT any window will do. */
        if (out->n_segments > 0 || v->n_segments == 0) break;
    }
    return TAL_OK;
}

tal_status tal_sample_resize(tal_clip *out, const tal_video_meta *v, const tal_resize_opts *o,
                             tal_err *err) {
    memset(out, 0, sizeof *out);
    tal_status s = check_video(v, err);
    if (s != TAL_OK) return s;
    if (o->n_frames < 1 || o->resize_len < 1 || !(o->min_gt_frac >= 0 && o->min_gt_frac < 1))
        return tal_err_set(err, TAL_EINVAL,
                           "sampler: resize wants n_frames %d >= 1, resize_len %d >= 1, "
                           "min_gt_frac %g in [0, 1)",
                           o->n_frames, o->resize_len, o->min_gt_frac);
    if ((s = clip_alloc(out, o->n_frames, v->n_segments, err)) != TAL_OK) return s;
    /* Frame k sits at the centre of the k-th of n_frames equal spans (OpenTAD's uniform
     * sampling): round(clip(stride / 2 - 0.5 + k * stride, 0, total - 1)). */
    double stride = (double)v->n_frames / o->n_frames;
    for (int k = 0; k < o->n_frames; k++) {
        double x = stride / 2 - 0.5 + k * stride;
        x = fmin(fmax(x, 0.0), (double)(v->n_frames - 1));
        out->frame_idx[k] = (int64_t)llround(x);
    }
    out->n_valid_frames = o->n_frames;
    out->n_feat = out->n_valid_feat = o->resize_len;
    for (int i = 0; i < v->n_segments; i++) {
        const tal_segment *g = &v->segments[i];
        double a = fmin(fmax(g->start_s / v->duration_s, 0.0), 1.0);
        double b = fmin(fmax(g->end_s / v->duration_s, 0.0), 1.0);
        if (b - a <= o->min_gt_frac) continue; /* filter_gt: too short to learn from */
        tal_segment *d = &out->segments[out->n_segments++];
        d->start_s = a * o->resize_len;
        d->end_s = b * o->resize_len;
        d->label = o->class_agnostic ? 0 : g->label;
    }
    out->time = (tal_time_map){.fps = v->n_frames / v->duration_s,
                               .snippet_stride = 0,
                               .window_start_frame = 0,
                               .offset_frames = 0,
                               .duration_s = v->duration_s,
                               .resize_len = o->resize_len};
    return TAL_OK;
}

static tal_status check_window_opts(const tal_window_opts *o, tal_err *err) {
    tal_status s = check_strides(o->frame_stride, o->snippet_stride, o->window_len, "window_len",
                                 err);
    if (s == TAL_OK && (o->window_stride < 1 || o->window_stride > o->window_len))
        s = tal_err_set(err, TAL_EINVAL, "sampler: window stride %d must be in [1, %d]",
                        o->window_stride, o->window_len);
    return s;
}

int tal_window_count(int64_t n_frames, const tal_window_opts *o) {
    TAL_ASSERT(check_window_opts(o, NULL) == TAL_OK);
    int64_t n = n_sampled(n_frames, o->frame_stride);
    if (n <= o->window_len) return 1;
    int64_t over = n - o->window_len;
    return (int)(over / o->window_stride + 1 + (over % o->window_stride != 0));
}

tal_status tal_sample_window(tal_clip *out, const tal_video_meta *v, const tal_window_opts *o,
                             int w, tal_err *err) {
    memset(out, 0, sizeof *out);
    tal_status s = check_video(v, err);
    if (s == TAL_OK) s = check_window_opts(o, err);
    if (s != TAL_OK) return s;
    int n_w = tal_window_count(v->n_frames, o);
    if (w < 0 || w >= n_w)
        return tal_err_set(err, TAL_EINVAL, "sampler: window %d of %d", w, n_w);
    if ((s = clip_alloc(out, o->window_len, v->n_segments, err)) != TAL_OK) return s;
    int64_t n = n_sampled(v->n_frames, o->frame_stride);
    int64_t start = 0;
    if (n > o->window_len) { /* the last window is right-aligned to the end */
        start = (int64_t)w * o->window_stride;
        if (start > n - o->window_len) start = n - o->window_len;
    }
    int64_t L = n - start < o->window_len ? n - start : o->window_len;
    fill_window(out, v, start, L, o->frame_stride, o->snippet_stride, 0.0, o->feat_map);
    return TAL_OK;
}

void tal_batch_mask(tal_tensor mask, const tal_clip *clips, int B) {
    TAL_ASSERT(mask.ndim == 2 && mask.shape[0] == B);
    int64_t T = mask.shape[1];
    for (int b = 0; b < B; b++) {
        TAL_ASSERT_MSG(clips[b].n_feat <= T, "clip %d has %d positions, batch length %lld", b,
                       clips[b].n_feat, (long long)T);
        for (int64_t t = 0; t < T; t++) mask.data[b * T + t] = t < clips[b].n_valid_feat;
    }
}

int tal_batch_len(const tal_clip *clips, int B, int div) {
    int T = 0;
    for (int b = 0; b < B; b++)
        if (clips[b].n_feat > T) T = clips[b].n_feat;
    if (div > 1) T = (T + div - 1) / div * div;
    return T;
}
