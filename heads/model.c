/* heads/model.c: ActionFormer's projection (masked conv embedding, transformer stem and branch
 * with MHCA), FPN identity neck and the shared cls / reg heads, forward and backward on
 * [B, C, T] with masks (spec-actionformer.md §2-§5). OpenTAD variant: LN eps 1e-6 in conv units
 * and the neck, 1e-5 in the blocks, mask re-applied after every activation; ActionFormer
 * variant: eps 1e-5 everywhere, no mask after the conv units' ReLU. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- parameters ------------ */
static int declare(tal_head *h, const char *name, int ndim, const int64_t *shape, int decay) {
    char full[160];
    snprintf(full, sizeof full, "%s%s", h->prefix, name);
    return tal_params_declare(h->params, full, ndim, shape, decay ? h->g_decay : h->g_no_decay, 1);
}

static void declare_ln(tal_head *h, int *idx, const char *name, int64_t C) {
    char n[140];
    snprintf(n, sizeof n, "%s.weight", name);
    idx[0] = declare(h, n, 1, &C, 0);
    snprintf(n, sizeof n, "%s.bias", name);
    idx[1] = declare(h, n, 1, &C, 0);
}

static void declare_conv(tal_head *h, int *w, int *b, const char *name, int64_t Co, int64_t Ci,
                         int64_t k) {
    char n[140];
    int64_t shape[3] = {Co, Ci, k};
    snprintf(n, sizeof n, "%s.weight", name);
    *w = declare(h, n, 3, shape, 1);
    if (b) {
        snprintf(n, sizeof n, "%s.bias", name);
        *b = declare(h, n, 1, &Co, 0);
    }
}

static void declare_unit(tal_head *h, conv_unit *u, const char *name, int64_t Ci, int64_t C) {
    char n[140];
    snprintf(n, sizeof n, "%s.conv", name);
    declare_conv(h, &u->w, NULL, n, C, Ci, 3);
    snprintf(n, sizeof n, "%s.norm", name);
    declare_ln(h, u->ln, n, C);
}

static void declare_block(tal_head *h, block *bl, const char *name) {
    int64_t C = h->cfg.channels;
    char n[160];
    static const char *qkv[3] = {"query", "key", "value"};
    snprintf(n, sizeof n, "%s.ln1", name);
    declare_ln(h, bl->ln1, n, C);
    snprintf(n, sizeof n, "%s.ln2", name);
    declare_ln(h, bl->ln2, n, C);
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "%s.attn.%s_conv.conv", name, qkv[i]);
        declare_conv(h, &bl->dw[i], NULL, n, C, 1, 3);
        snprintf(n, sizeof n, "%s.attn.%s_norm", name, qkv[i]);
        declare_ln(h, bl->dwln[i], n, C);
        snprintf(n, sizeof n, "%s.attn.%s", name, qkv[i]);
        declare_conv(h, &bl->lin_w[i], &bl->lin_b[i], n, C, C, 1);
    }
    snprintf(n, sizeof n, "%s.attn.proj", name);
    declare_conv(h, &bl->lin_w[3], &bl->lin_b[3], n, C, C, 1);
    snprintf(n, sizeof n, "%s.mlp.0", name);
    declare_conv(h, &bl->mlp_w[0], &bl->mlp_b[0], n, 4 * C, C, 1);
    snprintf(n, sizeof n, "%s.mlp.3", name);
    declare_conv(h, &bl->mlp_w[1], &bl->mlp_b[1], n, C, 4 * C, 1);
    bl->gamma[0] = bl->gamma[1] = -1;
    if (h->cfg.path_pdrop > 0) {
        int64_t shape[3] = {1, C, 1};
        snprintf(n, sizeof n, "%s.drop_path_attn.scale", name);
        bl->gamma[0] = declare(h, n, 3, shape, 0);
        snprintf(n, sizeof n, "%s.drop_path_mlp.scale", name);
        bl->gamma[1] = declare(h, n, 3, shape, 0);
    }
}

