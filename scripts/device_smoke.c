/* scripts/device_smoke.c: a check of nn/'s CUDA memory path on a GPU machine that lacks the
 * project's other dependencies (FFmpeg, OpenBLAS, cJSON, Criterion): builds from the arena,
 * error and tensor sources alone. Run by scripts/device_smoke.sh; tests/test_nn_device.c is the
 * same check inside the test suite (it skips where there is no GPU). */
#include <stdio.h>
#include <string.h>

#include "nn/nn.h"

int main(void) {
    int n = tal_cuda_device_count();
    printf("cuda devices: %d\n", n);
    if (n == 0) return 1;
    tal_arena *a = NULL;
    tal_err err = {0};
    if (tal_arena_create(&a, TAL_DEV_CUDA, (size_t)1 << 30, &err) != TAL_OK) {
        printf("arena: %s\n", err.msg);
        return 1;
    }
    static float host[1 << 20], back[1 << 20];
    tal_tensor t = tal_arena_tensor(a, 1, (int64_t[]){1 << 20});
    int bad = 0;
    if (tal_copy_bytes(back, TAL_DEV_CPU, t.data, TAL_DEV_CUDA, sizeof back, &err)) bad++;
    for (int i = 0; i < (1 << 20); i++) bad += back[i] != 0.0f, host[i] = (float)i;
    if (tal_copy_bytes(t.data, TAL_DEV_CUDA, host, TAL_DEV_CPU, sizeof host, &err)) bad++;
    if (tal_copy_bytes(back, TAL_DEV_CPU, t.data, TAL_DEV_CUDA, sizeof back, &err)) bad++;
    bad += memcmp(back, host, sizeof host) != 0;
    size_t mark = tal_arena_mark(a);
    tal_arena_floats(a, 100);
    tal_arena_release(a, mark);
    printf("device arena 1 GiB, 4 MiB round trip: %s (high water %zu bytes)\n",
           bad ? "FAILED" : "ok", tal_arena_high_water(a));
    tal_arena_destroy(a);
    return bad != 0;
}
