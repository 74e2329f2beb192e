/* app/classifier.c: reading an external video-level classifier file (CUHK format). */
#include "app/classifier.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/checkpoint.h"

struct tal_video_classifier {
    char *path;
    cJSON *root;     /* kept: "results" is looked up per video */
    cJSON *results;
    char **names;
    int n_classes;
};

tal_status tal_classifier_load(tal_video_classifier **out, const char *path, tal_err *err) {
    *out = NULL;
    char *text = tal_read_file(path, err);
    if (!text) return err->code;
    tal_video_classifier *c = calloc(1, sizeof *c);
    tal_status st = TAL_OK;
    if (!c) {
        free(text);
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    }
    c->path = strdup(path);
    const char *end = NULL;
    c->root = cJSON_ParseWithOpts(text, &end, 0);
    if (!c->root) {
        long line = 1, col = 1;
        for (const char *p = text; end && p < end; p++, col++)
            if (*p == '\n') line++, col = 0;
        st = tal_err_set(err, TAL_EFORMAT, "%s: malformed JSON at line %ld, column %ld", path, line,
                         col);
        goto fail;
    }
    cJSON *cls = cJSON_GetObjectItemCaseSensitive(c->root, "class");
    c->results = cJSON_GetObjectItemCaseSensitive(c->root, "results");
    if (!cJSON_IsArray(cls) || cJSON_GetArraySize(cls) < 1) {
        st = tal_err_set(err, TAL_EFORMAT, "%s: class: expected a non-empty list of class names", path);
        goto fail;
    }
    if (!cJSON_IsObject(c->results)) {
        st = tal_err_set(err, TAL_EFORMAT, "%s: results: expected an object {video id: scores}", path);
        goto fail;
    }
    c->n_classes = cJSON_GetArraySize(cls);
    c->names = calloc((size_t)c->n_classes, sizeof *c->names);
    if (!c->names) {
        st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int k = 0; k < c->n_classes; k++) {
        cJSON *n = cJSON_GetArrayItem(cls, k);
        if (!cJSON_IsString(n) || !n->valuestring[0]) {
            st = tal_err_set(err, TAL_EFORMAT, "%s: class[%d]: expected a class name", path, k);
            goto fail;
        }
        for (int j = 0; j < k; j++)
            if (!strcmp(c->names[j], n->valuestring)) {
                st = tal_err_set(err, TAL_EFORMAT, "%s: class[%d]: '%s' is already class[%d]", path,
                                 k, n->valuestring, j);
                goto fail;
            }
        c->names[k] = strdup(n->valuestring);
    }
    free(text);
    *out = c;
    return TAL_OK;
fail:
    free(text);
    tal_classifier_destroy(c);
    return st;
}

void tal_classifier_destroy(tal_video_classifier *c) {
    if (!c) return;
    for (int k = 0; k < c->n_classes && c->names; k++) free(c->names[k]);
    free(c->names);
    cJSON_Delete(c->root);
    free(c->path);
    free(c);
}

int tal_classifier_n_classes(const tal_video_classifier *c) { return c->n_classes; }
char *const *tal_classifier_class_names(const tal_video_classifier *c) { return c->names; }

tal_status tal_classifier_scores(const tal_video_classifier *c, const char *video_id, float *scores,
                                 tal_err *err) {
    cJSON *row = cJSON_GetObjectItemCaseSensitive(c->results, video_id);
    if (!row && !strncmp(video_id, "v_", 2))
        row = cJSON_GetObjectItemCaseSensitive(c->results, video_id + 2);
    if (!row) {
        char prefixed[512];
        snprintf(prefixed, sizeof prefixed, "v_%s", video_id);
        row = cJSON_GetObjectItemCaseSensitive(c->results, prefixed);
    }
    if (!row)
        return tal_err_set(err, TAL_EINVAL, "%s: results: no scores for video %s", c->path, video_id);
    if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != c->n_classes)
        return tal_err_set(err, TAL_EINVAL, "%s: results.%s: expected %d scores (one per class)",
                           c->path, video_id, c->n_classes);
    for (int k = 0; k < c->n_classes; k++) {
        cJSON *v = cJSON_GetArrayItem(row, k);
        /* finite as a float too: 5e42 is a finite double but an infinite score (fuzz_app_config) */
        if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= FLT_MAX))
            return tal_err_set(err, TAL_EINVAL, "%s: results.%s[%d]: expected a finite score",
                               c->path, video_id, k);
        scores[k] = (float)v->valuedouble;
    }
    return TAL_OK;
}