tal_status tal_head_create(tal_head **out, const tal_head_config *cfg, tal_params *params,
                           const char *prefix, int group_decay, int group_no_decay,
                           int max_batch, tal_err *err) {
    *out = NULL;
    if (tal_head_config_check(cfg, err) != TAL_OK) return err ? err->code : TAL_EINVAL;
    if (max_batch < 1) return tal_err_set(err, TAL_EINVAL, "head: max_batch %d < 1", max_batch);
    tal_head *h = calloc(1, sizeof *h);
    if (!h) return tal_err_set(err, TAL_ENOMEM, "head: out of memory");
    h->cfg = *cfg;
    h->params = params;
    snprintf(h->prefix, sizeof h->prefix, "%s", prefix ? prefix : "");
    h->g_decay = group_decay;
    h->g_no_decay = group_no_decay;
    h->max_batch = max_batch;
    h->n_levels = tal_head_levels(cfg);
    h->loss_norm = cfg->init_loss_norm;
    int64_t C = cfg->channels;
    char n[96];
    for (int i = 0; i < cfg->arch[0]; i++) {
        snprintf(n, sizeof n, "projection.embed.%d", i);
        declare_unit(h, &h->embed[i], n, i == 0 ? cfg->in_channels : C, C);
    }
    h->n_blocks = cfg->arch[1] + cfg->arch[2];
    for (int i = 0; i < h->n_blocks; i++) {
        int stem = i < cfg->arch[1];
        snprintf(n, sizeof n, "projection.%s.%d", stem ? "stem" : "branch",
                 stem ? i : i - cfg->arch[1]);
        h->blocks[i].stride = stem ? 1 : 2;
        declare_block(h, &h->blocks[i], n);
    }
    for (int l = 0; l < h->n_levels; l++) {
        snprintf(n, sizeof n, "neck.fpn_norms.%d", l);
        declare_ln(h, h->fpn_ln[l], n, C);
    }
    for (int i = 0; i < cfg->n_head_convs; i++) {
        snprintf(n, sizeof n, "rpn_head.cls_convs.%d", i);
        declare_unit(h, &h->cls_units[i], n, C, C);
        snprintf(n, sizeof n, "rpn_head.reg_convs.%d", i);
        declare_unit(h, &h->reg_units[i], n, C, C);
    }
    declare_conv(h, &h->cls_w, &h->cls_b, "rpn_head.cls_head", cfg->n_classes, C, 3);
    declare_conv(h, &h->reg_w, &h->reg_b, "rpn_head.reg_head", 2, C, 3);
    for (int l = 0; l < h->n_levels; l++) {
        snprintf(n, sizeof n, "rpn_head.scale.%d.scale", l);
        h->scale[l] = declare(h, n, 0, NULL, 0);
    }
    *out = h;
    return TAL_OK;
}

/* Sinusoidal table [C, T] scaled by 1/sqrt(C) (spec §2.3). */
static void fill_pe(float *pe, int C, int T) {
    for (int j = 0; j < C; j++) {
        double freq = pow(10000.0, -(double)(2 * (j / 2)) / C);
        for (int p = 0; p < T; p++) {
            double a = p * freq;
            pe[(int64_t)j * T + p] = (float)((j % 2 ? cos(a) : sin(a)) / sqrt((double)C));
        }
    }
}

static void init_uniform(tal_param *p, uint64_t seed, uint64_t stream) {
    int64_t fan_in = p->value.shape[1] * p->value.shape[2];
    float bound = 1.0f / sqrtf((float)fan_in); /* kaiming_uniform(a = sqrt(5)) */
    tal_rng_key key = {seed, 0, stream};
    int64_t n = tal_tensor_numel(p->value);
    for (int64_t i = 0; i < n; i++)
        p->value.data[i] = (2.0f * tal_rng_uniform(key, (uint64_t)i) - 1.0f) * bound;
}

static void init_params(tal_head *h) {
    int n = tal_params_count(h->params);
    size_t plen = strlen(h->prefix);
    for (int i = 0; i < n; i++) {
        tal_param *p = tal_params_at(h->params, i);
        if (strncmp(p->name, h->prefix, plen) != 0) continue;
        const char *nm = p->name + plen;
        size_t len = strlen(nm);
        int is_ours = !strncmp(nm, "projection.", 11) || !strncmp(nm, "neck.", 5) ||
                      !strncmp(nm, "rpn_head.", 9);
        if (!is_ours) continue;
        if (strstr(nm, ".scale") && len > 6 && !strcmp(nm + len - 6, ".scale")) {
            tal_fill(p->value, strstr(nm, "drop_path") ? 1e-4f : 1.0f);
        } else if (strstr(nm, "norm") || strstr(nm, ".ln1.") || strstr(nm, ".ln2.")) {
            tal_fill(p->value, strcmp(nm + len - 7, ".weight") == 0 ? 1.0f : 0.0f);
        } else if (!strcmp(nm + len - 5, ".bias")) {
            tal_fill(p->value, 0.0f);
        } else {
            init_uniform(p, h->cfg.seed, 1000 + (uint64_t)i);
        }
    }
    /* classification prior: sigmoid(bias) = 0.01 */
    tal_fill(P(h, h->cls_b)->value, -logf((1.0f - 0.01f) / 0.01f));
}

tal_status tal_head_init(tal_head *h, int init, tal_err *err) {
    if (init) init_params(h);
    return tal_head_prepare(h, err);
}

