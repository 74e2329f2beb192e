/* heads/io.c: files in and out of the head: .npy feature files (float32 / float16, [T, C] or
 * [C, T]), ActivityNet results JSON and SRT subtitles of the detections. */
#include "heads.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- .npy ------------------ */
void tal_features_free(tal_features *f) {
    free(f->data);
    memset(f, 0, sizeof *f);
}

/* Parses "{'descr': '<f4', 'fortran_order': False, 'shape': (a, b), }". */
static tal_status parse_header(const char *path, const char *hdr, int *f16, int *fortran,
                               int64_t *dims, int *ndim, tal_err *err) {
    const char *d = strstr(hdr, "'descr'"), *fo = strstr(hdr, "'fortran_order'");
    const char *sh = strstr(hdr, "'shape'");
    if (!d || !fo || !sh) return tal_err_set(err, TAL_EFORMAT, "%s: npy header lacks descr, "
                                             "fortran_order or shape: %.80s", path, hdr);
    d = strchr(d + 7, '\'');
    if (!d) return tal_err_set(err, TAL_EFORMAT, "%s: npy header: bad descr", path);
    if (!strncmp(d, "'<f4'", 5) || !strncmp(d, "'=f4'", 5)) *f16 = 0;
    else if (!strncmp(d, "'<f2'", 5) || !strncmp(d, "'=f2'", 5)) *f16 = 1;
    else {
        char got[16] = {0};
        sscanf(d, "'%15[^']", got);
        return tal_err_set(err, TAL_EFORMAT, "%s: dtype '%s' (expected little-endian float32 "
                           "'<f4' or float16 '<f2')", path, got);
    }
    fo = strchr(fo + 15, ':');
    while (fo && (*fo == ':' || *fo == ' ')) fo++;
    *fortran = fo && !strncmp(fo, "True", 4);
    sh = strchr(sh, '(');
    if (!sh) return tal_err_set(err, TAL_EFORMAT, "%s: npy header: bad shape", path);
    sh++;
    *ndim = 0;
    while (*sh && *sh != ')') {
        while (*sh == ' ' || *sh == ',') sh++;
        if (*sh == ')') break;
        char *end;
        long long v = strtoll(sh, &end, 10);
        if (end == sh || v < 0 || *ndim >= 4)
            return tal_err_set(err, TAL_EFORMAT, "%s: npy header: bad shape", path);
        dims[(*ndim)++] = v;
        sh = end;
        while (*sh == 'L') sh++;
    }
    return TAL_OK;
}

tal_status tal_features_load(tal_features *out, const char *path, int channels, tal_err *err) {
    memset(out, 0, sizeof *out);
    FILE *f = NULL;
    size_t file_bytes = 0;
    tal_status rc = tal_file_open(&f, &file_bytes, path, 0, err);
    if (rc) return rc;
    unsigned char pre[10];
    char *hdr = NULL;
    void *raw = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: not a .npy file (bad magic or too short)", path);
        goto done;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        unsigned char ext[2];
        if (fread(ext, 1, 2, f) != 2) {
            rc = tal_err_set(err, TAL_EFORMAT, "%s: truncated npy header", path);
            goto done;
        }
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)ext[0] << 16 | (size_t)ext[1] << 24;
    } else {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: npy version %d not supported", path, pre[6]);
        goto done;
    }
    if (hlen > (1u << 20)) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: npy header of %zu bytes", path, hlen);
        goto done;
    }
    hdr = calloc(1, hlen + 1);
    if (!hdr) {
        rc = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: truncated npy header", path);
        goto done;
    }
    int f16 = 0, fortran = 0, ndim = 0;
    int64_t dims[4];
    if ((rc = parse_header(path, hdr, &f16, &fortran, dims, &ndim, err)) != TAL_OK) goto done;
    if (ndim != 2) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: %d dimensions (expected 2: [T, %d] or [%d, T])",
                         path, ndim, channels, channels);
        goto done;
    }
    /* rows, cols of the array as stored in memory (Fortran order = the transpose in C order) */
    int64_t r = fortran ? dims[1] : dims[0], cc = fortran ? dims[0] : dims[1];
    int tc; /* 1: memory is [T, C] */
    if (cc == channels) tc = 1;
    else if (r == channels) tc = 0;
    else {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: shape (%lld, %lld): neither dimension is the "
                         "%d feature channels", path, (long long)dims[0], (long long)dims[1],
                         channels);
        goto done;
    }
    int64_t T = tc ? r : cc;
    if (T > (1 << 28)) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: %lld positions", path, (long long)T);
        goto done;
    }
    int64_t n = r * cc; /* both bounded now: no overflow */
    size_t esz = f16 ? 2 : 4, at = (size_t)ftell(f);
    if ((double)n * esz > (double)(file_bytes - at)) { /* before allocating what it promises */
        rc = tal_err_set(err, TAL_EFORMAT, "%s: truncated: the header promises %lld values, the "
                         "file holds %zu bytes after it", path, (long long)n, file_bytes - at);
        goto done;
    }
    raw = malloc((size_t)(n > 0 ? n : 1) * esz);
    out->data = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!raw || !out->data) {
        rc = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(raw, esz, (size_t)n, f) != (size_t)n) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: truncated: the header promises %lld values",
                         path, (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        float v;
        if (f16) {
            uint16_t hv;
            memcpy(&hv, (char *)raw + 2 * i, 2);
            v = tal_f16_to_f32(hv);
        } else {
            memcpy(&v, (char *)raw + 4 * i, 4);
        }
        if (!isfinite(v)) {
            rc = tal_err_set(err, TAL_EFORMAT, "%s: value %g at position %lld, channel %lld",
                             path, v, (long long)(tc ? i / cc : i % cc),
                             (long long)(tc ? i % cc : i / cc));
            goto done;
        }
        int64_t t = tc ? i / cc : i % cc, ch = tc ? i % cc : i / cc;
        out->data[ch * T + t] = v;
    }
    out->C = channels;
    out->T = (int)T;
