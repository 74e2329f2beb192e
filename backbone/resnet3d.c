/* backbone/resnet3d.c: a small 3D ResNet (SlowOnly-style bottlenecks) through the same engine,
 * to show the rewiring is generic (re2tal-paper.md §2.4): branch F = conv1 (kt x1x1) - BN - ReLU
 * - conv2 (1x3x3, spatial stride) - BN - ReLU - conv3 (1x1x1) - BN - ReLU, the post-add ReLU
 * moved inside the branch; the first block of each stage stays an ordinary block with a
 * projection shortcut (relu(F(x) + BN(conv(x)))). BNs are frozen (eval statistics, no
 * gradients). Layout channel-first [B, C, T, H, W]; features out [B, C, T] (spatial mean). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define BN_EPS 1e-5f

typedef struct rn_stage {
    int cin, planes, cout, depth, stride, kt;
    int T, H, W, Hin, Win;          /* output grid, input grid */
    resnet_bneck_fn first;          /* branch of the first block (no final ReLU, strided) */
    int proj_w, proj_bn[4];
    resnet_bneck_fn *rest;          /* [depth - 1] */
    tal_resfn *fns;                 /* [depth - 1] */
    /* kept by a training forward */
    tal_tensor x, z0, y;
    void *first_saved;
    tal_revstage *rs;
} rn_stage;

struct resnet_model {
    int stem_w, stem_bn[4];
    int T, H, W;                    /* stem output grid */
    rn_stage st[TAL_BACKBONE_MAX_STAGES];
    tal_tensor video, stem_out;
};

/* ---------------------------------------------------------------- frozen BN ------------- */
void bn_frozen_forward(tal_tensor y, tal_tensor x, const float *w, const float *b,
                       const float *mean, const float *var) {
    int64_t B = x.shape[0], C = x.shape[1], S = tal_tensor_numel(x) / (B * C);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < B; n++)
        for (int64_t c = 0; c < C; c++) {
            float s = w[c] / sqrtf(var[c] + BN_EPS), t = b[c] - mean[c] * s;
            const float *src = x.data + (n * C + c) * S;
            float *dst = y.data + (n * C + c) * S;
            for (int64_t i = 0; i < S; i++) dst[i] = src[i] * s + t;
        }
}

void bn_frozen_backward(tal_tensor dx, tal_tensor dy, const float *w, const float *var) {
    int64_t B = dy.shape[0], C = dy.shape[1], S = tal_tensor_numel(dy) / (B * C);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < B; n++)
        for (int64_t c = 0; c < C; c++) {
            float s = w[c] / sqrtf(var[c] + BN_EPS);
            const float *src = dy.data + (n * C + c) * S;
            float *dst = dx.data + (n * C + c) * S;
            for (int64_t i = 0; i < S; i++) dst[i] = src[i] * s;
        }
}

static void bn_fwd(tal_params *p, const int bn[4], tal_tensor y, tal_tensor x) {
    bn_frozen_forward(y, x, bb_value(p, bn[0]).data, bb_value(p, bn[1]).data,
                      bb_value(p, bn[2]).data, bb_value(p, bn[3]).data);
}

