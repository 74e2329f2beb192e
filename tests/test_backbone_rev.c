/* tests/test_backbone_rev.c: the generic residual-chain engine. A toy residual function checks
 * every mode against finite differences; the reversible backward (nothing stored) must give
 * the gradients of the rewired net with stored activations for every parameter and the input,
 * on Swin and on ResNet3D, with drop-path on; the planner's sizes must be the real ones. */
#include <math.h>
#include <string.h>

#include "backbone/backbone.h"
#include "testlib.h"

/* ---------------------------------------------------------------- a toy M --------------- */
/* M(x) = tanh(x W^T + b) on rows of x [N, C]. */
typedef struct toy {
    tal_tensor w, b, dw, db;
} toy;

static void *toy_forward(void *self, tal_tensor out, tal_tensor x, tal_arena *keep,
                         tal_arena *scratch, uint64_t step) {
    (void)scratch, (void)step;
    toy *t = self;
    tal_tensor *saved = keep ? tal_arena_bytes(keep, sizeof *saved) : NULL;
    tal_tensor pre = keep ? tal_arena_like(keep, x) : tal_tensor_none();
    if (!x.data) return saved;
    int64_t C = tal_tensor_cols(x), N = tal_tensor_numel(x) / C;
    for (int64_t r = 0; r < N; r++)
        for (int64_t o = 0; o < C; o++) {
            double a = t->b.data[o];
            for (int64_t i = 0; i < C; i++) a += (double)x.data[r * C + i] * t->w.data[o * C + i];
            out.data[r * C + o] = (float)tanh(a);
        }
    if (saved) {
        tal_copy(pre, out); /* keep tanh output */
        *saved = pre;
    }
    return saved;
}

static void toy_backward(void *self, tal_tensor dx, tal_tensor dout, tal_tensor x, void *saved,
                         tal_arena *scratch, uint64_t step) {
    (void)scratch, (void)step;
    toy *t = self;
    if (!dout.data) return;
    tal_tensor y = *(tal_tensor *)saved;
    int64_t C = tal_tensor_cols(x), N = tal_tensor_numel(x) / C;
    double g[16]; /* one row of dout read whole before dx's row is written (dx may be dout) */
    TAL_ASSERT(C <= 16);
    for (int64_t r = 0; r < N; r++) {
        for (int64_t o = 0; o < C; o++)
            g[o] = dout.data[r * C + o] * (1.0 - (double)y.data[r * C + o] * y.data[r * C + o]);
        for (int64_t o = 0; o < C; o++) {
            t->db.data[o] += (float)g[o];
            for (int64_t i = 0; i < C; i++) {
                t->dw.data[o * C + i] += (float)(g[o] * x.data[r * C + i]);
                dx.data[r * C + i] += (float)(g[o] * t->w.data[o * C + i]);
            }
        }
    }
}

#define NF 5
#define ROWS 3
#define COLS 4

typedef struct toy_chain {
    toy t[NF];
    tal_resfn fns[NF];
    tal_tensor x, wts;
    tal_stage_mode mode;
} toy_chain;

static void toy_make(toy_chain *c, tal_stage_mode mode) {
    for (int i = 0; i < NF; i++) {
        c->t[i].w = test_tensor(2, (int64_t[]){COLS, COLS});
        c->t[i].b = test_tensor(1, (int64_t[]){COLS});
        c->t[i].dw = test_tensor_like(c->t[i].w);
        c->t[i].db = test_tensor_like(c->t[i].b);
        test_fill_uniform(c->t[i].w, 10 + i);
        test_fill_uniform(c->t[i].b, 20 + i);
        c->fns[i] =
            (tal_resfn){.forward = toy_forward, .backward = toy_backward, .self = &c->t[i]};
    }
    c->x = test_tensor(2, (int64_t[]){ROWS, COLS});
    c->wts = test_tensor_like(c->x);
    test_fill_uniform(c->x, 1);
    test_fill_uniform(c->wts, 2);
    c->mode = mode;
}

