/* data/check.c: dataset checks behind `re2tal check-data`: video files missing or undecodable
 * (through a probe the caller supplies, built on decode/), annotated vs real duration, segments
 * outside [0, duration] (clipped), zero-length and duplicate segments, unknown labels, empty
 * classes; and the report as JSON. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "data/data.h"

static const char *const k_kind_names[TAL_CHECK_KINDS] = {
    "missing_video", "undecodable",   "duration_mismatch", "no_duration", "outside_duration",
    "zero_length",   "duplicate",     "unknown_label",     "empty_class"};

const char *tal_check_kind_name(tal_check_kind k) {
    return k >= 0 && k < TAL_CHECK_KINDS ? k_kind_names[k] : "unknown";
}

void tal_check_report_free(tal_check_report *r) {
    free(r->issues);
    free(r->class_instances);
    for (int k = 0; r->class_names && k < r->n_classes; k++) free(r->class_names[k]);
    free(r->class_names);
    free(r->real_duration_s);
    memset(r, 0, sizeof *r);
}

static int add_issue(tal_check_report *r, int *cap, tal_check_kind kind, int video, int segment,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int add_issue(tal_check_report *r, int *cap, tal_check_kind kind, int video, int segment,
                     const char *fmt, ...) {
    if (r->n_issues == *cap) {
        int c = *cap ? 2 * *cap : 64;
        tal_check_issue *p = realloc(r->issues, (size_t)c * sizeof *p);
        if (!p) return 0;
        r->issues = p;
        *cap = c;
    }
    tal_check_issue *is = &r->issues[r->n_issues++];
    is->kind = kind;
    is->video = video;
    is->segment = segment;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(is->msg, sizeof is->msg, fmt, ap);
    va_end(ap);
    r->counts[kind]++;
    return 1;
}

/* What the file phase found for one video. */
typedef struct file_state {
    int missing, undecodable;
    char msg[200];
} file_state;