static void bn_bwd(tal_params *p, const int bn[4], tal_tensor dx, tal_tensor dy) {
    bn_frozen_backward(dx, dy, bb_value(p, bn[0]).data, bb_value(p, bn[3]).data);
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

/* out [B, cout, T, H/s, W/s] = F(x [B, cin, T, H, W]). */
static void *bneck_forward_impl(resnet_bneck_fn *f, int stride, tal_tensor out, tal_tensor x,
                                tal_arena *keep, tal_arena *scratch, uint64_t step) {
    tal_params *p = f->params;
    int plan = bb_planning(x);
    int64_t B = x.shape[0], T = x.shape[2], H = x.shape[3], W = x.shape[4];
    int64_t Ho = out_len(H, stride), Wo = out_len(W, stride);
    bneck_saved local, *s = keep ? tal_arena_bytes(keep, sizeof *s) : NULL;
    size_t outer = tal_arena_mark(scratch);
    tal_arena *a = keep ? keep : scratch;
    local.h1 = tal_arena_tensor(a, 5, (int64_t[]){B, f->planes, T, H, W});
    local.h2 = tal_arena_tensor(a, 5, (int64_t[]){B, f->planes, T, Ho, Wo});
    local.r3 = keep && f->final_relu ? tal_arena_like(a, out) : tal_tensor_none();
    size_t mark = tal_arena_mark(scratch);
    if (!plan) {
        tal_conv3d_forward(local.h1, x, bb_value(p, f->conv[0]), tal_tensor_none(),
                           geom_of(f->kt, 1, 1), scratch);
        bn_fwd(p, f->bn[0], local.h1, local.h1);
        tal_relu_forward(local.h1, local.h1);
        tal_conv3d_forward(local.h2, local.h1, bb_value(p, f->conv[1]), tal_tensor_none(),
                           geom_of(1, stride, 3), scratch);
        bn_fwd(p, f->bn[1], local.h2, local.h2);
        tal_relu_forward(local.h2, local.h2);
        tal_conv3d_forward(out, local.h2, bb_value(p, f->conv[2]), tal_tensor_none(),
                           geom_of(1, 1, 1), scratch);
        bn_fwd(p, f->bn[2], out, out);
        if (f->final_relu) tal_relu_forward(out, out);
        if (bb_drop_path_on(f->drop_p, step)) {
            tal_rng_key k = {f->seed, step, f->stream};
            tal_drop_path_forward(out, out, f->drop_p, k);
        }
        if (tal_tensor_present(local.r3)) tal_copy(local.r3, out);
    } else { /* the convs count their own im2col buffers */
        tal_conv3d_forward(local.h1, x, bb_value(p, f->conv[0]), tal_tensor_none(),
                           geom_of(f->kt, 1, 1), scratch);
        tal_conv3d_forward(local.h2, local.h1, bb_value(p, f->conv[1]), tal_tensor_none(),
                           geom_of(1, stride, 3), scratch);
        tal_conv3d_forward(out, local.h2, bb_value(p, f->conv[2]), tal_tensor_none(),
                           geom_of(1, 1, 1), scratch);
    }
    (void)mark;
    if (s) *s = local;
    if (!keep) tal_arena_release(scratch, outer);
    return s;
}

/* dx += J^T dout. */
static void bneck_backward_impl(resnet_bneck_fn *f, int stride, tal_tensor dx, tal_tensor dout,
                                tal_tensor x, void *saved, tal_arena *scratch, uint64_t step) {
    tal_params *p = f->params;
    int plan = bb_planning(dout);
    int64_t B = x.shape[0], T = x.shape[2], H = x.shape[3], W = x.shape[4];
    int64_t Ho = out_len(H, stride), Wo = out_len(W, stride);
    bneck_saved *s = saved;
    /* planning: shape-only stand-ins for the saved tensors */
    bneck_saved s0 = {tal_t5(NULL, B, f->planes, T, H, W), tal_t5(NULL, B, f->planes, T, Ho, Wo),
                      tal_tensor_none()};
    size_t mark = tal_arena_mark(scratch);
    tal_tensor d3 = tal_arena_like(scratch, dout);
    tal_tensor d2 = tal_arena_tensor(scratch, 5, (int64_t[]){B, f->planes, T, Ho, Wo});
    tal_tensor d1 = tal_arena_tensor(scratch, 5, (int64_t[]){B, f->planes, T, H, W});
    tal_tensor dxt = tal_arena_like(scratch, x);
    if (plan) { /* the convs count their own im2col buffers */
        tal_conv3d_backward(d2, tal_tensor_none(), tal_tensor_none(), d3, s0.h2,
                            bb_value(p, f->conv[2]), geom_of(1, 1, 1), scratch);
        tal_conv3d_backward(d1, tal_tensor_none(), tal_tensor_none(), d2, s0.h1,
                            bb_value(p, f->conv[1]), geom_of(1, stride, 3), scratch);
        tal_conv3d_backward(dxt, tal_tensor_none(), tal_tensor_none(), d1, x,
                            bb_value(p, f->conv[0]), geom_of(f->kt, 1, 1), scratch);
        tal_arena_release(scratch, mark);
        return;
    }
    if (f->drop_p > 0) {
        tal_rng_key k = {f->seed, step, f->stream};
        tal_drop_path_backward(d3, dout, f->drop_p, k);
    } else {
        tal_copy(d3, dout);
    }
    if (f->final_relu) tal_relu_backward(d3, d3, s->r3);
    bn_bwd(p, f->bn[2], d3, d3);
    tal_conv3d_backward(d2, bb_grad(p, f->conv[2]), tal_tensor_none(), d3, s->h2,
                        bb_value(p, f->conv[2]), geom_of(1, 1, 1), scratch);
    tal_relu_backward(d2, d2, s->h2);
    bn_bwd(p, f->bn[1], d2, d2);
    tal_conv3d_backward(d1, bb_grad(p, f->conv[1]), tal_tensor_none(), d2, s->h1,
                        bb_value(p, f->conv[1]), geom_of(1, stride, 3), scratch);
    tal_relu_backward(d1, d1, s->h1);
    bn_bwd(p, f->bn[0], d1, d1);
    tal_conv3d_backward(dxt, bb_grad(p, f->conv[0]), tal_tensor_none(), d1, x,
                        bb_value(p, f->conv[0]), geom_of(f->kt, 1, 1), scratch);
    tal_axpy(dx, 1.0f, dxt);
    tal_arena_release(scratch, mark);
}

static void *bneck_forward(void *self, tal_tensor out, tal_tensor x, tal_arena *keep,
                           tal_arena *scratch, uint64_t step) {
    return bneck_forward_impl(self, 1, out, x, keep, scratch, step);
}

static void bneck_backward(void *self, tal_tensor dx, tal_tensor dout, tal_tensor x, void *saved,
                           tal_arena *scratch, uint64_t step) {
    bneck_backward_impl(self, 1, dx, dout, x, saved, scratch, step);
}

tal_resfn resnet_bneck_resfn(resnet_bneck_fn *f) {
    tal_resfn r = {bneck_forward, bneck_backward, f, NULL};
    return r;
}

/* ---------------------------------------------------------------- declaration ----------- */
static void declare_bn(tal_backbone *bb, int idx[4], const char *prefix, int64_t C) {
    static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
    char name[128];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.bn.%s", prefix, parts[i]);
        /* BN is always frozen here (norm_eval): is_norm with trainable forced off below */
        idx[i] = tal_params_declare(bb->params, name, 1, (int64_t[]){C}, bb->group_nd, 0);
    }
}

