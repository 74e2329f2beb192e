/* tests/layout_check.h: what the layout op tests share (tests/test_nn_layout.c on the CPU,
 * tests/test_cuda_layout.c on the GPU): host index views, a Swin-like window map with padding
 * slots, and Swin's relative-position index. */
#ifndef TAL_LAYOUT_CHECK_H
#define TAL_LAYOUT_CHECK_H

#include "testlib.h"

#include <stdlib.h>

static inline tal_index host_index(int32_t *data, int64_t n) {
    tal_index ix = {data, n, TAL_DEV_CPU};
    return ix;
}

/* R slots over S rows: every third slot padding (-1), the rest distinct rows in a scrambled
 * order. Owned by the caller (free). */
static inline int32_t *make_map(int64_t R, int64_t S) {
    int32_t *map = malloc(sizeof(int32_t) * (size_t)R);
    cr_assert_not_null(map);
    int64_t next = 0;
    for (int64_t r = 0; r < R; r++) map[r] = (r % 3 == 2 || next >= S) ? -1 : (int32_t)next++;
    for (int64_t r = R - 1; r > 0; r--) {
        int64_t o = (r * 7919) % (r + 1);
        if (map[r] >= 0 && map[o] >= 0) {
            int32_t t = map[r];
            map[r] = map[o];
            map[o] = t;
        }
    }
    return map;
}

/* Swin's relative-position index of a (wd, wh, ww) window inside the configured (fd, fh, fw)
 * one (backbone/swin_block.c): [n * n] table rows; *rows gets the table's row count. Owned by
 * the caller (free). */
static inline int32_t *rel_index(int wd, int wh, int ww, int fd, int fh, int fw, int64_t *rows) {
    int n = wd * wh * ww;
    int32_t *ix = malloc(sizeof(int32_t) * (size_t)(n * n));
    cr_assert_not_null(ix);
    for (int i = 0; i < n; i++) {
        int di = i / (fh * fw), hi = (i / fw) % fh, wi = i % fw;
        for (int j = 0; j < n; j++) {
            int dj = j / (fh * fw), hj = (j / fw) % fh, wj = j % fw;
            ix[i * n + j] = (di - dj + fd - 1) * (2 * fh - 1) * (2 * fw - 1) +
                            (hi - hj + fh - 1) * (2 * fw - 1) + (wi - wj + fw - 1);
        }
    }
    *rows = (int64_t)(2 * fd - 1) * (2 * fh - 1) * (2 * fw - 1);
    return ix;
}

#endif
