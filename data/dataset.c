/* data/dataset.c: the in-memory dataset: building it (shared by the JSON and text readers),
 * counted warnings, subset filtering, dropping videos, and video path resolution. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/anno_build.h"
#include "data/data.h"

/* ---------------------------------------------------------------- string table ---------- */
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int str_table_get(const str_table *t, const char *key) {
    if (!t->cap) return -1;
    uint64_t mask = (uint64_t)(t->cap - 1);
    for (uint64_t i = hash_str(key) & mask;; i = (i + 1) & mask) {
        if (!t->keys[i]) return -1;
        if (!strcmp(t->keys[i], key)) return t->values[i];
    }
}

static int table_insert(char **keys, int *values, int cap, char *key, int value) {
    for (uint64_t i = hash_str(key) & (uint64_t)(cap - 1);; i = (i + 1) & (uint64_t)(cap - 1)) {
        if (!keys[i] || !strcmp(keys[i], key)) {
            int fresh = !keys[i];
            if (!fresh) free(keys[i]);
            keys[i] = key;
            values[i] = value;
            return fresh;
        }
    }
}

int str_table_put(str_table *t, const char *key, int value) {
    if (2 * (t->count + 1) > t->cap) { /* keep the load under 1/2 */
        int cap = t->cap ? 2 * t->cap : 64;
        char **keys = calloc((size_t)cap, sizeof *keys);
        int *values = calloc((size_t)cap, sizeof *values);
        if (!keys || !values) {
            free(keys);
            free(values);
            return 0;
        }
        for (int i = 0; i < t->cap; i++)
            if (t->keys[i]) table_insert(keys, values, cap, t->keys[i], t->values[i]);
        free(t->keys);
        free(t->values);
        t->keys = keys;
        t->values = values;
        t->cap = cap;
    }
    char *copy = strdup(key);
    if (!copy) return 0;
    t->count += table_insert(t->keys, t->values, t->cap, copy, value);
    return 1;
}

void str_table_free(str_table *t) {
    for (int i = 0; i < t->cap; i++) free(t->keys[i]);
    free(t->keys);
    free(t->values);
    memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------- builder --------------- */
tal_status builder_init(anno_builder *b, const char *source, tal_anno_format fmt, tal_err *err) {
    memset(b, 0, sizeof *b);
    b->ds = calloc(1, sizeof *b->ds);
    if (!b->ds || !(b->ds->source = strdup(source))) {
        free(b->ds);
        b->ds = NULL;
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", source);
    }
    b->ds->format = fmt;
    return TAL_OK;
}

void builder_abort(anno_builder *b) {
    tal_dataset_destroy(b->ds);
    for (int i = 0; i < b->n_pool; i++) free(b->pool[i]);
    free(b->pool);
    str_table_free(&b->ids);
    str_table_free(&b->labels);
    memset(b, 0, sizeof *b);
}

int builder_label(anno_builder *b, const char *label) {
    int k = str_table_get(&b->labels, label);
    if (k >= 0) return k;
    if (b->fixed_classes) return -1;
    if (b->n_pool == b->cap_pool) {
        int cap = b->cap_pool ? 2 * b->cap_pool : 32;
        char **p = realloc(b->pool, (size_t)cap * sizeof *p);
        if (!p) return -2;
        b->pool = p;
        b->cap_pool = cap;
    }
    if (!(b->pool[b->n_pool] = strdup(label))) return -2;
    if (!str_table_put(&b->labels, label, b->n_pool)) {
        free(b->pool[b->n_pool]);
        return -2;
    }
    return b->n_pool++;
}

int builder_add_video(anno_builder *b, const char *id) {
    tal_dataset *ds = b->ds;
    if (ds->n_videos == b->cap_videos) {
        int cap = b->cap_videos ? 2 * b->cap_videos : 64;
        tal_video_anno *v = realloc(ds->videos, (size_t)cap * sizeof *v);
        if (!v) return -1;
        ds->videos = v;
        b->cap_videos = cap;
    }
    tal_video_anno *v = &ds->videos[ds->n_videos];
    memset(v, 0, sizeof *v);
    v->duration_s = -1;
    if (!(v->id = strdup(id))) return -1;
    if (!str_table_put(&b->ids, id, ds->n_videos)) {
        free(v->id);
        return -1;
    }
    return ds->n_videos++;
}

int builder_add_segment(anno_builder *b, int vi, double start_s, double end_s, int label,
                        int ambiguous) {
    tal_video_anno *v = &b->ds->videos[vi];
    tal_segment **arr = ambiguous ? &v->ambiguous : &v->segments;
    int *n = ambiguous ? &v->n_ambiguous : &v->n_segments;
    if (*n == 0 || (*n >= 4 && (*n & (*n - 1)) == 0)) { /* capacity 4, 8, 16, ... */
        tal_segment *p = realloc(*arr, (size_t)(*n ? 2 * *n : 4) * sizeof *p);
        if (!p) return 0;
        *arr = p;
    }
    (*arr)[(*n)++] = (tal_segment){start_s, end_s, ambiguous ? -1 : label};
    return 1;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

tal_status builder_finish(anno_builder *b, tal_dataset **out, tal_err *err) {
    tal_dataset *ds = b->ds;
    int *remap = calloc((size_t)(b->n_pool + 1), sizeof *remap);
    if (!remap) {
        builder_abort(b);
        return tal_err_set(err, TAL_ENOMEM, "out of memory");
    }
    /* Classes: the file's own list as given, else the sorted label set. */
    char **names = b->pool;
    if (!b->fixed_classes && b->n_pool > 1)
        qsort(names, (size_t)b->n_pool, sizeof *names, cmp_str_ptr);
    for (int k = 0; k < b->n_pool; k++) remap[str_table_get(&b->labels, names[k])] = k;
    ds->class_names = names;
    ds->n_classes = b->n_pool;
    b->pool = NULL;
    b->n_pool = 0;

    tal_anno_warnings *w = &ds->warn;
    memset(w, 0, sizeof *w);
    for (int i = 0; i < ds->n_videos; i++) {
        tal_video_anno *v = &ds->videos[i];
        w->n_no_duration += v->duration_s < 0;
        w->n_no_segments += v->n_segments == 0;
        for (int s = 0; s < v->n_segments; s++) {
            tal_segment *g = &v->segments[s];
            g->label = remap[g->label];
            w->n_zero_length += g->end_s == g->start_s;
            w->n_past_duration += v->duration_s >= 0 && g->end_s > v->duration_s;
            for (int r = 0; r < s; r++) { /* OpenTAD's tolerance for duplicate GT: 1e-3 s */
                const tal_segment *h = &v->segments[r];
                if (h->label == g->label && fabs(h->start_s - g->start_s) < 1e-3 &&
                    fabs(h->end_s - g->end_s) < 1e-3) {
                    w->n_duplicate++;
                    break;
                }
            }
        }
    }
    free(remap);
    str_table_free(&b->ids);
    str_table_free(&b->labels);
    free(b->pool);
    *out = ds;
    memset(b, 0, sizeof *b);
    (void)err;
    return TAL_OK;
}

/* ---------------------------------------------------------------- dataset --------------- */
void tal_dataset_destroy(tal_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n_videos; i++) {
        free(ds->videos[i].id);
        free(ds->videos[i].segments);
        free(ds->videos[i].ambiguous);
    }
    free(ds->videos);
    for (int k = 0; k < ds->n_classes; k++) free(ds->class_names[k]);
    free(ds->class_names);
    free(ds->source);
    free(ds);
}

int tal_dataset_find(const tal_dataset *ds, const char *id) {
    const char *bare = strncmp(id, "v_", 2) ? id : id + 2;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < ds->n_videos; i++) {
            const char *vid = ds->videos[i].id;
            if (pass == 0 && !strcmp(vid, id)) return i;
            if (pass == 1 && !strcmp(strncmp(vid, "v_", 2) ? vid : vid + 2, bare)) return i;
        }
    }
    return -1;
}

