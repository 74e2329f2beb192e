/* backbone/resnet3d.c: one ResNet3D pathway as mmaction2's ResNet3d defines it (Bottleneck3d,
 * '3x1x1' inflation, style 'pytorch'): stem conv kt x7x7 stride (1,2,2) - BN - ReLU - max-pool
 * (1,3,3) stride (1,2,2); stages of bottlenecks conv1 (3x1x1 if inflated, else 1x1x1) - BN - ReLU
 * - conv2 (1x3x3, spatial stride) - BN - ReLU - conv3 (1x1x1) - BN, a projection shortcut in
 * each stage's first block. The whole net alone is SlowOnly (TAL_ARCH_RESNET3D); two of them
 * with laterals are SlowFast (slowfast.c). Rewired (re2tal-paper.md §2.4): the post-add ReLU
 * moves inside the branch, the first block is relu(F(x)) + Proj(x) and its output starts both
 * streams, the rest are couplings through the generic engine. BNs are frozen (eval statistics,
 * no gradients). Layout channel-first [B, C, T, H, W]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define BN_EPS 1e-5f

/* ---------------------------------------------------------------- frozen BN ------------- */
/* y = x * s[c] + t[c] from running statistics (nn's op: on the device of the tensors too). */
static void bn_fwd(tal_params *p, const int bn[4], tal_tensor y, tal_tensor x) {
    tal_batchnorm_frozen_forward(y, x, bb_value(p, bn[0]), bb_value(p, bn[1]), bb_value(p, bn[2]),
                                 bb_value(p, bn[3]), BN_EPS);
}

static void bn_bwd(tal_params *p, const int bn[4], tal_tensor dx, tal_tensor dy) {
    tal_batchnorm_frozen_backward(dx, dy, bb_value(p, bn[0]), bb_value(p, bn[3]), BN_EPS);
}

/* ---------------------------------------------------------------- bottleneck branch ----- */
typedef struct bneck_saved {
    tal_tensor h1, h2, r3; /* post-ReLU outputs of the three units (r3: final ReLU only) */
} bneck_saved;

static tal_conv3d_geom geom_of(int kt, int stride, int k) {
    tal_conv3d_geom g = {{1, stride, stride}, {(kt - 1) / 2, k / 2, k / 2}};
    return g;
}

static int64_t out_len(int64_t in, int stride) { return (in - 1) / stride + 1; }

/* out [B, 4 planes, T, H/s, W/s] = F(x [B, cin, T, H, W]). With keep, keeps what backward
 * needs there (keep may be the scratch arena: the reversible recompute). */
static void *bneck_forward_impl(resnet_bneck_fn *f, tal_tensor out, tal_tensor x,
                                tal_arena *keep, tal_arena *scratch, uint64_t step) {
    tal_params *p = f->params;
    int plan = bb_planning(x), stride = f->stride;
    int64_t B = x.shape[0], T = x.shape[2], H = x.shape[3], W = x.shape[4];
    int64_t Ho = out_len(H, stride), Wo = out_len(W, stride);
    bneck_saved local, *s = keep ? tal_arena_bytes(keep, sizeof *s) : NULL;
    size_t outer = tal_arena_mark(scratch);
    tal_arena *a = keep ? keep : scratch;
    local.h1 = tal_arena_tensor_uninit(a, 5, (int64_t[]){B, f->planes, T, H, W});
    local.h2 = tal_arena_tensor_uninit(a, 5, (int64_t[]){B, f->planes, T, Ho, Wo});
    local.r3 = keep && f->final_relu ? tal_arena_like_uninit(a, out) : tal_tensor_none();
    /* planning: the convs count their own im2col buffers and compute nothing */
    tal_conv3d_forward(local.h1, x, bb_value(p, f->conv[0]), tal_tensor_none(),
                       geom_of(f->kt, 1, 1), scratch);
    if (!plan) {
        bn_fwd(p, f->bn[0], local.h1, local.h1);
        tal_relu_forward(local.h1, local.h1);
    }
    tal_conv3d_forward(local.h2, local.h1, bb_value(p, f->conv[1]), tal_tensor_none(),
                       geom_of(1, stride, 3), scratch);
    if (!plan) {
        bn_fwd(p, f->bn[1], local.h2, local.h2);
        tal_relu_forward(local.h2, local.h2);
    }
    tal_conv3d_forward(out, local.h2, bb_value(p, f->conv[2]), tal_tensor_none(),
                       geom_of(1, 1, 1), scratch);
    if (!plan) {
        bn_fwd(p, f->bn[2], out, out);
        if (f->final_relu) tal_relu_forward(out, out);
        if (bb_drop_path_on(f->drop_p, step)) {
            tal_rng_key k = {f->seed, step, f->stream};
            tal_drop_path_forward(out, out, f->drop_p, k);
        }
        if (tal_tensor_present(local.r3)) tal_copy(local.r3, out);
    }
    if (s) *s = local;
    if (!keep) tal_arena_release(scratch, outer);
    return s;
}

