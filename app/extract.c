/* app/extract.c: backbone features of whole videos (see extract.h). Frames are decoded once,
 * in order: overlapping snippets keep the frames they share and read only the new ones. */
#include "app/extract.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/model_dir.h"
#include "app/progress.h"

int tal_extract_clip_frames(const tal_extract_opts *o) {
    if (o->spread > 0) return o->spread;
    return o->window > 0 ? o->window : o->frames_per_feature;
}

/* The sampled frames of a video: their times and how many video frames each stands for. */
typedef struct sampling {
    double *times;          /* [n] seconds from the first frame */
    int64_t n;
    double spacing;         /* video frames per sampled frame */
    double fps;             /* the video's */
} sampling;

static tal_status make_sampling(sampling *s, const tal_extract_opts *o, const tal_video_anno *v,
                                tal_err *err) {
    memset(s, 0, sizeof *s);
    s->fps = v->fps > 0 ? v->fps : v->duration_s > 0 ? v->n_frames / v->duration_s : 0;
    if (!(s->fps > 0) || v->n_frames < 1)
        return tal_err_set(err, TAL_EFORMAT, "video %s: no frame rate or no frames", v->id);
    tal_clip spread = {0};
    if (o->every > 0) {
        s->n = (v->n_frames + o->every - 1) / o->every;
        s->spacing = o->every;
    } else if (o->fps > 0) {
        s->n = tal_frames_at_fps(v->duration_s, o->fps);
        s->spacing = s->fps / o->fps;
    } else { /* the resize sampler's frames, as a run of that config decodes them */
        tal_video_meta meta = tal_video_meta_of(v);
        tal_resize_opts ro;
        tal_resize_opts_default(&ro);
        ro.n_frames = ro.resize_len = o->spread;
        tal_status st = tal_sample_resize(&spread, &meta, &ro, err);
        if (st) return st;
        s->n = o->spread;
        s->spacing = (double)v->n_frames / o->spread;
    }
    s->times = malloc(sizeof(double) * (size_t)(s->n > 0 ? s->n : 1));
    if (!s->times) {
        tal_clip_free(&spread);
        return tal_err_set(err, TAL_ENOMEM, "video %s: out of memory", v->id);
    }
    if (o->fps > 0 && o->every <= 0) tal_times_at_fps(s->times, (int)s->n, 0, o->fps);
    for (int64_t j = 0; j < s->n && !(o->fps > 0 && o->every <= 0); j++) {
        /* frame index -> the middle of its display time: the decoder then picks it by PTS */
        double idx = o->every > 0 ? (double)j * o->every : (double)spread.frame_idx[j];
        s->times[j] = (idx + 0.5) / s->fps;
    }
    tal_clip_free(&spread);
    return TAL_OK;
}

/* Sampled frames [first, first + have) in buf [3, L, H, W]; reading the next range keeps what
 * overlaps and decodes only the rest (forward, no seek). */
typedef struct reader {
    tal_decoder *dec;
    tal_frame_transform tf;
    float *buf, *tmp;
    int L;
    int64_t first;
    int have;
} reader;

static tal_status reader_fill(reader *r, const sampling *s, int64_t start, tal_err *err) {
    size_t plane = (size_t)r->tf.out_h * r->tf.out_w;
    int keep = 0;
    if (r->have > 0 && start >= r->first && start < r->first + r->have) {
        int shift = (int)(start - r->first);
        keep = r->have - shift;
        for (int c = 0; c < 3; c++)
            memmove(r->buf + (size_t)c * r->L * plane, r->buf + ((size_t)c * r->L + shift) * plane,
                    sizeof(float) * plane * (size_t)keep);
    }
    int k = r->L - keep;
    double times[k > 0 ? k : 1];
    for (int i = 0; i < k; i++) { /* past the end: the last frame again (masked or averaged) */
        int64_t j = start + keep + i;
        times[i] = s->times[j < s->n ? j : s->n - 1];
    }
    if (k > 0) {
        tal_tensor out = tal_t4(r->tmp, 3, k, r->tf.out_h, r->tf.out_w);
        tal_status st = tal_decoder_read_times(r->dec, times, k, &r->tf, out, err);
        if (st) {
            r->have = 0;
            return st;
        }
        for (int c = 0; c < 3; c++)
            memcpy(r->buf + ((size_t)c * r->L + keep) * plane, r->tmp + (size_t)c * k * plane,
                   sizeof(float) * plane * (size_t)k);
    }
    r->first = start;
    r->have = r->L;
    return TAL_OK;
}

