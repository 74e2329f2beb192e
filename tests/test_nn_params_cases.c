/* Parameter store, AdamW, schedule, clipping and EMA beyond the basic fixture: 10 steps against
 * torch.optim.AdamW with a frozen parameter, clipping on every step (active on some) and EMA of
 * every value (nn_cases_optim from tests/fixtures_nn_optim.py); schedule edge cases; loads that
 * fail change nothing; F16 / BF16 checkpoints into parameters; optimizer-state errors; and
 * safetensors inputs the basic tests do not feed (duplicate names, absurd dims, offsets that are
 * not integers, the reserved name, a missing folder, empty and scalar tensors). */
#include "testlib.h"

#include <dirent.h>
#include <math.h>
#include <string.h>

static void cleanup(void) { test_free_all(); }
TestSuite(nn_params_cases, .fini = cleanup);

static char g_path[512];
static const char *tmp(const char *name) {
    snprintf(g_path, sizeof g_path, "%s", test_tmp_path(name));
    return g_path;
}

/* header_json (length prefix computed) then n data bytes. */
static void write_raw(const char *path, const char *header_json, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    uint64_t hlen = strlen(header_json);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header_json, 1, hlen, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void expect_msg(const tal_err *err, const char *a, const char *b) {
    cr_assert(strstr(err->msg, a), "message must say '%s': %s", a, err->msg);
    if (b) cr_assert(strstr(err->msg, b), "message must say '%s': %s", b, err->msg);
}

/* ---------------------------------------------------------------- AdamW vs PyTorch ------ */
#define N_PARAMS 5
static const char *const NAMES[N_PARAMS] = {"proj.weight", "proj.bias", "head.weight",
                                            "norm.weight", "frozen.weight"};

static tal_params *optim_params(const fixture *fx) {
    tal_params *p = tal_params_create();
    cr_assert_eq(tal_params_add_group(p, "decay", 1.0f, 0.05f), 0);
    cr_assert_eq(tal_params_add_group(p, "no_decay", 0.5f, 0.0f), 1);
    const int group[N_PARAMS] = {0, 1, 0, 1, 0};
    for (int i = 0; i < N_PARAMS; i++) {
        char name[96];
        snprintf(name, sizeof name, "init.%s", NAMES[i]);
        tal_tensor t = fixture_get(fx, name);
        cr_assert_eq(tal_params_declare(p, NAMES[i], t.ndim, t.shape, group[i], i < 4), i);
    }
    tal_err err = {0};
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    for (int i = 0; i < N_PARAMS; i++) {
        char name[96];
        snprintf(name, sizeof name, "init.%s", NAMES[i]);
        tal_copy(tal_params_at(p, i)->value, fixture_get(fx, name));
    }
    return p;
}

/* Every update rounds O(1) floats at ~6e-8 and ten steps compound a few of them; the norm is a
 * double sum here and a float one in torch: atol 1e-6 + rtol 1e-5 throughout. */
Test(nn_params_cases, adamw_frozen_param_clip_every_step_ema_match_torch) {
    fixture fx;
    fixture_load(&fx, "nn_cases_optim");
    tal_params *p = optim_params(&fx);
    tal_adamw *opt = NULL;
    tal_ema *ema = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_adamw_create(&opt, p, (tal_adamw_config){0.01f, 0.9f, 0.999f, 1e-8f}, &err),
                 TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_ema_create(&ema, p, 0.9f, &err), TAL_OK, "%s", err.msg);
    tal_tensor lr_want = fixture_get(&fx, "lr"), norm_want = fixture_get(&fx, "norm");
    int clipped = 0;
    for (int step = 0; step < 10; step++) {
        tal_params_zero_grad(p);
        for (int i = 0; i < 4; i++) {
            char name[96];
            snprintf(name, sizeof name, "grad%d.%s", step, NAMES[i]);
            tal_copy(tal_params_at(p, i)->grad, fixture_get(&fx, name));
        }
        tal_fill(tal_params_at(p, 4)->grad, 50.0f); /* frozen: neither counted nor applied */
        double norm = tal_params_clip_grad_norm(p, 1.0);
        cr_assert(fabs(norm - norm_want.data[step]) <= 1e-5 * norm_want.data[step],
                  "step %d: norm %.9g, torch %.9g", step, norm, norm_want.data[step]);
        clipped += norm > 1.0;
        float lr = tal_lr_warmup_cosine(step, 3, 9, 0.01f, 1e-4f);
        cr_assert(fabsf(lr - lr_want.data[step]) <= 1e-6f * lr_want.data[step],
                  "step %d: lr %.9g, expected %.9g", step, lr, lr_want.data[step]);
        tal_adamw_step(opt, lr);
        tal_ema_update(ema, p);
        for (int i = 0; i < N_PARAMS; i++) {
            char name[96];
            snprintf(name, sizeof name, "value%d.%s", step, NAMES[i]);
            expect_close_impl(name, tal_params_at(p, i)->value, fixture_get(&fx, name), 1e-6,
                              1e-5, __FILE__, __LINE__);
            snprintf(name, sizeof name, "ema%d.%s", step, NAMES[i]);
            expect_close_impl(name, tal_ema_value(ema, i), fixture_get(&fx, name), 1e-6, 1e-5,
                              __FILE__, __LINE__);
        }
    }
    cr_assert(clipped > 0 && clipped < 10, "the fixture must clip on some steps only (%d)",
              clipped);
    cr_assert_eq(tal_adamw_steps(opt), 10);
    expect_close(tal_params_at(p, 4)->value, fixture_get(&fx, "init.frozen.weight"), 0, 0);
    tal_ema_destroy(ema);
    tal_adamw_destroy(opt);
    tal_params_destroy(p);
    fixture_free(&fx);
}