/* Points of all levels for T positions. */
static int64_t points_of(const tal_head *h, int64_t T) {
    int64_t P = 0;
    for (int l = 0; l < h->n_levels; l++) P += T >> l;
    return P;
}

static void free_arenas(tal_head *h) {
    tal_arena_destroy(h->act);
    tal_arena_destroy(h->bwd);
    tal_arena_destroy(h->scratch);
    tal_arena_destroy(h->pe_arena);
    h->act = h->bwd = h->scratch = h->pe_arena = NULL;
    h->pe = tal_tensor_none();
    free(h->cls_target);
    free(h->reg_target);
    free(h->host_mask);
    free(h->host_stage);
    h->cls_target = h->reg_target = h->host_mask = h->host_stage = NULL;
}

tal_status tal_head_prepare(tal_head *h, tal_err *err) {
    const tal_head_config *c = &h->cfg;
    free_arenas(h);
    h->dev = V(h, h->cls_w).device;
    /* planner pass: forward + loss + backward at the largest shape, counting every block */
    h->act = tal_arena_create_planner_on(h->dev);
    h->bwd = tal_arena_create_planner_on(h->dev);
    h->scratch = tal_arena_create_planner_on(h->dev);
    h->plan = 1;
    int64_t B = h->max_batch, T = c->max_seq_len, K = c->n_classes, P = points_of(h, T);
    tal_tensor x = tal_tensor_of(NULL, 3, (int64_t[]){B, c->in_channels, T});
    tal_tensor m = tal_tensor_of(NULL, 2, (int64_t[]){B, T});
    x.device = m.device = h->dev;
    tal_head_forward(h, x, m);
    tal_head_backward_from(h, h->d_cls, h->d_reg, x);
    size_t a = tal_arena_high_water(h->act), b = tal_arena_high_water(h->bwd);
    size_t s = tal_arena_high_water(h->scratch);
    tal_arena_destroy(h->act);
    tal_arena_destroy(h->bwd);
    tal_arena_destroy(h->scratch);
    h->act = h->bwd = h->scratch = NULL;
    h->plan = 0;
    h->fwd_done = 0;
    tal_status rc = tal_arena_create(&h->act, h->dev, a + 4096, err);
    if (rc == TAL_OK) rc = tal_arena_create(&h->bwd, h->dev, b + 4096, err);
    if (rc == TAL_OK) rc = tal_arena_create(&h->scratch, h->dev, s + 4096, err);
    if (rc == TAL_OK && c->use_abs_pe) {
        int64_t n = (int64_t)c->channels * T;
        rc = tal_arena_create(&h->pe_arena, h->dev, tal_arena_round((size_t)n * sizeof(float)),
                              err);
        if (rc == TAL_OK) { /* made on the host, then where the head computes */
            float *host = malloc((size_t)n * sizeof(float));
            TAL_ASSERT_MSG(host != NULL, "out of memory for the position table");
            fill_pe(host, c->channels, (int)T);
            h->pe = tal_arena_tensor(h->pe_arena, 2, (int64_t[]){c->channels, T});
            tal_copy(h->pe, tal_t2(host, c->channels, T));
            free(host);
        }
    }
    if (rc != TAL_OK) return tal_err_prefix(err, "head: arenas");
    h->cls_target = malloc((size_t)(B * P * K) * sizeof(float));
    h->reg_target = malloc((size_t)(B * P * 2) * sizeof(float));
    h->host_mask = malloc((size_t)(B * T) * sizeof(float));
    h->host_stage = malloc((size_t)(B * T * (K + 3)) * sizeof(float));
    if (!h->cls_target || !h->reg_target || !h->host_mask || !h->host_stage)
        return tal_err_set(err, TAL_ENOMEM, "head: out of memory for the targets of %lld items",
                           (long long)B);
    return TAL_OK;
}

void tal_head_bus_bytes(const tal_head *h, int64_t B, size_t *loss_up, size_t *loss_down,
                        size_t *decode_down) {
    int64_t T = h->cfg.max_seq_len, K = h->cfg.n_classes, P = points_of(h, T);
    int dev = h->dev != TAL_DEV_CPU;
    /* up: per level smoothed classes, offsets, positives; down: the level-0 mask and two sums
     * of the losses; decoding: the item's classes, offsets and mask */
    if (loss_up) *loss_up = dev ? (size_t)(B * P * (K + 3)) * sizeof(float) : 0;
    if (loss_down) *loss_down = dev ? (size_t)(B * T) * sizeof(float) + 2 * h->n_levels * 8 : 0;
    if (decode_down) *decode_down = dev ? (size_t)(P * (K + 2) + T) * sizeof(float) : 0;
}

void tal_head_destroy(tal_head *h) {
    if (!h) return;
    free_arenas(h);
    free(h);
}

const tal_head_config *tal_head_cfg(const tal_head *h) { return &h->cfg; }

