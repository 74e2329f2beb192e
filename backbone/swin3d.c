/* backbone/swin3d.c: the Video Swin Transformer 3D model (spec-videoswin.md): patch embedding
 * (conv3d, stride = kernel, end padding, LayerNorm), stages of Swin blocks run by the generic
 * engine (F = attention branch, G = MLP branch), PatchMerging, final LayerNorm, spatial mean.
 * Channel-last [B, D, H, W, C] inside; features out [B, C, D]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LN_EPS 1e-5f

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

tal_status swin_declare(tal_backbone *bb, tal_err *err) {
    const tal_backbone_config *c = &bb->cfg;
    int C0 = c->embed_dim;
    bb->pe_w = bb_declare(bb, "patch_embed.proj.weight", 5,
                          (int64_t[]){C0, 3, c->patch[0], c->patch[1], c->patch[2]}, 0, 0);
    bb->pe_b = bb_declare(bb, "patch_embed.proj.bias", 1, (int64_t[]){C0}, 1, 0);
    bb->pe_nw = bb_declare(bb, "patch_embed.norm.weight", 1, (int64_t[]){C0}, 1, 1);
    bb->pe_nb = bb_declare(bb, "patch_embed.norm.bias", 1, (int64_t[]){C0}, 1, 1);
    int total = 0;
    for (int s = 0; s < c->n_stages; s++) total += c->depths[s];
    int k = 0;
    char name[128];
    for (int s = 0; s < c->n_stages; s++) {
        swin_stage *st = &bb->st[s];
        st->C = C0 << s;
        st->heads = c->heads[s];
        st->depth = c->depths[s];
        int64_t C = st->C, hidden = (int64_t)lroundf(c->mlp_ratio * (float)C);
        int64_t rows = (int64_t)(2 * c->window[0] - 1) * (2 * c->window[1] - 1) *
                       (2 * c->window[2] - 1);
        st->attn = calloc((size_t)st->depth, sizeof *st->attn);
        st->mlp = calloc((size_t)st->depth, sizeof *st->mlp);
        st->fns = calloc((size_t)st->depth * 2, sizeof *st->fns);
        if (!st->attn || !st->mlp || !st->fns)
            return tal_err_set(err, TAL_ENOMEM, "backbone: out of memory for stage %d", s);
        for (int b = 0; b < st->depth; b++, k++) {
            float p = total > 1 ? c->drop_path_rate * (float)k / (float)(total - 1) : 0.0f;
            swin_attn_fn *f = &st->attn[b];
            swin_mlp_fn *g = &st->mlp[b];
#define P(suffix) (snprintf(name, sizeof name, "layers.%d.blocks.%d.%s", s, b, suffix), name)
            f->g = &st->geom;
            f->params = bb->params;
            f->shifted = b % 2;
            f->norm_w = bb_declare(bb, P("norm1.weight"), 1, (int64_t[]){C}, 1, 1);
            f->norm_b = bb_declare(bb, P("norm1.bias"), 1, (int64_t[]){C}, 1, 1);
            f->table = bb_declare(bb, P("attn.relative_position_bias_table"), 2,
                                  (int64_t[]){rows, st->heads}, 1, 0);
            f->qkv_w = bb_declare(bb, P("attn.qkv.weight"), 2, (int64_t[]){3 * C, C}, 0, 0);
            f->qkv_b = bb_declare(bb, P("attn.qkv.bias"), 1, (int64_t[]){3 * C}, 1, 0);
            f->proj_w = bb_declare(bb, P("attn.proj.weight"), 2, (int64_t[]){C, C}, 0, 0);
            f->proj_b = bb_declare(bb, P("attn.proj.bias"), 1, (int64_t[]){C}, 1, 0);
            f->drop_p = p;
            f->seed = c->seed;
            f->stream = 2 * (uint64_t)k;
            g->params = bb->params;
            g->hidden = (int)hidden;
            g->norm_w = bb_declare(bb, P("norm2.weight"), 1, (int64_t[]){C}, 1, 1);
            g->norm_b = bb_declare(bb, P("norm2.bias"), 1, (int64_t[]){C}, 1, 1);
            g->fc1_w = bb_declare(bb, P("mlp.fc1.weight"), 2, (int64_t[]){hidden, C}, 0, 0);
            g->fc1_b = bb_declare(bb, P("mlp.fc1.bias"), 1, (int64_t[]){hidden}, 1, 0);
            g->fc2_w = bb_declare(bb, P("mlp.fc2.weight"), 2, (int64_t[]){C, hidden}, 0, 0);
            g->fc2_b = bb_declare(bb, P("mlp.fc2.bias"), 1, (int64_t[]){C}, 1, 0);
            g->drop_p = p;
            g->seed = c->seed;
            g->stream = 2 * (uint64_t)k + 1;
#undef P
            st->fns[2 * b] = swin_attn_resfn(f);
            st->fns[2 * b + 1] = swin_mlp_resfn(g);
        }
        st->ds_norm_w = st->ds_norm_b = st->ds_red_w = -1;
        if (s + 1 < c->n_stages) {
            snprintf(name, sizeof name, "layers.%d.downsample.norm.weight", s);
            st->ds_norm_w = bb_declare(bb, name, 1, (int64_t[]){4 * C}, 1, 1);
            snprintf(name, sizeof name, "layers.%d.downsample.norm.bias", s);
            st->ds_norm_b = bb_declare(bb, name, 1, (int64_t[]){4 * C}, 1, 1);
            snprintf(name, sizeof name, "layers.%d.downsample.reduction.weight", s);
            st->ds_red_w = bb_declare(bb, name, 2, (int64_t[]){2 * C, 4 * C}, 0, 0);
        }
    }
    int64_t Cl = bb->st[c->n_stages - 1].C;
    bb->fin_w = bb_declare(bb, "norm3.weight", 1, (int64_t[]){Cl}, 1, 1);
    bb->fin_b = bb_declare(bb, "norm3.bias", 1, (int64_t[]){Cl}, 1, 1);
    return TAL_OK;
}

void swin_free(tal_backbone *bb) {
    for (int s = 0; s < TAL_BACKBONE_MAX_STAGES; s++) {
        free(bb->st[s].attn);
        free(bb->st[s].mlp);
        free(bb->st[s].fns);
        bb->st[s].attn = NULL, bb->st[s].mlp = NULL, bb->st[s].fns = NULL;
    }
}

void swin_init_params(tal_backbone *bb, uint64_t seed) {
    tal_params *p = bb->params;
    for (int i = 0; i < tal_params_count(p); i++) {
        tal_param *q = tal_params_at(p, i);
        const char *n = q->name;
        size_t len = strlen(n);
        int is_bias = len > 5 && !strcmp(n + len - 5, ".bias");
        if (strstr(n, "norm") && !strstr(n, "proj")) {
            tal_fill(q->value, is_bias ? 0.0f : 1.0f);
        } else if (is_bias) {
            tal_fill(q->value, 0.0f);
        } else if (!strcmp(n, "patch_embed.proj.weight")) {
            /* conv default (kaiming-uniform-like): uniform in +-1/sqrt(fan_in) */
            int64_t fan_in = tal_tensor_numel(q->value) / q->value.shape[0];
            float bound = 1.0f / sqrtf((float)fan_in);
            tal_rng_key key = {seed, 0, (uint64_t)i};
            TAL_ASSERT_CPU(q->value); /* initialised on the host, then moved */
            for (int64_t j = 0; j < tal_tensor_numel(q->value); j++)
                q->value.data[j] = (2.0f * tal_rng_uniform(key, (uint64_t)j) - 1.0f) * bound;
        } else {
            bb_init_trunc_normal(q->value, 0.02f, seed, (uint64_t)i);
        }
    }
}