/* ---------------------------------------------------------------- schedule, clipping ---- */
/* The documented formula: base (s + 1) / W during warm-up, then min + (base - min)(1 + cos(pi
 * (s - W) / (T - W))) / 2, min from T on. */
Test(nn_params_cases, schedule_formula_and_edges) {
    cr_assert_float_eq(tal_lr_warmup_cosine(0, 4, 20, 1.0f, 0.0f), 0.25f, 1e-7);
    cr_assert_float_eq(tal_lr_warmup_cosine(3, 4, 20, 1.0f, 0.0f), 1.0f, 1e-7);
    cr_assert_float_eq(tal_lr_warmup_cosine(4, 4, 20, 1.0f, 0.0f), 1.0f, 1e-7);
    cr_assert_float_eq(tal_lr_warmup_cosine(12, 4, 20, 1.0f, 0.2f), 0.6f, 1e-6);
    cr_assert_float_eq(tal_lr_warmup_cosine(20, 4, 20, 1.0f, 0.2f), 0.2f, 1e-7);
    cr_assert_float_eq(tal_lr_warmup_cosine(1000, 4, 20, 1.0f, 0.2f), 0.2f, 1e-7);
    /* no warm-up: the cosine starts at step 0 */
    cr_assert_float_eq(tal_lr_warmup_cosine(0, 0, 10, 2.0f, 0.0f), 2.0f, 1e-7);
    /* warm-up as long as training: min once it is over */
    cr_assert_float_eq(tal_lr_warmup_cosine(5, 5, 5, 1.0f, 0.1f), 0.1f, 1e-7);
    float prev = INFINITY;
    for (int s = 4; s <= 20; s++) {
        float lr = tal_lr_warmup_cosine(s, 4, 20, 1.0f, 1e-3f);
        cr_assert(lr <= prev, "cosine must not increase (step %d)", s);
        prev = lr;
    }
}

