/* app/features.c: feature files as the model's input (see features.h): sidecars, paths, each
 * file's time grid, windows and whole-video inference. ActionFormer's convention for the time
 * of a feature: (k * stride + frames / 2) / fps, the centre of the frames it covers. */
#include "app/features.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/checkpoint.h"

static int is_resize(const tal_run_config *rc) { return !strcmp(rc->sampler, "resize"); }

/* ---------------------------------------------------------------- sidecars -------------- */
tal_status tal_feature_grid_read(tal_feature_grid *g, const char *path, tal_err *err) {
    memset(g, 0, sizeof *g);
    if (access(path, F_OK) != 0) return tal_err_set(err, TAL_EIO, "%s: no sidecar", path);
    char *text = tal_read_file(path, err);
    if (!text) return err ? err->code : TAL_EIO;
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return tal_err_set(err, TAL_EFORMAT, "%s: not a JSON object", path);
    }
    static const char *const keys[] = {"fps", "stride_frames", "frames_per_feature",
                                       "offset_frames", "duration_s", "channels", "length"};
    double *dst[] = {&g->fps, &g->stride_frames, &g->frames_per_feature, &g->offset_frames,
                     &g->duration_s};
    tal_status st = TAL_OK;
    for (int i = 0; i < 7 && !st; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!it) continue;
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < 0)
            st = tal_err_set(err, TAL_EFORMAT, "%s: \"%s\": expected a number >= 0", path,
                             keys[i]);
        else if (i < 5)
            *dst[i] = it->valuedouble;
        else if (i == 5)
            g->channels = (int)it->valuedouble;
        else
            g->length = (int)it->valuedouble;
    }
    const cJSON *lay = cJSON_GetObjectItemCaseSensitive(o, "layout");
    if (!st && lay) {
        if (!cJSON_IsString(lay) || (strcmp(lay->valuestring, "TC") && strcmp(lay->valuestring, "CT")))
            st = tal_err_set(err, TAL_EFORMAT, "%s: \"layout\": expected \"TC\" or \"CT\"", path);
        else
            snprintf(g->layout, sizeof g->layout, "%s", lay->valuestring);
    }
    cJSON_Delete(o);
    return st;
}

tal_status tal_feature_grid_write(const char *path, const char *video_id,
                                  const tal_feature_grid *g, const char *extra, tal_err *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "video", video_id);
    cJSON_AddStringToObject(o, "layout", g->layout);
    cJSON_AddNumberToObject(o, "channels", g->channels);
    cJSON_AddNumberToObject(o, "length", g->length);
    cJSON_AddNumberToObject(o, "fps", g->fps);
    cJSON_AddNumberToObject(o, "duration_s", g->duration_s);
    cJSON_AddNumberToObject(o, "stride_frames", g->stride_frames);
    cJSON_AddNumberToObject(o, "frames_per_feature", g->frames_per_feature);
    cJSON_AddNumberToObject(o, "offset_frames", g->offset_frames);
    cJSON_AddStringToObject(o, "time_of_feature",
                            "t_k = (offset_frames + k * stride_frames) / fps: the centre of the "
                            "frames feature k covers");
    cJSON *times = cJSON_AddArrayToObject(o, "times_s");
    for (int k = 0; k < g->length; k++) {
        double t = g->fps > 0 ? (g->offset_frames + k * g->stride_frames) / g->fps : 0;
        cJSON_AddItemToArray(times, cJSON_CreateNumber(round(t * 1e6) / 1e6));
    }
    tal_status st = TAL_OK;
    if (extra) {
        cJSON *x = cJSON_Parse(extra);
        TAL_ASSERT_MSG(cJSON_IsObject(x), "sidecar extra is not a JSON object: %s", extra);
        while (x->child) {
            cJSON *it = cJSON_DetachItemViaPointer(x, x->child);
            cJSON_AddItemToObject(o, it->string, it);
        }
        cJSON_Delete(x);
    }
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    st = tal_write_file_atomic(path, text, err);
    free(text);
    return st;
}

/* ---------------------------------------------------------------- files ----------------- */
void tal_feature_sidecar_path(char *buf, size_t size, const char *npy_path) {
    size_t n = strlen(npy_path);
    if (n >= 4 && !strcmp(npy_path + n - 4, ".npy")) n -= 4;
    snprintf(buf, size, "%.*s.json", (int)n, npy_path);
}