/* dx += J^T dout (dx may be dout: dout is copied before dx is touched). */
static void bneck_backward_impl(resnet_bneck_fn *f, tal_tensor dx, tal_tensor dout,
                                tal_tensor x, void *saved, tal_arena *scratch, uint64_t step) {
    tal_params *p = f->params;
    int plan = bb_planning(dout), stride = f->stride;
    int64_t B = x.shape[0], T = x.shape[2], H = x.shape[3], W = x.shape[4];
    int64_t Ho = out_len(H, stride), Wo = out_len(W, stride);
    bneck_saved *s = saved;
    /* planning: shape-only stand-ins for the saved tensors */
    bneck_saved s0 = {tal_t5(NULL, B, f->planes, T, H, W), tal_t5(NULL, B, f->planes, T, Ho, Wo),
                      tal_tensor_none()};
    if (plan) s = &s0;
    size_t mark = tal_arena_mark(scratch);
    tal_tensor d3 = tal_arena_like_uninit(scratch, dout);
    tal_tensor d2 = tal_arena_tensor_uninit(scratch, 5, (int64_t[]){B, f->planes, T, Ho, Wo});
    tal_tensor d1 = tal_arena_tensor_uninit(scratch, 5, (int64_t[]){B, f->planes, T, H, W});
    tal_tensor dxt = tal_arena_like_uninit(scratch, x);
    if (!plan) {
        if (bb_drop_path_on(f->drop_p, step)) {
            tal_rng_key k = {f->seed, step, f->stream};
            tal_drop_path_backward(d3, dout, f->drop_p, k);
        } else {
            tal_copy(d3, dout);
        }
        if (f->final_relu) tal_relu_backward(d3, d3, s->r3);
        bn_bwd(p, f->bn[2], d3, d3);
    }
    tal_conv3d_backward(d2, bb_grad(p, f->conv[2]), tal_tensor_none(), d3, s->h2,
                        bb_value(p, f->conv[2]), geom_of(1, 1, 1), scratch);
    if (!plan) {
        tal_relu_backward(d2, d2, s->h2);
        bn_bwd(p, f->bn[1], d2, d2);
    }
    tal_conv3d_backward(d1, bb_grad(p, f->conv[1]), tal_tensor_none(), d2, s->h1,
                        bb_value(p, f->conv[1]), geom_of(1, stride, 3), scratch);
    if (!plan) {
        tal_relu_backward(d1, d1, s->h1);
        bn_bwd(p, f->bn[0], d1, d1);
    }
    tal_conv3d_backward(dxt, bb_grad(p, f->conv[0]), tal_tensor_none(), d1, x,
                        bb_value(p, f->conv[0]), geom_of(f->kt, 1, 1), scratch);
    if (!plan) tal_axpy(dx, 1.0f, dxt);
    tal_arena_release(scratch, mark);
}