static tal_params *two_params(void) {
    tal_params *p = tal_params_create();
    tal_params_add_group(p, "g", 1.0f, 0.0f);
    tal_params_declare(p, "a", 1, (int64_t[]){3}, 0, 1);
    tal_params_declare(p, "b", 2, (int64_t[]){2, 2}, 0, 1);
    tal_params_declare(p, "c.frozen", 1, (int64_t[]){2}, 0, 0);
    tal_err err = {0};
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    return p;
}

Test(nn_params_cases, clipping_semantics) {
    tal_params *p = two_params();
    float ga[3] = {3, 0, 0}, gb[4] = {0, 4, 0, 0};
    memcpy(tal_params_at(p, 0)->grad.data, ga, sizeof ga);
    memcpy(tal_params_at(p, 1)->grad.data, gb, sizeof gb);
    tal_fill(tal_params_at(p, 2)->grad, 1000.0f);
    /* max_norm <= 0: only measures */
    cr_assert_float_eq(tal_params_clip_grad_norm(p, 0), 5.0, 1e-12);
    cr_assert_eq(tal_params_at(p, 0)->grad.data[0], 3.0f);
    /* above the limit: scaled by max / (norm + 1e-6), as torch */
    cr_assert_float_eq(tal_params_clip_grad_norm(p, 1.0), 5.0, 1e-12);
    cr_assert_float_eq(tal_params_at(p, 0)->grad.data[0], 3.0f / (5.0f + 1e-6f), 1e-6);
    cr_assert_float_eq(tal_params_at(p, 1)->grad.data[1], 4.0f / (5.0f + 1e-6f), 1e-6);
    cr_assert_eq(tal_params_at(p, 2)->grad.data[0], 1000.0f, "frozen grads are left alone");
    /* at or below the limit: untouched */
    cr_assert_float_eq(tal_params_clip_grad_norm(p, 2.0), 1.0, 1e-6);
    cr_assert_float_eq(tal_params_at(p, 0)->grad.data[0], 3.0f / (5.0f + 1e-6f), 1e-6);
    tal_params_zero_grad(p);
    cr_assert_eq(tal_params_clip_grad_norm(p, 1.0), 0.0);
    cr_assert_eq(tal_params_at(p, 2)->grad.data[1], 0.0f);
    tal_params_destroy(p);
}

Test(nn_params_cases, store_lookups) {
    tal_params *p = two_params();
    cr_assert_eq(tal_params_count(p), 3);
    cr_assert_eq(tal_params_numel(p, 0), 9);
    cr_assert_eq(tal_params_numel(p, 1), 7);
    cr_assert_null(tal_params_find(p, "b.weight"));
    cr_assert_eq(tal_params_find(p, "b"), tal_params_at(p, 1));
    cr_assert_eq(tal_params_at(p, 1)->value.shape[1], 2);
    cr_assert_eq(tal_params_group_count(p), 1);
    cr_assert_str_eq(tal_params_group_at(p, 0)->name, "g");
    cr_assert_eq((uintptr_t)tal_params_at(p, 1)->value.data % 64, 0, "arena blocks are aligned");
    tal_params_destroy(p);
}

/* ---------------------------------------------------------------- loading --------------- */
static void fill_params(tal_params *p, float v) {
    for (int i = 0; i < tal_params_count(p); i++) tal_fill(tal_params_at(p, i)->value, v);
}

static void expect_all(tal_params *p, float v) {
    for (int i = 0; i < tal_params_count(p); i++) {
        tal_tensor t = tal_params_at(p, i)->value;
        for (int64_t j = 0; j < tal_tensor_numel(t); j++)
            cr_assert_eq(t.data[j], v, "%s[%lld] = %g, expected %g (left unchanged)",
                         tal_params_at(p, i)->name, (long long)j, t.data[j], v);
    }
}