const char *tal_head_checkpoint_name(const char *file_name, char *buf, size_t size, void *ctx) {
    const tal_head *h = ctx;
    if (!strncmp(file_name, "module.", 7)) file_name += 7; /* DDP */
    int ours = !strncmp(file_name, "projection.", 11) || !strncmp(file_name, "neck.", 5) ||
               (!strncmp(file_name, "rpn_head.", 9) && !strstr(file_name, "loss_normalizer"));
    if (!ours) return NULL;
    snprintf(buf, size, "%s%s", h->prefix, file_name);
    return buf;
}

size_t tal_head_arena_bytes(const tal_head *h, size_t *backward_bytes) {
    if (backward_bytes)
        *backward_bytes = tal_arena_capacity(h->bwd) + tal_arena_capacity(h->scratch);
    return tal_arena_capacity(h->act);
}

void tal_head_set_train(tal_head *h, int train, uint64_t step) {
    h->train = train;
    h->step = step;
}

float tal_head_loss_normalizer(const tal_head *h) { return h->loss_norm; }
void tal_head_set_loss_normalizer(tal_head *h, float n) { h->loss_norm = n; }

tal_tensor tal_head_cls(const tal_head *h, int l) { return h->cls_out[l]; }
tal_tensor tal_head_reg(const tal_head *h, int l) { return h->reg_out[l]; }
tal_tensor tal_head_seed_cls(const tal_head *h, int l) { return h->d_cls[l]; }
tal_tensor tal_head_seed_reg(const tal_head *h, int l) { return h->d_reg[l]; }
tal_tensor tal_head_level_mask(const tal_head *h, int l) { return h->mask[l]; }
int tal_head_n_points(const tal_head *h) {
    int n = 0;
    for (int l = 0; l < h->n_levels; l++) n += (int)h->mask[l].shape[1];
    return n;
}

/* ---------------------------------------------------------------- small ops ------------- */
static tal_tensor new3(tal_head *h, tal_arena *a, int64_t d0, int64_t d1, int64_t d2) {
    (void)h;
    return tal_arena_tensor(a, 3, (int64_t[]){d0, d1, d2});
}
static tal_tensor new2(tal_arena *a, int64_t d0, int64_t d1) {
    return tal_arena_tensor(a, 2, (int64_t[]){d0, d1});
}

static tal_conv1d_geom geom(int stride, int pad, int groups) {
    tal_conv1d_geom g = {stride, pad, groups};
    return g;
}

static tal_rng_key dp_key(const tal_head *h, int blk, int which) {
    tal_rng_key k = {h->cfg.seed, h->step, 7000 + 2 * (uint64_t)blk + (uint64_t)which};
    return k;
}

/* ---------------------------------------------------------------- conv unit ------------- */
/* LN eps of the conv units and the neck (the blocks use 1e-5 in both variants). */
static float unit_eps(const tal_head *h) {
    return h->cfg.variant == TAL_HEAD_ACTIONFORMER ? 1e-5f : 1e-6f;
}

/* conv (k3, no bias) -> mask -> LN -> ReLU -> mask (OpenTAD; ActionFormer leaves the padded
 * positions at relu(beta), which the next conv reads at the boundary) */
static void unit_forward(tal_head *h, const conv_unit *u, unit_saved *s, tal_tensor x,
                         tal_tensor m) {
    int64_t B = x.shape[0], T = x.shape[2], C = V(h, u->w).shape[0];
    s->x = x;
    s->u = new3(h, h->act, B, C, T);
    s->mean = new2(h->act, B, T);
    s->rstd = new2(h->act, B, T);
    s->z = new3(h, h->act, B, C, T);
    tal_conv1d_forward(s->u, x, V(h, u->w), tal_tensor_none(), m, geom(1, 1, 1), h->scratch);
    if (h->plan) return;
    tal_layernorm_ct_forward(s->z, s->mean, s->rstd, s->u, V(h, u->ln[0]), V(h, u->ln[1]),
                             unit_eps(h));
    tal_relu_forward(s->z, s->z);
    if (h->cfg.variant != TAL_HEAD_ACTIONFORMER) tal_mask_columns(s->z, s->z, m);
}

/* dz is consumed (overwritten); writes dx (may be none). Either variant: ReLU's backward reads
 * z, which is 0 where the forward masked it. */
static void unit_backward(tal_head *h, const conv_unit *u, const unit_saved *s, tal_tensor dx,
                          tal_tensor dz, tal_tensor m) {
    size_t mark = tal_arena_mark(h->bwd);
    tal_tensor du = tal_arena_like(h->bwd, s->u);
    if (!h->plan) {
        tal_relu_backward(dz, dz, s->z);
        tal_layernorm_ct_backward(du, G(h, u->ln[0]), G(h, u->ln[1]), dz, s->u, V(h, u->ln[0]),
                                  s->mean, s->rstd);
    }
    tal_conv1d_backward(dx, G(h, u->w), tal_tensor_none(), du, s->x, V(h, u->w), m,
                        geom(1, 1, 1), h->scratch);
    tal_arena_release(h->bwd, mark);
}