static void *bneck_forward(void *self, tal_tensor out, tal_tensor x, tal_arena *keep,
                           tal_arena *scratch, uint64_t step) {
    return bneck_forward_impl(self, out, x, keep, scratch, step);
}

static void bneck_backward(void *self, tal_tensor dx, tal_tensor dout, tal_tensor x, void *saved,
                           tal_arena *scratch, uint64_t step) {
    bneck_backward_impl(self, dx, dout, x, saved, scratch, step);
}

tal_resfn resnet_bneck_resfn(resnet_bneck_fn *f) {
    /* vanilla: relu(z + F(z)) with F ending in BN; rewired: z_{n-2} + relu(F(z_{n-1})) */
    tal_resfn r = {.forward = bneck_forward, .backward = bneck_backward, .self = f,
                   .post_relu = !f->final_relu, .params = f->params,
                   .first_param = f->conv[0], .end_param = f->bn[2][3] + 1};
    return r;
}

/* ---------------------------------------------------------------- declaration ----------- */
typedef struct rn_stage {
    int cin, planes, cout, depth, stride, kt;
    tal_stage_mode mode;
    int T, H, W;                    /* output grid */
    resnet_bneck_fn first;          /* branch of the first block (strided) */
    int proj_w, proj_bn[4];
    resnet_bneck_fn *rest;          /* [depth - 1] */
    tal_resfn *fns;                 /* [depth - 1] */
    /* kept by a training forward */
    tal_tensor x, z0, y;
    void *first_saved;
    tal_revstage *rs;
} rn_stage;

struct rn_pathway {
    rn_pathway_spec spec;
    int stem_w, stem_bn[4];
    int T, Hc, Wc, H, W;            /* stem conv output grid (T, Hc, Wc), pooled (T, H, W) */
    rn_stage st[TAL_BACKBONE_MAX_STAGES];
    tal_tensor video, stem_out, pooled; /* what a training forward keeps for the stem */
};

static void declare_bn(tal_backbone *bb, int idx[4], const char *prefix, int64_t C) {
    static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
    char name[160];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.bn.%s", prefix, parts[i]);
        /* BN is always frozen here (norm_eval): eval statistics, no gradient */
        idx[i] = tal_params_declare(bb->params, name, 1, (int64_t[]){C}, bb->group_nd, 0);
    }
}

int rn_declare_conv(tal_backbone *bb, const char *prefix, int64_t co, int64_t ci, int kt,
                    int k) {
    char name[160];
    snprintf(name, sizeof name, "%s.conv.weight", prefix);
    return bb_declare(bb, name, 5, (int64_t[]){co, ci, kt, k, k}, 0, 0);
}

static void declare_bneck(tal_backbone *bb, const char *pfx, resnet_bneck_fn *f, int s, int b,
                          int cin, int planes, int kt) {
    char pre[128];
    f->params = bb->params;
    f->cin = cin, f->planes = planes, f->kt = kt;
    for (int u = 0; u < 3; u++) {
        snprintf(pre, sizeof pre, "%slayer%d.%d.conv%d", pfx, s + 1, b, u + 1);
        int ci = u == 0 ? cin : planes, co = u == 2 ? 4 * planes : planes;
        f->conv[u] = rn_declare_conv(bb, pre, co, ci, u == 0 ? kt : 1, u == 1 ? 3 : 1);
        declare_bn(bb, f->bn[u], pre, co);
    }
}

