/* eval/io.c: reading ground truth (ActivityNet-style JSON, THUMOS per-class txt folder) and
 * detections (ActivityNet results JSON, THUMOS text + class list). Whole files are read into
 * memory and parsed once (cJSON for JSON); every error names the file and the item. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data.h"
#include "eval/internal.h"

/* ---------------------------------------------------------------- helpers --------------- */
static tal_status parse_json(cJSON **out, const char *path, const char *text, size_t size,
                             tal_err *err) {
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, size + 1, &end, 1); /* + the NUL tal_file_read adds */
    if (*out) return TAL_OK;
    if (!end) end = text;
    int line = 1, col = 1;
    for (const char *p = text; p < end && p < text + size; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    if (size == 0 || strspn(text, " \t\r\n") == size)
        return tal_err_set(err, TAL_EFORMAT, "%s: empty file (expected a JSON object)", path);
    return tal_err_set(err, TAL_EFORMAT, "%s: malformed JSON at line %d, column %d", path, line,
                       col);
}

/* A finite number, or a string holding one entirely (the G-TAD file stores segments as
 * strings; the official code applies float() to them). */
static int json_number(const cJSON *v, double *out) {
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return isfinite(*out);
    }
    if (cJSON_IsString(v) && v->valuestring[0]) {
        char *end;
        errno = 0;
        double x = strtod(v->valuestring, &end);
        while (isspace((unsigned char)*end)) end++;
        if (*end || errno == ERANGE || !isfinite(x)) return 0;
        *out = x;
        return 1;
    }
    return 0;
}

static const char *describe(const cJSON *v, char *buf, size_t n) {
    if (!v) return "missing";
    if (cJSON_IsString(v)) {
        snprintf(buf, n, "\"%.40s\"", v->valuestring);
        return buf;
    }
    if (cJSON_IsNumber(v)) {
        snprintf(buf, n, "%g", v->valuedouble);
        return buf;
    }
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsArray(v)) return "an array";
    return "an object";
}

static int is_thumos_id(const char *id) { return !strncmp(id, "video_", 6); }

/* ---------------------------------------------------------------- ground truth ---------- */
static tal_status gt_push(tal_eval_gt *gt, int video, const char *label, double t0, double t1,
                          tal_err *err) {
    if (!strcmp(label, "Ambiguous") && gt->thumos == 2) { /* folder: Ambiguous is not a class */
        if (gt->n_amb == gt->cap_amb) {
            int cap = gt->cap_amb ? gt->cap_amb * 2 : 64;
            amb_inst *a = realloc(gt->amb, sizeof *a * (size_t)cap);
            if (!a) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", gt->path);
            gt->amb = a;
            gt->cap_amb = cap;
        }
        gt->amb[gt->n_amb++] = (amb_inst){video, t0, t1};
        return TAL_OK;
    }
    int cls = strtab_intern(&gt->classes, label);
    if (cls < 0) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", gt->path);
    if (gt->n == gt->cap) {
        int cap = gt->cap ? gt->cap * 2 : 1024;
        gt_inst *a = realloc(gt->inst, sizeof *a * (size_t)cap);
        if (!a) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", gt->path);
        gt->inst = a;
        gt->cap = cap;
    }
    gt->inst[gt->n++] = (gt_inst){video, cls, t0, t1};
    return TAL_OK;
}

/* Keeps the video's "duration" (only shown in reports: scoring never reads it). */
static tal_status gt_set_duration(tal_eval_gt *gt, int vid, const cJSON *video, tal_err *err) {
    if ((vid & (vid - 1)) == 0) { /* capacity doubles at each power of two */
        double *a = realloc(gt->duration, sizeof *a * (size_t)(vid ? 2 * vid : 1));
        if (!a) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", gt->path);
        gt->duration = a;
    }
    double x;
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(video, "duration");
    gt->duration[vid] = json_number(dur, &x) && x > 0 ? x : NAN;
    return TAL_OK;
}