static int declare_conv(tal_backbone *bb, const char *prefix, int64_t co, int64_t ci, int kt,
                        int k) {
    char name[128];
    snprintf(name, sizeof name, "%s.conv.weight", prefix);
    return bb_declare(bb, name, 5, (int64_t[]){co, ci, kt, k, k}, 0, 0);
}

static void declare_bneck(tal_backbone *bb, resnet_bneck_fn *f, int s, int b, int cin,
                          int planes, int kt) {
    char pre[96];
    f->params = bb->params;
    f->cin = cin, f->planes = planes, f->kt = kt;
    snprintf(pre, sizeof pre, "layer%d.%d.conv1", s + 1, b);
    f->conv[0] = declare_conv(bb, pre, planes, cin, kt, 1);
    declare_bn(bb, f->bn[0], pre, planes);
    snprintf(pre, sizeof pre, "layer%d.%d.conv2", s + 1, b);
    f->conv[1] = declare_conv(bb, pre, planes, planes, 1, 3);
    declare_bn(bb, f->bn[1], pre, planes);
    snprintf(pre, sizeof pre, "layer%d.%d.conv3", s + 1, b);
    f->conv[2] = declare_conv(bb, pre, 4 * planes, planes, 1, 1);
    declare_bn(bb, f->bn[2], pre, 4 * planes);
}