tal_status rn_pathway_declare(rn_pathway **out, tal_backbone *bb, const rn_pathway_spec *spec,
                              tal_err *err) {
    rn_pathway *pw = calloc(1, sizeof *pw);
    *out = pw;
    if (!pw) return tal_err_set(err, TAL_ENOMEM, "backbone: out of memory");
    pw->spec = *spec;
    const char *pfx = spec->prefix;
    char pre[128];
    int C0 = spec->base;
    snprintf(pre, sizeof pre, "%sconv1", pfx);
    pw->stem_w = rn_declare_conv(bb, pre, C0, 3, spec->stem_kt, 7);
    declare_bn(bb, pw->stem_bn, pre, C0);
    int total = 0, k = 0;
    for (int s = 0; s < spec->n_stages; s++) total += spec->depths[s] - 1;
    int cin = C0;
    for (int s = 0; s < spec->n_stages; s++) {
        rn_stage *st = &pw->st[s];
        int rewired = spec->mode[s] != TAL_STAGE_VANILLA;
        st->cin = cin + spec->lateral_in[s];
        st->planes = C0 << s;
        st->cout = 4 * st->planes;
        st->depth = spec->depths[s];
        st->stride = s == 0 ? 1 : 2;
        st->kt = spec->inflate[s] ? 3 : 1;
        st->mode = spec->mode[s];
        declare_bneck(bb, pfx, &st->first, s, 0, st->cin, st->planes, st->kt);
        st->first.stride = st->stride;
        st->first.final_relu = rewired;
        snprintf(pre, sizeof pre, "%slayer%d.0.downsample", pfx, s + 1);
        st->proj_w = rn_declare_conv(bb, pre, st->cout, st->cin, 1, 1);
        declare_bn(bb, st->proj_bn, pre, st->cout);
        int n = st->depth > 1 ? st->depth - 1 : 1;
        st->rest = calloc((size_t)n, sizeof *st->rest);
        st->fns = calloc((size_t)n, sizeof *st->fns);
        if (!st->rest || !st->fns) return tal_err_set(err, TAL_ENOMEM, "backbone: out of memory");
        for (int b = 1; b < st->depth; b++, k++) {
            resnet_bneck_fn *f = &st->rest[b - 1];
            declare_bneck(bb, pfx, f, s, b, st->cout, st->planes, st->kt);
            f->stride = 1;
            f->final_relu = rewired;
            f->drop_p = total > 1 ? spec->drop_path_rate * (float)k / (float)(total - 1) : 0.0f;
            f->seed = spec->seed;
            f->stream = spec->stream0 + (uint64_t)k;
            st->fns[b - 1] = resnet_bneck_resfn(f);
        }
        cin = st->cout;
    }
    return TAL_OK;
}

void rn_pathway_free(rn_pathway *pw) {
    if (!pw) return;
    for (int s = 0; s < TAL_BACKBONE_MAX_STAGES; s++) {
        free(pw->st[s].rest);
        free(pw->st[s].fns);
    }
    free(pw);
}

int rn_stage_out_channels(const rn_pathway *pw, int s) {
    return s < 0 ? pw->spec.base : pw->st[s].cout;
}

void rn_stage_out_shape(const rn_pathway *pw, int s, int64_t B, int64_t shape[5]) {
    shape[0] = B;
    shape[1] = rn_stage_out_channels(pw, s);
    shape[2] = pw->T;
    shape[3] = s < 0 ? pw->H : pw->st[s].H;
    shape[4] = s < 0 ? pw->W : pw->st[s].W;
}

static tal_conv3d_geom stem_geom(const rn_pathway *pw) {
    tal_conv3d_geom g = {{1, 2, 2}, {(pw->spec.stem_kt - 1) / 2, 3, 3}};
    return g;
}

static const tal_pool3d_geom STEM_POOL = {{1, 3, 3}, {1, 2, 2}, {0, 1, 1}};

void rn_pathway_setup(rn_pathway *pw, int T, int H, int W) {
    pw->T = T;
    pw->Hc = (int)tal_conv_out_len(H, 7, 2, 3);
    pw->Wc = (int)tal_conv_out_len(W, 7, 2, 3);
    pw->H = (int)tal_pool3d_out_len(pw->Hc, 3, 2, 1);
    pw->W = (int)tal_pool3d_out_len(pw->Wc, 3, 2, 1);
    int h = pw->H, w = pw->W;
    for (int s = 0; s < pw->spec.n_stages; s++) {
        rn_stage *st = &pw->st[s];
        h = (int)out_len(h, st->stride);
        w = (int)out_len(w, st->stride);
        st->T = T, st->H = h, st->W = w;
    }
}