Test(nn_params_cases, failed_load_changes_nothing) {
    tal_params *p = two_params();
    fill_params(p, -1.0f);
    float a[3] = {1, 2, 3}, b[3] = {4, 5, 6}, c[2] = {7, 8};
    tal_err err = {0};
    /* a fits and comes first, b is mis-shaped */
    tal_named_tensor items[3] = {{"a", tal_t1(a, 3), "F32"}, {"c.frozen", tal_t1(c, 2), "F32"},
                                 {"b", tal_t1(b, 3), "F32"}};
    cr_assert_eq(tal_safetensors_write(tmp("half_good.safetensors"), items, 3, NULL, &err),
                 TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_params_load(p, g_path, NULL, NULL, 0, NULL, &err), TAL_EFORMAT);
    expect_msg(&err, "half_good.safetensors", "'b'");
    expect_msg(&err, "[3]", "[2, 2]");
    expect_all(p, -1.0f);
    /* b absent: missing is an error, and nothing is copied either */
    cr_assert_eq(tal_safetensors_write(tmp("no_b.safetensors"), items, 2, NULL, &err), TAL_OK);
    cr_assert_eq(tal_params_load(p, g_path, NULL, NULL, 0, NULL, &err), TAL_EFORMAT);
    expect_msg(&err, "no_b.safetensors", "'b' is missing");
    expect_all(p, -1.0f);
    tal_params_destroy(p);
}

/* Both "module.a" and "a" map to a: ambiguous, so an error naming both. */
static const char *strip_module(const char *name, char *buf, size_t size, void *ctx) {
    (void)ctx;
    snprintf(buf, size, "%s", strncmp(name, "module.", 7) ? name : name + 7);
    return buf;
}