static tal_status gt_from_json(tal_eval_gt *gt, const char *subset_arg, tal_err *err) {
    char *text = NULL;
    size_t size = 0;
    cJSON *root = NULL;
    tal_status st = tal_file_read(&text, &size, gt->path, 0, err);
    if (st) return st;
    st = parse_json(&root, gt->path, text, size, err);
    free(text);
    if (st) return st;
    const char *where = "database";
    const cJSON *db = cJSON_GetObjectItemCaseSensitive(root, "database");
    if (!cJSON_IsObject(root)) {
        st = tal_err_set(err, TAL_EFORMAT, "%s: top level is not a JSON object", gt->path);
        goto done;
    }
    if (!db) { /* ActionFormer-style {id: {...}} without the wrapper, if it looks like one */
        const cJSON *first = root->child;
        if (!first || !cJSON_IsObject(first) ||
            !cJSON_GetObjectItemCaseSensitive(first, "annotations")) {
            st = tal_err_set(err, TAL_EFORMAT,
                             "%s: no \"database\" object (expected ActivityNet-style ground truth)",
                             gt->path);
            goto done;
        }
        db = root;
        where = "";
    } else if (!cJSON_IsObject(db)) {
        st = tal_err_set(err, TAL_EFORMAT, "%s: \"database\" is not an object", gt->path);
        goto done;
    }
    /* Duplicate ids: Python's json keeps only the last; we refuse them. */
    strtab seen = {0};
    for (const cJSON *v = db->child; v; v = v->next) {
        int n0 = seen.n;
        if (strtab_intern(&seen, v->string) < 0) {
            strtab_free(&seen);
            st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", gt->path);
            goto done;
        }
        if (seen.n == n0) {
            st = tal_err_set(err, TAL_EFORMAT, "%s: %s%svideo id \"%s\" appears twice", gt->path,
                             where, *where ? ": " : "", v->string);
            strtab_free(&seen);
            goto done;
        }
        if (is_thumos_id(v->string)) gt->thumos = 1;
    }
    strtab_free(&seen);
    const char *subset = subset_arg ? subset_arg : gt->thumos ? "test" : "validation";
    snprintf(gt->subset, sizeof gt->subset, "%s", subset);
    char buf[64];
    for (const cJSON *v = db->child; v; v = v->next) {
        const char *id = v->string;
        const cJSON *sub = cJSON_GetObjectItemCaseSensitive(v, "subset");
        if (!cJSON_IsObject(v) || !cJSON_IsString(sub)) {
            st = tal_err_set(err, TAL_EFORMAT, "%s: %s.%s: no \"subset\" string", gt->path,
                             where, id);
            goto done;
        }
        /* the official kit ignores durations; a file check-data rejects is rejected here too */
        char at[300];
        double duration_s;
        snprintf(at, sizeof at, "%s%s%.200s", where, *where ? "." : "", id);
        if ((st = tal_anno_video_duration(&duration_s, v, gt->path, at, err))) goto done;
        if (strcmp(sub->valuestring, subset)) continue;
        int vid = strtab_intern(&gt->videos, id);
        if (vid < 0 || (st = gt_set_duration(gt, vid, v, err))) {
            if (!st) st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", gt->path);
            goto done;
        }
        const cJSON *anns = cJSON_GetObjectItemCaseSensitive(v, "annotations");
        if (!cJSON_IsArray(anns)) {
            st = tal_err_set(err, TAL_EFORMAT, "%s: %s.%s.annotations: %s (expected an array)",
                             gt->path, where, id, describe(anns, buf, sizeof buf));
            goto done;
        }
        int i = 0;
        for (const cJSON *a = anns->child; a; a = a->next, i++) {
            const cJSON *seg = cJSON_GetObjectItemCaseSensitive(a, "segment");
            const cJSON *lab = cJSON_GetObjectItemCaseSensitive(a, "label");
            double t0, t1;
            if (!cJSON_IsString(lab) || !lab->valuestring[0]) {
                st = tal_err_set(err, TAL_EFORMAT, "%s: %s.%s.annotations[%d].label: %s (expected a "
                                 "non-empty string)", gt->path, where, id, i,
                                 describe(lab, buf, sizeof buf));
                goto done;
            }
            if (!cJSON_IsArray(seg) || cJSON_GetArraySize(seg) != 2 ||
                !json_number(seg->child, &t0) || !json_number(seg->child->next, &t1)) {
                st = tal_err_set(err, TAL_EFORMAT,
                                 "%s: %s.%s.annotations[%d].segment: expected [start, end] as two "
                                 "finite numbers", gt->path, where, id, i);
                goto done;
            }
            if ((st = gt_push(gt, vid, lab->valuestring, t0, t1, err))) goto done;
        }
    }
done:
    cJSON_Delete(root);
    return st;
}

/* One "video  t0 t1" line file of the THUMOS folder. */
static tal_status gt_read_txt(tal_eval_gt *gt, const char *file, const char *label, tal_err *err) {
    char *text = NULL;
    size_t size = 0;
    tal_status st = tal_file_read(&text, &size, file, 0, err);
    if (st) return st;
    int line_no = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        line_no++;
        char name[256];
        double t0, t1;
        int used = 0;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        if (sscanf(line, "%255s %lf %lf %n", name, &t0, &t1, &used) != 3 ||
            line[used + strspn(line + used, " \t\r")] || !isfinite(t0) || !isfinite(t1)) {
            st = tal_err_set(err, TAL_EFORMAT, "%s:%d: expected 'video start end', got '%.60s'",
                             file, line_no, line);
            break;
        }
        int vid = strtab_intern(&gt->videos, name);
        if (vid < 0 || (st = gt_push(gt, vid, label, t0, t1, err))) {
            if (!st) st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", file);
            break;
        }
    }
    free(text);
    return st;
}

