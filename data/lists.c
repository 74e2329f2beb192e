/* data/lists.c: text inputs beside the annotation: block lists, class maps (plain, numbered,
 * JSON, CSV), relabelling a dataset with a class map, and BSN-style video tables (CSV). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "data/anno_build.h"
#include "data/data.h"

static char *read_text_file(const char *path, size_t *len, tal_err *err) {
    char *buf;
    return tal_file_read(&buf, len, path, 0, err) == TAL_OK ? buf : NULL;
}

/* Calls fn(token, line_no, ctx) for each line's text with blanks trimmed and '#' comments cut.
 * Stops at the first non-OK status. */
typedef tal_status (*line_fn)(char *line, int line_no, void *ctx, tal_err *err);
static tal_status for_each_line(char *text, line_fn fn, void *ctx, tal_err *err) {
    int line_no = 0;
    for (char *line = text; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = 0;
        line_no++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        while (isspace((unsigned char)*line)) line++;
        size_t n = strlen(line);
        while (n && isspace((unsigned char)line[n - 1])) line[--n] = 0;
        if (n) {
            tal_status s = fn(line, line_no, ctx, err);
            if (s != TAL_OK) return s;
        }
        line = next;
    }
    return TAL_OK;
}

/* A list of strings: JSON array, or one per line. */
typedef struct string_list {
    char **items;
    int n, cap;
    const char *path;
} string_list;

static tal_status list_add(string_list *l, const char *s, tal_err *err) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        char **p = realloc(l->items, (size_t)cap * sizeof *p);
        if (!p) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", l->path);
        l->items = p;
        l->cap = cap;
    }
    if (!(l->items[l->n] = strdup(s))) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    l->n++;
    return TAL_OK;
}