tal_status tal_feature_path(char *buf, size_t size, const char *dir, const char *id,
                            tal_err *err) {
    int prefixed = !strncmp(id, "v_", 2);
    snprintf(buf, size, "%s/%s.npy", dir, id);
    if (access(buf, R_OK) == 0) return TAL_OK;
    snprintf(buf, size, "%s/%s%s.npy", dir, prefixed ? "" : "v_", prefixed ? id + 2 : id);
    if (access(buf, R_OK) == 0) return TAL_OK;
    return tal_err_set(err, TAL_EIO, "video %s: no feature file %s.npy (nor with the 'v_' prefix "
                       "%s) in %s", id, id, prefixed ? "removed" : "added", dir);
}

/* a (the config's value) and b (the sidecar's) agree, or one of them is not given (0). */
static tal_status agree(const char *path, const char *key, const char *side_key, double a,
                        double b, tal_err *err) {
    if (a > 0 && b > 0 && fabs(a - b) > 1e-6 * fmax(a, b))
        return tal_err_set(err, TAL_EINVAL, "%s: %s %g, but its sidecar says %s %g", path, key, a,
                           side_key, b);
    return TAL_OK;
}

static double first_set(double a, double b, double c) { return a > 0 ? a : b > 0 ? b : c; }

tal_status tal_feature_sidecar_of(tal_feature_grid *g, const char *npy_path, tal_err *err) {
    char side[1200];
    tal_feature_sidecar_path(side, sizeof side, npy_path);
    tal_err e = {0};
    tal_status st = tal_feature_grid_read(g, side, &e);
    if (st == TAL_EIO) return TAL_OK; /* none: an all-zero grid */
    return st ? tal_err_set(err, st, "%s", e.msg) : TAL_OK;
}

tal_status tal_feature_file_open(tal_feature_file *ff, const tal_run_config *rc, int *channels,
                                 const char *path, const tal_video_anno *v, tal_err *err) {
    memset(ff, 0, sizeof *ff);
    tal_feature_grid g;
    tal_status st = tal_feature_sidecar_of(&g, path, err);
    if (st) return st;
    int layout = tal_feat_layout_parse(rc->feature_layout);
    int side_layout = g.layout[0] ? tal_feat_layout_parse(g.layout) : TAL_FEAT_AUTO;
    if (layout != TAL_FEAT_AUTO && side_layout != TAL_FEAT_AUTO && layout != side_layout)
        return tal_err_set(err, TAL_EINVAL, "%s: data.feature_layout %s, but its sidecar says "
                           "%s", path, rc->feature_layout, g.layout);
    if (layout == TAL_FEAT_AUTO) layout = side_layout;
    ff->layout = layout;
    int C = 0;
    if ((st = tal_features_probe(path, *channels, (tal_feat_layout)layout, &C, &ff->T, err)))
        return st;
    if (*channels <= 0) *channels = C;
    if (g.length > 0 && g.length != ff->T)
        return tal_err_set(err, TAL_EFORMAT, "%s: %d positions, but its sidecar says %d", path,
                           ff->T, g.length);
    if (ff->T < 1) return tal_err_set(err, TAL_EFORMAT, "%s: no feature positions", path);
    if (is_resize(rc)) { /* positions are resized to the head's length: only the duration counts */
        double dur = first_set(v->duration_s, g.duration_s, 0);
        if (!(dur > 0))
            return tal_err_set(err, TAL_EINVAL, "%s: video %s has no duration (annotation or "
                               "sidecar)", path, v->id);
        ff->map = (tal_time_map){.resize_len = rc->resize_len, .duration_s = dur};
        return TAL_OK;
    }
    if ((st = agree(path, "data.feature_fps", "fps", rc->feature_fps, g.fps, err)) ||
        (st = agree(path, "data.feature_stride", "stride_frames", rc->feature_stride,
                    g.stride_frames, err)) ||
        (st = agree(path, "data.feature_frames", "frames_per_feature", rc->feature_frames,
                    g.frames_per_feature, err)))
        return st;
    double fps = first_set(rc->feature_fps, g.fps, v->fps);
    double stride = first_set(rc->feature_stride, g.stride_frames, 0);
    if (!(fps > 0))
        return tal_err_set(err, TAL_EINVAL, "%s: no frame rate for video %s (set data.feature_fps, "
                           "or give fps in the annotation or a sidecar)", path, v->id);
    if (!(stride > 0))
        return tal_err_set(err, TAL_EINVAL, "%s: no feature stride (set data.feature_stride, "
                           "the video frames between features, or give a sidecar)", path);
    double frames = first_set(rc->feature_frames, g.frames_per_feature, stride);
    double offset = g.stride_frames > 0 && rc->feature_frames <= 0 ? g.offset_frames : frames / 2;
    double dur = first_set(v->duration_s, g.duration_s, ((ff->T - 1) * stride + frames) / fps);
    ff->map = (tal_time_map){.fps = fps, .snippet_stride = stride, .offset_frames = offset,
                             .duration_s = dur};
    return TAL_OK;
}