tal_status resnet_declare(tal_backbone *bb, tal_err *err) {
    const tal_backbone_config *c = &bb->cfg;
    resnet_model *rn = calloc(1, sizeof *rn);
    if (!rn) return tal_err_set(err, TAL_ENOMEM, "backbone: out of memory");
    bb->rn = rn;
    int C0 = c->embed_dim;
    rn->stem_w = declare_conv(bb, "conv1", C0, 3, 1, 7);
    declare_bn(bb, rn->stem_bn, "conv1", C0);
    int total = 0, k = 0;
    for (int s = 0; s < c->n_stages; s++) total += c->depths[s];
    int cin = C0;
    for (int s = 0; s < c->n_stages; s++) {
        rn_stage *st = &rn->st[s];
        st->cin = cin;
        st->planes = C0 << s;
        st->cout = 4 * st->planes;
        st->depth = c->depths[s];
        st->stride = s == 0 ? 1 : 2;
        st->kt = s >= c->temporal_from ? 3 : 1;
        float rate = c->drop_path_rate;
        declare_bneck(bb, &st->first, s, 0, cin, st->planes, st->kt);
        st->first.final_relu = 0;
        k++;
        char pre[96];
        snprintf(pre, sizeof pre, "layer%d.0.downsample", s + 1);
        st->proj_w = declare_conv(bb, pre, st->cout, cin, 1, 1);
        declare_bn(bb, st->proj_bn, pre, st->cout);
        st->rest = calloc((size_t)(st->depth > 1 ? st->depth - 1 : 1), sizeof *st->rest);
        st->fns = calloc((size_t)(st->depth > 1 ? st->depth - 1 : 1), sizeof *st->fns);
        if (!st->rest || !st->fns) return tal_err_set(err, TAL_ENOMEM, "backbone: out of memory");
        for (int b = 1; b < st->depth; b++, k++) {
            resnet_bneck_fn *f = &st->rest[b - 1];
            declare_bneck(bb, f, s, b, st->cout, st->planes, st->kt);
            f->final_relu = 1;
            f->drop_p = total > 1 ? rate * (float)k / (float)(total - 1) : 0.0f;
            f->seed = c->seed;
            f->stream = 1000 + (uint64_t)k;
            st->fns[b - 1] = resnet_bneck_resfn(f);
        }
        cin = st->cout;
    }
    return TAL_OK;
}

void resnet_free(tal_backbone *bb) {
    if (!bb->rn) return;
    for (int s = 0; s < TAL_BACKBONE_MAX_STAGES; s++) {
        free(bb->rn->st[s].rest);
        free(bb->rn->st[s].fns);
    }
    free(bb->rn);
    bb->rn = NULL;
}

void resnet_init_params(tal_backbone *bb, uint64_t seed) {
    tal_params *p = bb->params;
    for (int i = 0; i < tal_params_count(p); i++) {
        tal_param *q = tal_params_at(p, i);
        const char *n = q->name;
        if (strstr(n, ".bn.")) {
            int one = strstr(n, "bn.weight") || strstr(n, "running_var");
            tal_fill(q->value, one ? 1.0f : 0.0f);
        } else { /* He normal, fan_out as mmaction2's kaiming_init for convs */
            int64_t fan_out = tal_tensor_numel(q->value) / q->value.shape[1];
            bb_init_trunc_normal(q->value, sqrtf(2.0f / (float)fan_out), seed, (uint64_t)i);
        }
    }
}

void resnet_setup_shapes(tal_backbone *bb) {
    resnet_model *rn = bb->rn;
    rn->T = bb->T;
    rn->H = (int)out_len(bb->H, 2);
    rn->W = (int)out_len(bb->W, 2);
    int H = rn->H, W = rn->W;
    for (int s = 0; s < bb->cfg.n_stages; s++) {
        rn_stage *st = &rn->st[s];
        st->Hin = H, st->Win = W;
        H = (int)out_len(H, st->stride);
        W = (int)out_len(W, st->stride);
        st->T = bb->T, st->H = H, st->W = W;
    }
}