static double toy_loss(void *ctx) {
    toy_chain *c = ctx;
    tal_arena *scratch = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&scratch, TAL_DEV_CPU, 1 << 16, &err), TAL_OK);
    tal_tensor y = test_tensor_like(c->x);
    tal_revstage_forward(c->fns, NF, c->mode, y, c->x, NULL, scratch, 0);
    tal_arena_destroy(scratch);
    return test_dot(y, c->wts);
}

/* Gradients of the input and of W_0, b_3 by the engine. */
static void toy_grads(toy_chain *c, tal_tensor dx, double *recon) {
    tal_arena *keep = NULL, *scratch = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&keep, TAL_DEV_CPU, 1 << 16, &err), TAL_OK);
    cr_assert_eq(tal_arena_create(&scratch, TAL_DEV_CPU, 1 << 16, &err), TAL_OK);
    tal_tensor y = test_tensor_like(c->x);
    tal_revstage *st = tal_revstage_forward(c->fns, NF, c->mode, y, c->x, keep, scratch, 0);
    tal_revstage_backward(c->fns, NF, c->mode, st, dx, c->wts, c->x, scratch, 0, recon);
    tal_arena_destroy(keep);
    tal_arena_destroy(scratch);
}

static void toy_check_fd(tal_stage_mode mode, int post_relu) {
    toy_chain c;
    toy_make(&c, mode);
    for (int i = 0; i < NF; i++) c.fns[i].post_relu = post_relu;
    tal_tensor dx = test_tensor_like(c.x), num = test_tensor_like(c.x);
    toy_grads(&c, dx, NULL);
    test_numeric_grad(num, c.x, toy_loss, &c, 1e-2);
    expect_close(dx, num, 2e-3, 2e-2); /* fp32 forward under central differences, h = 1e-2 */
    tal_tensor numw = test_tensor_like(c.t[0].w);
    test_numeric_grad(numw, c.t[0].w, toy_loss, &c, 1e-2);
    expect_close(c.t[0].dw, numw, 2e-3, 2e-2);
    tal_tensor numb = test_tensor_like(c.t[3].b);
    test_numeric_grad(numb, c.t[3].b, toy_loss, &c, 1e-2);
    expect_close(c.t[3].db, numb, 2e-3, 2e-2);
    test_free_all();
}

Test(backbone_rev, vanilla_chain_matches_finite_differences) {
    toy_check_fd(TAL_STAGE_VANILLA, 0);
}
/* ResNet's original wiring: z_n = relu(z_{n-1} + M_n(z_{n-1})) */
Test(backbone_rev, vanilla_post_relu_chain_matches_finite_differences) {
    toy_check_fd(TAL_STAGE_VANILLA, 1);
}
Test(backbone_rev, rewired_stored_matches_finite_differences) {
    toy_check_fd(TAL_STAGE_REWIRED_STORED, 0);
}
Test(backbone_rev, reversible_matches_finite_differences) {
    toy_check_fd(TAL_STAGE_REVERSIBLE, 0);
}

Test(backbone_rev, rewired_output_is_mean_of_last_two_streams) {
    /* z_1 = x + M1(x), z_2 = x + M2(z_1); y = (z_1 + z_2) / 2, written out by hand */
    toy_chain c;
    toy_make(&c, TAL_STAGE_REWIRED_STORED);
    tal_arena *scratch = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&scratch, TAL_DEV_CPU, 1 << 16, &err), TAL_OK);
    tal_tensor y = test_tensor_like(c.x), m = test_tensor_like(c.x);
    tal_revstage_forward(c.fns, 2, TAL_STAGE_REVERSIBLE, y, c.x, NULL, scratch, 0);
    tal_tensor z1 = test_clone(c.x), z2 = test_clone(c.x), want = test_tensor_like(c.x);
    toy_forward(&c.t[0], m, c.x, NULL, scratch, 0);
    tal_add(z1, z1, m);
    toy_forward(&c.t[1], m, z1, NULL, scratch, 0);
    tal_add(z2, z2, m);
    tal_add(want, z1, z2);
    tal_scale(want, want, 0.5f);
    expect_close(y, want, 1e-6, 1e-6);
    tal_arena_destroy(scratch);
    test_free_all();
}