/* ---------------------------------------------------------------- transformer block ----- */
static void block_forward(tal_head *h, int bi, tal_tensor x, tal_tensor mo) {
    const block *bl = &h->blocks[bi];
    block_saved *s = &h->bs[bi];
    const tal_head_config *c = &h->cfg;
    int64_t B = x.shape[0], C = x.shape[1], T = x.shape[2], To = T / bl->stride;
    tal_arena *a = h->act;
    s->x = x;
    s->h1 = new3(h, a, B, C, T);
    s->mean1 = new2(a, B, T);
    s->rstd1 = new2(a, B, T);
    if (!h->plan) tal_layernorm_ct_forward(s->h1, s->mean1, s->rstd1, x, V(h, bl->ln1[0]),
                                           V(h, bl->ln1[1]), 1e-5f);
    for (int i = 0; i < 3; i++) {
        s->dwc[i] = new3(h, a, B, C, To);
        s->dwn[i] = new3(h, a, B, C, To);
        s->dwmean[i] = new2(a, B, To);
        s->dwrstd[i] = new2(a, B, To);
        s->lin[i] = new3(h, a, B, C, To);
        tal_conv1d_forward(s->dwc[i], s->h1, V(h, bl->dw[i]), tal_tensor_none(), mo,
                           geom(bl->stride, 1, (int)C), h->scratch);
        if (!h->plan)
            tal_layernorm_ct_forward(s->dwn[i], s->dwmean[i], s->dwrstd[i], s->dwc[i],
                                     V(h, bl->dwln[i][0]), V(h, bl->dwln[i][1]), 1e-5f);
        tal_conv1d_forward(s->lin[i], s->dwn[i], V(h, bl->lin_w[i]), V(h, bl->lin_b[i]),
                           tal_tensor_none(), geom(1, 0, 1), h->scratch);
    }
    if (!h->plan) tal_mask_columns(s->lin[2], s->lin[2], mo); /* v * kv_mask */
    int64_t cols = tal_attention_ct_probs_cols(To, c->mha_win);
    s->probs = tal_arena_tensor(a, 4, (int64_t[]){B, c->n_head, To, cols});
    s->att = new3(h, a, B, C, To);
    s->a = new3(h, a, B, C, To);
    if (!h->plan)
        tal_attention_ct_forward(s->att, s->probs, s->lin[0], s->lin[1], s->lin[2], mo, mo,
                                 c->n_head, c->mha_win);
    tal_conv1d_forward(s->a, s->att, V(h, bl->lin_w[3]), V(h, bl->lin_b[3]), mo, geom(1, 0, 1),
                       h->scratch);
    /* x1 = skip(x) * m' + DP(gamma * a) */
    s->x1 = new3(h, a, B, C, To);
    if (bl->stride > 1) {
        s->pool_arg = new3(h, a, B, C, To);
        if (!h->plan) tal_maxpool1d_forward(s->x1, s->pool_arg, x, 3, 2, 1);
    } else if (!h->plan) {
        tal_copy(s->x1, x);
    }
    s->h2 = new3(h, a, B, C, To);
    s->mean2 = new2(a, B, To);
    s->rstd2 = new2(a, B, To);
    s->u = new3(h, a, B, 4 * C, To);
    s->g = new3(h, a, B, 4 * C, To);
    s->mo = new3(h, a, B, C, To);
    s->out = new3(h, a, B, C, To);
    size_t mark = tal_arena_mark(h->scratch);
    tal_tensor tmp = tal_arena_tensor(h->scratch, 3, (int64_t[]){B, C, To});
    if (!h->plan) {
        tal_mask_columns(s->x1, s->x1, mo);
        if (bl->gamma[0] >= 0) {
            tal_channel_scale_forward(tmp, s->a, V(h, bl->gamma[0]));
            if (h->train) tal_drop_path_forward(tmp, tmp, c->path_pdrop, dp_key(h, bi, 0));
            tal_add(s->x1, s->x1, tmp);
        } else {
            tal_add(s->x1, s->x1, s->a);
        }
        tal_layernorm_ct_forward(s->h2, s->mean2, s->rstd2, s->x1, V(h, bl->ln2[0]),
                                 V(h, bl->ln2[1]), 1e-5f);
    }
    tal_arena_release(h->scratch, mark);
    tal_conv1d_forward(s->u, s->h2, V(h, bl->mlp_w[0]), V(h, bl->mlp_b[0]), tal_tensor_none(),
                       geom(1, 0, 1), h->scratch);
    if (!h->plan) tal_gelu_forward(s->g, s->u);
    tal_conv1d_forward(s->mo, s->g, V(h, bl->mlp_w[1]), V(h, bl->mlp_b[1]), mo, geom(1, 0, 1),
                       h->scratch);
    if (h->plan) return;
    if (bl->gamma[1] >= 0) {
        tal_channel_scale_forward(s->out, s->mo, V(h, bl->gamma[1]));
        if (h->train) tal_drop_path_forward(s->out, s->out, c->path_pdrop, dp_key(h, bi, 1));
        tal_add(s->out, s->out, s->x1);
    } else {
        tal_add(s->out, s->x1, s->mo);
    }
}