/* The sidecar's description of how the features were made, plus the caller's members. */
static char *describe(const tal_extract_opts *o, int L, int Lout) {
    cJSON *x = cJSON_CreateObject();
    cJSON *smp = cJSON_AddObjectToObject(x, "sampling");
    if (o->every > 0) cJSON_AddNumberToObject(smp, "every_nth_frame", o->every);
    else if (o->fps > 0) cJSON_AddNumberToObject(smp, "frames_per_second", o->fps);
    else cJSON_AddNumberToObject(smp, "frames_spread_over_the_video", o->spread);
    if (o->window > 0 || o->spread > 0) {
        cJSON_AddStringToObject(x, "mode", "windows");
        cJSON_AddNumberToObject(x, "window_frames", L);
        cJSON_AddNumberToObject(x, "features_per_window", Lout);
        cJSON_AddStringToObject(x, "pooling", "mean over height and width of the backbone's "
                                              "last stage; one feature per output time step");
    } else {
        cJSON_AddStringToObject(x, "mode", "snippets");
        cJSON_AddNumberToObject(x, "snippet_frames", o->frames_per_feature);
        cJSON_AddNumberToObject(x, "snippet_stride", o->stride);
        cJSON_AddStringToObject(x, "pooling", "mean over time, height and width of the "
                                              "backbone's last stage, one snippet per feature");
    }
    cJSON_AddNumberToObject(x, "short_side", o->short_side);
    cJSON_AddNumberToObject(x, "crop", o->crop);
    cJSON *norm = cJSON_AddObjectToObject(x, "normalisation");
    const double mean[3] = {123.675, 116.28, 103.53}, std[3] = {58.395, 57.12, 57.375};
    cJSON_AddItemToObject(norm, "mean", cJSON_CreateDoubleArray(mean, 3));
    cJSON_AddItemToObject(norm, "std", cJSON_CreateDoubleArray(std, 3));
    cJSON_AddStringToObject(norm, "input", "RGB 0..255, (x - mean) / std per channel");
    if (o->sidecar_extra) {
        cJSON *e = cJSON_Parse(o->sidecar_extra);
        TAL_ASSERT_MSG(cJSON_IsObject(e), "sidecar extra: %s", o->sidecar_extra);
        while (e->child) {
            cJSON *it = cJSON_DetachItemViaPointer(e, e->child);
            cJSON_AddItemToObject(x, it->string, it);
        }
        cJSON_Delete(e);
    }
    char *text = cJSON_PrintUnformatted(x);
    cJSON_Delete(x);
    return text;
}

/* Snippets: feature k from sampled frames [k * stride, k * stride + L), averaged over time. */
/* The backbone on its device: host clip in, host features out (on a GPU through two device
 * buffers: the clip goes up, the features come back; the copy back waits for the forward). */
typedef struct forwarder {
    tal_backbone *bb;
    tal_tensor video_dev, feats_dev; /* none on the CPU */
} forwarder;

static void forward(const forwarder *f, tal_tensor feats, tal_tensor video) {
    if (!f->video_dev.data) {
        tal_backbone_forward(f->bb, feats, video);
        return;
    }
    tal_copy(f->video_dev, video);
    tal_backbone_forward(f->bb, f->feats_dev, f->video_dev);
    tal_copy(feats, f->feats_dev);
}

