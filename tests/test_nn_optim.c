/* AdamW (two groups: decay with lr x1, no decay with lr x0.5; a frozen parameter), clipping by
 * global norm on some steps, warm-up + cosine schedule and EMA 0.999: 10 steps against
 * torch.optim.AdamW run in float64 (tests/fixtures_nn.py); optimizer state save/load; EMA swap.
 * Tolerance atol 1e-6 + rtol 1e-5: each float32 update of an O(1) value rounds at ~6e-8, ten
 * steps of a few operations each stay below 1e-6. */
#include "nn_check.h"

#include <math.h>
#include <string.h>

static void cleanup(void) { test_free_all(); }
TestSuite(nn_optim, .fini = cleanup);

static const char *const NAMES[3] = {"w1", "w2", "b"};

static tal_params *make_params(const fixture *fx) {
    tal_params *p = tal_params_create();
    cr_assert_eq(tal_params_add_group(p, "decay", 1.0f, 0.05f), 0);
    cr_assert_eq(tal_params_add_group(p, "no_decay", 0.5f, 0.0f), 1);
    tal_params_declare(p, "w1", 2, (int64_t[]){4, 3}, 0, 1);
    tal_params_declare(p, "frozen", 1, (int64_t[]){2}, 0, 0);
    tal_params_declare(p, "w2", 1, (int64_t[]){5}, 0, 1);
    tal_params_declare(p, "b", 1, (int64_t[]){3}, 1, 1);
    tal_err err = {0};
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.init", NAMES[i]);
        tal_copy(tal_params_find(p, NAMES[i])->value, fixture_get(fx, name));
    }
    tal_fill(tal_params_find(p, "frozen")->value, 3.0f);
    return p;
}

static void set_grads(tal_params *p, const fixture *fx, int step) {
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.grad%d", NAMES[i], step);
        tal_copy(tal_params_find(p, NAMES[i])->grad, fixture_get(fx, name));
    }
    tal_fill(tal_params_find(p, "frozen")->grad, 100.0f); /* must not count or move */
}

static void expect_params(tal_params *p, const fixture *fx, const char *suffix) {
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.%s", NAMES[i], suffix);
        expect_close_impl(name, tal_params_find(p, NAMES[i])->value, fixture_get(fx, name), 1e-6,
                          1e-5, __FILE__, __LINE__);
    }
}

static const tal_adamw_config CFG = {1e-3f, 0.9f, 0.999f, 1e-8f};

Test(nn_optim, adamw_clip_schedule_ema_match_torch_for_10_steps) {
    fixture fx;
    fixture_load(&fx, "nn_adamw");
    tal_params *p = make_params(&fx);
    tal_err err = {0};
    tal_adamw *opt = NULL;
    tal_ema *ema = NULL;
    cr_assert_eq(tal_adamw_create(&opt, p, CFG, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_ema_create(&ema, p, 0.999f, &err), TAL_OK, "%s", err.msg);
    tal_tensor lrs = fixture_get(&fx, "lr"), norms = fixture_get(&fx, "clip_norm");
    for (int step = 0; step < 10; step++) {
        set_grads(p, &fx, step);
        if (step == 2 || step == 5 || step == 8) {
            double norm = tal_params_clip_grad_norm(p, 1.5);
            cr_assert(fabs(norm - norms.data[step]) <= 1e-5 * norms.data[step],
                      "step %d: norm %.9g, torch %.9g", step, norm, norms.data[step]);
        }
        float lr = tal_lr_warmup_cosine(step, 3, 10, 1e-3f, 1e-5f);
        cr_assert(fabsf(lr - lrs.data[step]) <= 1e-6f * lrs.data[step], "step %d: lr %.9g, torch %.9g",
                  step, lr, lrs.data[step]);
        tal_adamw_step(opt, lr);
        tal_ema_update(ema, p);
        if (step == 4) expect_params(p, &fx, "step5");
    }
    cr_assert_eq(tal_adamw_steps(opt), 10);
    expect_params(p, &fx, "final");
    tal_tensor frozen = tal_params_find(p, "frozen")->value;
    for (int j = 0; j < 2; j++) cr_assert_eq(frozen.data[j], 3.0f, "a frozen parameter moved");
    /* state and EMA, by parameter index in declaration order: w1 0, w2 2, b 3 */
    const int index[3] = {0, 2, 3};
    char path[256];
    snprintf(path, sizeof path, "%s", test_tmp_path("optim_state.safetensors"));
    cr_assert_eq(tal_adamw_state_save(opt, path, &err), TAL_OK, "%s", err.msg);
    tal_tensor_set st;
    cr_assert_eq(tal_safetensors_read(&st, path, &err), TAL_OK, "%s", err.msg);
    cr_assert_null(tal_tensor_set_find(&st, "frozen.exp_avg"), "frozen parameters have no state");
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.ema", NAMES[i]);
        expect_close_impl(name, tal_ema_value(ema, index[i]), fixture_get(&fx, name), 1e-6, 1e-5,
                          __FILE__, __LINE__);
        for (int which = 0; which < 2; which++) {
            snprintf(name, sizeof name, "%s.%s", NAMES[i], which ? "exp_avg_sq" : "exp_avg");
            const tal_named_tensor *t = tal_tensor_set_find(&st, name);
            cr_assert_not_null(t, "state file lacks %s", name);
            expect_close_impl(name, t->t, fixture_get(&fx, name), 1e-7, 1e-5, __FILE__, __LINE__);
        }
    }
    tal_tensor_set_free(&st);
    tal_ema_destroy(ema);
    tal_adamw_destroy(opt);
    tal_params_destroy(p);
    fixture_free(&fx);
}