void rn_pathway_init(tal_backbone *bb, uint64_t seed) {
    tal_params *p = bb->params;
    for (int i = bb->first_param; i < bb->first_param + bb->n_params; i++) {
        tal_param *q = tal_params_at(p, i);
        const char *n = q->name;
        if (strstr(n, ".bn.")) {
            int one = strstr(n, "bn.weight") || strstr(n, "running_var");
            tal_fill(q->value, one ? 1.0f : 0.0f);
        } else { /* He normal, fan_out, as mmaction2's kaiming_init for convs */
            int64_t fan_out = tal_tensor_numel(q->value) / q->value.shape[1];
            bb_init_trunc_normal(q->value, sqrtf(2.0f / (float)fan_out), seed, (uint64_t)i);
        }
    }
}

/* ---------------------------------------------------------------- stem ------------------ */
tal_tensor rn_stem_forward(tal_backbone *bb, rn_pathway *pw, tal_tensor video, int train) {
    tal_params *p = bb->params;
    tal_arena *kk = train ? bb->keep : bb->scratch;
    int64_t B = video.shape[0];
    pw->video = video;
    pw->stem_out = tal_arena_tensor_uninit(kk, 5, (int64_t[]){B, pw->spec.base, pw->T, pw->Hc,
                                                             pw->Wc});
    int64_t shp[5];
    rn_stage_out_shape(pw, -1, B, shp);
    pw->pooled = tal_arena_tensor_uninit(kk, 5, shp);
    tal_conv3d_forward(pw->stem_out, video, bb_value(p, pw->stem_w), tal_tensor_none(),
                       stem_geom(pw), bb->scratch); /* planning: counts its im2col only */
    if (!bb_planning(video)) {
        bn_fwd(p, pw->stem_bn, pw->stem_out, pw->stem_out);
        tal_relu_forward(pw->stem_out, pw->stem_out);
        tal_maxpool3d_forward(pw->pooled, pw->stem_out, STEM_POOL);
    }
    return pw->pooled;
}

void rn_stem_backward(tal_backbone *bb, rn_pathway *pw, tal_tensor dpooled) {
    tal_params *p = bb->params;
    tal_arena *sc = bb->scratch;
    size_t m = tal_arena_mark(sc);
    tal_tensor d = tal_arena_like_uninit(sc, pw->stem_out);
    if (!bb_planning(dpooled)) {
        tal_maxpool3d_backward(d, dpooled, pw->stem_out, STEM_POOL);
        tal_relu_backward(d, d, pw->stem_out);
        bn_bwd(p, pw->stem_bn, d, d);
    }
    /* no input gradient: the video is data */
    tal_conv3d_backward(tal_tensor_none(), bb_grad(p, pw->stem_w), tal_tensor_none(), d,
                        pw->video, bb_value(p, pw->stem_w), stem_geom(pw), sc);
    tal_arena_release(sc, m);
}

/* ---------------------------------------------------------------- stages ---------------- */
/* The first block: vanilla relu(F(x) + P(x)) (F ends in BN), rewired relu(F(x)) + P(x), P the
 * projection (1x1x1 conv with the stage's stride, BN). out = z0. */
static void first_block_forward(tal_backbone *bb, rn_stage *st, tal_tensor z0, tal_tensor x,
                                tal_arena *keep, uint64_t step) {
    tal_params *p = bb->params;
    tal_arena *sc = bb->scratch;
    st->first_saved = bneck_forward_impl(&st->first, z0, x, keep, sc, step);
    size_t m = tal_arena_mark(sc);
    tal_tensor pc = tal_arena_like_uninit(sc, z0);
    tal_conv3d_forward(pc, x, bb_value(p, st->proj_w), tal_tensor_none(),
                       geom_of(1, st->stride, 1), sc);
    if (!bb_planning(x)) {
        bn_fwd(p, st->proj_bn, pc, pc);
        tal_add(z0, z0, pc);
        if (st->mode == TAL_STAGE_VANILLA) tal_relu_forward(z0, z0);
    }
    tal_arena_release(sc, m);
}

