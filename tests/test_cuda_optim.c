/* The optimiser on the device against the CPU on the same parameters and gradients: AdamW for
 * several steps (two groups with their own lr scale and weight decay, a frozen parameter that
 * must not move, sizes past one multi-tensor chunk), the global gradient norm (the same as the
 * CPU's double sum to 1e-6, the same bits on every call) and the clip, the EMA's update and
 * swap, zero_grad. AdamW and the EMA round each operation as the CPU loop does, so 1e-6
 * relative holds with room (it would take a different formula to miss it). Skipped without a
 * GPU. */
#include "cuda_check.h"

TestSuite(cuda_optim, .fini = cuda_test_cleanup);

static tal_params *make_params(void) {
    tal_params *p = tal_params_create();
    int g0 = tal_params_add_group(p, "decay", 1.0f, 0.05f);
    int g1 = tal_params_add_group(p, "no_decay", 0.1f, 0.0f);
    tal_params_declare(p, "a.weight", 2, (int64_t[]){37, 29}, g0, 1);
    tal_params_declare(p, "a.bias", 1, (int64_t[]){37}, g1, 1);
    tal_params_declare(p, "frozen", 1, (int64_t[]){11}, g0, 0);
    tal_params_declare(p, "big", 2, (int64_t[]){300, 257}, g0, 1); /* several chunks */
    tal_params_declare(p, "one", 1, (int64_t[]){1}, g1, 1);
    tal_err err = {0};
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    for (int i = 0; i < tal_params_count(p); i++) test_fill_uniform(tal_params_at(p, i)->value, i);
    return p;
}

static void fill_grads(tal_params *p, uint64_t seed) {
    for (int i = 0; i < tal_params_count(p); i++) {
        tal_param *prm = tal_params_at(p, i);
        tal_tensor g = rand_host(prm->grad.ndim, prm->grad.shape, seed + 100 * (uint64_t)i);
        tal_copy(prm->grad, g); /* host or device */
    }
}

static void expect_params_close(tal_params *dev, tal_params *cpu, double rtol) {
    for (int i = 0; i < tal_params_count(cpu); i++)
        expect_dev_close(tal_params_at(dev, i)->value, tal_params_at(cpu, i)->value, 1e-7, rtol);
}

