/* app/config.c: typed config keys from JSON files and --set (see config.h). */
#include "app/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const tal_cfg_key *find_key(const tal_cfg_key *keys, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(keys[i].key, key)) return &keys[i];
    return NULL;
}

static const char *type_name(tal_cfg_type t) {
    switch (t) {
    case TAL_CFG_INT: return "integer";
    case TAL_CFG_FLOAT: return "number";
    case TAL_CFG_BOOL: return "true/false";
    case TAL_CFG_STRING: return "string";
    case TAL_CFG_INTS: return "list of integers";
    case TAL_CFG_FLOATS: return "list of numbers";
    }
    return "?";
}

static int is_int(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
           fabs(v->valuedouble) < 2147483647.0;
}

static void number_str(double x, char *buf, size_t size) {
    if (isinf(x))
        snprintf(buf, size, "%sinf", x < 0 ? "-" : "");
    else
        snprintf(buf, size, "%.10g", x);
}

const char *tal_cfg_range_str(const tal_cfg_key *k, char *buf, size_t size) {
    if (k->type == TAL_CFG_STRING) {
        snprintf(buf, size, "%s", k->choices ? k->choices : "");
        return buf;
    }
    if (!(k->flags & TAL_CFG_RANGED)) {
        snprintf(buf, size, "any");
        return buf;
    }
    char lo[32], hi[32];
    number_str(k->lo, lo, sizeof lo);
    number_str(k->hi, hi, sizeof hi);
    snprintf(buf, size, "%c%s, %s%c", k->flags & TAL_CFG_LO_OPEN ? '(' : '[', lo, hi,
             k->flags & TAL_CFG_HI_OPEN ? ')' : ']');
    return buf;
}

static int in_range(const tal_cfg_key *k, double x) {
    if (!(k->flags & TAL_CFG_RANGED)) return 1;
    int lo_ok = k->flags & TAL_CFG_LO_OPEN ? x > k->lo : x >= k->lo;
    int hi_ok = k->flags & TAL_CFG_HI_OPEN ? x < k->hi : x <= k->hi;
    return lo_ok && hi_ok;
}

static tal_status out_of_range(const tal_cfg_key *k, double x, int index, const char *where,
                               tal_err *err) {
    char range[64], value[32], item[24] = "";
    number_str(x, value, sizeof value);
    if (index >= 0) snprintf(item, sizeof item, "[%d]", index);
    return tal_err_set(err, TAL_EINVAL, "%s: %s%s: %s is outside the allowed range %s (%s)",
                       where, k->key, item, value, tal_cfg_range_str(k, range, sizeof range),
                       k->doc);
}

/* A choice "name:N" takes "name:" followed by one or two digits (a device number). */
static int is_numbered_choice(const char *choice, size_t len, const char *s) {
    if (len < 2 || strncmp(choice + len - 2, ":N", 2) != 0) return 0;
    if (strncmp(choice, s, len - 1) != 0) return 0; /* "name:" */
    const char *digits = s + len - 1;
    size_t n = strspn(digits, "0123456789");
    return n >= 1 && n <= 2 && digits[n] == 0;
}

/* A string key with choices takes one of them, exactly. */
static int is_choice(const char *choices, const char *s) {
    size_t n = strlen(s);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, s, n)) return 1;
        if (is_numbered_choice(p, len, s)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* Stores one JSON value into the field described by k; `where` names the source for errors.
 * Nothing is stored unless the whole value is valid (type and range). */
static tal_status store(void *cfg, const tal_cfg_key *k, const cJSON *v, const char *where,
                        tal_err *err) {
    char *field = (char *)cfg + k->offset;
    switch (k->type) {
    case TAL_CFG_INT:
        if (!is_int(v)) break;
        if (!in_range(k, v->valuedouble)) return out_of_range(k, v->valuedouble, -1, where, err);
        *(int *)field = (int)v->valuedouble;
        return TAL_OK;
    case TAL_CFG_FLOAT:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) break;
        if (!in_range(k, v->valuedouble)) return out_of_range(k, v->valuedouble, -1, where, err);
        *(double *)field = v->valuedouble;
        return TAL_OK;
    case TAL_CFG_BOOL:
        if (!cJSON_IsBool(v)) break;
        *(int *)field = cJSON_IsTrue(v);
        return TAL_OK;
    case TAL_CFG_STRING:
        if (!cJSON_IsString(v)) break;
        if (strlen(v->valuestring) >= TAL_CFG_STR)
            return tal_err_set(err, TAL_EINVAL, "%s: %s: string longer than %d characters", where,
                               k->key, TAL_CFG_STR - 1);
        if (k->choices && !is_choice(k->choices, v->valuestring))
            return tal_err_set(err, TAL_EINVAL, "%s: %s: '%s' is not one of %s (%s)", where,
                               k->key, v->valuestring, k->choices, k->doc);
        strcpy(field, v->valuestring);
        return TAL_OK;
    case TAL_CFG_INTS:
    case TAL_CFG_FLOATS: {
        if (!cJSON_IsArray(v)) break;
        int n = cJSON_GetArraySize(v);
        if (n > TAL_CFG_LIST)
            return tal_err_set(err, TAL_EINVAL, "%s: %s: %d items (at most %d)", where, k->key, n,
                               TAL_CFG_LIST);
        for (int i = 0; i < n; i++) {
            const cJSON *it = cJSON_GetArrayItem(v, i);
            if (k->type == TAL_CFG_INTS ? !is_int(it)
                                        : (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)))
                return tal_err_set(err, TAL_EINVAL, "%s: %s[%d]: expected %s", where, k->key, i,
                                   k->type == TAL_CFG_INTS ? "an integer" : "a number");
            if (!in_range(k, it->valuedouble))
                return out_of_range(k, it->valuedouble, i, where, err);
        }
        for (int i = 0; i < n; i++) {
            double x = cJSON_GetArrayItem(v, i)->valuedouble;
            if (k->type == TAL_CFG_INTS)
                ((int *)field)[i] = (int)x;
            else
                ((double *)field)[i] = x;
        }
        *(int *)((char *)cfg + k->offset_count) = n;
        return TAL_OK;
    }
    }
    return tal_err_set(err, TAL_EINVAL, "%s: %s: expected %s", where, k->key, type_name(k->type));
}