/* dx = J^T dz0 (overwrites dx). Vanilla reads the kept z0 (post-add ReLU); reversible
 * recomputes the branch's internals from x, and with recon_err the whole z0, to measure how
 * far the chain's rebuilt input (in rs) is from it. */
static void first_block_backward(tal_backbone *bb, rn_stage *st, tal_tensor dx, tal_tensor dz0,
                                 uint64_t step, double *recon_err) {
    tal_params *p = bb->params;
    tal_arena *sc = bb->scratch;
    int plan = bb_planning(dz0);
    size_t m = tal_arena_mark(sc);
    void *saved = st->first_saved;
    if (st->mode == TAL_STAGE_REVERSIBLE) {
        tal_tensor z = tal_arena_like_uninit(sc, dz0), pc = tal_arena_like_uninit(sc, dz0);
        saved = bneck_forward_impl(&st->first, z, st->x, sc, sc, step);
        if (!plan && recon_err && st->depth > 1) { /* same allocations either way */
            tal_conv3d_forward(pc, st->x, bb_value(p, st->proj_w), tal_tensor_none(),
                               geom_of(1, st->stride, 1), sc);
            bn_fwd(p, st->proj_bn, pc, pc);
            tal_add(pc, pc, z);
            double e = tal_revstage_recon_error(st->rs, pc);
            if (e > *recon_err) *recon_err = e;
        }
    }
    tal_tensor dsum = dz0;
    if (st->mode == TAL_STAGE_VANILLA) {
        dsum = tal_arena_like_uninit(sc, dz0);
        if (!plan) tal_relu_backward(dsum, dz0, st->z0);
    }
    tal_tensor dpc = tal_arena_like_uninit(sc, dz0);
    if (!plan) bn_bwd(p, st->proj_bn, dpc, dsum);
    tal_conv3d_backward(dx, bb_grad(p, st->proj_w), tal_tensor_none(), dpc, st->x,
                        bb_value(p, st->proj_w), geom_of(1, st->stride, 1), sc);
    bneck_backward_impl(&st->first, dx, dsum, st->x, plan ? NULL : saved, sc, step);
    tal_arena_release(sc, m);
}

tal_tensor rn_stage_forward(tal_backbone *bb, rn_pathway *pw, int s, tal_tensor x, int train) {
    rn_stage *st = &pw->st[s];
    tal_arena *sc = bb->scratch, *kk = train ? bb->keep : sc;
    uint64_t step = bb_forward_step(bb, train); /* inference: no drop-path */
    int64_t shp[5];
    rn_stage_out_shape(pw, s, x.shape[0], shp);
    st->x = x;
    st->y = tal_arena_tensor_uninit(kk, 5, shp);
    if (st->depth == 1) {
        st->z0 = st->y;
        first_block_forward(bb, st, st->y, x, train && st->mode != TAL_STAGE_REVERSIBLE
                                                  ? bb->keep : NULL, step);
        return st->y;
    }
    /* z0 is the chain's input: stored modes keep it (the chain borrows it), the reversible
     * chain copies it into its streams, so it lives in scratch for the length of the stage */
    int keep_z0 = train && st->mode != TAL_STAGE_REVERSIBLE;
    size_t m = tal_arena_mark(sc);
    st->z0 = tal_arena_tensor_uninit(keep_z0 ? bb->keep : sc, 5, shp);
    first_block_forward(bb, st, st->z0, x, keep_z0 ? bb->keep : NULL, step);
    st->rs = tal_revstage_forward(st->fns, st->depth - 1, st->mode, st->y, st->z0,
                                  train ? bb->keep : NULL, sc, step);
    if (train && !bb_planning(x)) bb_count_block_time(bb, st->rs, 1);
    tal_arena_release(sc, m);
    return st->y;
}