/* dout [B, C, To] (consumed) -> dx [B, C, T] (written). */
static void block_backward(tal_head *h, int bi, tal_tensor dx, tal_tensor dout, tal_tensor mo) {
    const block *bl = &h->blocks[bi];
    block_saved *s = &h->bs[bi];
    const tal_head_config *c = &h->cfg;
    int64_t B = s->x.shape[0], C = s->x.shape[1], T = s->x.shape[2], To = s->x1.shape[2];
    tal_arena *a = h->bwd;
    size_t mark = tal_arena_mark(a);
    int run = !h->plan;
    tal_tensor dx1 = dout; /* the residual path: dx1 = dout + LN2'(...) */
    tal_tensor d = new3(h, a, B, C, To);
    /* mlp branch */
    if (run) {
        if (bl->gamma[1] >= 0) {
            if (h->train) tal_drop_path_backward(d, dout, c->path_pdrop, dp_key(h, bi, 1));
            else tal_copy(d, dout);
            tal_channel_scale_backward(d, G(h, bl->gamma[1]), d, s->mo, V(h, bl->gamma[1]));
        } else {
            tal_copy(d, dout);
        }
    }
    tal_tensor dg = new3(h, a, B, 4 * C, To), dh2 = new3(h, a, B, C, To);
    tal_conv1d_backward(dg, G(h, bl->mlp_w[1]), G(h, bl->mlp_b[1]), d, s->g, V(h, bl->mlp_w[1]),
                        mo, geom(1, 0, 1), h->scratch);
    if (run) tal_gelu_backward(dg, dg, s->u);
    tal_conv1d_backward(dh2, G(h, bl->mlp_w[0]), G(h, bl->mlp_b[0]), dg, s->h2,
                        V(h, bl->mlp_w[0]), tal_tensor_none(), geom(1, 0, 1), h->scratch);
    if (run) {
        tal_layernorm_ct_backward(d, G(h, bl->ln2[0]), G(h, bl->ln2[1]), dh2, s->x1,
                                  V(h, bl->ln2[0]), s->mean2, s->rstd2);
        tal_add(dx1, dx1, d);
    }
    /* attention branch: da = gamma * DP'(dx1) */
    tal_tensor datt = new3(h, a, B, C, To);
    if (run) {
        if (bl->gamma[0] >= 0) {
            if (h->train) tal_drop_path_backward(d, dx1, c->path_pdrop, dp_key(h, bi, 0));
            else tal_copy(d, dx1);
            tal_channel_scale_backward(d, G(h, bl->gamma[0]), d, s->a, V(h, bl->gamma[0]));
        } else {
            tal_copy(d, dx1);
        }
    }
    tal_conv1d_backward(datt, G(h, bl->lin_w[3]), G(h, bl->lin_b[3]), d, s->att,
                        V(h, bl->lin_w[3]), mo, geom(1, 0, 1), h->scratch);
    tal_tensor dlin[3], ddw = new3(h, a, B, C, To), dh1 = new3(h, a, B, C, T);
    tal_tensor dh1_part = new3(h, a, B, C, T);
    for (int i = 0; i < 3; i++) dlin[i] = new3(h, a, B, C, To);
    tal_tensor dlogits = tal_arena_like(a, s->probs);
    if (run) {
        tal_attention_ct_backward(dlin[0], dlin[1], dlin[2], dlogits, datt, s->lin[0],
                                  s->lin[1], s->lin[2], s->probs, c->n_head, c->mha_win);
        tal_mask_columns(dlin[2], dlin[2], mo);
    }
    for (int i = 0; i < 3; i++) {
        tal_conv1d_backward(d, G(h, bl->lin_w[i]), G(h, bl->lin_b[i]), dlin[i], s->dwn[i],
                            V(h, bl->lin_w[i]), tal_tensor_none(), geom(1, 0, 1), h->scratch);
        if (run)
            tal_layernorm_ct_backward(ddw, G(h, bl->dwln[i][0]), G(h, bl->dwln[i][1]), d,
                                      s->dwc[i], V(h, bl->dwln[i][0]), s->dwmean[i],
                                      s->dwrstd[i]);
        tal_conv1d_backward(i == 0 ? dh1 : dh1_part, G(h, bl->dw[i]), tal_tensor_none(), ddw,
                            s->h1, V(h, bl->dw[i]), mo, geom(bl->stride, 1, (int)C), h->scratch);
        if (run && i > 0) tal_add(dh1, dh1, dh1_part);
    }
    if (run) {
        tal_layernorm_ct_backward(dx, G(h, bl->ln1[0]), G(h, bl->ln1[1]), dh1, s->x,
                                  V(h, bl->ln1[0]), s->mean1, s->rstd1);
        /* skip path: x1 = skip(x) * m' */
        tal_mask_columns(dx1, dx1, mo);
        if (bl->stride > 1) {
            tal_maxpool1d_backward(dh1_part, dx1, s->pool_arg);
            tal_add(dx, dx, dh1_part);
        } else {
            tal_add(dx, dx, dx1);
        }
    }
    tal_arena_release(a, mark);
}