/* Reads `id Name` lines into names[id] (ids up to 999). */
static tal_status read_classlist(const char *path, char ***names_out, int *n_ids, tal_err *err) {
    char *text = NULL;
    size_t size = 0;
    tal_status st = tal_file_read(&text, &size, path, 0, err);
    if (st) return st;
    int cap = 1000;
    char **names = calloc((size_t)cap, sizeof *names);
    if (!names) {
        free(text);
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    }
    int line_no = 0, n = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        line_no++;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        int id, used = 0;
        char name[256];
        if (sscanf(line, "%d %255s %n", &id, name, &used) != 2 || line[used] || id < 0 ||
            id >= cap) {
            st = tal_err_set(err, TAL_EFORMAT, "%s:%d: expected 'class_id ClassName' (id 0..%d), "
                             "got '%.60s'", path, line_no, cap - 1, line);
            break;
        }
        if (names[id]) {
            st = tal_err_set(err, TAL_EFORMAT, "%s:%d: class id %d listed twice", path, line_no, id);
            break;
        }
        if (!(names[id] = strdup(name))) {
            st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
            break;
        }
        n++;
    }
    free(text);
    if (!st && n == 0) st = tal_err_set(err, TAL_EFORMAT, "%s: no classes listed", path);
    if (st) {
        for (int i = 0; i < cap; i++) free(names[i]);
        free(names);
        return st;
    }
    *names_out = names;
    *n_ids = cap;
    return TAL_OK;
}