static void list_free(string_list *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

static tal_status list_line(char *line, int line_no, void *ctx, tal_err *err) {
    (void)line_no;
    return list_add(ctx, line, err);
}

static tal_status read_string_list(string_list *l, const char *path, tal_err *err) {
    memset(l, 0, sizeof *l);
    l->path = path;
    char *text = read_text_file(path, NULL, err);
    if (!text) return err ? err->code : TAL_EIO;
    tal_status s = TAL_OK;
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    if (*p == '[') {
        cJSON *root = cJSON_Parse(text);
        if (!root || !cJSON_IsArray(root)) {
            s = tal_err_set(err, TAL_EFORMAT, "%s: not a JSON array of strings", path);
        } else {
            int i = 0;
            for (cJSON *it = root->child; it && s == TAL_OK; it = it->next, i++) {
                if (!cJSON_IsString(it))
                    s = tal_err_set(err, TAL_EFORMAT, "%s: [%d]: expected a string", path, i);
                else
                    s = list_add(l, it->valuestring, err);
            }
        }
        cJSON_Delete(root);
    } else {
        s = for_each_line(text, list_line, l, err);
    }
    free(text);
    if (s != TAL_OK) list_free(l);
    return s;
}

tal_status tal_dataset_block(tal_dataset *ds, const char *path, int *n_dropped, tal_err *err) {
    string_list l;
    tal_status s = read_string_list(&l, path, err);
    if (s != TAL_OK) return s;
    uint8_t *drop = calloc((size_t)ds->n_videos + 1, 1);
    if (!drop) {
        list_free(&l);
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    }
    str_table blocked = {0};
    for (int i = 0; i < l.n; i++) {
        const char *id = l.items[i];
        if (!str_table_put(&blocked, id, 1) ||
            !str_table_put(&blocked, strncmp(id, "v_", 2) ? id : id + 2, 1)) {
            s = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
            break;
        }
    }
    int n = 0;
    for (int i = 0; s == TAL_OK && i < ds->n_videos; i++) {
        const char *id = ds->videos[i].id;
        n += drop[i] = str_table_get(&blocked, id) >= 0 ||
                       str_table_get(&blocked, strncmp(id, "v_", 2) ? id : id + 2) >= 0;
    }
    if (s == TAL_OK) tal_dataset_drop(ds, drop);
    if (n_dropped) *n_dropped = s == TAL_OK ? n : 0;
    str_table_free(&blocked);
    free(drop);
    list_free(&l);
    return s;
}

/* ---------------------------------------------------------------- class maps ------------ */
typedef struct class_line_ctx {
    string_list names;
    const char *path;
    int numbered; /* -1 unknown, 0 plain names, 1 "<id> <name>" */
    long *ids;
    int cap_ids;
} class_line_ctx;

static tal_status class_line(char *line, int line_no, void *vctx, tal_err *err) {
    class_line_ctx *c = vctx;
    char *end;
    long id = strtol(line, &end, 10);
    int numbered = end != line && isspace((unsigned char)*end);
    if (c->numbered < 0) c->numbered = numbered;
    const char *name = line;
    if (c->numbered) {
        if (!numbered)
            return tal_err_set(err, TAL_EFORMAT, "%s:%d: expected '<id> <name>', got '%.60s'",
                               c->path, line_no, line);
        while (isspace((unsigned char)*end)) end++;
        name = end;
        if (c->names.n == c->cap_ids) {
            int cap = c->cap_ids ? 2 * c->cap_ids : 32;
            long *p = realloc(c->ids, (size_t)cap * sizeof *p);
            if (!p) return tal_err_set(err, TAL_ENOMEM, "out of memory");
            c->ids = p;
            c->cap_ids = cap;
        }
        c->ids[c->names.n] = id;
    }
    return list_add(&c->names, name, err);
}

tal_status tal_class_map_load(tal_class_map *out, const char *path, tal_err *err) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = read_text_file(path, &len, err);
    if (!text) return err ? err->code : TAL_EIO;
    class_line_ctx c = {{0}, path, -1, NULL, 0};
    c.names.path = path;
    tal_status s;
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    if (*p == '[') {
        free(text);
        s = read_string_list(&c.names, path, err);
        c.numbered = 0;
    } else {
        char *body = text;
        size_t lp = strlen(path);
        if (lp > 4 && !strcmp(path + lp - 4, ".csv")) { /* skip the header line */
            char *nl = strchr(text, '\n');
            body = nl ? nl + 1 : text + len;
        }
        s = for_each_line(body, class_line, &c, err);
        free(text);
    }
    if (s == TAL_OK && c.names.n == 0) s = tal_err_set(err, TAL_EFORMAT, "%s: no classes", path);
    if (s == TAL_OK && c.numbered == 1) { /* order by id (insertion sort: lists are short) */
        for (int i = 1; i < c.names.n; i++) {
            for (int j = i; j > 0 && c.ids[j - 1] > c.ids[j]; j--) {
                long t = c.ids[j];
                c.ids[j] = c.ids[j - 1], c.ids[j - 1] = t;
                char *n = c.names.items[j];
                c.names.items[j] = c.names.items[j - 1], c.names.items[j - 1] = n;
            }
        }
    }
    str_table seen = {0};
    for (int i = 0; s == TAL_OK && i < c.names.n; i++) {
        int prev = str_table_get(&seen, c.names.items[i]);
        if (prev >= 0)
            s = tal_err_set(err, TAL_EFORMAT, "%s: class '%s' is listed twice (entries %d and %d)",
                            path, c.names.items[i], prev + 1, i + 1);
        else if (!str_table_put(&seen, c.names.items[i], i))
            s = tal_err_set(err, TAL_ENOMEM, "out of memory");
    }
    str_table_free(&seen);
    free(c.ids);
    if (s != TAL_OK) {
        list_free(&c.names);
        return s;
    }
    out->names = c.names.items;
    out->n = c.names.n;
    return TAL_OK;
}

void tal_class_map_free(tal_class_map *map) {
    for (int i = 0; i < map->n; i++) free(map->names[i]);
    free(map->names);
    memset(map, 0, sizeof *map);
}

int tal_class_map_find(const tal_class_map *map, const char *name) {
    for (int i = 0; i < map->n; i++)
        if (!strcmp(map->names[i], name)) return i;
    return -1;
}

tal_status tal_dataset_set_classes(tal_dataset *ds, const tal_class_map *map, int *n_unknown,
                                   tal_err *err) {
    int *remap = malloc((size_t)(ds->n_classes + 1) * sizeof *remap);
    char **names = calloc((size_t)map->n + 1, sizeof *names);
    int ok = remap && names;
    for (int k = 0; ok && k < map->n; k++) ok = (names[k] = strdup(map->names[k])) != NULL;
    if (!ok) {
        for (int k = 0; names && k < map->n; k++) free(names[k]);
        free(names);
        free(remap);
        return tal_err_set(err, TAL_ENOMEM, "out of memory");
    }
    char unknown[400] = "";
    size_t used = 0;
    for (int k = 0; k < ds->n_classes; k++) {
        remap[k] = tal_class_map_find(map, ds->class_names[k]);
        if (remap[k] < 0 && used < sizeof unknown - 1)
            used += (size_t)snprintf(unknown + used, sizeof unknown - used, "%s'%s'",
                                     used ? ", " : "", ds->class_names[k]);
    }
    int n = 0;
    for (int i = 0; i < ds->n_videos; i++) {
        tal_video_anno *v = &ds->videos[i];
        int j = 0;
        for (int s = 0; s < v->n_segments; s++) {
            tal_segment g = v->segments[s];
            g.label = remap[g.label];
            if (g.label < 0)
                n++;
            else
                v->segments[j++] = g;
        }
        v->n_segments = j;
    }
    for (int k = 0; k < ds->n_classes; k++) free(ds->class_names[k]);
    free(ds->class_names);
    ds->class_names = names;
    ds->n_classes = map->n;
    free(remap);
    if (n_unknown) *n_unknown = n;
    if (n && err) {
        err->code = TAL_OK;
        snprintf(err->msg, sizeof err->msg, "%s: %d segments with labels not in the class map "
                 "dropped: %s", ds->source, n, unknown);
    }
    return TAL_OK;
}