void swin_setup_shapes(tal_backbone *bb) {
    const tal_backbone_config *c = &bb->cfg;
    int D = ceil_div(bb->T, c->patch[0]);
    int H = ceil_div(bb->H, c->patch[1]);
    int W = ceil_div(bb->W, c->patch[2]);
    for (int s = 0; s < c->n_stages; s++) {
        swin_stage *st = &bb->st[s];
        st->D = D, st->H = H, st->W = W;
        swin_geom_init(&st->geom, bb->B, D, H, W, st->C, st->heads, c->window, bb->consts);
        H = ceil_div(H, 2);
        W = ceil_div(W, 2);
    }
}

/* ---------------------------------------------------------------- forward --------------- */
static tal_tensor rows2(tal_tensor t, int64_t C) {
    return tal_tensor_reshape(t, 2, (int64_t[]){tal_tensor_numel(t) / C, C});
}

/* x [B, D, H, W, C] as [B D, H, W, C] (PatchMerging's view). */
static tal_tensor frames_of(tal_tensor x) {
    return tal_tensor_reshape(x, 4, (int64_t[]){x.shape[0] * x.shape[1], x.shape[2], x.shape[3],
                                                x.shape[4]});
}

void swin_run_forward(tal_backbone *bb, tal_tensor feats, tal_tensor video, int train) {
    const tal_backbone_config *c = &bb->cfg;
    tal_params *p = bb->params;
    tal_arena *sc = bb->scratch;
    tal_arena *kk = train ? bb->keep : sc; /* where tensors backward needs go */
    uint64_t step = bb_forward_step(bb, train);
    int plan = bb_planning(video);
    int64_t B = bb->B, C0 = c->embed_dim;
    const swin_stage *s0 = &bb->st[0];
    int64_t D = s0->D, H1 = s0->H, W1 = s0->W, S = D * H1 * W1;
    int64_t Tp = D * c->patch[0], Hp = H1 * c->patch[1], Wp = W1 * c->patch[2];
    TAL_ASSERT(video.ndim == 5 && video.shape[0] == B && video.shape[1] == 3 &&
               video.shape[2] == bb->T && video.shape[3] == bb->H && video.shape[4] == bb->W);
    size_t mark0 = tal_arena_mark(sc);
    tal_tensor in = video;
    if (Tp != bb->T || Hp != bb->H || Wp != bb->W) {
        in = tal_arena_tensor(kk, 5, (int64_t[]){B, 3, Tp, Hp, Wp});
        if (!plan)
            tal_pad_end3(tal_tensor_reshape(in, 4, (int64_t[]){B * 3, Tp, Hp, Wp}),
                         tal_tensor_reshape(video, 4, (int64_t[]){B * 3, bb->T, bb->H, bb->W}));
    }
    bb->pe_in = in;
    bb->pe_ln_in = tal_arena_tensor(kk, 2, (int64_t[]){B * S, C0});
    bb->pe_mean = tal_arena_tensor(kk, 1, (int64_t[]){B * S});
    bb->pe_rstd = tal_arena_tensor(kk, 1, (int64_t[]){B * S});
    tal_tensor x = tal_arena_tensor(kk, 5, (int64_t[]){B, D, H1, W1, C0});
    size_t m = tal_arena_mark(sc);
    tal_tensor conv = tal_arena_tensor(sc, 5, (int64_t[]){B, C0, D, H1, W1});
    if (!plan) {
        tal_patch_conv3d_forward(conv, in, bb_value(p, bb->pe_w), bb_value(p, bb->pe_b));
        tal_transpose_last2(tal_tensor_reshape(bb->pe_ln_in, 3, (int64_t[]){B, S, C0}),
                            tal_tensor_reshape(conv, 3, (int64_t[]){B, C0, S}));
        tal_layernorm_forward(rows2(x, C0), bb->pe_mean, bb->pe_rstd, bb->pe_ln_in,
                              bb_value(p, bb->pe_nw), bb_value(p, bb->pe_nb), LN_EPS);
    }
    tal_arena_release(sc, m);
    for (int s = 0; s < c->n_stages; s++) {
        swin_stage *st = &bb->st[s];
        int64_t C = st->C;
        tal_tensor y = tal_arena_like(kk, x);
        st->x = x;
        st->y = y;
        st->rs = tal_revstage_forward(st->fns, 2 * st->depth, c->mode[s], y, x,
                                      train ? bb->keep : NULL, sc, step);
        if (train && !plan) bb_count_block_time(bb, st->rs, 1);
        if (s + 1 == c->n_stages) break;
        int64_t H2 = (st->H + 1) / 2, W2 = (st->W + 1) / 2, R = B * st->D * H2 * W2;
        st->m4 = tal_arena_tensor(kk, 2, (int64_t[]){R, 4 * C});
        st->m4n = tal_arena_like(kk, st->m4);
        st->mmean = tal_arena_tensor(kk, 1, (int64_t[]){R});
        st->mrstd = tal_arena_tensor(kk, 1, (int64_t[]){R});
        tal_tensor nx = tal_arena_tensor(kk, 5, (int64_t[]){B, st->D, H2, W2, 2 * C});
        if (!plan) {
            tal_merge2x2_forward(
                tal_tensor_reshape(st->m4, 4, (int64_t[]){B * st->D, H2, W2, 4 * C}),
                frames_of(y));
            tal_layernorm_forward(st->m4n, st->mmean, st->mrstd, st->m4,
                                  bb_value(p, st->ds_norm_w), bb_value(p, st->ds_norm_b), LN_EPS);
            tal_linear_forward(rows2(nx, 2 * C), st->m4n, bb_value(p, st->ds_red_w),
                               tal_tensor_none());
        }
        x = nx;
    }
    const swin_stage *last = &bb->st[c->n_stages - 1];
    int64_t Cl = last->C, R = B * last->D * last->H * last->W;
    bb->fin_mean = tal_arena_tensor(kk, 1, (int64_t[]){R});
    bb->fin_rstd = tal_arena_tensor(kk, 1, (int64_t[]){R});
    m = tal_arena_mark(sc);
    tal_tensor yf = tal_arena_tensor(sc, 2, (int64_t[]){R, Cl});
    if (!plan) {
        TAL_ASSERT(feats.ndim == 3 && feats.shape[0] == B && feats.shape[1] == Cl &&
                   feats.shape[2] == last->D);
        tal_layernorm_forward(yf, bb->fin_mean, bb->fin_rstd, rows2(last->y, Cl),
                              bb_value(p, bb->fin_w), bb_value(p, bb->fin_b), LN_EPS);
        tal_mean_hw_last_forward(
            feats, tal_tensor_reshape(yf, 4, (int64_t[]){B, last->D, last->H * last->W, Cl}));
    }
    tal_arena_release(sc, m);
    if (!train) tal_arena_release(sc, mark0);
}

