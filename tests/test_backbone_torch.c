/* tests/test_backbone_torch.c: Video Swin 3D, ResNet3D and SlowFast forward and gradients,
 * original and rewired wiring, against the PyTorch reference in tests/fixtures_backbone.py
 * (float64 autograd). */
#include <math.h>
#include <string.h>

#include "backbone/backbone.h"
#include "testlib.h"

/* The weight formula of fixtures_backbone.py: param_values. */
static uint32_t fnv1a(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static void fill_formula(tal_params *p) {
    for (int i = 0; i < tal_params_count(p); i++) {
        tal_param *q = tal_params_at(p, i);
        const char *n = q->name;
        size_t len = strlen(n);
        int64_t cnt = tal_tensor_numel(q->value);
        double h = (double)(fnv1a(n) % 997);
        int table = strstr(n, "relative_position_bias_table") != NULL;
        int bias = len > 5 && !strcmp(n + len - 5, ".bias");
        int normw = strstr(n, "norm") && len > 7 && !strcmp(n + len - 7, ".weight");
        int rvar = strstr(n, "running_var") != NULL, rmean = strstr(n, "running_mean") != NULL;
        int bnw = len > 9 && !strcmp(n + len - 9, "bn.weight");
        double fan_in = (double)(cnt / q->value.shape[0]);
        for (int64_t j = 0; j < cnt; j++) {
            double s = sin(0.61 * (double)j + 0.17 * h + 0.5);
            double v = rvar    ? 0.5 + 0.25 * (s + 1)
                       : rmean ? 0.1 * s
                       : bnw   ? 1.0 + 0.1 * s
                       : table ? 0.5 * s
                       : bias  ? 0.05 * s
                       : normw ? 1.0 + 0.1 * s
                               : 1.5 / sqrt(fan_in) * s;
            q->value.data[j] = (float)v;
        }
    }
}

typedef struct swin_case {
    const char *fixture;
    int embed, n_stages, depths[4], heads[4], window[3], patch[3];
    int B, T, H, W;
    const char *preset;
    double feats_atol; /* features are O(1) after the final LN */
    /* relative to the largest entry (0: the Swin defaults below) */
    double feats_rel, grad_rel;
} swin_case;

static const swin_case ONE_STAGE = {"backbone_swin_1stage", 8, 1, {2}, {2}, {4, 4, 4},
                                    {2, 2, 2}, 2, 12, 12, 12, "swin_small_test", 2e-5, 0, 0};
static const swin_case MODEL = {"backbone_swin_model", 8, 2, {2, 2}, {1, 2}, {2, 3, 3},
                                {2, 4, 4}, 1, 7, 20, 20, "swin_small_test", 5e-5, 0, 0};
/* ResNet3D: temporal stem 3, stage 2 inflated; SlowFast: SlowFast-101's depths (a 22-block
 * chain in stage 3 of both pathways), slow stem 2 channels, tau 4, alpha 2, beta_inv 2, fusion
 * kernel 5, B = 2. The
 * issue's tolerances: 1e-5 forward, 1e-4 gradients, relative to the largest entry. */
static const swin_case RESNET = {"backbone_resnet_model", 4, 2, {2, 3}, {0}, {0}, {0},
                                 1, 4, 20, 20, "resnet3d_small", 0, 1e-5, 1e-4};
static const swin_case SLOWFAST = {"backbone_slowfast_r101", 2, 4, {3, 4, 23, 3}, {0}, {0}, {0},
                                   2, 16, 40, 40, "slowfast_r101", 0, 1e-5, 1e-4};

/* fixtures_backbone.py's video_formula (seed 14): the SlowFast clip is not stored. */
static tal_tensor formula_video(const swin_case *c, int seed) {
    tal_tensor v = test_tensor(5, (int64_t[]){c->B, 3, c->T, c->H, c->W});
    for (int64_t j = 0; j < tal_tensor_numel(v); j++)
        v.data[j] = (float)(0.9 * sin(0.37 * (double)j + 0.11 * seed));
    return v;
}

static tal_backbone_config config_of(const swin_case *c, tal_stage_mode mode) {
    tal_backbone_config cfg;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_preset(&cfg, c->preset, &err), TAL_OK);
    if (cfg.arch != TAL_ARCH_SWIN) {
        cfg.embed_dim = c->embed;
        cfg.n_stages = c->n_stages;
        for (int s = 0; s < 4; s++) cfg.depths[s] = c->depths[s], cfg.mode[s] = mode;
        cfg.drop_path_rate = 0;
        if (cfg.arch == TAL_ARCH_RESNET3D) {
            cfg.stem_kt = 3;
            cfg.inflate[0] = 0, cfg.inflate[1] = 1;
        } else {
            cfg.alpha = 2, cfg.beta_inv = 2, cfg.fusion_kernel = 5;
        }
        return cfg;
    }
    cfg.embed_dim = c->embed;
    cfg.n_stages = c->n_stages;
    for (int s = 0; s < 4; s++) {
        cfg.depths[s] = c->depths[s];
        cfg.heads[s] = c->heads[s];
        cfg.mode[s] = mode;
    }
    memcpy(cfg.window, c->window, sizeof cfg.window);
    memcpy(cfg.patch, c->patch, sizeof cfg.patch);
    cfg.drop_path_rate = 0; /* torch cannot draw our Philox masks */
    cfg.freeze_norms = 0;   /* so the LayerNorm gradients are checked too */
    return cfg;
}