static tal_status run_snippets(const forwarder *bb, reader *r, const sampling *s,
                               tal_tensor feats, const tal_extract_opts *o, float *out, int K,
                               tal_err *err) {
    int C = (int)feats.shape[1], Lout = (int)feats.shape[2];
    tal_tensor video = tal_t5(r->buf, 1, 3, r->L, r->tf.out_h, r->tf.out_w);
    for (int k = 0; k < K; k++) {
        tal_status st = reader_fill(r, s, (int64_t)k * o->stride, err);
        if (st) return st;
        forward(bb, feats, video);
        for (int c = 0; c < C; c++) {
            double sum = 0;
            for (int t = 0; t < Lout; t++) sum += feats.data[(size_t)c * Lout + t];
            out[(size_t)c * K + k] = (float)(sum / Lout);
        }
    }
    return TAL_OK;
}

/* Windows of L sampled frames, one after another; the last ends at the video's end (its
 * start on the feature grid), and only its new features are kept. */
static tal_status run_windows(const forwarder *bb, reader *r, const sampling *s,
                              tal_tensor feats, float *out, int T, tal_err *err) {
    int C = (int)feats.shape[1], Lout = (int)feats.shape[2], L = r->L, red = L / Lout;
    int64_t n = s->n;
    int n_windows = n <= L ? 1 : (int)((n - L + L - 1) / L) + 1;
    tal_tensor video = tal_t5(r->buf, 1, 3, L, r->tf.out_h, r->tf.out_w);
    int written = 0;
    for (int w = 0; w < n_windows; w++) {
        int64_t start = (int64_t)w * L, last = (n - L + red - 1) / red * red;
        if (n > L && start > last) start = last;
        tal_status st = reader_fill(r, s, start, err);
        if (st) return st;
        forward(bb, feats, video);
        int64_t frames = n - start < L ? n - start : L;
        int at = (int)(start / red), valid = (int)((frames + red - 1) / red);
        for (int t = written - at > 0 ? written - at : 0; t < valid && at + t < T; t++)
            for (int c = 0; c < C; c++)
                out[(size_t)c * T + at + t] = feats.data[(size_t)c * Lout + t];
        if (at + valid > written) written = at + valid;
    }
    TAL_ASSERT_MSG(written == T, "windows wrote %d of %d features", written, T);
    return TAL_OK;
}

