/* app/video_list.c: video paths from files, folders and list files (see video_list.h). */
#include "app/video_list.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "app/dist.h"
#include "app/model_dir.h"

static tal_status push(tal_video_list *l, const char *path, tal_err *err) {
    char **p = realloc(l->paths, sizeof *p * ((size_t)l->n + 1));
    if (!p) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    l->paths = p;
    if (!(p[l->n] = strdup(path))) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    l->n++;
    return TAL_OK;
}

static int is_video_name(const char *name) {
    static const char *const ext[] = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg",
                                      ".mpeg", ".flv", ".wmv", ".3gp", ".ts", ".mts", ".ogv"};
    size_t n = strlen(name);
    if (name[0] == '.') return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t e = strlen(ext[i]);
        if (n > e && !strcasecmp(name + n - e, ext[i])) return 1;
    }
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

tal_status tal_video_list_add(tal_video_list *l, const char *arg, tal_err *err) {
    struct stat sb;
    if (stat(arg, &sb) != 0 || !S_ISDIR(sb.st_mode)) return push(l, arg, err);
    DIR *dir = opendir(arg);
    if (!dir)
        return tal_err_set(err, TAL_EIO, "%s: cannot read the folder: %s", arg, strerror(errno));
    int from = l->n;
    tal_status st = TAL_OK;
    struct dirent *e;
    char path[4096];
    while (!st && (e = readdir(dir))) {
        if (!is_video_name(e->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", arg, e->d_name);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) st = push(l, path, err);
    }
    closedir(dir);
    if (!st && l->n == from)
        st = tal_err_set(err, TAL_EINVAL, "%s: no video files in the folder", arg);
    if (!st) qsort(l->paths + from, (size_t)(l->n - from), sizeof *l->paths, by_name);
    return st;
}

tal_status tal_video_list_add_file(tal_video_list *l, const char *file, tal_err *err) {
    FILE *f; /* /dev/zero once read as endless empty lines: regular files only (nn/file.c) */
    if (tal_file_open(&f, NULL, file, 0, err)) return tal_err_prefix(err, "the video list");
    char line[4096];
    tal_status st = TAL_OK;
    int line_no = 0;
    while (!st && fgets(line, sizeof line, f)) {
        line_no++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            st = tal_err_set(err, TAL_EINVAL, "%s:%d: line too long", file, line_no);
            break;
        }
        while (n && isspace((unsigned char)line[n - 1])) line[--n] = 0;
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (*p && *p != '#') st = push(l, p, err);
    }
    fclose(f);
    return st;
}

void tal_video_list_free(tal_video_list *l) {
    for (int i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    l->paths = NULL;
    l->n = 0;
}

/* ---------------------------------------------------------------- ranks ----------------- */
void tal_video_list_share(const tal_video_list *l, int *owner) {
    tal_shard sh = tal_dist_shard();
    if (sh.world == 1) {
        memset(owner, 0, sizeof *owner * (size_t)l->n);
        return;
    }
    double *cost = calloc((size_t)l->n + 1, sizeof *cost);
    TAL_ASSERT_MSG(cost, "out of memory");
    for (int i = 0; i < l->n; i++) {
        tal_video_anno v = {0};
        tal_err e = {0};
        if (tal_video_anno_probe(&v, l->paths[i], &e) == TAL_OK)
            cost[i] = v.duration_s > 0 ? v.duration_s : v.fps > 0 ? (double)v.n_frames / v.fps : 0;
        free(v.id);
    }
    tal_dist_share_by_cost(cost, l->n, sh.world, owner);
    free(cost);
}

int tal_video_list_report_skipped(const tal_video_list *l, char **msgs) {
    tal_shard sh = tal_dist_shard();
    int n = 0;
    if (sh.world == 1) {
        for (int i = 0; i < l->n; i++) n += msgs[i] != NULL;
        return n;
    }
    /* records "index\tmessage\n" of this rank's skipped videos, to every rank */
    size_t size = 1;
    for (int i = 0; i < l->n; i++)
        if (msgs[i]) size += strlen(msgs[i]) + 16;
    char *mine = malloc(size), *all = NULL;
    TAL_ASSERT_MSG(mine, "out of memory");
    size_t used = 0;
    for (int i = 0; i < l->n; i++)
        if (msgs[i]) used += (size_t)snprintf(mine + used, size - used, "%d\t%s\n", i, msgs[i]);
    size_t *sizes = NULL;
    tal_err err = {0};
    if (tal_dist_gather_bytes(mine, used, 1, &all, &sizes, &err) != TAL_OK) {
        fprintf(stderr, "re2tal: %s\n", err.msg);
        tal_dist_abort(1);
    }
    size_t total = 0;
    for (int r = 0; r < sh.world; r++) total += sizes[r];
    all[total] = 0;
    char **line = calloc((size_t)l->n + 1, sizeof *line); /* by list index */
    TAL_ASSERT_MSG(line, "out of memory");
    for (char *p = all; *p;) {
        char *end = strchr(p, '\n');
        TAL_ASSERT(end);
        *end = 0;
        int i = atoi(p);
        TAL_ASSERT(i >= 0 && i < l->n);
        line[i] = strchr(p, '\t') + 1;
        p = end + 1;
    }
    for (int i = 0; i < l->n; i++)
        if (line[i]) {
            n++;
            if (sh.rank == 0) fprintf(stderr, "warning: skipped video: %s\n", line[i]);
        }
    free(line);
    free(all);
    free(sizes);
    free(mine);
    return n;
}