done:
    free(hdr);
    free(raw);
    fclose(f);
    if (rc != TAL_OK) tal_features_free(out);
    return rc;
}

/* ---------------------------------------------------------------- writers --------------- */
static tal_status write_atomic(const char *path, const char *text, tal_err *err) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", path, strerror(errno));
    size_t len = strlen(text);
    int ok = fwrite(text, 1, len, f) == len;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return tal_err_set(err, TAL_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    return TAL_OK;
}

/* One video's detections as the JSON array of the results file (caller frees). */
static char *video_json(const tal_video_dets *v, char *const *class_names, int n_classes,
                        const char *path, tal_err *err) {
    cJSON *arr = cJSON_CreateArray();
    const tal_dets *d = v->dets;
    for (int i = 0; d && i < d->n && arr; i++) {
        const tal_detection *x = &d->items[i];
        if (x->label < 0 || x->label >= n_classes) {
            tal_err_set(err, TAL_EINVAL, "%s: video %s, detection %d: label %d not in [0, %d)",
                        path, v->id, i, x->label, n_classes);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "label", class_names[x->label]);
        cJSON_AddNumberToObject(o, "score", x->score);
        cJSON *seg = cJSON_AddArrayToObject(o, "segment");
        cJSON_AddItemToArray(seg, cJSON_CreateNumber(x->start));
        cJSON_AddItemToArray(seg, cJSON_CreateNumber(x->end));
        cJSON_AddItemToArray(arr, o);
    }
    char *text = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (!text) tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    return text;
}

/* Written one video at a time, the bytes cJSON prints for the whole object: a tree of every
 * detection of a long run (thousands per video) took more memory than the run itself. */
tal_status tal_results_write_json(const char *path, const tal_video_dets *videos, int n_videos,
                                  char *const *class_names, int n_classes, tal_err *err) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", path, strerror(errno));
    tal_status rc = TAL_OK;
    int ok = fputs("{\"version\":\"VERSION 1.3\",\"results\":{", f) >= 0;
    for (int v = 0; v < n_videos && rc == TAL_OK; v++) {
        cJSON *id = cJSON_CreateString(videos[v].id);
        char *key = id ? cJSON_PrintUnformatted(id) : NULL; /* quoted and escaped */
        char *arr = key ? video_json(&videos[v], class_names, n_classes, path, err) : NULL;
        if (!key) rc = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        else if (!arr) rc = err ? err->code : TAL_ENOMEM;
        else ok = ok && fprintf(f, "%s%s:%s", v ? "," : "", key, arr) >= 0;
        free(key);
        free(arr);
        cJSON_Delete(id);
    }
    ok = ok && fputs("},\"external_data\":{\"used\":false,\"details\":\"re2tal ActionFormer "
                     "head\"}}", f) >= 0;
    ok = (fclose(f) == 0) && ok;
    if (rc != TAL_OK) {
        remove(tmp);
        return rc;
    }
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return tal_err_set(err, TAL_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    return TAL_OK;
}

static void srt_time(char *buf, size_t n, double s) {
    if (s < 0) s = 0;
    long long ms = (long long)llround(s * 1000);
    snprintf(buf, n, "%02lld:%02lld:%02lld,%03lld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60,
             ms % 1000);
}

static int by_start(const void *a, const void *b) {
    const tal_detection *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}
static int by_score(const void *a, const void *b) {
    const tal_detection *x = a, *y = b;
    return x->score > y->score ? -1 : x->score < y->score ? 1 : by_start(a, b);
}

tal_status tal_results_write_srt(const char *path, const tal_dets *dets,
                                 char *const *class_names, int n_classes, int top_n,
                                 tal_err *err) {
    int n = dets->n < top_n || top_n <= 0 ? dets->n : top_n;
    tal_detection *it = malloc((size_t)(dets->n > 0 ? dets->n : 1) * sizeof *it);
    size_t cap = 256 + (size_t)n * 200;
    char *text = malloc(cap);
    tal_status rc = TAL_OK;
    if (!it || !text) {
        rc = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (dets->n) memcpy(it, dets->items, (size_t)dets->n * sizeof *it);
    qsort(it, (size_t)dets->n, sizeof *it, by_score);
    qsort(it, (size_t)n, sizeof *it, by_start);
    size_t len = 0;
    text[0] = 0;
    for (int i = 0; i < n; i++) {
        if (it[i].label < 0 || it[i].label >= n_classes) {
            rc = tal_err_set(err, TAL_EINVAL, "%s: detection %d: label %d not in [0, %d)", path,
                             i, it[i].label, n_classes);
            goto done;
        }
        char a[32], b[32];
        srt_time(a, sizeof a, it[i].start);
        srt_time(b, sizeof b, it[i].end > it[i].start ? it[i].end : it[i].start + 0.001);
        len += (size_t)snprintf(text + len, cap - len, "%d\n%s --> %s\n%.60s (%.2f)\n\n", i + 1,
                                a, b, class_names[it[i].label], it[i].score);
    }
    rc = write_atomic(path, text, err);
done:
    free(it);
    free(text);
    return rc;
}