int64_t tal_dataset_n_segments(const tal_dataset *ds) {
    int64_t n = 0;
    for (int i = 0; i < ds->n_videos; i++) n += ds->videos[i].n_segments;
    return n;
}

void tal_dataset_drop(tal_dataset *ds, const uint8_t *drop) {
    int j = 0;
    for (int i = 0; i < ds->n_videos; i++) {
        if (drop[i]) {
            free(ds->videos[i].id);
            free(ds->videos[i].segments);
            free(ds->videos[i].ambiguous);
        } else {
            ds->videos[j++] = ds->videos[i];
        }
    }
    ds->n_videos = j;
}

int tal_dataset_filter_subset(tal_dataset *ds, tal_subset subset) {
    if (ds->n_videos == 0) return 0;
    uint8_t *drop = calloc((size_t)ds->n_videos, 1);
    TAL_ASSERT(drop);
    int n = 0;
    for (int i = 0; i < ds->n_videos; i++) n += drop[i] = ds->videos[i].subset != subset;
    tal_dataset_drop(ds, drop);
    free(drop);
    return n;
}

/* ---------------------------------------------------------------- video paths ----------- */
tal_status tal_video_path(char *buf, size_t size, const char *dir, const char *id,
                          const char *const *exts, tal_err *err) {
    static const char *const k_exts[] = {"mp4", "mkv", "webm", "avi", "mpeg", "mpg", "mov",
                                         "m4v", NULL};
    if (!exts) exts = k_exts;
    char alt[512];
    if (!strncmp(id, "v_", 2))
        snprintf(alt, sizeof alt, "%s", id + 2);
    else
        snprintf(alt, sizeof alt, "v_%s", id);
    const char *names[2] = {id, alt};
    for (int n = 0; n < 2; n++) {
        for (int e = 0; exts[e]; e++) {
            int len = snprintf(buf, size, "%s/%s.%s", dir, names[n], exts[e]);
            if (len < 0 || (size_t)len >= size)
                return tal_err_set(err, TAL_EINVAL, "%s/%s: path too long", dir, id);
            struct stat sb;
            if (stat(buf, &sb) == 0 && S_ISREG(sb.st_mode)) return TAL_OK;
        }
    }
    if (size) buf[0] = 0;
    return tal_err_set(err, TAL_EIO,
                       "%s: no video file for '%s' (tried %s.mp4, .mkv, ... and %s.*)", dir, id,
                       id, alt);
}