static void free_classlist(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static tal_status gt_from_folder(tal_eval_gt *gt, const char *subset_arg, tal_err *err) {
    gt->thumos = 2;
    const char *subset = subset_arg ? subset_arg : "test";
    snprintf(gt->subset, sizeof gt->subset, "%s", subset);
    const char *suffix = !strcmp(subset, "validation") ? "val" : subset;
    char path[1024];
    snprintf(path, sizeof path, "%s/detclasslist.txt", gt->path);
    char **names = NULL;
    int n_ids = 0;
    tal_status st = read_classlist(path, &names, &n_ids, err);
    if (st) return st;
    for (int id = 0; id < n_ids && !st; id++) {
        if (!names[id]) continue;
        snprintf(path, sizeof path, "%s/%s_%s.txt", gt->path, names[id], suffix);
        st = gt_read_txt(gt, path, names[id], err);
    }
    snprintf(path, sizeof path, "%s/Ambiguous_%s.txt", gt->path, suffix);
    struct stat sb;
    if (!st && stat(path, &sb) == 0) st = gt_read_txt(gt, path, "Ambiguous", err);
    free_classlist(names, n_ids);
    return st;
}

tal_status tal_eval_gt_load(tal_eval_gt **out, const char *path, const char *subset,
                            tal_err *err) {
    *out = NULL;
    tal_eval_gt *gt = calloc(1, sizeof *gt);
    if (!gt) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    snprintf(gt->path, sizeof gt->path, "%s", path);
    struct stat sb;
    tal_status st;
    if (stat(path, &sb) != 0)
        st = tal_err_set(err, TAL_EIO, "%s: cannot open: %s", path, strerror(errno));
    else if (S_ISDIR(sb.st_mode))
        st = gt_from_folder(gt, subset, err);
    else
        st = gt_from_json(gt, subset, err);
    if (!st && gt->n == 0)
        st = tal_err_set(err, TAL_EFORMAT, "%s: no ground-truth instances in subset \"%s\"", path,
                         gt->subset);
    if (st) {
        tal_eval_gt_destroy(gt);
        return st;
    }
    if (gt->thumos == 2) gt->thumos = 1;
    *out = gt;
    return TAL_OK;
}

void tal_eval_gt_destroy(tal_eval_gt *gt) {
    if (!gt) return;
    strtab_free(&gt->videos);
    strtab_free(&gt->classes);
    free(gt->inst);
    free(gt->amb);
    free(gt->duration);
    free(gt);
}

int tal_eval_gt_n_classes(const tal_eval_gt *gt) { return gt->classes.n; }
const char *tal_eval_gt_class_name(const tal_eval_gt *gt, int c) { return gt->classes.names[c]; }
int tal_eval_gt_n_videos(const tal_eval_gt *gt) { return gt->videos.n; }
int tal_eval_gt_n_instances(const tal_eval_gt *gt) { return gt->n; }
int tal_eval_gt_is_thumos(const tal_eval_gt *gt) { return gt->thumos != 0; }
const char *tal_eval_gt_subset(const tal_eval_gt *gt) { return gt->subset; }

/* ---------------------------------------------------------------- detections ------------ */
tal_status tal_eval_dets_create(tal_eval_dets **out, tal_err *err) {
    *out = calloc(1, sizeof **out);
    return *out ? TAL_OK : tal_err_set(err, TAL_ENOMEM, "out of memory");
}

void tal_eval_dets_destroy(tal_eval_dets *d) {
    if (!d) return;
    strtab_free(&d->videos);
    strtab_free(&d->labels);
    free(d->dets);
    free(d);
}

long tal_eval_dets_count(const tal_eval_dets *d) { return d->n; }

tal_status tal_eval_dets_add(tal_eval_dets *d, const char *video, const char *label, double t0_s,
                             double t1_s, double score, tal_err *err) {
    if (!isfinite(t0_s) || !isfinite(t1_s) || !isfinite(score))
        return tal_err_set(err, TAL_EINVAL, "detection (video \"%s\", label \"%s\"): segment "
                           "[%g, %g] score %g: expected finite numbers", video, label, t0_s, t1_s,
                           score);
    int v = strtab_intern(&d->videos, video);
    if (v < 0) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    return dets_push(d, v, label, t0_s, t1_s, score, err);
}

tal_status dets_push(tal_eval_dets *d, int v, const char *label, double t0_s, double t1_s,
                     double score, tal_err *err) {
    if (d->n == d->cap) {
        long cap = d->cap ? d->cap * 2 : 4096;
        det_inst *a = realloc(d->dets, sizeof *a * (size_t)cap);
        if (!a) return tal_err_set(err, TAL_ENOMEM, "out of memory (%ld detections)", cap);
        d->dets = a;
        d->cap = cap;
    }
    int l = strtab_intern(&d->labels, label);
    if (l < 0) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    d->dets[d->n++] = (det_inst){v, l, t0_s, t1_s, score};
    return TAL_OK;
}

static tal_status dets_from_text(tal_eval_dets *d, const char *path, char *text,
                                 const char *classlist, tal_err *err) {
    if (!classlist)
        return tal_err_set(err, TAL_EINVAL, "%s: THUMOS text detections need a class list "
                           "(detclasslist.txt: 'id Name' lines) to map class ids to names", path);
    char **names = NULL;
    int n_ids = 0;
    tal_status st = read_classlist(classlist, &names, &n_ids, err);
    if (st) {
        tal_err_prefix(err, "%s: class list", path);
        return st;
    }
    int line_no = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        line_no++;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        char name[256], num[3][64];
        int cls, used = 0;
        double v[3];
        char *end;
        if (sscanf(line, "%255s %63s %63s %d %63s %n", name, num[0], num[1], &cls, num[2], &used) !=
                5 ||
            line[used]) {
            st = tal_err_set(err, TAL_EFORMAT, "%s:%d: expected 'video start end class_id score', "
                             "got '%.60s'", path, line_no, line);
            break;
        }
        for (int k = 0; k < 3 && !st; k++) {
            v[k] = strtod(num[k], &end);
            if (*end || !isfinite(v[k]))
                st = tal_err_set(err, TAL_EFORMAT, "%s:%d: %s '%s' is not a finite number", path,
                                 line_no, k == 0 ? "start" : k == 1 ? "end" : "score", num[k]);
        }
        if (st) break;
        if (cls < 0 || cls >= n_ids || !names[cls]) {
            st = tal_err_set(err, TAL_EINVAL, "%s:%d: video %s: class id %d is not in %s", path,
                             line_no, name, cls, classlist);
            break;
        }
        size_t len = strlen(name);
        if (len > 5 && !strcmp(name + len - 5, ".mpeg")) name[len - 5] = 0;
        else if (len > 4 && !strcmp(name + len - 4, ".mp4")) name[len - 4] = 0;
        if ((st = tal_eval_dets_add(d, name, names[cls], v[0], v[1], v[2], err))) break;
    }
    free_classlist(names, n_ids);
    return st;
}

tal_status tal_eval_dets_load(tal_eval_dets *d, const char *path, const char *classlist,
                              tal_err *err) {
    char *text = NULL;
    size_t size = 0;
    tal_status st = tal_file_read(&text, &size, path, 0, err);
    if (st) return st;
    size_t skip = strspn(text, " \t\r\n");
    if (skip == size)
        st = tal_err_set(err, TAL_EFORMAT, "%s: empty file (no detections)", path);
    else if (text[skip] == '{' || text[skip] == '[')
        st = tal_eval_results_json_read(d, path, text, size, err);
    else
        st = dets_from_text(d, path, text, classlist, err);
    free(text);
    return st;
}