/* ---------------------------------------------------------------- whole model ----------- */
void tal_head_forward(tal_head *h, tal_tensor x, tal_tensor mask) {
    const tal_head_config *c = &h->cfg;
    int64_t B = x.shape[0], T = x.shape[2], C = c->channels, K = c->n_classes;
    TAL_ASSERT(x.ndim == 3 && x.shape[1] == c->in_channels && B <= h->max_batch);
    TAL_ASSERT_MSG(T <= c->max_seq_len && T % (1 << (h->n_levels - 1)) == 0, "T %lld",
                   (long long)T);
    TAL_ASSERT(mask.ndim == 2 && mask.shape[0] == B && mask.shape[1] == T);
    tal_arena_reset(h->act);
    h->B = B;
    h->T = T;
    h->x_in = x;
    h->mask[0] = mask;
    for (int l = 1; l < h->n_levels; l++) {
        h->mask[l] = new2(h->act, B, T >> l);
        if (!h->plan) tal_take_every(h->mask[l], h->mask[l - 1], 2);
    }
    tal_tensor cur = x;
    for (int i = 0; i < c->arch[0]; i++) {
        unit_forward(h, &h->embed[i], &h->es[i], cur, mask);
        cur = h->es[i].z;
    }
    if (c->use_abs_pe) { /* x += PE[:, :T] * mask, into its own buffer (z stays ReLU's) */
        tal_tensor pe = new3(h, h->act, B, C, T);
        if (!h->plan)
            tal_add_position_table(pe, cur, h->pe, mask);
        cur = pe;
    }
    /* stem blocks keep level 0; each branch block makes the next level */
    h->feat[0] = cur;
    int lvl = 0;
    for (int i = 0; i < h->n_blocks; i++) {
        int stride = h->blocks[i].stride;
        tal_tensor mo = h->mask[lvl + (stride > 1)];
        block_forward(h, i, cur, mo);
        cur = h->bs[i].out;
        if (stride > 1) lvl++;
        h->feat[lvl] = cur;
    }
    for (int l = 0; l < h->n_levels; l++) {
        int64_t Tl = T >> l;
        neck_saved *ns = &h->ns[l];
        ns->y = new3(h, h->act, B, C, Tl);
        ns->mean = new2(h->act, B, Tl);
        ns->rstd = new2(h->act, B, Tl);
        if (!h->plan)
            tal_layernorm_ct_forward(ns->y, ns->mean, ns->rstd, h->feat[l], V(h, h->fpn_ln[l][0]),
                                     V(h, h->fpn_ln[l][1]), unit_eps(h));
        tal_tensor cc = ns->y, rc = ns->y;
        for (int i = 0; i < c->n_head_convs; i++) {
            unit_forward(h, &h->cls_units[i], &h->cs[l][i], cc, h->mask[l]);
            cc = h->cs[l][i].z;
            unit_forward(h, &h->reg_units[i], &h->rs[l][i], rc, h->mask[l]);
            rc = h->rs[l][i].z;
        }
        h->cls_in[l] = cc;
        h->reg_in[l] = rc;
        h->cls_out[l] = new3(h, h->act, B, K, Tl);
        h->reg_raw[l] = new3(h, h->act, B, 2, Tl);
        h->reg_out[l] = new3(h, h->act, B, 2, Tl);
        h->d_cls[l] = new3(h, h->act, B, K, Tl);
        h->d_reg[l] = new3(h, h->act, B, 2, Tl);
        tal_conv1d_forward(h->cls_out[l], cc, V(h, h->cls_w), V(h, h->cls_b), h->mask[l],
                           geom(1, 1, 1), h->scratch);
        tal_conv1d_forward(h->reg_raw[l], rc, V(h, h->reg_w), V(h, h->reg_b), h->mask[l],
                           geom(1, 1, 1), h->scratch);
        if (!h->plan) tal_scale_relu_forward(h->reg_out[l], h->reg_raw[l], V(h, h->scale[l]));
    }
    /* the loss's targets, filled from the host by tal_head_loss */
    for (int l = 0; l < h->n_levels; l++) {
        int64_t Tl = T >> l;
        h->t_cls[l] = new3(h, h->act, B, K, Tl);
        h->t_reg[l] = new3(h, h->act, B, 2, Tl);
        h->t_pos[l] = new2(h->act, B, Tl);
    }
    h->fwd_done = 1;
}