Test(nn_optim, schedule_shape) {
    cr_assert_float_eq(tal_lr_warmup_cosine(0, 4, 20, 1.0f, 0.1f), 0.25f, 1e-7);
    cr_assert_float_eq(tal_lr_warmup_cosine(3, 4, 20, 1.0f, 0.1f), 1.0f, 1e-7);
    cr_assert_float_eq(tal_lr_warmup_cosine(4, 4, 20, 1.0f, 0.1f), 1.0f, 1e-7);
    cr_assert_float_eq(tal_lr_warmup_cosine(12, 4, 20, 1.0f, 0.1f), 0.55f, 1e-6);
    cr_assert_float_eq(tal_lr_warmup_cosine(20, 4, 20, 1.0f, 0.1f), 0.1f, 1e-7);
    cr_assert_float_eq(tal_lr_warmup_cosine(99, 4, 20, 1.0f, 0.1f), 0.1f, 1e-7);
    cr_assert_float_eq(tal_lr_warmup_cosine(0, 0, 10, 1.0f, 0.0f), 1.0f, 1e-7); /* no warm-up */
}

Test(nn_optim, clipping_below_the_limit_leaves_gradients) {
    tal_params *p = tal_params_create();
    tal_params_add_group(p, "all", 1.0f, 0.0f);
    tal_params_declare(p, "a", 1, (int64_t[]){2}, 0, 1);
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, NULL), TAL_OK);
    tal_tensor g = tal_params_at(p, 0)->grad;
    g.data[0] = 3.0f, g.data[1] = 4.0f;
    cr_assert_float_eq(tal_params_clip_grad_norm(p, 10.0), 5.0, 1e-12);
    cr_assert(g.data[0] == 3.0f && g.data[1] == 4.0f);
    cr_assert_float_eq(tal_params_clip_grad_norm(p, 0.0), 5.0, 1e-12); /* 0: measure only */
    cr_assert(g.data[0] == 3.0f);
    tal_params_clip_grad_norm(p, 1.0);
    cr_assert_float_eq(g.data[0], 0.6f, 1e-6);
    tal_params_zero_grad(p);
    cr_assert(g.data[0] == 0.0f && g.data[1] == 0.0f);
    tal_params_destroy(p);
}