Test(nn_params_cases, two_tensors_for_one_parameter_is_an_error) {
    tal_params *p = two_params();
    fill_params(p, 0.0f);
    float a[3] = {1, 2, 3}, b[4] = {4, 5, 6, 7}, c[2] = {7, 8};
    tal_named_tensor items[4] = {{"module.a", tal_t1(a, 3), "F32"}, {"a", tal_t1(a, 3), "F32"},
                                 {"b", tal_t2(b, 2, 2), "F32"}, {"c.frozen", tal_t1(c, 2), "F32"}};
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_write(tmp("twice.safetensors"), items, 4, NULL, &err), TAL_OK);
    cr_assert_eq(tal_params_load(p, g_path, strip_module, NULL, 0, NULL, &err), TAL_EFORMAT);
    expect_msg(&err, "twice.safetensors", "'module.a' and 'a'");
    expect_all(p, 0.0f);
    /* without the map they are different names: "module.a" is unused, the rest loads */
    int unused = -1;
    cr_assert_eq(tal_params_load(p, g_path, NULL, NULL, 0, &unused, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(unused, 1);
    expect_msg(&err, "module.a", "1 tensor");
    cr_assert_eq(tal_params_find(p, "b")->value.data[3], 7.0f);
    tal_params_destroy(p);
}

/* A half-precision checkpoint (as torch saves with .half() / .bfloat16()) loads as float. */
Test(nn_params_cases, f16_and_bf16_checkpoints_load_into_parameters) {
    const float a[3] = {0.5f, -1.75f, 1024.0f}, b[4] = {3.0f, -0.0078125f, 65536.0f, 0.25f};
    const float c[2] = {1.5f, -2.0f};
    uint16_t data[9];
    for (int i = 0; i < 3; i++) data[i] = tal_f32_to_f16(a[i]);
    for (int i = 0; i < 4; i++) data[3 + i] = tal_f32_to_bf16(b[i]);
    for (int i = 0; i < 2; i++) data[7 + i] = tal_f32_to_f16(c[i]);
    write_raw(tmp("half.safetensors"),
              "{\"__metadata__\":{\"format\":\"pt\"},"
              "\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
              "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[6,14]},"
              "\"c.frozen\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[14,18]}}",
              data, sizeof data);
    tal_params *p = two_params();
    tal_err err = {0};
    int unused = -1;
    cr_assert_eq(tal_params_load(p, g_path, NULL, NULL, 0, &unused, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(unused, 0);
    /* every value above is exact in its half format */
    for (int i = 0; i < 3; i++) cr_assert_eq(tal_params_find(p, "a")->value.data[i], a[i]);
    for (int i = 0; i < 4; i++) cr_assert_eq(tal_params_find(p, "b")->value.data[i], b[i]);
    for (int i = 0; i < 2; i++) cr_assert_eq(tal_params_find(p, "c.frozen")->value.data[i], c[i]);
    tal_params_destroy(p);
}

/* ---------------------------------------------------------------- optimizer state ------ */
Test(nn_params_cases, optimizer_state_errors_change_nothing) {
    tal_params *p = two_params();
    tal_adamw *opt = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_adamw_create(&opt, p, (tal_adamw_config){1e-3f, 0.9f, 0.999f, 1e-8f}, &err),
                 TAL_OK);
    for (int i = 0; i < 2; i++) tal_fill(tal_params_at(p, i)->grad, 0.5f);
    tal_adamw_step(opt, 1e-3f);
    tal_adamw_step(opt, 1e-3f);
    char good[512];
    snprintf(good, sizeof good, "%s", tmp("state.safetensors"));
    cr_assert_eq(tal_adamw_state_save(opt, good, &err), TAL_OK, "%s", err.msg);
    /* a parameter file is no state file */
    cr_assert_eq(tal_params_save(p, tmp("not_state.safetensors"), NULL, &err), TAL_OK);
    cr_assert_eq(tal_adamw_state_load(opt, g_path, &err), TAL_EFORMAT);
    expect_msg(&err, "not_state.safetensors", "step");
    /* a step count that is not a count */
    float m[3] = {9, 9, 9};
    tal_named_tensor bad_step = {"a.exp_avg", tal_t1(m, 3), "F32"};
    cr_assert_eq(tal_safetensors_write(tmp("bad_step.safetensors"), &bad_step, 1,
                                       "{\"step\":\"lots\"}", &err), TAL_OK);
    cr_assert_eq(tal_adamw_state_load(opt, g_path, &err), TAL_EFORMAT);
    expect_msg(&err, "bad_step.safetensors", "step");
    /* a.exp_avg fits, b.exp_avg is mis-shaped: the error names it and nothing is copied */
    float v[3] = {1, 1, 1}, bm[3] = {9, 9, 9};
    tal_named_tensor items[4] = {{"a.exp_avg", tal_t1(m, 3), "F32"},
                                 {"a.exp_avg_sq", tal_t1(v, 3), "F32"},
                                 {"b.exp_avg", tal_t1(bm, 3), "F32"},
                                 {"b.exp_avg_sq", tal_t1(bm, 3), "F32"}};
    cr_assert_eq(tal_safetensors_write(tmp("bad_shape.safetensors"), items, 4,
                                       "{\"step\":\"7\"}", &err), TAL_OK);
    cr_assert_eq(tal_adamw_state_load(opt, g_path, &err), TAL_EFORMAT);
    expect_msg(&err, "bad_shape.safetensors", "b.exp_avg");
    expect_msg(&err, "[3]", "[2, 2]");
    cr_assert_eq(tal_adamw_steps(opt), 2);
    /* the state is what it was: reloading the good file and stepping gives the same values as a
     * twin that never saw the bad files */
    cr_assert_eq(tal_adamw_state_save(opt, tmp("state_after.safetensors"), &err), TAL_OK);
    tal_tensor_set s0, s1;
    cr_assert_eq(tal_safetensors_read(&s0, good, &err), TAL_OK);
    cr_assert_eq(tal_safetensors_read(&s1, g_path, &err), TAL_OK);
    cr_assert_eq(s0.count, s1.count);
    for (int i = 0; i < s0.count; i++) expect_close(s1.items[i].t, s0.items[i].t, 0, 0);
    tal_tensor_set_free(&s0);
    tal_tensor_set_free(&s1);
    tal_adamw_destroy(opt);
    tal_params_destroy(p);
}

Test(nn_params_cases, ema_starts_at_the_values_and_swaps_back) {
    tal_params *p = two_params();
    fill_params(p, 2.0f);
    tal_ema *e = NULL;
    cr_assert_eq(tal_ema_create(&e, p, 0.5f, NULL), TAL_OK);
    cr_assert_eq(tal_ema_value(e, 1).data[3], 2.0f);
    fill_params(p, 4.0f);
    tal_ema_update(e, p);
    cr_assert_eq(tal_ema_value(e, 0).data[0], 3.0f);
    tal_ema_swap(e, p);
    cr_assert_eq(tal_params_at(p, 0)->value.data[0], 3.0f);
    cr_assert_eq(tal_ema_value(e, 0).data[0], 4.0f);
    tal_ema_swap(e, p);
    cr_assert_eq(tal_params_at(p, 0)->value.data[0], 4.0f);
    tal_ema_destroy(e);
    tal_params_destroy(p);
}

/* ---------------------------------------------------------------- safetensors edges ----- */
static void expect_read_error(const char *path, const char *tensor, const char *also) {
    tal_tensor_set set;
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_read(&set, path, &err), TAL_EFORMAT, "%s", err.msg);
    cr_assert_eq(set.count, 0);
    expect_msg(&err, strrchr(path, '/') + 1, tensor);
    if (also) expect_msg(&err, also, NULL);
}

Test(nn_params_cases, safetensors_headers_that_lie) {
    float d[4] = {1, 2, 3, 4};
    write_raw(tmp("dup.safetensors"),
              "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", d, 16);
    expect_read_error(g_path, "'w'", "twice");
    write_raw(tmp("huge_dim.safetensors"),
              "{\"big\":{\"dtype\":\"F32\",\"shape\":[1e30, 0],\"data_offsets\":[0,0]}}", d, 16);
    expect_read_error(g_path, "'big'", "shape[0]");
    write_raw(tmp("many.safetensors"),
              "{\"many\":{\"dtype\":\"F32\",\"shape\":[1e15, 1e15],\"data_offsets\":[0,16]}}", d,
              16);
    expect_read_error(g_path, "'many'", "need");
    write_raw(tmp("frac_dim.safetensors"),
              "{\"frac\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,6]}}", d, 16);
    expect_read_error(g_path, "'frac'", "shape[0]");
    write_raw(tmp("str_offsets.safetensors"),
              "{\"s\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[\"0\",\"0\"]}}", d, 16);
    expect_read_error(g_path, "'s'", "data_offsets");
    write_raw(tmp("frac_offsets.safetensors"),
              "{\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4.5]}}", d, 16);
    expect_read_error(g_path, "'f'", "data_offsets");
    write_raw(tmp("one_offset.safetensors"),
              "{\"o\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", d, 16);
    expect_read_error(g_path, "'o'", "data_offsets");
    write_raw(tmp("dtype_num.safetensors"),
              "{\"n\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", d, 16);
    expect_read_error(g_path, "'n'", "dtype");
}

Test(nn_params_cases, safetensors_write_refusals_leave_no_file) {
    float d[2] = {1, 2};
    tal_named_tensor meta = {"__metadata__", tal_t1(d, 2), "F32"};
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_write(tmp("reserved.safetensors"), &meta, 1, NULL, &err),
                 TAL_EINVAL);
    expect_msg(&err, "reserved.safetensors", "__metadata__");
    cr_assert_null(fopen(g_path, "rb"));
    cr_assert_eq(tal_safetensors_write(tmp("no/such/folder/x.safetensors"), &meta, 0, NULL, &err),
                 TAL_EIO);
    expect_msg(&err, "no/such/folder/x.safetensors", NULL);
    cr_assert_eq(tal_safetensors_write(tmp("badmeta.safetensors"), &meta, 0, "[1]", &err),
                 TAL_EINVAL);
    expect_msg(&err, "badmeta.safetensors", "metadata");
    /* nothing named *.tmp.* is left in the folder */
    DIR *dir = opendir(TEST_TMP);
    cr_assert_not_null(dir);
    for (struct dirent *de; (de = readdir(dir));)
        cr_assert(!strstr(de->d_name, "reserved.safetensors") &&
                      !strstr(de->d_name, "badmeta.safetensors"),
                  "left behind: %s", de->d_name);
    closedir(dir);
}