tal_status tal_dataset_check(tal_check_report *out, tal_dataset *ds, const tal_check_opts *o,
                             tal_err *err) {
    memset(out, 0, sizeof *out);
    tal_check_report *r = out;
    int nv = ds->n_videos, cap = 0;
    const tal_class_map *map = o->classes;
    int n_classes = map ? map->n : ds->n_classes;
    r->n_videos = nv;
    r->n_classes = n_classes;
    r->real_duration_s = malloc((size_t)(nv + 1) * sizeof *r->real_duration_s);
    r->class_instances = calloc((size_t)n_classes + 1, sizeof *r->class_instances);
    r->class_names = calloc((size_t)n_classes + 1, sizeof *r->class_names);
    int *remap = malloc((size_t)(ds->n_classes + 1) * sizeof *remap);
    file_state *fs = calloc((size_t)nv + 1, sizeof *fs);
    int ok = r->real_duration_s && r->class_instances && r->class_names && remap && fs;
    for (int k = 0; ok && k < n_classes; k++)
        ok = (r->class_names[k] = strdup(map ? map->names[k] : ds->class_names[k])) != NULL;
    if (!ok) goto oom;
    for (int k = 0; k < ds->n_classes; k++)
        remap[k] = map ? tal_class_map_find(map, ds->class_names[k]) : k;

    /* Files, in parallel: probes open and parse containers, the slow part. */
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < nv; i++) {
        r->real_duration_s[i] = -1;
        if (!o->video_dir) continue;
        char path[4096];
        tal_err e = {0};
        if (tal_video_path(path, sizeof path, o->video_dir, ds->videos[i].id, o->exts, &e) !=
            TAL_OK) {
            fs[i].missing = 1;
            snprintf(fs[i].msg, sizeof fs[i].msg, "%s", e.msg);
            continue;
        }
        if (!o->probe) continue;
        double dur = -1, fps = 0;
        int64_t frames = 0;
        if (o->probe(path, &dur, &frames, &fps, o->probe_ctx, &e) != TAL_OK) {
            fs[i].undecodable = 1;
            snprintf(fs[i].msg, sizeof fs[i].msg, "%s", e.msg);
        } else {
            r->real_duration_s[i] = dur;
        }
    }

    double tol = o->duration_tol_s > 0 ? o->duration_tol_s : 1.0;
    for (int i = 0; i < nv; i++) {
        tal_video_anno *v = &ds->videos[i];
        const char *id = v->id;
        r->n_segments += v->n_segments;
        if (fs[i].missing) ok = add_issue(r, &cap, TAL_CHECK_MISSING_VIDEO, i, -1, "%s", fs[i].msg);
        if (fs[i].undecodable)
            ok = ok && add_issue(r, &cap, TAL_CHECK_UNDECODABLE, i, -1, "%s", fs[i].msg);
        double real = r->real_duration_s[i], d = real > 0 ? real : v->duration_s;
        if (ok && v->duration_s > 0 && real > 0 &&
            fabs(v->duration_s - real) > fmax(tol, 0.02 * real))
            ok = add_issue(r, &cap, TAL_CHECK_DURATION_MISMATCH, i, -1,
                           "%s: annotated %.3f s, file %.3f s", id, v->duration_s, real);
        if (ok && !(d > 0))
            ok = add_issue(r, &cap, TAL_CHECK_NO_DURATION, i, -1, "%s: no duration known", id);
        for (int s = 0; ok && s < v->n_segments; s++) {
            tal_segment *g = &v->segments[s];
            if (d > 0 && (g->start_s < 0 || g->end_s > d)) {
                ok = add_issue(r, &cap, TAL_CHECK_OUTSIDE, i, s,
                               "%s: segment %d [%.3f, %.3f] s outside [0, %.3f] s by %.3g s: "
                               "clipped",
                               id, s, g->start_s, g->end_s, d,
                               fmax(-g->start_s, g->end_s - d));
                g->start_s = fmin(fmax(g->start_s, 0.0), d);
                g->end_s = fmin(fmax(g->end_s, 0.0), d);
            }
            if (ok && g->end_s <= g->start_s)
                ok = add_issue(r, &cap, TAL_CHECK_ZERO_LENGTH, i, s,
                               "%s: segment %d has zero length at %.3f s", id, s, g->start_s);
            for (int q = 0; ok && q < s; q++) {
                const tal_segment *h = &v->segments[q];
                if (h->label == g->label && fabs(h->start_s - g->start_s) < 1e-3 &&
                    fabs(h->end_s - g->end_s) < 1e-3) {
                    ok = add_issue(r, &cap, TAL_CHECK_DUPLICATE, i, s,
                                   "%s: segment %d repeats segment %d", id, s, q);
                    break;
                }
            }
            int k = g->label >= 0 && g->label < ds->n_classes ? remap[g->label] : -1;
            if (ok && k < 0)
                ok = add_issue(r, &cap, TAL_CHECK_UNKNOWN_LABEL, i, s,
                               "%s: segment %d: label '%s' is not in the class map", id, s,
                               g->label >= 0 && g->label < ds->n_classes
                                   ? ds->class_names[g->label]
                                   : "?");
            else if (k >= 0)
                r->class_instances[k]++;
        }
        if (!ok) goto oom;
    }
    for (int k = 0; ok && k < n_classes; k++)
        if (!r->class_instances[k])
            ok = add_issue(r, &cap, TAL_CHECK_EMPTY_CLASS, -1, -1, "class '%s' has no instance",
                           r->class_names[k]);
    if (!ok) goto oom;
    free(remap);
    free(fs);
    return TAL_OK;
oom:
    free(remap);
    free(fs);
    tal_check_report_free(r);
    return tal_err_set(err, TAL_ENOMEM, "%s: out of memory while checking", ds->source);
}

char *tal_check_report_json(const tal_check_report *r, const tal_dataset *ds) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "source", ds->source);
    cJSON *sum = cJSON_AddObjectToObject(root, "summary");
    cJSON_AddNumberToObject(sum, "videos", r->n_videos);
    cJSON_AddNumberToObject(sum, "segments", r->n_segments);
    cJSON_AddNumberToObject(sum, "classes", r->n_classes);
    cJSON *counts = cJSON_AddObjectToObject(sum, "counts");
    for (int k = 0; k < TAL_CHECK_KINDS; k++)
        cJSON_AddNumberToObject(counts, k_kind_names[k], r->counts[k]);
    cJSON *issues = cJSON_AddArrayToObject(root, "issues");
    for (int i = 0; i < r->n_issues; i++) {
        const tal_check_issue *is = &r->issues[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", k_kind_names[is->kind]);
        if (is->video >= 0 && is->video < ds->n_videos)
            cJSON_AddStringToObject(o, "video", ds->videos[is->video].id);
        if (is->segment >= 0) cJSON_AddNumberToObject(o, "segment", is->segment);
        cJSON_AddStringToObject(o, "message", is->msg);
        cJSON_AddItemToArray(issues, o);
    }
    cJSON *classes = cJSON_AddArrayToObject(root, "classes");
    for (int k = 0; k < r->n_classes; k++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", r->class_names[k]);
        cJSON_AddNumberToObject(o, "instances", r->class_instances[k]);
        cJSON_AddItemToArray(classes, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return NULL;
    /* cJSON's allocator is malloc unless hooks are installed: hand back plain malloc memory. */
    char *copy = strdup(text);
    cJSON_free(text);
    return copy;
}