/* Runs a training forward and backward of loss = sum(feats * wts); compares with the fixture. */
static void check_against_torch(const swin_case *c, tal_stage_mode mode, const char *ref) {
    fixture fx;
    fixture_load(&fx, c->fixture);
    tal_backbone_config cfg = config_of(c, mode);
    tal_err err = {0};
    tal_params *p = tal_params_create();
    int g = tal_params_add_group(p, "bb", 1, 0.05f), gnd = tal_params_add_group(p, "nd", 1, 0);
    tal_backbone *bb = NULL;
    cr_assert_eq(tal_backbone_create(&bb, &cfg, p, g, gnd, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    fill_formula(p);
    cr_assert_eq(tal_backbone_prepare(bb, c->B, c->T, c->H, c->W, &err), TAL_OK, "%s", err.msg);
    char name[256];
    snprintf(name, sizeof name, "%s.feats", ref);
    tal_tensor want = fixture_get(&fx, name);
    tal_tensor feats = test_tensor_like(want);
    tal_tensor video = c == &SLOWFAST ? formula_video(c, 14) : fixture_get(&fx, "video");
    tal_backbone_forward_train(bb, feats, video);
    /* fp32 vs float64. The two-stage model ends in a LayerNorm over 16 channels of few
     * tokens, which amplifies fp32 rounding (Debug and Release builds differ by 2e-5 there). */
    double fscale = 0;
    for (int64_t j = 0; j < tal_tensor_numel(want); j++) fscale = fmax(fscale, fabs(want.data[j]));
    if (c->feats_rel > 0)
        expect_close(feats, want, c->feats_rel * fscale, c->feats_rel);
    else
        expect_close(feats, want, c->feats_atol, 1e-5);
    /* inference gives the same features */
    tal_tensor feats2 = test_tensor_like(want);
    double recon = 0;
    tal_backbone_backward(bb, fixture_get(&fx, "wts"), &recon);
    tal_backbone_forward(bb, feats2, video);
    expect_close(feats2, feats, 0, 0);
    if (mode == TAL_STAGE_REVERSIBLE) {
        cr_assert(recon >= 0 && recon < 1e-4, "reconstruction error %g", recon);
        cr_log_info("%s reversible: stage-input reconstruction error %.3g (fp32)", c->fixture,
                    recon);
    }
    double worst_ratio = 0;
    for (int i = 0; i < tal_params_count(p); i++) {
        tal_param *q = tal_params_at(p, i);
        if (!q->trainable) continue; /* frozen BN: no gradient here, none in the fixture */
        snprintf(name, sizeof name, "%s.grad.%s", ref, q->name);
        tal_tensor gw = fixture_get(&fx, name);
        double scale = 0;
        for (int64_t j = 0; j < tal_tensor_numel(gw); j++)
            scale = fmax(scale, fabs(gw.data[j]));
        double worst = 0;
        for (int64_t j = 0; j < tal_tensor_numel(gw); j++)
            worst = fmax(worst, fabs(q->grad.data[j] - gw.data[j]));
        if (scale > 0) worst_ratio = fmax(worst_ratio, worst / scale);
        /* fp32 (OpenBLAS sums, float LayerNorm reductions) against float64 autograd through
         * two stages: bias and norm gradients sum O(1) terms over every token, so the
         * absolute part is relative to the largest entry of the gradient */
        if (c->grad_rel > 0)
            expect_close_impl(q->name, q->grad, gw, c->grad_rel * scale, c->grad_rel, __FILE__,
                              __LINE__);
        else
            expect_close_impl(q->name, q->grad, gw, 3e-4 * scale + 1e-7, 1e-3, __FILE__,
                              __LINE__);
    }
    cr_log_info("%s %s: worst gradient error / largest entry: %.3g", c->fixture,
                tal_stage_mode_name(mode), worst_ratio);
    tal_backbone_destroy(bb);
    tal_params_destroy(p);
    fixture_free(&fx);
    test_free_all();
}

Test(backbone_swin, one_stage_vanilla_matches_torch) {
    check_against_torch(&ONE_STAGE, TAL_STAGE_VANILLA, "vanilla");
}
Test(backbone_swin, one_stage_reversible_matches_torch_rewired) {
    check_against_torch(&ONE_STAGE, TAL_STAGE_REVERSIBLE, "rewired");
}
Test(backbone_swin, one_stage_rewired_stored_matches_torch_rewired) {
    check_against_torch(&ONE_STAGE, TAL_STAGE_REWIRED_STORED, "rewired");
}
Test(backbone_swin, model_vanilla_matches_torch) {
    check_against_torch(&MODEL, TAL_STAGE_VANILLA, "vanilla");
}
Test(backbone_swin, model_reversible_matches_torch_rewired) {
    check_against_torch(&MODEL, TAL_STAGE_REVERSIBLE, "rewired");
}
Test(backbone_swin, model_rewired_stored_matches_torch_rewired) {
    check_against_torch(&MODEL, TAL_STAGE_REWIRED_STORED, "rewired");
}
Test(backbone_resnet, vanilla_matches_torch) {
    check_against_torch(&RESNET, TAL_STAGE_VANILLA, "vanilla");
}
Test(backbone_resnet, reversible_matches_torch_rewired) {
    check_against_torch(&RESNET, TAL_STAGE_REVERSIBLE, "rewired");
}
Test(backbone_resnet, rewired_stored_matches_torch_rewired) {
    check_against_torch(&RESNET, TAL_STAGE_REWIRED_STORED, "rewired");
}
Test(backbone_slowfast, vanilla_matches_torch) {
    check_against_torch(&SLOWFAST, TAL_STAGE_VANILLA, "vanilla");
}
Test(backbone_slowfast, reversible_matches_torch_rewired) {
    check_against_torch(&SLOWFAST, TAL_STAGE_REVERSIBLE, "rewired");
}
Test(backbone_slowfast, rewired_stored_matches_torch_rewired) {
    check_against_torch(&SLOWFAST, TAL_STAGE_REWIRED_STORED, "rewired");
}