/* ---------------------------------------------------------------- windows --------------- */
static tal_window_opts window_opts(const tal_run_config *rc) {
    tal_window_opts o = tal_run_window_opts(rc);
    o.frame_stride = o.snippet_stride = 1; /* one position is one "frame" */
    return o;
}

int tal_feature_window_count(const tal_run_config *rc, const tal_feature_file *ff) {
    if (is_resize(rc)) return 1;
    tal_window_opts o = window_opts(rc);
    return tal_window_count(ff->T, &o);
}

tal_status tal_feature_clip_for(tal_clip *clip, const tal_run_config *rc, const tal_video_anno *v,
                                const tal_feature_file *ff, int training, int window,
                                tal_rng_key key, tal_err *err) {
    tal_video_meta meta = {ff->T, ff->map.duration_s, v->segments, v->n_segments};
    if (is_resize(rc)) { /* seconds / duration, as for videos */
        tal_resize_opts o;
        tal_resize_opts_default(&o);
        o.n_frames = ff->T;
        o.resize_len = rc->resize_len;
        return tal_sample_resize(clip, &meta, &o, err);
    }
    if (training) {
        tal_trunc_opts o = tal_run_trunc_opts(rc);
        o.frame_stride = o.snippet_stride = 1;
        o.feat_map = &ff->map;
        return tal_sample_trunc(clip, &meta, &o, key, err);
    }
    tal_window_opts o = window_opts(rc);
    o.feat_map = &ff->map;
    return tal_sample_window(clip, &meta, &o, window, err);
}

void tal_feature_window(tal_tensor input, const tal_model *m, const tal_features *f,
                        const tal_clip *clip) {
    int C = m->feat_ch, L = m->head_len, T = f->T;
    TAL_ASSERT(f->C == C && tal_tensor_numel(input) == (int64_t)C * L);
    if (clip->time.resize_len > 0) { /* resize: the whole file to L positions */
        tal_interp1d_forward(tal_tensor_reshape(input, 3, (int64_t[]){1, C, L}),
                             tal_t3(f->data, 1, C, T));
        return;
    }
    int valid = clip->n_valid_frames;
    for (int c = 0; c < C; c++) {
        float *dst = input.data + (size_t)c * L;
        const float *src = f->data + (size_t)c * T;
        for (int i = 0; i < L; i++) dst[i] = i < valid ? src[clip->frame_idx[i]] : 0.0f;
    }
}

tal_status tal_model_infer_features(tal_model *m, const tal_run_config *rc, const char *path,
                                    const tal_video_anno *v, const tal_feature_file *ff,
                                    tal_tensor input, tal_dets *out, tal_err *err) {
    tal_features f;
    tal_status st = tal_features_read(&f, path, m->feat_ch, (tal_feat_layout)ff->layout, err);
    if (st) return st;
    if (f.T != ff->T)
        st = tal_err_set(err, TAL_EFORMAT, "%s: %d positions, %d when the run started", path, f.T,
                         ff->T);
    int n_windows = tal_feature_window_count(rc, ff);
    tal_rng_key key = {0, 0, 0};
    for (int w = 0; w < n_windows && !st; w++) {
        tal_clip clip = {0};
        st = tal_feature_clip_for(&clip, rc, v, ff, 0, w, key, err);
        if (!st) {
            tal_feature_window(input, m, &f, &clip);
            st = tal_model_infer_clip(m, input, &clip, out, err);
        }
        tal_clip_free(&clip);
    }
    tal_features_free(&f);
    if (st) return st;
    tal_nms_opts nms = tal_head_nms_opts(&m->hcfg);
    return tal_soft_nms(out, &nms, err);
}