/* ---------------------------------------------------------------- video tables ---------- */
/* Splits a CSV line in place on commas (no quoting: BSN's files have none). */
static int split_csv(char *line, char **cols, int max) {
    int n = 0;
    for (char *p = line; n < max;) {
        cols[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    for (int i = 0; i < n; i++) {
        size_t l = strlen(cols[i]);
        while (l && isspace((unsigned char)cols[i][l - 1])) cols[i][--l] = 0;
    }
    return n;
}

tal_status tal_dataset_apply_video_table(tal_dataset *ds, const char *path, int *n_matched,
                                         tal_err *err) {
    size_t len;
    char *text = read_text_file(path, &len, err);
    if (!text) return err ? err->code : TAL_EIO;
    enum { VIDEO, FRAMES, SECONDS, FPS, SUBSET, N_KEYS, MAX_COLS = 32 };
    static const char *const k_keys[N_KEYS] = {"video", "numFrame", "seconds", "fps", "subset"};
    int col_of[N_KEYS] = {-1, -1, -1, -1, -1}, n_cols = 0, matched = 0, line_no = 0;
    str_table ids = {0};
    tal_status s = TAL_OK;
    for (int i = 0; i < ds->n_videos && s == TAL_OK; i++) {
        const char *id = ds->videos[i].id;
        if (!str_table_put(&ids, strncmp(id, "v_", 2) ? id : id + 2, i))
            s = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    }
    for (char *line = text; s == TAL_OK && line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = 0;
        line_no++;
        char *cols[MAX_COLS];
        int n = split_csv(line, cols, MAX_COLS);
        if (line_no == 1) {
            n_cols = n;
            for (int c = 0; c < n; c++)
                for (int k = 0; k < N_KEYS; k++)
                    if (!strcmp(cols[c], k_keys[k])) col_of[k] = c;
            if (col_of[VIDEO] < 0)
                s = tal_err_set(err, TAL_EFORMAT, "%s:1: header has no \"video\" column", path);
        } else if (n == 1 && !cols[0][0]) {
            /* blank line */
        } else if (n != n_cols) {
            s = tal_err_set(err, TAL_EFORMAT, "%s:%d: %d columns, the header has %d", path,
                            line_no, n, n_cols);
        } else {
            const char *id = cols[col_of[VIDEO]];
            int v = str_table_get(&ids, strncmp(id, "v_", 2) ? id : id + 2);
            if (v >= 0) {
                tal_video_anno *va = &ds->videos[v];
                double val[N_KEYS] = {0};
                for (int k = FRAMES; k <= FPS && s == TAL_OK; k++) {
                    if (col_of[k] < 0) continue;
                    char *end;
                    val[k] = strtod(cols[col_of[k]], &end);
                    if (end == cols[col_of[k]] || *end || !isfinite(val[k]) || val[k] <= 0)
                        s = tal_err_set(err, TAL_EFORMAT, "%s:%d: %s: %s '%s' is not a positive "
                                        "number", path, line_no, id, k_keys[k], cols[col_of[k]]);
                }
                if (s == TAL_OK && col_of[SUBSET] >= 0) {
                    tal_err e = {0};
                    if (tal_subset_parse(&va->subset, cols[col_of[SUBSET]], &e) != TAL_OK)
                        s = tal_err_set(err, TAL_EFORMAT, "%s:%d: %s: %s", path, line_no, id,
                                        e.msg);
                }
                if (s == TAL_OK) {
                    if (col_of[FRAMES] >= 0) va->n_frames = (int64_t)llround(val[FRAMES]);
                    if (col_of[SECONDS] >= 0 && va->duration_s < 0) va->duration_s = val[SECONDS];
                    if (col_of[FPS] >= 0) va->fps = val[FPS];
                    matched++;
                }
            }
        }
        line = next;
    }
    str_table_free(&ids);
    free(text);
    if (n_matched) *n_matched = s == TAL_OK ? matched : 0;
    return s;
}