/* Walks nested objects, joining names with dots; leaves must be known keys. */
static tal_status apply_object(void *cfg, const tal_cfg_key *keys, int n, const cJSON *obj,
                               const char *prefix, const char *where, tal_err *err) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", it->string);
        const tal_cfg_key *k = find_key(keys, n, path);
        if (k) {
            tal_status rc = store(cfg, k, it, where, err);
            if (rc) return rc;
        } else if (cJSON_IsObject(it)) {
            tal_status rc = apply_object(cfg, keys, n, it, path, where, err);
            if (rc) return rc;
        } else {
            return tal_err_set(err, TAL_EINVAL,
                               "%s: unknown key '%s' (see `re2tal train --help-config` for the "
                               "keys)", where, path);
        }
    }
    return TAL_OK;
}

/* 1-based line and column of byte offset `at` in text. */
static void line_col(const char *text, size_t at, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < at && text[i]; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

tal_status tal_cfg_load_file(void *cfg, const tal_cfg_key *keys, int n_keys, const char *path,
                             tal_err *err) {
    char *text; /* regular files only, size-limited: the readers' one guard (nn/file.c) */
    tal_status st = tal_file_read(&text, NULL, path, 0, err);
    if (st) return st;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    tal_status rc;
    if (!root) {
        int line, col;
        line_col(text, end ? (size_t)(end - text) : 0, &line, &col);
        rc = tal_err_set(err, TAL_EFORMAT, "%s: line %d, column %d: not valid JSON", path, line,
                         col);
    } else if (!cJSON_IsObject(root)) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: the top level must be a JSON object", path);
    } else {
        rc = apply_object(cfg, keys, n_keys, root, "", path, err);
    }
    cJSON_Delete(root);
    free(text);
    return rc;
}

tal_status tal_cfg_apply_object(void *cfg, const tal_cfg_key *keys, int n_keys, const void *object,
                                const char *where, tal_err *err) {
    const cJSON *obj = object;
    if (!cJSON_IsObject(obj)) return tal_err_set(err, TAL_EFORMAT, "%s: expected a JSON object", where);
    return apply_object(cfg, keys, n_keys, obj, "", where, err);
}

tal_status tal_cfg_set(void *cfg, const tal_cfg_key *keys, int n_keys, const char *assignment,
                       tal_err *err) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return tal_err_set(err, TAL_EINVAL, "--set %s: expected key=value", assignment);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - assignment), assignment);
    const tal_cfg_key *k = find_key(keys, n_keys, key);
    if (!k)
        return tal_err_set(err, TAL_EINVAL,
                           "--set: unknown key '%s' (see `re2tal train --help-config`)", key);
    cJSON *v = cJSON_Parse(eq + 1);
    if (!v || (k->type == TAL_CFG_STRING && !cJSON_IsString(v))) { /* a bare string */
        cJSON_Delete(v);
        v = cJSON_CreateString(eq + 1);
    }
    tal_status rc = store(cfg, k, v, "--set", err);
    cJSON_Delete(v);
    return rc;
}

static cJSON *value_json(const void *cfg, const tal_cfg_key *k) {
    const char *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case TAL_CFG_INT: return cJSON_CreateNumber(*(const int *)field);
    case TAL_CFG_FLOAT: return cJSON_CreateNumber(*(const double *)field);
    case TAL_CFG_BOOL: return cJSON_CreateBool(*(const int *)field);
    case TAL_CFG_STRING: return cJSON_CreateString(field);
    case TAL_CFG_INTS:
    case TAL_CFG_FLOATS: {
        int n = *(const int *)((const char *)cfg + k->offset_count);
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(k->type == TAL_CFG_INTS
                                                           ? ((const int *)field)[i]
                                                           : ((const double *)field)[i]));
        return a;
    }
    }
    return cJSON_CreateNull();
}

char *tal_cfg_to_json(const void *cfg, const tal_cfg_key *keys, int n_keys) {
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; i < n_keys; i++) {
        cJSON *node = root;
        char path[256];
        snprintf(path, sizeof path, "%s", keys[i].key);
        char *part = path, *dot;
        while ((dot = strchr(part, '.'))) {
            *dot = 0;
            cJSON *child = cJSON_GetObjectItemCaseSensitive(node, part);
            if (!child) child = cJSON_AddObjectToObject(node, part);
            node = child;
            part = dot + 1;
        }
        cJSON_AddItemToObject(node, part, value_json(cfg, &keys[i]));
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

void tal_cfg_print_help(FILE *out, const void *cfg, const tal_cfg_key *keys, int n_keys) {
    fprintf(out, "  %-34s %-16s %-22s %-14s %s\n", "key", "type", "allowed", "default", "meaning");
    for (int i = 0; i < n_keys; i++) {
        cJSON *v = value_json(cfg, &keys[i]);
        char *s = cJSON_PrintUnformatted(v), range[64];
        fprintf(out, "  %-34s %-16s %-22s %-14s %s\n", keys[i].key, type_name(keys[i].type),
                tal_cfg_range_str(&keys[i], range, sizeof range), s, keys[i].doc);
        free(s);
        cJSON_Delete(v);
    }
}
