/* tests/decode_check.h: test videos made with the ffmpeg CLI, shared by the decode tests. */
#ifndef TAL_DECODE_CHECK_H
#define TAL_DECODE_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "testlib.h"

/* Makes TEST_TMP/<name> with `ffmpeg -v error -y ARGS PATH`; returns its path (static buffer). */
static inline const char *make_video(const char *name, const char *args) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", TEST_TMP, name);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -y %s '%s' 2>&1", args, path);
    cr_assert_eq(system(cmd), 0, "ffmpeg failed: %s", cmd);
    return path;
}

#endif
