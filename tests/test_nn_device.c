/* Device memory: arenas on the GPU hand out zeroed blocks and round-trip data; without a GPU (or
 * a CUDA build) the tests skip visibly and the CUDA arena fails with a clear error. */
#include "testlib.h"

#include <string.h>

Test(nn_device, cuda_arena_round_trip) {
    if (tal_cuda_device_count() == 0) {
        tal_arena *a = NULL;
        tal_err err = {0};
        cr_expect_eq(tal_arena_create(&a, TAL_DEV_CUDA, 1024, &err), TAL_EDEVICE);
        cr_expect_null(a);
        cr_expect(strlen(err.msg) > 0);
        cr_skip_test("no CUDA device in this build or machine");
    }
    tal_arena *a = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CUDA, 1 << 20, &err), TAL_OK, "%s", err.msg);
    tal_tensor t = tal_arena_tensor(a, 2, (int64_t[]){16, 16});
    cr_assert_eq(t.device, TAL_DEV_CUDA);
    float host[256], back[256];
    for (int i = 0; i < 256; i++) host[i] = (float)i * 0.5f, back[i] = -1;
    cr_assert_eq(tal_copy_bytes(back, TAL_DEV_CPU, t.data, TAL_DEV_CUDA, sizeof back, &err), TAL_OK);
    for (int i = 0; i < 256; i++) cr_assert_eq(back[i], 0.0f, "device blocks start zeroed");
    cr_assert_eq(tal_copy_bytes(t.data, TAL_DEV_CUDA, host, TAL_DEV_CPU, sizeof host, &err), TAL_OK);
    cr_assert_eq(tal_copy_bytes(back, TAL_DEV_CPU, t.data, TAL_DEV_CUDA, sizeof back, &err), TAL_OK);
    cr_expect_arr_eq(back, host, sizeof host);
    tal_arena_destroy(a);
}
