/* tests/test_heads_model.c: the ActionFormer head against the PyTorch reference of
 * tests/fixtures_heads.py (global attention + PE + label smoothing; local window 9; the
 * ActionFormer variant with window 5): forward
 * per level, gradients of every parameter and of the input, targets, losses and their
 * gradients; finite differences of the backward in training mode (drop-path on); planning. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "heads_check.h"

typedef struct model {
    tal_head_config cfg;
    tal_params *params;
    tal_head *head;
} model;

static void model_make(model *m, const tal_head_config *cfg, int max_batch) {
    tal_err err = {0};
    m->cfg = *cfg;
    m->params = tal_params_create();
    int gd = tal_params_add_group(m->params, "decay", 1.0f, 0.05f);
    int gn = tal_params_add_group(m->params, "no_decay", 1.0f, 0.0f);
    cr_assert_eq(tal_head_create(&m->head, cfg, m->params, "", gd, gn, max_batch, &err), TAL_OK,
                 "%s", err.msg);
    cr_assert_eq(tal_params_allocate(m->params, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_head_init(m->head, 1, &err), TAL_OK, "%s", err.msg);
}

static void model_free(model *m) {
    tal_head_destroy(m->head);
    tal_params_destroy(m->params);
}

static void load_params(model *m, const fixture *fx) {
    char name[200];
    for (int i = 0; i < tal_params_count(m->params); i++) {
        tal_param *p = tal_params_at(m->params, i);
        snprintf(name, sizeof name, "param.%s", p->name);
        tal_tensor v = fixture_get(fx, name);
        cr_assert_eq(tal_tensor_numel(v), tal_tensor_numel(p->value), "%s", p->name);
        tal_copy(p->value, v);
    }
}

/* Video b of a [B, P, K] fixture tensor, as the [P, K] the head fills per video. */
static tal_tensor video_of(tal_tensor batch, int b) {
    cr_assert_eq(batch.ndim, 3);
    return tal_tensor_reshape(tal_tensor_slice0(batch, b, 1), 2, &batch.shape[1]);
}