/* ---------------------------------------------------------------- forward / backward ---- */
void resnet_run_forward(tal_backbone *bb, tal_tensor feats, tal_tensor video, int train) {
    const tal_backbone_config *c = &bb->cfg;
    resnet_model *rn = bb->rn;
    tal_params *p = bb->params;
    tal_arena *sc = bb->scratch, *kk = train ? bb->keep : sc;
    uint64_t step = bb_forward_step(bb, train);
    int plan = bb_planning(video);
    int64_t B = bb->B;
    size_t mark0 = tal_arena_mark(sc);
    rn->video = video;
    tal_conv3d_geom stem_g = {{1, 2, 2}, {0, 3, 3}};
    rn->stem_out = tal_arena_tensor(kk, 5, (int64_t[]){B, c->embed_dim, rn->T, rn->H, rn->W});
    tal_conv3d_forward(rn->stem_out, video, bb_value(p, rn->stem_w), tal_tensor_none(), stem_g,
                       sc); /* planning: counts its im2col buffer only */
    if (!plan) {
        bn_fwd(p, rn->stem_bn, rn->stem_out, rn->stem_out);
        tal_relu_forward(rn->stem_out, rn->stem_out);
    }
    tal_tensor x = rn->stem_out;
    for (int s = 0; s < c->n_stages; s++) {
        rn_stage *st = &rn->st[s];
        int64_t shp[5] = {B, st->cout, st->T, st->H, st->W};
        st->x = x;
        st->z0 = tal_arena_tensor(kk, 5, shp);
        st->first_saved = bneck_forward_impl(&st->first, st->stride, st->z0, x,
                                             train ? bb->keep : NULL, sc, step);
        size_t m = tal_arena_mark(sc);
        tal_tensor pc = tal_arena_tensor(sc, 5, shp);
        tal_conv3d_forward(pc, x, bb_value(p, st->proj_w), tal_tensor_none(),
                           geom_of(1, st->stride, 1), sc);
        if (!plan) {
            bn_fwd(p, st->proj_bn, pc, pc);
            tal_add(st->z0, st->z0, pc);
            tal_relu_forward(st->z0, st->z0);
        }
        tal_arena_release(sc, m);
        if (st->depth > 1) {
            st->y = tal_arena_tensor(kk, 5, shp);
            st->rs = tal_revstage_forward(st->fns, st->depth - 1, c->mode[s], st->y, st->z0,
                                          train ? bb->keep : NULL, sc, step);
            if (train && !plan) bb_count_block_time(bb, st->rs, 1);
        } else {
            st->y = st->z0;
        }
        x = st->y;
    }
    if (!plan) tal_mean_hw_forward(feats, x);
    if (!train) tal_arena_release(sc, mark0);
}

void resnet_run_backward(tal_backbone *bb, tal_tensor dfeats, double *recon_err) {
    const tal_backbone_config *c = &bb->cfg;
    resnet_model *rn = bb->rn;
    tal_params *p = bb->params;
    tal_arena *sc = bb->scratch;
    int plan = bb_planning(dfeats);
    if (recon_err) *recon_err = -1;
    size_t mark0 = tal_arena_mark(sc);
    rn_stage *last = &rn->st[c->n_stages - 1];
    tal_tensor dy = tal_arena_like(sc, last->y);
    if (!plan) tal_mean_hw_backward(dy, dfeats);
    for (int s = c->n_stages - 1; s >= 0; s--) {
        rn_stage *st = &rn->st[s];
        tal_tensor dz = dy;
        if (st->depth > 1) {
            dz = tal_arena_like(sc, st->z0);
            double e = -1;
            tal_revstage_backward(st->fns, st->depth - 1, c->mode[s], st->rs, dz, dy, st->z0, sc,
                                  bb->step, recon_err ? &e : NULL);
            if (!plan) bb_count_block_time(bb, st->rs, 0);
            if (recon_err && e > *recon_err) *recon_err = e;
        }
        tal_tensor dsum = tal_arena_like(sc, st->z0);
        tal_tensor dxin = tal_arena_like(sc, st->x);
        size_t m = tal_arena_mark(sc);
        tal_tensor dpc = tal_arena_like(sc, st->z0), dtmp = tal_arena_like(sc, st->x);
        if (!plan) {
            tal_relu_backward(dsum, dz, st->z0);
            bn_bwd(p, st->proj_bn, dpc, dsum);
        }
        tal_conv3d_backward(dtmp, bb_grad(p, st->proj_w), tal_tensor_none(), dpc, st->x,
                            bb_value(p, st->proj_w), geom_of(1, st->stride, 1), sc);
        if (!plan) tal_copy(dxin, dtmp);
        tal_arena_release(sc, m);
        bneck_backward_impl(&st->first, st->stride, dxin, dsum, st->x, st->first_saved, sc,
                            bb->step);
        dy = dxin;
    }
    /* stem: no input gradient, only the weight's */
    tal_conv3d_geom stem_g = {{1, 2, 2}, {0, 3, 3}};
    if (!plan) {
        tal_relu_backward(dy, dy, rn->stem_out);
        bn_bwd(p, rn->stem_bn, dy, dy);
    }
    tal_conv3d_backward(tal_tensor_none(), bb_grad(p, rn->stem_w), tal_tensor_none(), dy,
                        rn->video, bb_value(p, rn->stem_w), stem_g, sc);
    tal_arena_release(sc, mark0);
}
