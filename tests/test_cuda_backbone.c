/* The Swin backbone on the GPU against the same model on the CPU: the same weights (initialised
 * on the CPU, then moved), the same clip, every stage mode: features and every parameter
 * gradient. Reversible gradients on the device against the CPU's rewired_stored ones, the
 * device's reconstruction error at the CPU's level (the recompute gives the forward's bits), a
 * Swin-T stage-1 block (392-token windows) at a small clip, chunked training, arenas equal to
 * the device plan, and a deterministic forward. Skipped without a GPU. */
#include "cuda_check.h"

#include <float.h>

#include "backbone/backbone.h"

TestSuite(cuda_backbone, .fini = cuda_test_cleanup);

typedef struct model {
    tal_params *p;
    tal_backbone *bb;
    tal_device dev;
} model;

/* cfg's model with weights from seed 7, on dev, prepared for clips [B, 3, T, H, W]. */
static model make_model(const tal_backbone_config *cfg, tal_device dev, int B, int T, int H,
                        int W) {
    model m = {tal_params_create(), NULL, dev};
    tal_err err = {0};
    int g = tal_params_add_group(m.p, "bb", 1, 0.05f), gnd = tal_params_add_group(m.p, "nd", 1, 0);
    cr_assert_eq(tal_backbone_create(&m.bb, cfg, m.p, g, gnd, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_params_allocate(m.p, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    tal_backbone_init(m.bb, 7);
    if (dev == TAL_DEV_CUDA)
        cr_assert_eq(tal_params_move(m.p, TAL_DEV_CUDA, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_backbone_prepare(m.bb, B, T, H, W, &err), TAL_OK, "%s", err.msg);
    return m;
}

static void free_model(model *m) {
    tal_backbone_destroy(m->bb);
    tal_params_destroy(m->p);
}

static tal_tensor on(tal_device dev, tal_tensor host) { return dev ? dev_copy(host) : host; }
static tal_tensor to_host(tal_tensor t) { return t.device ? host_copy(t) : t; }

typedef struct step_out {
    tal_tensor infer, train; /* features of inference and of the training forward (host) */
    double recon;
} step_out;

/* Inference, then a training forward and backward with dfeats = wts; gradients stay in m.p. */
static step_out run_step(model *m, tal_tensor video, tal_tensor wts, uint64_t step) {
    step_out r;
    tal_tensor v = on(m->dev, video), w = on(m->dev, wts);
    tal_tensor f = m->dev ? dev_tensor(3, wts.shape) : test_tensor(3, wts.shape);
    tal_backbone_set_step(m->bb, step);
    tal_backbone_forward(m->bb, f, v);
    r.infer = test_clone(to_host(f));
    tal_backbone_forward_train(m->bb, f, v);
    r.train = test_clone(to_host(f));
    tal_backbone_backward(m->bb, w, &r.recon);
    return r;
}

/* fp32 through a whole network: sums of hundreds of terms per op, a few dozen ops deep, each
 * device rounding in its own order; 1e-4 of the largest entry (the reversible CPU test's
 * tolerance against stored activations). */
static void expect_net_close(const char *what, tal_tensor got, tal_tensor want) {
    double scale = 0;
    for (int64_t i = 0; i < tal_tensor_numel(want); i++) scale = fmax(scale, fabs(want.data[i]));
    expect_close_impl(what, to_host(got), want, 1e-4 * scale + 1e-9, 1e-4, __FILE__, __LINE__);
}

static int expect_grads_close(model *dev, model *cpu) {
    int n = 0;
    for (int i = 0; i < tal_params_count(cpu->p); i++) {
        tal_param *a = tal_params_at(cpu->p, i), *b = tal_params_at(dev->p, i);
        if (!a->trainable) continue;
        expect_net_close(a->name, b->grad, a->grad);
        n++;
    }
    return n;
}

static tal_backbone_config small_cfg(tal_stage_mode mode) {
    tal_backbone_config c;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_preset(&c, "swin_small_test", &err), TAL_OK);
    c.embed_dim = 16;
    c.heads[0] = 1, c.heads[1] = 2, c.heads[2] = 2, c.heads[3] = 4;
    c.drop_path_rate = 0.5f; /* with B = 2 some samples are dropped */
    c.freeze_norms = 0;
    for (int s = 0; s < 4; s++) c.mode[s] = mode;
    return c;
}

/* The clip the small model tests run: B = 2, 12 frames of 40 x 40 (windows padded at every
 * stage, shifted blocks with masks), and random feature gradients for it. */
enum { CLIP_B = 2, CLIP_T = 12, CLIP_HW = 40 };

static void small_clip(const tal_backbone_config *c, tal_tensor *video, tal_tensor *wts) {
    *video = rand_host(5, (int64_t[]){CLIP_B, 3, CLIP_T, CLIP_HW, CLIP_HW}, 3);
    *wts = rand_host(3, (int64_t[]){CLIP_B, tal_backbone_out_channels(c),
                                    tal_backbone_out_frames(c, CLIP_T)}, 4);
}

static void check_mode(tal_stage_mode mode) {
    tal_backbone_config c = small_cfg(mode);
    int B = CLIP_B, T = CLIP_T, H = CLIP_HW, W = CLIP_HW;
    tal_tensor video, wts;
    small_clip(&c, &video, &wts);
    model cpu = make_model(&c, TAL_DEV_CPU, B, T, H, W);
    model dev = make_model(&c, TAL_DEV_CUDA, B, T, H, W);
    step_out a = run_step(&cpu, video, wts, 5), b = run_step(&dev, video, wts, 5);
    expect_net_close("inference features", b.infer, a.infer);
    expect_net_close("training features", b.train, a.train);
    int n = expect_grads_close(&dev, &cpu);
    cr_assert_gt(n, 10);
    cr_log_info("%s: %d gradients; reconstruction error cpu %.3g, cuda %.3g",
                tal_stage_mode_name(mode), n, a.recon, b.recon);
    /* the arenas are what the device plan said */
    tal_backbone_plan plan;
    tal_err err = {0};
    size_t keep, scratch;
    tal_backbone_high_water(dev.bb, &keep, &scratch);
    cr_assert_eq(tal_backbone_plan_memory_on(&plan, &c, TAL_DEV_CUDA, B, T, H, W, &err), TAL_OK);
    cr_assert_eq(plan.keep_bytes, keep, "keep: plan %zu, used %zu", plan.keep_bytes, keep);
    cr_assert_eq(plan.scratch_bytes, scratch, "scratch: plan %zu, used %zu", plan.scratch_bytes,
                 scratch);
    free_model(&cpu);
    free_model(&dev);
}

Test(cuda_backbone, swin_vanilla_matches_cpu) {
    CUDA_ONLY();
    check_mode(TAL_STAGE_VANILLA);
}

Test(cuda_backbone, swin_rewired_stored_matches_cpu) {
    CUDA_ONLY();
    check_mode(TAL_STAGE_REWIRED_STORED);
}

Test(cuda_backbone, swin_reversible_matches_cpu) {
    CUDA_ONLY();
    check_mode(TAL_STAGE_REVERSIBLE);
}

/* The device's reversible gradients against the CPU's stored-activation ones, and the rebuilt
 * stage inputs: with a recompute that gives the forward's bits, the only error left is the
 * rounding of z + M - M, a few ulps of the streams, as on the CPU (whose recompute is exact). */
Test(cuda_backbone, reversible_on_device_equals_cpu_stored_activations) {
    CUDA_ONLY();
    tal_backbone_config rc = small_cfg(TAL_STAGE_REVERSIBLE);
    tal_backbone_config sc = small_cfg(TAL_STAGE_REWIRED_STORED);
    int B = CLIP_B, T = CLIP_T, H = CLIP_HW, W = CLIP_HW;
    tal_tensor video, wts;
    small_clip(&rc, &video, &wts);
    model cpu = make_model(&sc, TAL_DEV_CPU, B, T, H, W);
    model cpu_rev = make_model(&rc, TAL_DEV_CPU, B, T, H, W);
    model dev = make_model(&rc, TAL_DEV_CUDA, B, T, H, W);
    step_out a = run_step(&cpu, video, wts, 9), r = run_step(&cpu_rev, video, wts, 9);
    step_out b = run_step(&dev, video, wts, 9);
    expect_net_close("features", b.train, a.train);
    cr_assert_gt(expect_grads_close(&dev, &cpu), 10);
    cr_log_info("stage-input reconstruction error: cpu %.3g, cuda %.3g", r.recon, b.recon);
    cr_assert(b.recon >= 0 && b.recon <= 4 * r.recon + 4 * FLT_EPSILON,
              "device reconstruction error %.3g against the cpu's %.3g: the recompute does not "
              "give the forward's bits", b.recon, r.recon);
    free_model(&cpu);
    free_model(&cpu_rev);
    free_model(&dev);
}

/* A stage-1 Swin-T pair of blocks (regular + shifted) at 16 frames of 112 x 112: 8 x 28 x 28
 * tokens of 96 channels, windows of 8 x 7 x 7 = 392 tokens, 3 heads of 32. */
Test(cuda_backbone, swin_t_stage1_blocks_match_cpu) {
    CUDA_ONLY();
    tal_backbone_config c;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_preset(&c, "swin_t", &err), TAL_OK);
    c.n_stages = 1;
    c.depths[0] = 2;
    c.drop_path_rate = 0.1f;
    for (int m = 0; m < 2; m++) {
        c.mode[0] = m ? TAL_STAGE_REVERSIBLE : TAL_STAGE_VANILLA;
        int B = 1, T = 16, H = 112, W = 112;
        tal_tensor video = rand_host(5, (int64_t[]){B, 3, T, H, W}, 1);
        tal_tensor wts = rand_host(3, (int64_t[]){B, 96, 8}, 2);
        model cpu = make_model(&c, TAL_DEV_CPU, B, T, H, W);
        model dev = make_model(&c, TAL_DEV_CUDA, B, T, H, W);
        step_out a = run_step(&cpu, video, wts, 3), b = run_step(&dev, video, wts, 3);
        expect_net_close("features", b.train, a.train);
        expect_grads_close(&dev, &cpu);
        free_model(&cpu);
        free_model(&dev);
    }
}

Test(cuda_backbone, chunked_training_matches_cpu) {
    CUDA_ONLY();
    tal_backbone_config c = small_cfg(TAL_STAGE_REVERSIBLE);
    c.chunk_frames = 8;
    int B = 1, T = 20, H = 32, W = 32; /* chunks of 8, 8 and 4 (zero-padded) frames */
    tal_tensor video = rand_host(5, (int64_t[]){B, 3, T, H, W}, 5);
    int Tout = tal_backbone_out_frames(&c, T), C = tal_backbone_out_channels(&c);
    tal_tensor wts = rand_host(3, (int64_t[]){B, C, Tout}, 6);
    model cpu = make_model(&c, TAL_DEV_CPU, B, T, H, W);
    model dev = make_model(&c, TAL_DEV_CUDA, B, T, H, W);
    tal_tensor feats[2];
    for (int d = 0; d < 2; d++) {
        model *m = d ? &dev : &cpu;
        tal_tensor v = on(m->dev, video);
        tal_tensor f = d ? dev_tensor(3, wts.shape) : test_tensor(3, wts.shape);
        tal_backbone_set_step(m->bb, 2);
        tal_backbone_forward_chunked_train(m->bb, f, v);
        feats[d] = test_clone(to_host(f));
        tal_backbone_backward_chunked(m->bb, on(m->dev, wts), v);
    }
    expect_net_close("chunked features", feats[1], feats[0]);
    cr_assert_gt(expect_grads_close(&dev, &cpu), 10);
    free_model(&cpu);
    free_model(&dev);
}

/* The same inference twice: the same bits (no atomics, no order that depends on timing). */
Test(cuda_backbone, forward_is_deterministic) {
    CUDA_ONLY();
    tal_backbone_config c = small_cfg(TAL_STAGE_REVERSIBLE);
    int B = 2, T = 8, H = 36, W = 44;
    tal_tensor video = dev_copy(rand_host(5, (int64_t[]){B, 3, T, H, W}, 7));
    model dev = make_model(&c, TAL_DEV_CUDA, B, T, H, W);
    int64_t shape[3] = {B, tal_backbone_out_channels(&c), tal_backbone_out_frames(&c, T)};
    tal_tensor f1 = dev_tensor(3, shape), f2 = dev_tensor(3, shape);
    tal_backbone_forward(dev.bb, f1, video);
    tal_backbone_forward(dev.bb, f2, video);
    expect_dev_bits(f2, host_copy(f1));
    free_model(&dev);
}
