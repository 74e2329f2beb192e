/* The GPU API where no GPU answers (this machine, CI): clear TAL_EDEVICE errors naming what was
 * asked, parameters that stay usable after a failed move, and tal_params_move's round trip on
 * the CPU. tests/test_cuda_memory.c has the same on a GPU. */
#include "nn_check.h"

#include <string.h>

TestSuite(nn_device, .fini = test_free_all);

Test(nn_device, selecting_an_absent_gpu_names_the_ordinal) {
    int n = tal_cuda_device_count();
    tal_err err = {0};
    cr_assert_eq(tal_cuda_select(n + 2, &err), TAL_EDEVICE);
    char ordinal[32];
    snprintf(ordinal, sizeof ordinal, "CUDA device %d", n + 2);
    cr_assert(strstr(err.msg, ordinal), "the message names the ordinal: %s", err.msg);
    if (n > 0) return; /* the rest is what a machine without a GPU answers */
    cr_assert_eq(tal_cuda_select(0, &err), TAL_EDEVICE);
    cr_assert(strstr(err.msg, "CUDA device 0"), "%s", err.msg);
    size_t f = 1, t = 1;
    cr_assert_eq(tal_cuda_mem_info(&f, &t, &err), TAL_EDEVICE);
    cr_assert_str_eq(tal_cuda_device_name(), "");
    cr_assert_eq(tal_cuda_workspace_bytes(), 0);
    cr_assert_eq(tal_cuda_workspace_reserve(1 << 20, &err), TAL_EDEVICE);
    cr_assert_eq(tal_cuda_synchronize(&err), TAL_OK, "nothing queued, nothing to fail");
}

Test(nn_device, device_memory_without_gpu_is_an_error) {
    if (tal_cuda_device_count() > 0) cr_skip_test("a GPU is here: test_cuda_memory covers it");
    tal_arena *a = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CUDA, 1024, &err), TAL_EDEVICE);
    cr_assert_null(a);
    cr_assert(strstr(err.msg, "arena") && strstr(err.msg, "CUDA"), "%s", err.msg);
    float host[4] = {1, 2, 3, 4}, back[4];
    cr_assert_eq(tal_copy_bytes(back, TAL_DEV_CPU, host, TAL_DEV_CUDA, sizeof back, &err),
                 TAL_EDEVICE);
    cr_assert_eq(tal_copy_bytes(back, TAL_DEV_CPU, host, TAL_DEV_CPU, sizeof back, &err), TAL_OK);
    cr_assert_arr_eq(back, host, sizeof host);
}

/* Pinned memory, copy streams and events: TAL_EDEVICE, never a crash; no bytes crossed. */
Test(nn_device, feeding_without_gpu_is_an_error) {
    if (tal_cuda_device_count() > 0) cr_skip_test("a GPU is here: test_cuda_stream covers it");
    tal_err err = {0};
    tal_arena *a = (tal_arena *)1;
    cr_expect_eq(tal_arena_create_pinned(&a, 1024, &err), TAL_EDEVICE, "%s", err.msg);
    cr_expect_null(a);
    cr_expect(strlen(err.msg) > 0);
    tal_stream *s = (tal_stream *)1;
    cr_expect_eq(tal_stream_create(&s, &err), TAL_EDEVICE, "%s", err.msg);
    cr_expect_null(s);
    tal_event *e = (tal_event *)1;
    cr_expect_eq(tal_event_create(&e, &err), TAL_EDEVICE, "%s", err.msg);
    cr_expect_null(e);
    tal_stream_destroy(NULL);
    tal_event_destroy(NULL);
    uint64_t up = 1, down = 1;
    tal_cuda_bus_bytes(&up, &down);
    cr_expect(up == 0 && down == 0, "%llu bytes up, %llu down without a device",
              (unsigned long long)up, (unsigned long long)down);
}

Test(nn_device, failed_move_leaves_the_parameters_usable) {
    if (tal_cuda_device_count() > 0) cr_skip_test("a GPU is here: test_cuda_memory moves for real");
    tal_params *p = test_small_params();
    tal_tensor before = test_clone(tal_params_at(p, 0)->value);
    float *where = tal_params_at(p, 0)->value.data;
    tal_err err = {0};
    cr_assert_eq(tal_params_move(p, TAL_DEV_CUDA, &err), TAL_EDEVICE);
    cr_assert(strstr(err.msg, "parameters"), "%s", err.msg);
    cr_assert_eq(tal_params_at(p, 0)->value.data, where, "views unchanged");
    cr_assert_eq(tal_params_at(p, 0)->value.device, TAL_DEV_CPU);
    expect_close(tal_params_at(p, 0)->value, before, 0, 0);
    tal_params_destroy(p);
}

/* The move copies values into new arenas, zeroes gradients and frees the old arenas (ASan
 * catches a view that still points into them). */
Test(nn_device, move_on_the_cpu_copies_values_and_zeroes_grads) {
    tal_params *p = test_small_params();
    tal_tensor before[3];
    for (int i = 0; i < 3; i++) before[i] = test_clone(tal_params_at(p, i)->value);
    tal_err err = {0};
    cr_assert_eq(tal_params_move(p, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        tal_param *prm = tal_params_at(p, i);
        cr_assert_eq(prm->value.device, TAL_DEV_CPU);
        expect_close(prm->value, before[i], 0, 0);
        for (int64_t j = 0; j < tal_tensor_numel(prm->grad); j++)
            cr_assert_eq(prm->grad.data[j], 0.0f, "%s grad[%lld]", prm->name, (long long)j);
    }
    cr_assert_eq(tal_params_find(p, "a.bias"), tal_params_at(p, 1), "names kept");
    tal_params_destroy(p);
}
