/* A run that does not fit the GPU's memory is refused before it allocates: the message
 * (app/device.c, compiled into this test) names the device, the clip length and size, the
 * batch, the bytes asked and what for, the bytes free, and the ways to need less. The check
 * itself needs a GPU (tal_cuda_mem_info); on the CPU it passes without asking. */
#include "testlib.h"

#include <string.h>

#include "app/device.h"

TestSuite(app_device_fit);

Test(app_device_fit, the_refusal_names_clip_batch_and_bytes) {
    tal_device_need n = {768, 160, 1, (size_t)200 << 20, (size_t)300 << 20, (size_t)70 << 30,
                         (size_t)2 << 30};
    cr_assert_eq(tal_device_need_total(&n), ((size_t)500 << 20) + ((size_t)72 << 30));
    tal_err err = {0};
    cr_assert_eq(tal_device_fit_error("cuda:1", &n, (size_t)40 << 30, (size_t)80 << 30, &err),
                 TAL_ENOMEM);
    char total[64];
    snprintf(total, sizeof total, "%zu bytes", tal_device_need_total(&n));
    const char *want[] = {"cuda:1", "768 frames", "160x160", "batch 1", total,
                          "activations 71680.0", "clip slots 2048.0", "42949672960 bytes",
                          "of 81920.0 MiB", "data.frames", "backbone.chunk_frames",
                          "--device cpu"};
    for (int i = 0; i < (int)(sizeof want / sizeof *want); i++)
        cr_expect(strstr(err.msg, want[i]), "the message lacks '%s': %s", want[i], err.msg);
}

Test(app_device_fit, the_cpu_is_never_refused) {
    tal_device_need n = {16, 32, 1, (size_t)1 << 62, 0, 0, 0};
    tal_err err = {0};
    cr_expect_eq(tal_device_check_fit("cpu", &n, &err), TAL_OK, "%s", err.msg);
    cr_expect_eq(tal_device_check_fit("tpu", &n, &err), TAL_EINVAL, "a bad device: %s", err.msg);
}

/* With a GPU: a need larger than the card is refused by the check, not by an abort later. */
Test(app_device_fit, more_than_the_device_holds_is_refused) {
    if (tal_cuda_device_count() == 0) cr_skip_test("no CUDA device");
    size_t free_bytes = 0, total_bytes = 0;
    tal_err err = {0};
    cr_assert_eq(tal_cuda_mem_info(&free_bytes, &total_bytes, &err), TAL_OK, "%s", err.msg);
    tal_device_need n = {1024, 224, 1, total_bytes, 0, 0, 0};
    cr_expect_eq(tal_device_check_fit("cuda", &n, &err), TAL_ENOMEM);
    cr_expect(strstr(err.msg, "1024 frames"), "%s", err.msg);
    n.weights = 1 << 20;
    cr_expect_eq(tal_device_check_fit("cuda", &n, &err), TAL_OK, "1 MiB fits: %s", err.msg);
}