/* ---------------------------------------------------------------- whole models ---------- */
typedef struct run_out {
    tal_params *p;
    tal_tensor feats;
    double recon;
    size_t keep_hw, scratch_hw;
} run_out;

static run_out run_model(const tal_backbone_config *cfg, tal_stage_mode mode, int B, int T,
                         int H, int W, uint64_t step) {
    tal_backbone_config c = *cfg;
    for (int s = 0; s < 4; s++) c.mode[s] = mode;
    tal_err err = {0};
    run_out r = {0};
    r.p = tal_params_create();
    int g = tal_params_add_group(r.p, "bb", 1, 0.05f), gnd = tal_params_add_group(r.p, "nd", 1, 0);
    tal_backbone *bb = NULL;
    cr_assert_eq(tal_backbone_create(&bb, &c, r.p, g, gnd, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_params_allocate(r.p, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    tal_backbone_init(bb, 7);
    cr_assert_eq(tal_backbone_prepare(bb, B, T, H, W, &err), TAL_OK, "%s", err.msg);
    tal_tensor video = test_tensor(5, (int64_t[]){B, 3, T, H, W});
    test_fill_uniform(video, 3);
    int Cout = tal_backbone_out_channels(&c), Tout = tal_backbone_out_frames(&c, T);
    r.feats = test_tensor(3, (int64_t[]){B, Cout, Tout});
    tal_tensor wts = test_tensor_like(r.feats);
    test_fill_uniform(wts, 4);
    tal_backbone_set_step(bb, step);
    tal_backbone_forward(bb, r.feats, video); /* the scratch arena serves inference too */
    tal_backbone_forward_train(bb, r.feats, video);
    tal_backbone_backward(bb, wts, &r.recon);
    /* the worst stage's reconstruction error is the one reported */
    double stages[TAL_BACKBONE_MAX_STAGES], worst = -1;
    int n_stages = tal_backbone_recon_errors(bb, stages);
    cr_assert_eq(n_stages, c.n_stages);
    for (int s = 0; s < n_stages; s++) worst = stages[s] > worst ? stages[s] : worst;
    cr_expect_eq(worst, r.recon, "per stage: worst %g, reported %g", worst, r.recon);
    if (mode == TAL_STAGE_REVERSIBLE)
        for (int s = 0; s < n_stages; s++)
            cr_expect(stages[s] >= 0 && stages[s] < 1e-4, "stage %d: %g", s, stages[s]);
    tal_backbone_high_water(bb, &r.keep_hw, &r.scratch_hw);
    tal_backbone_plan plan;
    cr_assert_eq(tal_backbone_plan_memory(&plan, &c, B, T, H, W, &err), TAL_OK, "%s", err.msg);
    /* The planner runs the same allocation sequence (the nn ops count their own scratch
     * while planning), so the sizes are equal, not close. */
    cr_assert_eq(plan.keep_bytes, r.keep_hw, "keep: plan %zu, used %zu", plan.keep_bytes,
                 r.keep_hw);
    cr_assert_eq(plan.scratch_bytes, r.scratch_hw, "scratch: plan %zu, used %zu",
                 plan.scratch_bytes, r.scratch_hw);
    tal_backbone_destroy(bb);
    return r;
}

/* Reversible vs stored rewired: same forward, same gradients for every parameter. */
static void check_reversible_equals_stored(const tal_backbone_config *cfg, int B, int T, int H,
                                           int W) {
    run_out st = run_model(cfg, TAL_STAGE_REWIRED_STORED, B, T, H, W, 5);
    run_out rv = run_model(cfg, TAL_STAGE_REVERSIBLE, B, T, H, W, 5);
    expect_close(rv.feats, st.feats, 1e-6, 1e-5);
    int n_checked = 0;
    for (int i = 0; i < tal_params_count(st.p); i++) {
        tal_param *a = tal_params_at(st.p, i), *b = tal_params_at(rv.p, i);
        if (!a->trainable) continue;
        double scale = 0;
        for (int64_t j = 0; j < tal_tensor_numel(a->grad); j++)
            scale = fmax(scale, fabs(a->grad.data[j]));
        /* reversible rebuilds inputs by subtraction: fp32 rounding of O(1) streams */
        expect_close_impl(a->name, b->grad, a->grad, 1e-4 * scale + 1e-9, 1e-4, __FILE__,
                          __LINE__);
        n_checked++;
    }
    cr_assert_gt(n_checked, 10);
    cr_assert(rv.recon >= 0 && rv.recon < 1e-3, "reconstruction error %g", rv.recon);
    cr_log_info("reversible vs stored: %d parameters, stage-input reconstruction error %.3g",
                n_checked, rv.recon);
    cr_assert(rv.keep_hw < st.keep_hw, "reversible keeps %zu, stored %zu", rv.keep_hw,
              st.keep_hw);
    tal_params_destroy(st.p);
    tal_params_destroy(rv.p);
    test_free_all();
}

Test(backbone_rev, swin_reversible_grads_equal_stored_with_drop_path) {
    tal_backbone_config cfg;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_preset(&cfg, "swin_small_test", &err), TAL_OK);
    cfg.embed_dim = 16;
    cfg.heads[0] = 1, cfg.heads[1] = 2, cfg.heads[2] = 2, cfg.heads[3] = 4;
    cfg.drop_path_rate = 0.5f; /* high, so that with B = 2 some samples are dropped */
    cfg.freeze_norms = 0;
    check_reversible_equals_stored(&cfg, 2, 12, 40, 40);
}

Test(backbone_rev, resnet_reversible_grads_equal_stored_with_drop_path) {
    tal_backbone_config cfg;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_preset(&cfg, "resnet3d_small", &err), TAL_OK);
    cfg.drop_path_rate = 0.5f;
    check_reversible_equals_stored(&cfg, 2, 4, 16, 16);
}

/* Both pathways, laterals and a long chain, with drop-path; the planner's sizes are checked in
 * run_model for SlowFast too. */
Test(backbone_rev, slowfast_reversible_grads_equal_stored_with_drop_path) {
    tal_backbone_config cfg;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_preset(&cfg, "slowfast_r101", &err), TAL_OK);
    cfg.embed_dim = 8;
    cfg.beta_inv = 4;
    cfg.depths[0] = 2, cfg.depths[1] = 3, cfg.depths[2] = 6, cfg.depths[3] = 2;
    cfg.drop_path_rate = 0.5f;
    check_reversible_equals_stored(&cfg, 2, 8, 24, 24);
}

Test(backbone_rev, drop_path_mask_depends_on_step) {
    tal_backbone_config cfg;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_preset(&cfg, "swin_small_test", &err), TAL_OK);
    cfg.embed_dim = 8;
    cfg.n_stages = 1;
    cfg.depths[0] = 4;
    cfg.drop_path_rate = 0.5f; /* 6 drop-path draws per sample at p >= 1/6 */
    run_out a = run_model(&cfg, TAL_STAGE_REVERSIBLE, 4, 4, 16, 16, 1);
    run_out b = run_model(&cfg, TAL_STAGE_REVERSIBLE, 4, 4, 16, 16, 1);
    run_out c = run_model(&cfg, TAL_STAGE_REVERSIBLE, 4, 4, 16, 16, 2);
    expect_close(b.feats, a.feats, 0, 0);
    double diff = 0;
    for (int64_t i = 0; i < tal_tensor_numel(a.feats); i++)
        diff = fmax(diff, fabs(a.feats.data[i] - c.feats.data[i]));
    cr_assert_gt(diff, 1e-4, "another step must draw other masks");
    tal_params_destroy(a.p);
    tal_params_destroy(b.p);
    tal_params_destroy(c.p);
    test_free_all();
}