static void check_fixture(const char *name, int win, int pe, float smoothing,
                          tal_head_variant variant) {
    fixture fx;
    fixture_load(&fx, name);
    tal_head_config cfg;
    small_config(&cfg, win, pe, smoothing);
    cfg.variant = variant;
    model m;
    model_make(&m, &cfg, 2);
    load_params(&m, &fx);
    tal_tensor x = fixture_get(&fx, "x"), mask = fixture_get(&fx, "mask");
    tal_head_set_train(m.head, 0, 0);
    tal_head_forward(m.head, x, mask);
    char n[200];
    tal_tensor d_cls[3], d_reg[3];
    for (int l = 0; l < 3; l++) {
        snprintf(n, sizeof n, "cls.%d", l);
        /* fp32 through ~15 layers vs a float64 reference: rel 1e-5 (atol for values near 0) */
        expect_close(tal_head_cls(m.head, l), fixture_get(&fx, n), 1e-5, 1e-5);
        snprintf(n, sizeof n, "reg.%d", l);
        expect_close(tal_head_reg(m.head, l), fixture_get(&fx, n), 1e-5, 1e-5);
        snprintf(n, sizeof n, "d_cls.%d", l);
        d_cls[l] = fixture_get(&fx, n);
        snprintf(n, sizeof n, "d_reg.%d", l);
        d_reg[l] = fixture_get(&fx, n);
    }
    tal_params_zero_grad(m.params);
    tal_tensor dx = test_tensor_like(x);
    tal_head_backward_from(m.head, d_cls, d_reg, dx);
    expect_close(dx, fixture_get(&fx, "grad.x"), 1e-4, 1e-4);
    for (int i = 0; i < tal_params_count(m.params); i++) {
        tal_param *p = tal_params_at(m.params, i);
        snprintf(n, sizeof n, "grad.%s", p->name);
        tal_tensor want = fixture_get(&fx, n);
        /* gradients sum over B x T x C products: fp32 rounding, absolute part for near-zeros */
        expect_close_impl(p->name, p->grad, want, 1e-4, 1e-4, __FILE__, __LINE__);
    }

    /* targets and losses (train mode for the normaliser, no drop-path: eval forward) */
    tal_head_gt gt[2];
    int labels[2][8];
    for (int b = 0; b < 2; b++) gt_of(&fx, b, &gt[b], labels[b]);
    tal_head_forward(m.head, x, mask);
    int P = tal_head_n_points(m.head);
    cr_assert_eq(P, 32 + 16 + 8);
    tal_tensor ct = fixture_get(&fx, "loss.cls_target"), rt = fixture_get(&fx, "loss.reg_target");
    for (int b = 0; b < 2; b++) {
        tal_tensor c = test_tensor(2, (int64_t[]){P, 3}), r = test_tensor(2, (int64_t[]){P, 2});
        tal_head_targets(m.head, &gt[b], c.data, r.data);
        expect_close(c, video_of(ct, b), 0, 0);
        expect_close(r, video_of(rt, b), 1e-6, 1e-6);
    }
    tal_head_losses L;
    tal_err err = {0};
    tal_params_zero_grad(m.params);
    cr_assert_eq(tal_head_loss(m.head, gt, 1, &L, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(L.num_pos, (int)fixture_scalar(&fx, "loss.num_pos"));
    cr_assert_float_eq(L.normalizer, fixture_scalar(&fx, "loss.norm"), 1e-4);
    cr_assert(fabsf(L.cls - fixture_scalar(&fx, "loss.cls")) <= 1e-5 + 1e-4 * fabsf(L.cls),
              "cls loss %g vs %g", L.cls, fixture_scalar(&fx, "loss.cls"));
    cr_assert(fabsf(L.reg - fixture_scalar(&fx, "loss.reg")) <= 1e-5 + 1e-4 * fabsf(L.reg),
              "reg loss %g vs %g", L.reg, fixture_scalar(&fx, "loss.reg"));
    cr_assert(L.num_pos > 4, "the fixture must have positives on several levels");
    tal_head_backward(m.head, dx);
    expect_close(dx, fixture_get(&fx, "loss.grad.x"), 1e-5, 1e-4);
    for (int i = 0; i < tal_params_count(m.params); i++) {
        tal_param *p = tal_params_at(m.params, i);
        snprintf(n, sizeof n, "loss.grad.%s", p->name);
        if (!fixture_has(&fx, n)) continue;
        expect_close_impl(p->name, p->grad, fixture_get(&fx, n), 1e-5, 1e-4, __FILE__, __LINE__);
    }
    model_free(&m);
    fixture_free(&fx);
}

Test(heads_model, global_attention_pe_matches_torch) {
    check_fixture("heads_global", -1, 1, 0.1f, TAL_HEAD_OPENTAD);
}
Test(heads_model, local_attention_matches_torch) {
    check_fixture("heads_local", 9, 0, 0.0f, TAL_HEAD_OPENTAD);
}
Test(heads_model, actionformer_variant_matches_torch) {
    check_fixture("heads_actionformer", 5, 0, 0.0f, TAL_HEAD_ACTIONFORMER);
}

/* ---------------------------------------------------------------- finite differences ---- */
typedef struct fd_ctx {
    model *m;
    tal_tensor x, mask, w_cls[3], w_reg[3];
} fd_ctx;

static double objective(void *vctx) {
    fd_ctx *c = vctx;
    tal_head_forward(c->m->head, c->x, c->mask);
    double s = 0;
    for (int l = 0; l < 3; l++)
        s += test_dot(tal_head_cls(c->m->head, l), c->w_cls[l]) +
             test_dot(tal_head_reg(c->m->head, l), c->w_reg[l]);
    return s;
}

/* Checks the analytic gradient of a few entries of a tensor against central differences.
 * The model has ReLU and max-pool kinks, and runs in fp32: a step of 1e-3 is small enough for
 * most entries but a few straddle a kink, so each tensor must agree on most of its entries (a
 * broken layer disagrees on all of them) and the whole model on 95 %. */
static int g_ok, g_checked;
static void fd_check(fd_ctx *c, const char *what, tal_tensor value, tal_tensor grad, int stride) {
    int64_t n = tal_tensor_numel(value);
    int ok = 0, checked = 0;
    char first_bad[200] = "";
    for (int64_t i = 0; i < n; i += stride) {
        float keep = value.data[i];
        double h = 3e-4 * (fabs(keep) > 1 ? fabs(keep) : 1);
        value.data[i] = (float)(keep + h);
        double up = objective(c);
        value.data[i] = (float)(keep - h);
        double down = objective(c);
        value.data[i] = keep;
        double num = (up - down) / ((double)(float)(keep + h) - (double)(float)(keep - h));
        double ana = grad.data[i];
        if (fabs(num - ana) <= 1e-2 + 5e-2 * fabs(ana)) ok++;
        else if (!first_bad[0])
            snprintf(first_bad, sizeof first_bad, "[%lld]: analytic %.6g, numeric %.6g",
                     (long long)i, ana, num);
        checked++;
    }
    cr_assert(checked > 0);
    cr_assert(ok * 2 >= checked, "%s: %d of %d entries agree; first bad %s", what, ok,
              checked, first_bad);
    g_ok += ok;
    g_checked += checked;
}

static void fd_run(int win, int pe, tal_head_variant variant, uint64_t step) {
    tal_head_config cfg;
    small_config(&cfg, win, pe, 0);
    cfg.variant = variant;
    cfg.path_pdrop = 0.5f; /* drop-path on: some samples dropped in some blocks */
    cfg.seed = 11;
    model m;
    model_make(&m, &cfg, 2);
    /* layer scales 1e-4 would hide the blocks from the differences: make them O(1) */
    for (int i = 0; i < tal_params_count(m.params); i++) {
        tal_param *p = tal_params_at(m.params, i);
        if (strstr(p->name, "drop_path")) test_fill_uniform(p->value, 100 + i);
        /* ActionFormer: LN biases off 0, so padded positions hold relu(beta) off the kink */
        if (variant == TAL_HEAD_ACTIONFORMER && strstr(p->name, "norm.bias"))
            tal_fill(p->value, 0.25f);
    }
    fd_ctx c = {.m = &m};
    g_ok = g_checked = 0;
    c.x = test_tensor(3, (int64_t[]){2, 6, 32});
    test_fill_uniform(c.x, 1);
    c.mask = test_tensor(2, (int64_t[]){2, 32});
    tal_fill(c.mask, 1.0f);
    for (int t = 23; t < 32; t++) c.mask.data[32 + t] = 0;
    for (int l = 0; l < 3; l++) {
        c.w_cls[l] = test_tensor(3, (int64_t[]){2, 3, 32 >> l});
        c.w_reg[l] = test_tensor(3, (int64_t[]){2, 2, 32 >> l});
        test_fill_uniform(c.w_cls[l], 20 + l);
        test_fill_uniform(c.w_reg[l], 30 + l);
    }
    tal_head_set_train(m.head, 1, step);
    objective(&c);
    tal_params_zero_grad(m.params);
    tal_tensor dx = test_tensor_like(c.x);
    tal_head_backward_from(m.head, c.w_cls, c.w_reg, dx);
    fd_check(&c, "x", c.x, dx, 37);
    for (int i = 0; i < tal_params_count(m.params); i++) {
        tal_param *p = tal_params_at(m.params, i);
        int64_t n = tal_tensor_numel(p->value);
        fd_check(&c, p->name, p->value, p->grad, n > 24 ? (int)(n / 5) + 1 : 3);
    }
    cr_assert(g_ok * 100 >= g_checked * 90, "%d of %d entries agree", g_ok, g_checked);
    model_free(&m);
}

Test(heads_model, backward_matches_finite_differences_global) {
    fd_run(-1, 1, TAL_HEAD_OPENTAD, 3);
}
Test(heads_model, backward_matches_finite_differences_local) {
    fd_run(3, 0, TAL_HEAD_OPENTAD, 3);
}
/* Item 1 is padded from 23: the unmasked relu(beta) reaches the next conv at the boundary.
 * Drop-path step 4: step 3's dropped samples put a kink right at these parameters (either
 * variant, once the LN biases are 0.25), which central differences cannot see through. */
Test(heads_model, backward_matches_finite_differences_actionformer) {
    fd_run(3, 0, TAL_HEAD_ACTIONFORMER, 4);
}

Test(heads_model, drop_path_changes_training_output_only) {
    tal_head_config cfg;
    small_config(&cfg, -1, 0, 0);
    cfg.path_pdrop = 0.5f;
    model m;
    model_make(&m, &cfg, 2);
    tal_tensor x = test_tensor(3, (int64_t[]){2, 6, 32}), mask = test_tensor(2, (int64_t[]){2, 32});
    test_fill_uniform(x, 5);
    tal_fill(mask, 1.0f);
    tal_head_set_train(m.head, 0, 0);
    tal_head_forward(m.head, x, mask);
    tal_tensor a = test_clone(tal_head_cls(m.head, 0));
    tal_head_forward(m.head, x, mask);
    expect_close(tal_head_cls(m.head, 0), a, 0, 0); /* eval: deterministic */
    int differs = 0;
    for (uint64_t step = 0; step < 4 && !differs; step++) {
        tal_head_set_train(m.head, 1, step);
        tal_head_forward(m.head, x, mask);
        tal_tensor b = tal_head_cls(m.head, 0);
        for (int64_t i = 0; i < tal_tensor_numel(b); i++) differs |= b.data[i] != a.data[i];
    }
    cr_assert(differs, "drop-path never dropped anything in 4 steps at p = 0.5");
    model_free(&m);
}

/* tal_head_prepare again (what follows tal_params_move) remakes the arenas and the position
 * table: the same outputs, bit for bit. */
Test(heads_model, prepare_again_gives_the_same_outputs) {
    tal_head_config cfg;
    small_config(&cfg, 5, 1, 0);
    model m;
    model_make(&m, &cfg, 2);
    tal_tensor x = test_tensor(3, (int64_t[]){2, 6, 32}), mask = test_tensor(2, (int64_t[]){2, 32});
    test_fill_uniform(x, 9);
    for (int t = 0; t < 32; t++) mask.data[t] = 1, mask.data[32 + t] = t < 20;
    tal_head_forward(m.head, x, mask);
    tal_tensor c[3], r[3];
    for (int l = 0; l < 3; l++) {
        c[l] = test_clone(tal_head_cls(m.head, l));
        r[l] = test_clone(tal_head_reg(m.head, l));
    }
    tal_err err = {0};
    cr_assert_eq(tal_head_prepare(m.head, &err), TAL_OK, "%s", err.msg);
    tal_head_forward(m.head, x, mask);
    for (int l = 0; l < 3; l++) {
        expect_close(tal_head_cls(m.head, l), c[l], 0, 0);
        expect_close(tal_head_reg(m.head, l), r[l], 0, 0);
    }
    size_t up = 1, down = 1, dec = 1; /* a CPU head moves nothing across a bus */
    tal_head_bus_bytes(m.head, 2, &up, &down, &dec);
    cr_expect(up == 0 && down == 0 && dec == 0);
    model_free(&m);
}

/* Changing features in the padded tail must not change any valid output, except through the
 * first embedding conv's receptive field (position 17 next to the last valid 16): as in OpenTAD
 * and ActionFormer, the input is not masked before that conv. In ActionFormer's variant the
 * padded positions hold relu(beta) after each conv unit, which does not depend on the input. */
static void masked_positions_do_not_leak(tal_head_variant variant) {
    tal_head_config cfg;
    small_config(&cfg, -1, 1, 0);
    cfg.variant = variant;
    model m;
    model_make(&m, &cfg, 1);
    for (int i = 0; i < tal_params_count(m.params); i++) /* relu(beta) > 0 in some channels */
        if (strstr(tal_params_at(m.params, i)->name, "norm.bias"))
            test_fill_uniform(tal_params_at(m.params, i)->value, 300 + i);
    tal_tensor x = test_tensor(3, (int64_t[]){1, 6, 32}), mask = test_tensor(2, (int64_t[]){1, 32});
    test_fill_uniform(x, 7);
    for (int t = 0; t < 17; t++) mask.data[t] = 1;
    tal_head_forward(m.head, x, mask);
    tal_tensor c0[3], r0[3];
    for (int l = 0; l < 3; l++) {
        c0[l] = test_clone(tal_head_cls(m.head, l));
        r0[l] = test_clone(tal_head_reg(m.head, l));
    }
    for (int ch = 0; ch < 6; ch++)
        for (int t = 18; t < 32; t++) x.data[ch * 32 + t] = 50.0f * (float)(t - ch);
    tal_head_forward(m.head, x, mask);
    for (int l = 0; l < 3; l++) {
        expect_close(tal_head_cls(m.head, l), c0[l], 1e-6, 1e-6);
        expect_close(tal_head_reg(m.head, l), r0[l], 1e-6, 1e-6);
    }
    model_free(&m);
}

Test(heads_model, masked_positions_do_not_leak) { masked_positions_do_not_leak(TAL_HEAD_OPENTAD); }
Test(heads_model, masked_positions_do_not_leak_actionformer) {
    masked_positions_do_not_leak(TAL_HEAD_ACTIONFORMER);
}

Test(heads_model, names_and_init_follow_opentad) {
    tal_head_config cfg;
    tal_head_config_thumos(&cfg);
    cfg.in_channels = 16; /* small input; every other size as in the THUMOS config */
    cfg.channels = 32;
    cfg.max_seq_len = 64;
    model m;
    model_make(&m, &cfg, 1);
    tal_param *p = tal_params_find(m.params, "rpn_head.cls_head.bias");
    cr_assert_not_null(p);
    cr_assert_eq(p->value.shape[0], 20);
    cr_assert_float_eq(p->value.data[0], -4.59512f, 1e-4);
    p = tal_params_find(m.params, "projection.branch.4.drop_path_mlp.scale");
    cr_assert_not_null(p);
    cr_assert_float_eq(p->value.data[3], 1e-4f, 1e-9);
    cr_assert_not_null(tal_params_find(m.params, "projection.stem.1.attn.value_conv.conv.weight"));
    cr_assert_not_null(tal_params_find(m.params, "projection.embed.1.norm.bias"));
    cr_assert_not_null(tal_params_find(m.params, "neck.fpn_norms.5.weight"));
    cr_assert_not_null(tal_params_find(m.params, "rpn_head.reg_convs.1.conv.weight"));
    p = tal_params_find(m.params, "rpn_head.scale.5.scale");
    cr_assert_not_null(p);
    cr_assert_eq(p->value.ndim, 0);
    cr_assert_float_eq(p->value.data[0], 1.0f, 0);
    p = tal_params_find(m.params, "projection.embed.0.conv.weight");
    cr_assert_eq(p->group, 0, "conv weights decay");
    cr_assert_eq(tal_params_find(m.params, "projection.embed.0.norm.weight")->group, 1);
    float bound = 1.0f / sqrtf(16 * 3), mx = 0;
    for (int64_t i = 0; i < tal_tensor_numel(p->value); i++)
        mx = fmaxf(mx, fabsf(p->value.data[i]));
    cr_assert(mx <= bound && mx > 0.8f * bound, "kaiming-uniform bound %g, max %g", bound, mx);
    size_t bwd = 0, act = tal_head_arena_bytes(m.head, &bwd);
    cr_assert(act > 0 && bwd > 0);
    model_free(&m);
}

Test(heads_model, config_from_json_and_errors) {
    tal_head_config c;
    tal_head_config_anet(&c);
    tal_err err = {0};
    const char *json = "{\"channels\": 128, \"arch\": [2, 2, 3], \"mha_win\": 7,"
                       " \"regression_range\": [[0,4],[4,8],[8,16],[16,1e4]]}";
    cr_assert_eq(tal_head_config_from_json(&c, "cfg.json", json, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(c.channels, 128);
    cr_assert_eq(c.arch[2], 3);
    cr_assert_eq(c.mha_win, 7);
    cr_assert_float_eq(c.regression_range[3][1], 1e4f, 1);
    cr_assert_eq(tal_head_config_from_json(&c, "cfg.json", "{\"chanels\": 1}", &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "chanels") && strstr(err.msg, "cfg.json"), "%s", err.msg);
    cr_assert_eq(tal_head_config_from_json(&c, "cfg.json", "{\"mha_win\": 4}", &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "mha_win"), "%s", err.msg);
    cr_assert_eq(tal_head_config_from_json(&c, "cfg.json", "{\"n_head\": 1.5}", &err), TAL_EINVAL);
    cr_assert_eq(tal_head_config_from_json(&c, "cfg.json", "{\"max_seq_len\": 100}", &err),
                 TAL_EINVAL);
    cr_assert(strstr(err.msg, "max_seq_len"), "%s", err.msg);
    cr_assert_eq(tal_head_config_from_json(&c, "cfg.json", "[1]", &err), TAL_EINVAL);
    /* ActionFormer's model and post-processing */
    cr_assert_eq(c.variant, TAL_HEAD_OPENTAD);
    cr_assert(c.clip_segments == 1 && c.round_results == 1, "OpenTAD clips and rounds");
    json = "{\"variant\": \"actionformer\", \"pre_nms_per_level\": 1, \"duration_thresh\": 0.05,"
           " \"clip_segments\": 0, \"voting_iou_weight\": 1}";
    cr_assert_eq(tal_head_config_from_json(&c, "cfg.json", json, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(c.variant, TAL_HEAD_ACTIONFORMER);
    cr_assert(c.pre_nms_per_level == 1 && c.clip_segments == 0 && c.voting_iou_weight == 1);
    cr_assert_float_eq(c.duration_thresh, 0.05f, 1e-9);
    static const char *bad[][2] = {{"{\"variant\": \"af\"}", "variant"},
                                   {"{\"variant\": 1}", "variant"},
                                   {"{\"clip_segments\": 2}", "clip_segments"},
                                   {"{\"pre_nms_per_level\": -1}", "pre_nms_per_level"},
                                   {"{\"voting_iou_weight\": 3}", "voting_iou_weight"},
                                   {"{\"duration_thresh\": -0.1}", "duration_thresh"},
                                   {"{\"round_results\": 2}", "round_results"},
                                   {"{\"remove_duplicates\": 2}", "remove_duplicates"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(tal_head_config_from_json(&c, "cfg.json", bad[i][0], &err), TAL_EINVAL,
                     "%s", bad[i][0]);
        cr_assert(strstr(err.msg, bad[i][1]) && strstr(err.msg, "cfg.json"), "%s", err.msg);
    }
    cr_assert_eq(c.variant, TAL_HEAD_ACTIONFORMER, "a failed parse leaves the config as it was");
}
