/* Device memory and the context on a GPU: arenas hand out zeroed blocks and round-trip data;
 * parameters move to the device and back, and save / load / tensor sets read them through the
 * host; the workspace grows when asked and says so; the context names its device. Skipped
 * without a GPU (tests/test_nn_device.c checks the errors there). */
#include "cuda_check.h"

TestSuite(cuda_memory, .fini = cuda_test_cleanup);

Test(cuda_memory, arena_round_trip) {
    CUDA_ONLY();
    tal_arena *a = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CUDA, 1 << 20, &err), TAL_OK, "%s", err.msg);
    tal_tensor t = tal_arena_tensor(a, 2, (int64_t[]){16, 16});
    cr_assert_eq(t.device, TAL_DEV_CUDA);
    float host[256], back[256];
    for (int i = 0; i < 256; i++) host[i] = (float)i * 0.5f, back[i] = -1;
    const size_t bytes = sizeof back;
    cr_assert_eq(tal_copy_bytes(back, TAL_DEV_CPU, t.data, TAL_DEV_CUDA, bytes, &err), TAL_OK);
    for (int i = 0; i < 256; i++) cr_assert_eq(back[i], 0.0f, "device blocks start zeroed");
    cr_assert_eq(tal_copy_bytes(t.data, TAL_DEV_CUDA, host, TAL_DEV_CPU, bytes, &err), TAL_OK);
    cr_assert_eq(tal_copy_bytes(back, TAL_DEV_CPU, t.data, TAL_DEV_CUDA, bytes, &err), TAL_OK);
    cr_expect_arr_eq(back, host, sizeof host);
    /* a released block is handed out zeroed again (the fill runs on the compute stream) */
    size_t mark = tal_arena_mark(a);
    tal_tensor u = tal_arena_tensor(a, 1, (int64_t[]){1000});
    tal_fill(u, 2.0f);
    tal_arena_release(a, mark);
    tal_tensor v = tal_arena_tensor(a, 1, (int64_t[]){1000});
    cr_assert_eq(u.data, v.data);
    tal_tensor hv = host_copy(v);
    for (int i = 0; i < 1000; i++) cr_assert_eq(hv.data[i], 0.0f, "element %d", i);
    tal_arena_destroy(a);
}

Test(cuda_memory, context_names_its_device_and_grows_the_workspace) {
    CUDA_ONLY();
    tal_err err = {0};
    cr_assert_eq(tal_cuda_select(0, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_cuda_select(0, &err), TAL_OK, "selecting the running device again is fine");
    if (tal_cuda_device_count() > 1)
        cr_assert_eq(tal_cuda_select(1, &err), TAL_EINVAL, "one device per process");
    cr_assert(strlen(tal_cuda_device_name()) > 0);
    cr_log_info("device: %s", tal_cuda_device_name());
    size_t free_b = 0, total_b = 0;
    cr_assert_eq(tal_cuda_mem_info(&free_b, &total_b, &err), TAL_OK, "%s", err.msg);
    cr_assert(free_b > 0 && free_b <= total_b);
    size_t base = tal_cuda_workspace_bytes();
    cr_assert_geq(base, (size_t)32 << 20, "cuBLAS' fixed workspace counts");
    cr_assert_eq(tal_cuda_workspace_reserve((size_t)5 << 20, &err), TAL_OK, "%s", err.msg);
    size_t grown = tal_cuda_workspace_bytes();
    cr_assert_geq(grown, base + ((size_t)5 << 20));
    cr_assert_eq(tal_cuda_workspace_reserve(1 << 20, &err), TAL_OK);
    cr_assert_eq(tal_cuda_workspace_bytes(), grown, "never shrinks");
    cr_assert_eq(tal_cuda_workspace_reserve(total_b * 2, &err), TAL_EDEVICE);
    cr_assert(strstr(err.msg, "workspace"), "%s", err.msg);
    cr_assert_eq(tal_cuda_workspace_bytes(), grown, "a failed growth keeps what was there");
    cr_assert_eq(tal_cuda_synchronize(&err), TAL_OK, "%s", err.msg);
}

Test(cuda_memory, params_move_to_the_device_and_back) {
    CUDA_ONLY();
    tal_params *p = test_small_params();
    int n = tal_params_count(p);
    tal_tensor before[3];
    for (int i = 0; i < n; i++) before[i] = test_clone(tal_params_at(p, i)->value);
    tal_err err = {0};
    cr_assert_eq(tal_params_move(p, TAL_DEV_CUDA, &err), TAL_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        tal_param *prm = tal_params_at(p, i);
        cr_assert_eq(prm->value.device, TAL_DEV_CUDA);
        cr_assert_eq(prm->grad.device, TAL_DEV_CUDA);
        expect_dev_bits(prm->value, before[i]);
        expect_dev_bits(prm->grad, test_tensor_like(before[i])); /* zeroed */
    }
    /* save from the device, load into the device, read a device tensor into a set */
    const char *path = test_tmp_path("cuda_params.safetensors");
    cr_assert_eq(tal_params_save(p, path, NULL, &err), TAL_OK, "%s", err.msg);
    tal_fill(tal_params_at(p, 0)->value, 9.0f);
    cr_assert_eq(tal_params_load(p, path, NULL, NULL, 0, NULL, &err), TAL_OK, "%s", err.msg);
    expect_dev_bits(tal_params_at(p, 0)->value, before[0]);
    tal_tensor_set set = {0};
    cr_assert_eq(tal_tensor_set_add(&set, "w", tal_params_at(p, 2)->value, &err), TAL_OK);
    expect_close(set.items[0].t, before[2], 0, 0);
    tal_tensor_set_free(&set);
    cr_assert_eq(tal_params_move(p, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(tal_params_at(p, i)->value.device, TAL_DEV_CPU);
        expect_close(tal_params_at(p, i)->value, before[i], 0, 0);
    }
    tal_params_destroy(p);
}
