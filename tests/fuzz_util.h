/* tests/fuzz_util.h: what the libFuzzer targets share: a private folder per process for readers
 * that take paths, bytes written to a file there, and one input cut into parts at NUL bytes (a
 * folder of files from one input). A failure aborts, which libFuzzer reports with the input. */
#ifndef TAL_FUZZ_UTIL_H
#define TAL_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/nn.h"

#define FUZZ_CHECK(cond, ...)                                                                 \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "fuzz check failed: %s: ", #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

/* $TMPDIR/re2tal_fuzz_<pid>/name (the folder made on first use). */
static inline const char *fuzz_path(const char *name) {
    static char dir[512], paths[8][768];
    static int next;
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/re2tal_fuzz_%d", t && *t ? t : "/tmp", (int)getpid());
        FUZZ_CHECK(mkdir(dir, 0700) == 0 || access(dir, W_OK) == 0, "cannot make %s", dir);
    }
    char *p = paths[next++ % 8];
    snprintf(p, 768, "%s%s%s", dir, name[0] ? "/" : "", name);
    return p;
}

static inline void fuzz_write(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL, "cannot write %s", path);
    size_t w = n ? fwrite(bytes, 1, n, f) : 0;
    FUZZ_CHECK(fclose(f) == 0 && w == n, "cannot write %s", path);
}

/* Cuts bytes at NULs into at most max_parts parts (the last takes the rest, NULs and all). */
static inline int fuzz_split(const uint8_t *bytes, size_t size, int max_parts,
                             const uint8_t **part, size_t *part_size) {
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i < size && n < max_parts - 1; i++)
        if (!bytes[i]) {
            part[n] = bytes + start;
            part_size[n++] = i - start;
            start = i + 1;
        }
    part[n] = bytes + start;
    part_size[n++] = size - start;
    return n;
}

/* A reader's error must name what it read (or be an allocation failure). */
static inline void fuzz_check_names(const tal_err *err, const char *name) {
    FUZZ_CHECK(strstr(err->msg, name) || strstr(err->msg, "out of memory"),
               "the error does not name %s: %s", name, err->msg);
}

#endif