void rn_stage_backward(tal_backbone *bb, rn_pathway *pw, int s, tal_tensor dx, tal_tensor dy,
                       double *recon_err) {
    rn_stage *st = &pw->st[s];
    tal_arena *sc = bb->scratch;
    size_t m = tal_arena_mark(sc);
    tal_tensor dz = dy; /* the chain's input gradient overwrites dy (the engine allows it) */
    if (st->depth > 1) {
        double e = -1;
        /* reversible: z0 was not kept; the first block measures the rebuilt one */
        tal_revstage_backward(st->fns, st->depth - 1, st->mode, st->rs, dz, dy,
                              st->mode == TAL_STAGE_REVERSIBLE ? tal_tensor_none() : st->z0, sc,
                              bb->step, recon_err ? &e : NULL);
        if (!bb_planning(dy)) bb_count_block_time(bb, st->rs, 0);
        bb_note_recon(bb, s, e, recon_err);
    }
    double e0 = -1;
    first_block_backward(bb, st, dx, dz, bb->step, recon_err ? &e0 : NULL);
    bb_note_recon(bb, s, e0, recon_err);
    if (!bb_planning(dy)) /* the first block and the projection: declared together */
        tal_params_grads_ready(bb->params, st->first.conv[0], st->proj_bn[3] + 1);
    tal_arena_release(sc, m);
}

/* ---------------------------------------------------------------- SlowOnly / ResNet3D ---- */
static rn_pathway_spec single_spec(const tal_backbone_config *c) {
    rn_pathway_spec sp = {.prefix = "", .base = c->embed_dim, .n_stages = c->n_stages,
                          .stem_kt = c->stem_kt, .drop_path_rate = c->drop_path_rate,
                          .seed = c->seed, .stream0 = 1000};
    for (int s = 0; s < c->n_stages; s++) {
        sp.depths[s] = c->depths[s];
        sp.inflate[s] = c->inflate[s];
        sp.mode[s] = c->mode[s];
    }
    return sp;
}

tal_status resnet_declare(tal_backbone *bb, tal_err *err) {
    rn_pathway_spec sp = single_spec(&bb->cfg);
    return rn_pathway_declare(&bb->rn, bb, &sp, err);
}

void resnet_free(tal_backbone *bb) {
    rn_pathway_free(bb->rn);
    bb->rn = NULL;
}

void resnet_setup_shapes(tal_backbone *bb) { rn_pathway_setup(bb->rn, bb->T, bb->H, bb->W); }

void resnet_run_forward(tal_backbone *bb, tal_tensor feats, tal_tensor video, int train) {
    rn_pathway *pw = bb->rn;
    size_t mark0 = tal_arena_mark(bb->scratch);
    tal_tensor x = rn_stem_forward(bb, pw, video, train);
    for (int s = 0; s < pw->spec.n_stages; s++) x = rn_stage_forward(bb, pw, s, x, train);
    if (!bb_planning(video)) tal_mean_hw_forward(feats, x);
    if (!train) tal_arena_release(bb->scratch, mark0);
}

/* One stage's input gradient after another: each goes above the last in scratch. */
void resnet_run_backward(tal_backbone *bb, tal_tensor dfeats, double *recon_err) {
    rn_pathway *pw = bb->rn;
    tal_arena *sc = bb->scratch;
    if (recon_err) *recon_err = -1;
    size_t mark0 = tal_arena_mark(sc);
    int n = pw->spec.n_stages;
    tal_tensor dy = tal_arena_like_uninit(sc, pw->st[n - 1].y);
    if (!bb_planning(dfeats)) tal_mean_hw_backward(dy, dfeats);
    for (int s = n - 1; s >= 0; s--) {
        tal_tensor dx = tal_arena_like_uninit(sc, pw->st[s].x);
        rn_stage_backward(bb, pw, s, dx, dy, recon_err);
        dy = dx;
    }
    rn_stem_backward(bb, pw, dy);
    tal_arena_release(sc, mark0);
}