Test(cuda_optim, adamw_steps_match_the_cpu) {
    CUDA_ONLY();
    tal_params *cpu = make_params(), *dev = make_params();
    tal_err err = {0};
    cr_assert_eq(tal_params_move(dev, TAL_DEV_CUDA, &err), TAL_OK, "%s", err.msg);
    tal_adamw_config cfg = {1e-3f, 0.9f, 0.999f, 1e-8f};
    tal_adamw *oc = NULL, *od = NULL;
    cr_assert_eq(tal_adamw_create(&oc, cpu, cfg, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_adamw_create(&od, dev, cfg, &err), TAL_OK, "%s", err.msg);
    tal_tensor frozen = test_clone(tal_params_find(cpu, "frozen")->value);
    for (int step = 0; step < 5; step++) {
        fill_grads(cpu, (uint64_t)step);
        fill_grads(dev, (uint64_t)step);
        tal_adamw_step(oc, 1e-2f * (float)(step + 1));
        tal_adamw_step(od, 1e-2f * (float)(step + 1));
    }
    expect_params_close(dev, cpu, 1e-6);
    expect_dev_bits(tal_params_find(dev, "frozen")->value, frozen);
    cr_assert_eq(tal_adamw_steps(od), 5);
    /* the moments too, through the state file written from the device */
    const char *pc = test_tmp_path("cuda_adamw_cpu.safetensors");
    const char *pd = test_tmp_path("cuda_adamw_dev.safetensors");
    cr_assert_eq(tal_adamw_state_save(oc, pc, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_adamw_state_save(od, pd, &err), TAL_OK, "%s", err.msg);
    tal_tensor_set sc, sd;
    cr_assert_eq(tal_safetensors_read(&sc, pc, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_safetensors_read(&sd, pd, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(sc.count, sd.count);
    for (int i = 0; i < sc.count; i++)
        expect_close(tal_tensor_set_find(&sd, sc.items[i].name)->t, sc.items[i].t, 1e-9, 1e-6);
    tal_tensor_set_free(&sc);
    tal_tensor_set_free(&sd);
    /* and loaded back into the device state */
    cr_assert_eq(tal_adamw_state_load(od, pc, &err), TAL_OK, "%s", err.msg);
    tal_adamw_destroy(oc);
    tal_adamw_destroy(od);
    tal_params_destroy(cpu);
    tal_params_destroy(dev);
}

Test(cuda_optim, grad_norm_and_clip) {
    CUDA_ONLY();
    tal_params *cpu = make_params(), *dev = make_params();
    tal_err err = {0};
    cr_assert_eq(tal_params_move(dev, TAL_DEV_CUDA, &err), TAL_OK, "%s", err.msg);
    fill_grads(cpu, 7);
    fill_grads(dev, 7);
    double nc = tal_params_clip_grad_norm(cpu, 0.0), nd = tal_params_clip_grad_norm(dev, 0.0);
    cr_assert(fabs(nd - nc) <= 1e-6 * nc, "norm %.17g on the device, %.17g on the cpu", nd, nc);
    double again = tal_params_clip_grad_norm(dev, 0.0);
    cr_assert(again == nd, "run to run: %.17g then %.17g", nd, again);
    nc = tal_params_clip_grad_norm(cpu, 1.0);
    nd = tal_params_clip_grad_norm(dev, 1.0);
    cr_assert(fabs(nd - nc) <= 1e-6 * nc);
    for (int i = 0; i < tal_params_count(cpu); i++)
        expect_dev_close(tal_params_at(dev, i)->grad, tal_params_at(cpu, i)->grad, 1e-9, 1e-6);
    cr_assert(tal_params_clip_grad_norm(dev, 0.0) < 1.0 + 1e-5, "clipped to 1");
    tal_params_zero_grad(dev);
    for (int i = 0; i < tal_params_count(dev); i++)
        expect_dev_bits(tal_params_at(dev, i)->grad, test_tensor_like(tal_params_at(cpu, i)->grad));
    tal_params_destroy(cpu);
    tal_params_destroy(dev);
}

Test(cuda_optim, ema_update_and_swap) {
    CUDA_ONLY();
    tal_params *cpu = make_params(), *dev = make_params();
    tal_err err = {0};
    cr_assert_eq(tal_params_move(dev, TAL_DEV_CUDA, &err), TAL_OK, "%s", err.msg);
    tal_ema *ec = NULL, *ed = NULL;
    cr_assert_eq(tal_ema_create(&ec, cpu, 0.9f, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_ema_create(&ed, dev, 0.9f, &err), TAL_OK, "%s", err.msg);
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < tal_params_count(cpu); i++) { /* move the weights */
            tal_tensor v = rand_host(tal_params_at(cpu, i)->value.ndim,
                                     tal_params_at(cpu, i)->value.shape, 50 + step * 10 + i);
            tal_copy(tal_params_at(cpu, i)->value, v);
            tal_copy(tal_params_at(dev, i)->value, v);
        }
        tal_ema_update(ec, cpu);
        tal_ema_update(ed, dev);
    }
    for (int i = 0; i < tal_params_count(cpu); i++)
        expect_dev_close(tal_ema_value(ed, i), tal_ema_value(ec, i), 1e-7, 1e-6);
    tal_ema_swap(ec, cpu);
    tal_ema_swap(ed, dev);
    expect_params_close(dev, cpu, 1e-6);
    tal_ema_destroy(ec);
    tal_ema_destroy(ed);
    tal_params_destroy(cpu);
    tal_params_destroy(dev);
}