void tal_head_backward_from(tal_head *h, const tal_tensor *d_cls, const tal_tensor *d_reg,
                            tal_tensor d_features) {
    const tal_head_config *c = &h->cfg;
    TAL_ASSERT_MSG(h->fwd_done || h->plan, "backward without forward");
    int64_t B = h->B, T = h->T, C = c->channels;
    int run = !h->plan;
    tal_arena_reset(h->bwd);
    tal_arena *a = h->bwd;
    /* gradients of the level features (before the neck), filled by the heads then the blocks */
    tal_tensor dfeat[TAL_HEAD_MAX_LEVELS];
    for (int l = 0; l < h->n_levels; l++) dfeat[l] = new3(h, a, B, C, T >> l);
    for (int l = 0; l < h->n_levels; l++) {
        size_t mark = tal_arena_mark(a);
        int64_t Tl = T >> l;
        tal_tensor m = h->mask[l];
        tal_tensor dc = new3(h, a, B, C, Tl), dr = new3(h, a, B, C, Tl);
        tal_tensor dn = new3(h, a, B, C, Tl), dtmp = new3(h, a, B, C, Tl);
        tal_tensor drr = new3(h, a, B, 2, Tl);
        tal_conv1d_backward(dc, G(h, h->cls_w), G(h, h->cls_b), d_cls[l], h->cls_in[l],
                            V(h, h->cls_w), m, geom(1, 1, 1), h->scratch);
        if (run) /* reg = relu(s * raw) */
            tal_scale_relu_backward(drr, G(h, h->scale[l]), d_reg[l], h->reg_out[l],
                                    h->reg_raw[l], V(h, h->scale[l]));
        tal_conv1d_backward(dr, G(h, h->reg_w), G(h, h->reg_b), drr, h->reg_in[l],
                            V(h, h->reg_w), m, geom(1, 1, 1), h->scratch);
        for (int i = c->n_head_convs - 1; i >= 0; i--) {
            unit_backward(h, &h->cls_units[i], &h->cs[l][i], dtmp, dc, m);
            if (run) tal_copy(dc, dtmp);
            unit_backward(h, &h->reg_units[i], &h->rs[l][i], dtmp, dr, m);
            if (run) tal_copy(dr, dtmp);
        }
        if (run) {
            tal_add(dn, dc, dr);
            tal_layernorm_ct_backward(dtmp, G(h, h->fpn_ln[l][0]), G(h, h->fpn_ln[l][1]), dn,
                                      h->feat[l], V(h, h->fpn_ln[l][0]), h->ns[l].mean,
                                      h->ns[l].rstd);
            tal_add(dfeat[l], dfeat[l], dtmp);
        }
        tal_arena_release(a, mark);
    }
    /* blocks in reverse: a branch block's input is the previous level's feature, whose
     * gradient already holds that level's head part; stem blocks chain at level 0 */
    int lvl = h->n_levels - 1;
    tal_tensor dcur = dfeat[lvl];
    for (int i = h->n_blocks - 1; i >= 0; i--) {
        int down = h->blocks[i].stride > 1;
        int lin = down ? lvl - 1 : lvl;
        tal_tensor dprev = new3(h, a, B, C, T >> lin);
        block_backward(h, i, dprev, dcur, h->mask[lvl]);
        if (down) {
            if (run) tal_add(dfeat[lin], dfeat[lin], dprev);
            dprev = dfeat[lin];
        }
        dcur = dprev;
        lvl = lin;
    }
    /* embedding (position encoding is additive: its gradient passes through) */
    for (int i = c->arch[0] - 1; i >= 0; i--) {
        tal_tensor dx = i > 0 ? new3(h, a, B, C, T) : d_features;
        unit_backward(h, &h->embed[i], &h->es[i], dx, dcur, h->mask[0]);
        dcur = dx;
    }
}

void tal_head_backward(tal_head *h, tal_tensor d_features) {
    tal_head_backward_from(h, h->d_cls, h->d_reg, d_features);
}