Test(nn_params_cases, safetensors_empty_and_scalar_tensors_round_trip) {
    float s = 42.0f, none = 0;
    int64_t zero_shape[2] = {0, 5};
    tal_named_tensor items[3] = {{"scalar", tal_tensor_of(&s, 0, NULL), "F32"},
                                 {"empty", tal_tensor_of(&none, 2, zero_shape), "F32"},
                                 {"after", tal_t1(&s, 1), "F32"}};
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_write(tmp("shapes.safetensors"), items, 3, NULL, &err), TAL_OK,
                 "%s", err.msg);
    tal_tensor_set set;
    cr_assert_eq(tal_safetensors_read(&set, g_path, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(set.count, 3);
    const tal_named_tensor *t = tal_tensor_set_find(&set, "scalar");
    cr_assert(t && t->t.ndim == 0 && tal_tensor_numel(t->t) == 1 && t->t.data[0] == 42.0f);
    t = tal_tensor_set_find(&set, "empty");
    cr_assert(t && t->t.ndim == 2 && t->t.shape[0] == 0 && t->t.shape[1] == 5);
    cr_assert_eq(tal_tensor_set_find(&set, "after")->t.data[0], 42.0f);
    cr_assert_null(set.metadata_json);
    tal_tensor_set_free(&set);
    tal_tensor_set_free(&set); /* a freed set is empty and may be freed again */
}

/* ---------------------------------------------------------------- half precision ------- */
static uint32_t bits_of(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* Rounding as torch's .half() / .bfloat16() (nearest even), bit for bit, over 3000 magnitudes
 * from 1e-9 to 1e5 and the edges: subnormals, ties, 65504 / 65520 (overflow to inf), -0. */
Test(nn_params_cases, half_rounding_matches_torch_bit_for_bit) {
    fixture fx;
    fixture_load(&fx, "nn_cases_half");
    tal_tensor x = fixture_get(&fx, "x"), f16 = fixture_get(&fx, "f16");
    tal_tensor bf16 = fixture_get(&fx, "bf16");
    for (int64_t i = 0; i < tal_tensor_numel(x); i++) {
        float h = tal_f16_to_f32(tal_f32_to_f16(x.data[i]));
        float b = tal_bf16_to_f32(tal_f32_to_bf16(x.data[i]));
        cr_assert_eq(bits_of(h), bits_of(f16.data[i]), "f16(%.9g) = %.9g, torch %.9g",
                     x.data[i], h, f16.data[i]);
        cr_assert_eq(bits_of(b), bits_of(bf16.data[i]), "bf16(%.9g) = %.9g, torch %.9g",
                     x.data[i], b, bf16.data[i]);
    }
    fixture_free(&fx);
}

/* Every 16-bit pattern survives widening and narrowing unchanged (NaNs stay NaN). */
Test(nn_params_cases, every_half_pattern_round_trips) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tal_f16_to_f32((uint16_t)h), b = tal_bf16_to_f32((uint16_t)h);
        if (isnan(f))
            cr_assert(isnan(tal_f16_to_f32(tal_f32_to_f16(f))), "f16 NaN 0x%04x", h);
        else
            cr_assert_eq(tal_f32_to_f16(f), h, "f16 0x%04x -> %.9g -> 0x%04x", h, f,
                         tal_f32_to_f16(f));
        if (isnan(b))
            cr_assert(isnan(tal_bf16_to_f32(tal_f32_to_bf16(b))), "bf16 NaN 0x%04x", h);
        else
            cr_assert_eq(tal_f32_to_bf16(b), h, "bf16 0x%04x -> %.9g -> 0x%04x", h, b,
                         tal_f32_to_bf16(b));
    }
}