void swin_run_backward(tal_backbone *bb, tal_tensor dfeats, double *recon_err) {
    const tal_backbone_config *c = &bb->cfg;
    tal_params *p = bb->params;
    tal_arena *sc = bb->scratch;
    int plan = bb_planning(dfeats);
    int64_t B = bb->B;
    if (recon_err) *recon_err = -1;
    size_t mark0 = tal_arena_mark(sc);
    const swin_stage *last = &bb->st[c->n_stages - 1];
    int64_t Cl = last->C;
    tal_tensor dy = tal_arena_like(sc, last->y);
    {
        size_t m = tal_arena_mark(sc);
        tal_tensor dyf = tal_arena_like(sc, last->y);
        if (!plan) {
            tal_mean_hw_last_backward(
                tal_tensor_reshape(dyf, 4, (int64_t[]){B, last->D, last->H * last->W, Cl}),
                dfeats);
            tal_layernorm_backward(rows2(dy, Cl), bb_grad(p, bb->fin_w), bb_grad(p, bb->fin_b),
                                   rows2(dyf, Cl), rows2(last->y, Cl), bb_value(p, bb->fin_w),
                                   bb->fin_mean, bb->fin_rstd);
        }
        tal_arena_release(sc, m);
    }
    for (int s = c->n_stages - 1; s >= 0; s--) {
        swin_stage *st = &bb->st[s];
        tal_tensor dx = tal_arena_like(sc, st->x);
        double e = -1;
        tal_revstage_backward(st->fns, 2 * st->depth, c->mode[s], st->rs, dx, dy, st->x, sc,
                              bb->step, recon_err ? &e : NULL);
        if (!plan) bb_count_block_time(bb, st->rs, 0);
        bb_note_recon(bb, s, e, recon_err);
        if (s > 0) {
            swin_stage *pv = &bb->st[s - 1];
            int64_t C = pv->C;
            tal_tensor dm4n = tal_arena_like(sc, pv->m4), dm4 = tal_arena_like(sc, pv->m4);
            dy = tal_arena_like(sc, pv->y);
            if (!plan) {
                tal_linear_backward(dm4n, bb_grad(p, pv->ds_red_w), tal_tensor_none(),
                                    rows2(dx, 2 * C), pv->m4n, bb_value(p, pv->ds_red_w));
                tal_layernorm_backward(dm4, bb_grad(p, pv->ds_norm_w), bb_grad(p, pv->ds_norm_b),
                                       dm4n, pv->m4, bb_value(p, pv->ds_norm_w), pv->mmean,
                                       pv->mrstd);
                int64_t H2 = (pv->H + 1) / 2, W2 = (pv->W + 1) / 2;
                tal_merge2x2_backward(
                    frames_of(dy),
                    tal_tensor_reshape(dm4, 4, (int64_t[]){B * pv->D, H2, W2, 4 * C}));
                tal_params_grads_ready(p, pv->ds_norm_w, pv->ds_red_w + 1); /* PatchMerging */
            }
        } else {
            int64_t C0 = c->embed_dim, S = (int64_t)st->D * st->H * st->W;
            tal_tensor dln = tal_arena_like(sc, bb->pe_ln_in);
            tal_tensor dconv = tal_arena_tensor(sc, 5, (int64_t[]){B, C0, st->D, st->H, st->W});
            if (!plan) {
                tal_layernorm_backward(dln, bb_grad(p, bb->pe_nw), bb_grad(p, bb->pe_nb),
                                       rows2(dx, C0), bb->pe_ln_in, bb_value(p, bb->pe_nw),
                                       bb->pe_mean, bb->pe_rstd);
                tal_transpose_last2(tal_tensor_reshape(dconv, 3, (int64_t[]){B, C0, S}),
                                    tal_tensor_reshape(dln, 3, (int64_t[]){B, S, C0}));
                tal_patch_conv3d_backward(tal_tensor_none(), bb_grad(p, bb->pe_w),
                                          bb_grad(p, bb->pe_b), dconv, bb->pe_in,
                                          bb_value(p, bb->pe_w));
            }
        }
    }
    tal_arena_release(sc, mark0);
}