tal_status tal_extract_video(tal_backbone *bb, const tal_extract_opts *o, const char *path,
                             const char *out_dir, tal_err *err) {
    tal_video_anno v = {0};
    sampling s = {0};
    reader r = {0};
    float *feat_buf = NULL, *out = NULL;
    tal_arena *dev_arena = NULL;
    char *extra = NULL;
    tal_status st = tal_video_anno_probe(&v, path, err);
    if (!st) st = make_sampling(&s, o, &v, err);
    if (!st) st = tal_decoder_open(&r.dec, path, NULL, err);
    if (st) goto done;
    tal_transform_resize_center(&r.tf, tal_decoder_info(r.dec), o->short_side, o->crop);
    r.L = tal_extract_clip_frames(o);
    const tal_backbone_config *cfg = tal_backbone_config_of(bb);
    int C = tal_backbone_out_channels(cfg), Lout = tal_backbone_out_frames(cfg, r.L);
    int windows = o->window > 0 || o->spread > 0, red = r.L / Lout;
    int T = windows ? (int)((s.n + red - 1) / red)
                    : (s.n >= r.L ? (int)((s.n - r.L) / o->stride) + 1 : 1);
    size_t plane = (size_t)r.tf.out_h * r.tf.out_w;
    r.buf = malloc(sizeof(float) * 3 * (size_t)r.L * plane);
    r.tmp = malloc(sizeof(float) * 3 * (size_t)r.L * plane);
    feat_buf = malloc(sizeof(float) * (size_t)C * Lout);
    out = malloc(sizeof(float) * (size_t)C * T);
    if (!r.buf || !r.tmp || !feat_buf || !out) {
        st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    tal_tensor feats = tal_t3(feat_buf, 1, C, Lout);
    forwarder f = {bb, tal_tensor_none(), tal_tensor_none()};
    if (o->device != TAL_DEV_CPU) {
        int64_t vshape[5] = {1, 3, r.L, r.tf.out_h, r.tf.out_w};
        size_t bytes = tal_arena_round(sizeof(float) * 3 * (size_t)r.L * plane) +
                       tal_arena_round(sizeof(float) * (size_t)C * Lout);
        if ((st = tal_arena_create(&dev_arena, o->device, bytes, err))) {
            tal_err_prefix(err, path);
            goto done;
        }
        f.video_dev = tal_arena_tensor(dev_arena, 5, vshape);
        f.feats_dev = tal_arena_tensor(dev_arena, 3, feats.shape);
    }
    st = windows ? run_windows(&f, &r, &s, feats, out, T, err)
                 : run_snippets(&f, &r, &s, feats, o, out, T, err);
    if (st) goto done;
    char p[1200];
    snprintf(p, sizeof p, "%s/%s.npy", out_dir, v.id);
    tal_feature_grid g = {0};
    snprintf(g.layout, sizeof g.layout, "%s", o->layout == TAL_FEAT_TC ? "TC" : "CT");
    g.channels = C;
    g.length = T;
    g.fps = s.fps;
    g.duration_s = v.duration_s;
    g.stride_frames = (windows ? red : o->stride) * s.spacing;
    g.frames_per_feature = (windows ? red : r.L) * s.spacing;
    g.offset_frames = g.frames_per_feature / 2;
    if ((st = tal_features_write(p, out, C, T, o->layout, err))) goto done;
    extra = describe(o, r.L, Lout);
    snprintf(p, sizeof p, "%s/%s.json", out_dir, v.id);
    st = tal_feature_grid_write(p, v.id, &g, extra, err);
done:
    tal_arena_destroy(dev_arena);
    tal_decoder_close(r.dec);
    free(r.buf);
    free(r.tmp);
    free(feat_buf);
    free(out);
    free(extra);
    free(s.times);
    free(v.id);
    return st;
}

tal_extract_opts tal_extract_opts_for_run(const tal_run_config *rc) {
    tal_extract_opts o = {.layout = TAL_FEAT_CT, .short_side = rc->short_side, .crop = rc->crop};
    if (!strcmp(rc->sampler, "resize")) {
        o.spread = rc->frames;
    } else {
        o.every = rc->frame_stride;
        o.window = rc->trunc_len;
    }
    return o;
}

tal_status tal_extract_dataset(tal_model *m, const tal_run_config *rc, const tal_run_data *d,
                               const char *out_dir, const char *sidecar_extra, int quiet,
                               int *n_skipped, tal_err *err) {
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return tal_err_set(err, TAL_EIO, "%s: cannot create: %s", out_dir, strerror(errno));
    tal_extract_opts o = tal_extract_opts_for_run(rc);
    o.sidecar_extra = sidecar_extra;
    *n_skipped = 0;
    int n = d->ds->n_videos;
    tal_progress bar;
    tal_progress_start(&bar, stderr, "extract", "videos", n, quiet);
    for (int i = 0; i < n; i++) {
        tal_err e = {0};
        if (d->paths[i] && tal_extract_video(m->bb, &o, d->paths[i], out_dir, &e) != TAL_OK) {
            tal_progress_message(&bar, "warning: skipped video: %s", e.msg);
            ++*n_skipped;
        }
        tal_progress_update(&bar, i + 1, NULL);
    }
    tal_progress_finish(&bar, NULL);
    return TAL_OK;
}
