/* data/anno_txt.c: the original THUMOS-14 ground truth, a folder of per-class text files
 * <Class>_<split>.txt with lines "video_name  start end" (seconds), plus Ambiguous_<split>.txt
 * (spans that are no targets); and tal_dataset_load, which picks the reader for a path. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/anno_build.h"
#include "data/data.h"

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads one class file into the builder. label < 0: ambiguous spans. */
static tal_status read_class_file(anno_builder *b, const char *path, int label, tal_subset subset,
                                  tal_err *err) {
    FILE *f = NULL;
    tal_status open_st = tal_file_open(&f, NULL, path, 0, err);
    if (open_st) return open_st;
    char line[1024];
    int line_no = 0;
    tal_status s = TAL_OK;
    while (s == TAL_OK && fgets(line, sizeof line, f)) {
        line_no++;
        if (!strchr(line, '\n') && !feof(f)) {
            s = tal_err_set(err, TAL_EFORMAT, "%s:%d: line longer than %zu bytes", path, line_no,
                            sizeof line - 2);
            break;
        }
        char vid[256], tail[2];
        double t0, t1;
        int n = sscanf(line, "%255s %lf %lf %1s", vid, &t0, &t1, tail);
        if (n <= 0) continue; /* blank line */
        if (n != 3) {
            s = tal_err_set(err, TAL_EFORMAT, "%s:%d: expected 'video start end', got '%.80s'",
                            path, line_no, line);
        } else if (!isfinite(t0) || !isfinite(t1) || t0 < 0 || t1 < 0) {
            s = tal_err_set(err, TAL_EFORMAT, "%s:%d: %s: times must be finite and >= 0 (%g, %g)",
                            path, line_no, vid, t0, t1);
        } else if (t1 < t0) {
            s = tal_err_set(err, TAL_EFORMAT, "%s:%d: %s: end %g s is before start %g s", path,
                            line_no, vid, t1, t0);
        } else {
            int vi = str_table_get(&b->ids, vid);
            if (vi < 0) {
                if ((vi = builder_add_video(b, vid)) < 0) {
                    s = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
                    break;
                }
                b->ds->videos[vi].subset = subset;
            }
            if (!builder_add_segment(b, vi, t0, t1, label, label < 0))
                s = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        }
    }
    if (s == TAL_OK && ferror(f)) s = tal_err_set(err, TAL_EIO, "%s: read error", path);
    fclose(f);
    return s;
}

static int cmp_video_id(const void *a, const void *b) {
    return strcmp(((const tal_video_anno *)a)->id, ((const tal_video_anno *)b)->id);
}

static tal_status load_thumos_txt(tal_dataset **out, const char *dir, const char *split,
                                  tal_err *err) {
    if (!split) split = "test";
    tal_subset subset;
    if (tal_subset_parse(&subset, split, err) != TAL_OK)
        return tal_err_prefix(err, "%s: split", dir);
    DIR *d = opendir(dir);
    if (!d) return tal_err_set(err, TAL_EIO, "%s: cannot open folder: %s", dir, strerror(errno));
    char suffix[64];
    snprintf(suffix, sizeof suffix, "_%s.txt", split);
    size_t ls = strlen(suffix);
    char **names = NULL;
    int n = 0, cap = 0;
    tal_status s = TAL_OK;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l <= ls || strcmp(e->d_name + l - ls, suffix)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **p = realloc(names, (size_t)cap * sizeof *p);
            if (!p) {
                s = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", dir);
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            s = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", dir);
            break;
        }
        n++;
    }
    closedir(d);
    /* Directory order varies between file systems: read in name order. */
    if (n > 1) qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
    anno_builder b;
    if (s != TAL_OK)
        ;
    else if (n == 0)
        s = tal_err_set(err, TAL_EFORMAT, "%s: no THUMOS class files *%s", dir, suffix);
    else
        s = builder_init(&b, dir, TAL_ANNO_THUMOS_TXT, err);
    int built = s == TAL_OK;
    for (int i = 0; s == TAL_OK && i < n; i++) {
        char path[4096], cls[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(cls, sizeof cls, "%.*s", (int)(strlen(names[i]) - ls), names[i]);
        int label = -1;
        if (strcmp(cls, "Ambiguous")) {
            label = builder_label(&b, cls);
            if (label < 0) s = tal_err_set(err, TAL_ENOMEM, "out of memory");
        }
        if (s == TAL_OK) s = read_class_file(&b, path, label, subset, err);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (s == TAL_OK) {
        /* Videos in id order; the id table is rebuilt by nobody after this, so sort last. */
        s = builder_finish(&b, out, err);
        if (s == TAL_OK && (*out)->n_videos > 1)
            qsort((*out)->videos, (size_t)(*out)->n_videos, sizeof *(*out)->videos, cmp_video_id);
    } else if (built) {
        builder_abort(&b);
    }
    return s;
}

tal_status tal_dataset_load(tal_dataset **out, const char *path, const char *split,
                            tal_err *err) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return tal_err_set(err, TAL_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return load_thumos_txt(out, path, split, err);
    char *buf = NULL;
    size_t len = 0;
    tal_status s = tal_file_read(&buf, &len, path, 0, err);
    if (s) return s;
    s = tal_dataset_parse(out, path, buf, len, err);
    free(buf);
    return s;
}