Test(nn_optim, state_save_load_round_trip_continues_identically) {
    fixture fx;
    fixture_load(&fx, "nn_adamw");
    tal_params *p = make_params(&fx), *q = make_params(&fx);
    tal_adamw *a = NULL, *b = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_adamw_create(&a, p, CFG, &err), TAL_OK);
    cr_assert_eq(tal_adamw_create(&b, q, CFG, &err), TAL_OK);
    for (int step = 0; step < 4; step++) {
        set_grads(p, &fx, step);
        tal_adamw_step(a, 1e-3f);
    }
    char path[256];
    snprintf(path, sizeof path, "%s", test_tmp_path("adamw_round_trip.safetensors"));
    cr_assert_eq(tal_adamw_state_save(a, path, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_adamw_state_load(b, path, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_adamw_steps(b), 4);
    for (int i = 0; i < tal_params_count(p); i++)
        tal_copy(tal_params_at(q, i)->value, tal_params_at(p, i)->value);
    for (int step = 4; step < 7; step++) { /* same grads, same state: same bits */
        set_grads(p, &fx, step);
        set_grads(q, &fx, step);
        tal_adamw_step(a, 5e-4f);
        tal_adamw_step(b, 5e-4f);
    }
    for (int i = 0; i < tal_params_count(p); i++)
        expect_close(tal_params_at(q, i)->value, tal_params_at(p, i)->value, 0, 0);
    /* a parameter file is not a state file; a state file for other parameters is refused */
    char ppath[256];
    snprintf(ppath, sizeof ppath, "%s", test_tmp_path("adamw_params.safetensors"));
    cr_assert_eq(tal_params_save(p, ppath, NULL, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_adamw_state_load(b, ppath, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "adamw_params.safetensors"), "%s", err.msg);
    float one = 1.0f;
    tal_named_tensor only = {"w1.exp_avg", tal_t1(&one, 1), "F32"};
    cr_assert_eq(tal_safetensors_write(ppath, &only, 1, "{\"step\":\"3\"}", &err), TAL_OK);
    cr_assert_eq(tal_adamw_state_load(b, ppath, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "w1.exp_avg"), "must name the tensor: %s", err.msg);
    cr_assert_eq(tal_adamw_steps(b), 7, "a failed load must not change the step count");
    /* a state whose first tensors are fine but a later one is mis-shaped changes nothing:
     * take a good state file, break the last tensor, check b then steps exactly as a */
    cr_assert_eq(tal_adamw_state_save(a, path, &err), TAL_OK, "%s", err.msg);
    tal_tensor_set st;
    cr_assert_eq(tal_safetensors_read(&st, path, &err), TAL_OK, "%s", err.msg);
    st.items[st.count - 1].t = tal_tensor_reshape(st.items[st.count - 1].t, 2,
                                                  (int64_t[]){1, tal_tensor_numel(st.items[st.count - 1].t)});
    cr_assert_eq(tal_safetensors_write(ppath, st.items, st.count, "{\"step\":\"99\"}", &err), TAL_OK);
    tal_tensor_set_free(&st);
    cr_assert_eq(tal_adamw_state_load(b, ppath, &err), TAL_EFORMAT);
    cr_assert_eq(tal_adamw_steps(b), 7);
    set_grads(p, &fx, 7);
    set_grads(q, &fx, 7);
    tal_adamw_step(a, 5e-4f);
    tal_adamw_step(b, 5e-4f);
    for (int i = 0; i < tal_params_count(p); i++)
        expect_close(tal_params_at(q, i)->value, tal_params_at(p, i)->value, 0, 0);
    tal_adamw_destroy(a);
    tal_adamw_destroy(b);
    tal_params_destroy(p);
    tal_params_destroy(q);
    fixture_free(&fx);
}

Test(nn_optim, ema_swap_twice_restores) {
    tal_params *p = tal_params_create();
    tal_params_add_group(p, "all", 1.0f, 0.0f);
    tal_params_declare(p, "a", 1, (int64_t[]){3}, 0, 1);
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, NULL), TAL_OK);
    tal_tensor v = tal_params_at(p, 0)->value;
    tal_fill(v, 1.0f);
    tal_ema *e = NULL;
    cr_assert_eq(tal_ema_create(&e, p, 0.5f, NULL), TAL_OK);
    tal_fill(v, 3.0f);
    tal_ema_update(e, p); /* 0.5 * 1 + 0.5 * 3 */
    cr_assert_float_eq(tal_ema_value(e, 0).data[0], 2.0f, 1e-7);
    tal_ema_swap(e, p);
    cr_assert(v.data[0] == 2.0f && tal_ema_value(e, 0).data[0] == 3.0f);
    tal_ema_swap(e, p);
    cr_assert(v.data[2] == 3.0f && tal_ema_value(e, 0).data[2] == 2.0f);
    tal_ema_destroy(e);
    tal_params_destroy(p);
}
