/* data/anno_json.c: ActivityNet-style annotation JSON (cJSON): the official "database" format
 * (ActivityNet-1.3, THUMOS-14 as OpenTAD writes it, G-TAD's variant with string times), the
 * same entries without the wrapper (lzszq, BSN's anet_anno_action.json), and "results" files
 * (official detection format, scores dropped). Errors name the file and the JSON path. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "data/anno_build.h"
#include "data/data.h"

typedef struct reader {
    const char *name; /* file name for messages */
    anno_builder b;
    const char *prefix; /* "database." / "results." / "" */
} reader;

/* Every error goes through here: "<file>: <JSON path>: <problem>". */
static tal_status fail(tal_err *err, const reader *r, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static tal_status fail(tal_err *err, const reader *r, const char *path, const char *fmt, ...) {
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return tal_err_set(err, TAL_EFORMAT, "%s: %s: %s", r->name, path, what);
}

static const char *type_name(const cJSON *j) {
    if (!j) return "nothing";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "an invalid value";
}

/* A time: a number, or a string holding one (G-TAD writes "18.6"). NaN, infinities and
 * negative values are errors. */
static tal_status read_time(double *out, const cJSON *j, tal_err *err, const reader *r,
                            const char *path) {
    double t;
    if (cJSON_IsNumber(j)) {
        t = j->valuedouble;
    } else if (cJSON_IsString(j)) {
        char *end;
        const char *s = j->valuestring;
        t = strtod(s, &end);
        while (isspace((unsigned char)*end)) end++;
        if (end == s || *end)
            return fail(err, r, path, "expected a time in seconds, got the string \"%.40s\"", s);
    } else {
        return fail(err, r, path, "expected a time in seconds, got %s", type_name(j));
    }
    if (!isfinite(t)) return fail(err, r, path, "time is not a finite number");
    if (t < 0) return fail(err, r, path, "negative time %g s", t);
    *out = t;
    return TAL_OK;
}

static const cJSON *get(const cJSON *obj, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* One {"segment": [s, e], "label": ...} (also used for results entries). */
static tal_status read_instance(reader *r, int vi, const cJSON *a, const char *path,
                                tal_err *err) {
    char p[400];
    if (!cJSON_IsObject(a)) return fail(err, r, path, "expected an object, got %s", type_name(a));
    const cJSON *seg = get(a, "segment"), *label = get(a, "label");
    snprintf(p, sizeof p, "%s.segment", path);
    if (!seg) return fail(err, r, path, "missing key \"segment\"");
    if (!cJSON_IsArray(seg) || cJSON_GetArraySize(seg) != 2)
        return fail(err, r, p, "expected [start, end], got %s%s", type_name(seg),
                    cJSON_IsArray(seg) ? " of another length" : "");
    double t[2];
    for (int i = 0; i < 2; i++) {
        char pi[420];
        snprintf(pi, sizeof pi, "%s[%d]", p, i);
        tal_status s = read_time(&t[i], cJSON_GetArrayItem(seg, i), err, r, pi);
        if (s != TAL_OK) return s;
    }
    if (t[1] < t[0])
        return fail(err, r, p, "end %g s is before start %g s", t[1], t[0]);
    if (!label) return fail(err, r, path, "missing key \"label\"");
    snprintf(p, sizeof p, "%s.label", path);
    if (!cJSON_IsString(label))
        return fail(err, r, p, "expected a string, got %s", type_name(label));
    int k = builder_label(&r->b, label->valuestring);
    if (k == -2) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", r->name);
    if (k < 0)
        return fail(err, r, p, "label \"%.80s\" is not in the file's \"classes\" list",
                    label->valuestring);
    if (!builder_add_segment(&r->b, vi, t[0], t[1], k, 0))
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", r->name);
    return TAL_OK;
}

/* Optional positive number: absent is fine, anything else must be a finite number > 0. */
static tal_status read_positive(double *out, const cJSON *obj, const char *key, tal_err *err,
                                const reader *r, const char *path) {
    const cJSON *j = get(obj, key);
    if (!j) return TAL_OK;
    char p[400];
    snprintf(p, sizeof p, "%s.%s", path, key);
    double v;
    if (cJSON_IsString(j)) { /* some files store numbers as strings */
        tal_status s = read_time(&v, j, err, r, p);
        if (s != TAL_OK) return s;
    } else if (cJSON_IsNumber(j)) {
        v = j->valuedouble;
    } else {
        return fail(err, r, p, "expected a number, got %s", type_name(j));
    }
    if (!isfinite(v) || v <= 0) return fail(err, r, p, "must be a positive number, got %g", v);
    *out = v;
    return TAL_OK;
}

tal_status tal_anno_video_duration(double *out_s, const void *video, const char *file,
                                   const char *where, tal_err *err) {
    reader r = {file, {0}, ""};
    double d = -1;
    tal_status s = read_positive(&d, video, "duration", err, &r, where);
    if (s == TAL_OK) s = read_positive(&d, video, "duration_second", err, &r, where);
    if (s == TAL_OK) *out_s = d;
    return s;
}

static tal_status read_video(reader *r, const cJSON *e, tal_err *err) {
    char path[300], p[400];
    snprintf(path, sizeof path, "%s%.120s", r->prefix, e->string);
    if (!cJSON_IsObject(e)) return fail(err, r, path, "expected an object, got %s", type_name(e));
    int vi = builder_add_video(&r->b, e->string);
    if (vi < 0) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", r->name);
    tal_video_anno *v = &r->b.ds->videos[vi];

    const cJSON *subset = get(e, "subset");
    if (subset) {
        snprintf(p, sizeof p, "%s.subset", path);
        if (!cJSON_IsString(subset))
            return fail(err, r, p, "expected a string, got %s", type_name(subset));
        tal_err sub_err = {0};
        if (tal_subset_parse(&v->subset, subset->valuestring, &sub_err) != TAL_OK)
            return fail(err, r, p, "%s", sub_err.msg);
    }
    double d = -1, fps = 0, frames = 0;
    tal_status s;
    if ((s = tal_anno_video_duration(&d, e, r->name, path, err)) != TAL_OK) return s;
    if ((s = read_positive(&fps, e, "fps", err, r, path)) != TAL_OK) return s;
    if ((s = read_positive(&frames, e, "frames", err, r, path)) != TAL_OK) return s;
    if ((s = read_positive(&frames, e, "duration_frame", err, r, path)) != TAL_OK) return s;
    v = &r->b.ds->videos[vi];
    v->duration_s = d;
    v->fps = fps;
    v->n_frames = (int64_t)llround(frames);
    const cJSON *res = get(e, "resolution");
    if (res) {
        snprintf(p, sizeof p, "%s.resolution", path);
        int w, h;
        char tail;
        if (!cJSON_IsString(res) || sscanf(res->valuestring, "%dx%d%c", &w, &h, &tail) != 2 ||
            w <= 0 || h <= 0)
            return fail(err, r, p, "expected \"WIDTHxHEIGHT\", got %s", type_name(res));
        v->width = w;
        v->height = h;
    }
    const cJSON *annos = get(e, "annotations");
    if (!annos) return fail(err, r, path, "missing key \"annotations\"");
    snprintf(p, sizeof p, "%s.annotations", path);
    if (!cJSON_IsArray(annos))
        return fail(err, r, p, "expected an array, got %s", type_name(annos));
    int i = 0;
    for (const cJSON *a = annos->child; a; a = a->next, i++) {
        char pa[420];
        snprintf(pa, sizeof pa, "%s[%d]", p, i);
        if ((s = read_instance(r, vi, a, pa, err)) != TAL_OK) return s;
    }
    return TAL_OK;
}

static tal_status read_results_video(reader *r, const cJSON *e, tal_err *err) {
    char path[300];
    snprintf(path, sizeof path, "%s%.120s", r->prefix, e->string);
    if (!cJSON_IsArray(e)) return fail(err, r, path, "expected an array, got %s", type_name(e));
    int vi = builder_add_video(&r->b, e->string);
    if (vi < 0) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", r->name);
    int i = 0;
    for (const cJSON *a = e->child; a; a = a->next, i++) {
        char pa[420];
        snprintf(pa, sizeof pa, "%s[%d]", path, i);
        tal_status s = read_instance(r, vi, a, pa, err);
        if (s != TAL_OK) return s;
    }
    return TAL_OK;
}

/* "line L, column C" of byte offset pos. */
static void line_col(const char *json, size_t pos, int *line, int *col) {
    *line = 1, *col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (json[i] == '\n')
            (*line)++, *col = 1;
        else
            (*col)++;
    }
}

tal_status tal_dataset_parse(tal_dataset **out, const char *name, const char *json, size_t len,
                             tal_err *err) {
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    /* Only blanks may follow the value. */
    if (root && end) {
        size_t pos = (size_t)(end - json);
        while (pos < len && isspace((unsigned char)json[pos])) pos++;
        if (pos < len && json[pos]) {
            cJSON_Delete(root);
            root = NULL;
            end = json + pos;
        }
    }
    if (!root) {
        size_t pos = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        int line, col;
        line_col(json, pos, &line, &col);
        size_t rest = pos;
        while (rest < len && json[rest] && isspace((unsigned char)json[rest])) rest++;
        return tal_err_set(err, TAL_EFORMAT, "%s: line %d, column %d: malformed JSON%s", name,
                           line, col, rest >= len || !json[rest] ? " (the text ends early)" : "");
    }
    reader r = {name, {0}, ""};
    tal_status s = TAL_OK;
    const cJSON *db = NULL;
    tal_anno_format fmt = TAL_ANNO_PLAIN_JSON;
    if (!cJSON_IsObject(root)) {
        s = tal_err_set(err, TAL_EFORMAT, "%s: expected a JSON object at the top, got %s", name,
                        type_name(root));
        goto done;
    }
    if ((db = get(root, "database"))) {
        fmt = TAL_ANNO_ANET_JSON;
        r.prefix = "database.";
    } else if ((db = get(root, "results"))) {
        fmt = TAL_ANNO_RESULTS_JSON;
        r.prefix = "results.";
    } else {
        db = root;
    }
    if (!cJSON_IsObject(db)) {
        s = tal_err_set(err, TAL_EFORMAT, "%s: %.9s: expected an object, got %s", name,
                        r.prefix, type_name(db));
        goto done;
    }
    if ((s = builder_init(&r.b, name, fmt, err)) != TAL_OK) goto done;
    /* A file-level class list (the synthetic dataset writes one) fixes the class order. */
    const cJSON *classes = get(root, "classes");
    if (fmt != TAL_ANNO_PLAIN_JSON && classes) {
        if (!cJSON_IsArray(classes)) {
            s = fail(err, &r, "classes", "expected an array of strings, got %s",
                     type_name(classes));
            goto done;
        }
        int i = 0;
        for (const cJSON *c = classes->child; c; c = c->next, i++) {
            char p[40];
            snprintf(p, sizeof p, "classes[%d]", i);
            if (!cJSON_IsString(c)) {
                s = fail(err, &r, p, "expected a string, got %s", type_name(c));
                goto done;
            }
            if (str_table_get(&r.b.labels, c->valuestring) >= 0) {
                s = fail(err, &r, p, "class \"%.80s\" is listed twice", c->valuestring);
                goto done;
            }
            if (builder_label(&r.b, c->valuestring) < 0) {
                s = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", name);
                goto done;
            }
        }
        r.b.fixed_classes = 1;
    }
    for (const cJSON *e = db->child; e; e = e->next) {
        /* Plain files may carry a version string beside the videos. */
        if (fmt == TAL_ANNO_PLAIN_JSON && !strcmp(e->string, "version") && cJSON_IsString(e))
            continue;
        int prev = str_table_get(&r.b.ids, e->string);
        if (prev >= 0) {
            char path[300];
            snprintf(path, sizeof path, "%s%.120s", r.prefix, e->string);
            s = fail(err, &r, path, "duplicate video id (first seen as video %d)", prev);
            goto done;
        }
        s = fmt == TAL_ANNO_RESULTS_JSON ? read_results_video(&r, e, err)
                                         : read_video(&r, e, err);
        if (s != TAL_OK) goto done;
    }
    s = builder_finish(&r.b, out, err);
done:
    if (s != TAL_OK) builder_abort(&r.b);
    cJSON_Delete(root);
    return s;
}
