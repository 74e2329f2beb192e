/* backbone/model.c: the model object shared by all families: configs (presets, JSON, checks),
 * parameter declaration, memory planning (the real allocation sequence run on counting arenas),
 * arenas, forward/backward dispatch, frame chunking and the output adapter. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

/* ---------------------------------------------------------------- configs --------------- */
static void set4(int *dst, int a, int b, int c, int d) {
    dst[0] = a, dst[1] = b, dst[2] = c, dst[3] = d;
}

/* The ResNet3D family's defaults: SlowOnly's stem and inflation (mmaction2), the 8x8 SlowFast
 * of the Re2TAL TAL configs (tau 4, alpha 4, beta_inv 8, fusion kernel 7, fast stem 5x7x7,
 * every fast stage inflated). */
static void set_resnet(tal_backbone_config *c, tal_backbone_arch arch, int embed, float dpr) {
    c->arch = arch;
    c->n_stages = 4;
    c->embed_dim = embed;
    c->drop_path_rate = dpr;
    c->stem_kt = 1;
    set4(c->inflate, 0, 0, 1, 1);
    c->tau = 4, c->alpha = 4, c->beta_inv = 8, c->fusion_kernel = 7;
    c->fast_stem_kt = 5;
    set4(c->fast_inflate, 1, 1, 1, 1);
}

tal_status tal_backbone_config_preset(tal_backbone_config *cfg, const char *name, tal_err *err) {
    tal_backbone_config c = {0};
    c.arch = TAL_ARCH_SWIN;
    c.n_stages = 4;
    c.window[0] = 8, c.window[1] = 7, c.window[2] = 7;
    c.patch[0] = 2, c.patch[1] = 4, c.patch[2] = 4;
    c.mlp_ratio = 4.0f;
    c.drop_path_rate = 0.2f; /* the rewired configs' rate (spec §2.3) */
    c.freeze_norms = 1;
    c.seed = 0x5eed;
    for (int s = 0; s < 4; s++) c.mode[s] = TAL_STAGE_REVERSIBLE;
    if (!strcmp(name, "swin_t")) {
        c.embed_dim = 96;
        set4(c.depths, 2, 2, 6, 2);
        set4(c.heads, 3, 6, 12, 24);
    } else if (!strcmp(name, "swin_s")) {
        c.embed_dim = 96;
        set4(c.depths, 2, 2, 18, 2);
        set4(c.heads, 3, 6, 12, 24);
    } else if (!strcmp(name, "swin_b")) {
        c.embed_dim = 128;
        set4(c.depths, 2, 2, 18, 2);
        set4(c.heads, 4, 8, 16, 32);
    } else if (!strcmp(name, "swin_small_test")) {
        c.embed_dim = 32;
        set4(c.depths, 2, 2, 2, 2);
        set4(c.heads, 1, 2, 4, 8);
        c.window[0] = c.window[1] = c.window[2] = 4;
        c.drop_path_rate = 0.1f;
    } else if (!strcmp(name, "resnet3d_small")) {
        set_resnet(&c, TAL_ARCH_RESNET3D, 8, 0.1f);
        c.n_stages = 3;
        set4(c.depths, 2, 3, 2, 0);
        set4(c.inflate, 0, 1, 1, 0);
    } else if (!strcmp(name, "slowonly_r50") || !strcmp(name, "slowonly_r101") ||
               !strcmp(name, "slowfast_r50") || !strcmp(name, "slowfast_r101")) {
        /* mmaction2 / OpenTAD have no drop-path in these nets */
        set_resnet(&c, name[4] == 'f' ? TAL_ARCH_SLOWFAST : TAL_ARCH_RESNET3D, 64, 0.0f);
        set4(c.depths, 3, 4, strstr(name, "r101") ? 23 : 6, 3);
    } else {
        return tal_err_set(err, TAL_EINVAL,
                           "backbone preset '%s': unknown (expected %s)", name,
                           TAL_BACKBONE_PRESETS);
    }
    *cfg = c;
    return TAL_OK;
}

static int odd_in(int v, int lo, int hi) { return v >= lo && v <= hi && v % 2 == 1; }

static tal_status check_resnet(const tal_backbone_config *c, tal_err *err) {
    if (!odd_in(c->stem_kt, 1, 15))
        return tal_err_set(err, TAL_EINVAL, "backbone: stem_kt %d (expected odd, 1-15)",
                           c->stem_kt);
    for (int s = 0; s < c->n_stages; s++)
        if ((c->inflate[s] != 0 && c->inflate[s] != 1) ||
            (c->fast_inflate[s] != 0 && c->fast_inflate[s] != 1))
            return tal_err_set(err, TAL_EINVAL, "backbone: inflate[%d] must be 0 or 1", s);
    if (c->arch != TAL_ARCH_SLOWFAST) return TAL_OK;
    if (c->tau < 1 || c->tau > 64 || c->alpha < 1 || c->alpha > c->tau || c->tau % c->alpha)
        return tal_err_set(err, TAL_EINVAL,
                           "backbone: tau %d, alpha %d (expected 1 <= alpha <= tau <= 64, tau a "
                           "multiple of alpha)",
                           c->tau, c->alpha);
    if (c->beta_inv < 1 || c->embed_dim % c->beta_inv)
        return tal_err_set(err, TAL_EINVAL,
                           "backbone: beta_inv %d must divide embed_dim %d (fast channels)",
                           c->beta_inv, c->embed_dim);
    if (!odd_in(c->fusion_kernel, 1, 15) || !odd_in(c->fast_stem_kt, 1, 15))
        return tal_err_set(err, TAL_EINVAL,
                           "backbone: fusion_kernel %d, fast_stem_kt %d (expected odd, 1-15)",
                           c->fusion_kernel, c->fast_stem_kt);
    if (c->chunk_frames % c->tau)
        return tal_err_set(err, TAL_EINVAL,
                           "backbone: chunk_frames %d is not a multiple of tau %d",
                           c->chunk_frames, c->tau);
    return TAL_OK;
}

tal_status tal_backbone_config_check(const tal_backbone_config *c, tal_err *err) {
    if (c->n_stages < 1 || c->n_stages > TAL_BACKBONE_MAX_STAGES)
        return tal_err_set(err, TAL_EINVAL, "backbone: depths: %d stages (expected 1 to %d)",
                           c->n_stages, TAL_BACKBONE_MAX_STAGES);
    if (c->embed_dim < 1)
        return tal_err_set(err, TAL_EINVAL, "backbone: embed_dim %d must be positive",
                           c->embed_dim);
    for (int s = 0; s < c->n_stages; s++) {
        if (c->depths[s] < 1 || c->depths[s] > 256)
            return tal_err_set(err, TAL_EINVAL, "backbone: depths[%d] = %d (expected 1 to 256)",
                               s, c->depths[s]);
        if ((int)c->mode[s] < 0 || (int)c->mode[s] > 2)
            return tal_err_set(err, TAL_EINVAL, "backbone: mode[%d] = %d is not a mode", s,
                               (int)c->mode[s]);
        if (c->arch == TAL_ARCH_SWIN) {
            int C = c->embed_dim << s;
            if (c->heads[s] < 1 || C % c->heads[s])
                return tal_err_set(err, TAL_EINVAL,
                                   "backbone: heads[%d] = %d does not divide the stage's %d "
                                   "channels",
                                   s, c->heads[s], C);
        }
    }
    if (c->arch == TAL_ARCH_RESNET3D || c->arch == TAL_ARCH_SLOWFAST) {
        tal_status rc = check_resnet(c, err);
        if (rc) return rc;
    }
    if (c->arch == TAL_ARCH_SWIN) {
        for (int a = 0; a < 3; a++) {
            if (c->window[a] < 1 || c->window[a] > 64)
                return tal_err_set(err, TAL_EINVAL, "backbone: window[%d] = %d (expected 1-64)",
                                   a, c->window[a]);
            if (c->patch[a] < 1 || c->patch[a] > 32)
                return tal_err_set(err, TAL_EINVAL, "backbone: patch[%d] = %d (expected 1-32)",
                                   a, c->patch[a]);
        }
        if (!(c->mlp_ratio > 0 && c->mlp_ratio <= 16))
            return tal_err_set(err, TAL_EINVAL, "backbone: mlp_ratio %g (expected (0, 16])",
                               c->mlp_ratio);
    } else if (c->arch != TAL_ARCH_RESNET3D && c->arch != TAL_ARCH_SLOWFAST) {
        return tal_err_set(err, TAL_EINVAL, "backbone: arch %d unknown", (int)c->arch);
    }
    if (!(c->drop_path_rate >= 0 && c->drop_path_rate < 1))
        return tal_err_set(err, TAL_EINVAL, "backbone: drop_path_rate %g (expected [0, 1))",
                           c->drop_path_rate);
    if (c->chunk_frames < 0)
        return tal_err_set(err, TAL_EINVAL, "backbone: chunk_frames %d is negative",
                           c->chunk_frames);
    return TAL_OK;
}

static tal_status json_ints(int *dst, int max, int *count, const cJSON *item, const char *key,
                            tal_err *err) {
    if (!cJSON_IsArray(item))
        return tal_err_set(err, TAL_EINVAL, "backbone config: \"%s\": expected a list of ints",
                           key);
    int n = cJSON_GetArraySize(item);
    if (n < 1 || n > max)
        return tal_err_set(err, TAL_EINVAL, "backbone config: \"%s\": %d values (expected 1-%d)",
                           key, n, max);
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(item, i);
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble)
            return tal_err_set(err, TAL_EINVAL, "backbone config: \"%s\"[%d]: not an integer",
                               key, i);
        dst[i] = (int)v->valuedouble;
    }
    if (count) *count = n;
    return TAL_OK;
}

static tal_status json_number(double *out, const cJSON *item, const char *key, tal_err *err) {
    if (cJSON_IsBool(item)) {
        *out = cJSON_IsTrue(item);
        return TAL_OK;
    }
    if (!cJSON_IsNumber(item))
        return tal_err_set(err, TAL_EINVAL, "backbone config: \"%s\": expected a number", key);
    *out = item->valuedouble;
    return TAL_OK;
}

/* The plain integer keys of the ResNet3D family. */
static const char *const INT_KEYS[] = {"stem_kt", "tau", "alpha", "beta_inv", "fusion_kernel",
                                       "fast_stem_kt"};

static int int_key(const char *k) {
    for (size_t i = 0; i < sizeof INT_KEYS / sizeof *INT_KEYS; i++)
        if (!strcmp(k, INT_KEYS[i])) return 1;
    return 0;
}

static int *int_key_field(tal_backbone_config *c, const char *k) {
    int *fields[] = {&c->stem_kt, &c->tau, &c->alpha, &c->beta_inv, &c->fusion_kernel,
                     &c->fast_stem_kt};
    for (size_t i = 0; i < sizeof INT_KEYS / sizeof *INT_KEYS; i++)
        if (!strcmp(k, INT_KEYS[i])) return fields[i];
    TAL_ASSERT_MSG(0, "not an int key: %s", k);
    return NULL;
}

tal_status tal_backbone_config_from_json(tal_backbone_config *cfg, const char *json_text,
                                         tal_err *err) {
    cJSON *root = cJSON_Parse(json_text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tal_err_set(err, TAL_EFORMAT, "backbone config: not a JSON object");
    }
    tal_status rc = TAL_OK;
    tal_backbone_config c;
    const cJSON *preset = cJSON_GetObjectItemCaseSensitive(root, "preset");
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "arch");
    const char *base = "swin_t";
    if (arch && !cJSON_IsString(arch)) {
        rc = tal_err_set(err, TAL_EINVAL, "backbone config: \"arch\": expected a string");
        goto done;
    }
    if (arch && !strcmp(arch->valuestring, "resnet3d")) base = "resnet3d_small";
    else if (arch && !strcmp(arch->valuestring, "slowfast")) base = "slowfast_r50";
    else if (arch && strcmp(arch->valuestring, "swin")) {
        rc = tal_err_set(err, TAL_EINVAL,
                         "backbone config: \"arch\": '%s' unknown (expected swin, resnet3d or "
                         "slowfast)",
                         arch->valuestring);
        goto done;
    }
    if (preset) {
        if (!cJSON_IsString(preset)) {
            rc = tal_err_set(err, TAL_EINVAL, "backbone config: \"preset\": expected a string");
            goto done;
        }
        base = preset->valuestring;
    }
    if ((rc = tal_backbone_config_preset(&c, base, err))) goto done;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        const char *k = it->string;
        double v = 0;
        if (!strcmp(k, "arch") || !strcmp(k, "preset")) continue;
        if (!strcmp(k, "depths")) {
            int n = 0;
            if ((rc = json_ints(c.depths, TAL_BACKBONE_MAX_STAGES, &n, it, k, err))) goto done;
            c.n_stages = n;
        } else if (!strcmp(k, "inflate") || !strcmp(k, "fast_inflate")) {
            int *dst = !strcmp(k, "inflate") ? c.inflate : c.fast_inflate;
            if ((rc = json_ints(dst, TAL_BACKBONE_MAX_STAGES, NULL, it, k, err))) goto done;
        } else if (!strcmp(k, "heads")) {
            if ((rc = json_ints(c.heads, TAL_BACKBONE_MAX_STAGES, NULL, it, k, err))) goto done;
        } else if (!strcmp(k, "window") || !strcmp(k, "patch")) {
            int n = 0, *dst = !strcmp(k, "window") ? c.window : c.patch;
            if ((rc = json_ints(dst, 3, &n, it, k, err))) goto done;
            if (n != 3) {
                rc = tal_err_set(err, TAL_EINVAL, "backbone config: \"%s\": expected [t, h, w]",
                                 k);
                goto done;
            }
        } else if (!strcmp(k, "mode")) {
            if (cJSON_IsString(it)) {
                int m = tal_stage_mode_parse(it->valuestring);
                if (m < 0) goto bad_mode;
                for (int s = 0; s < TAL_BACKBONE_MAX_STAGES; s++) c.mode[s] = (tal_stage_mode)m;
            } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) <= TAL_BACKBONE_MAX_STAGES) {
                for (int s = 0; s < cJSON_GetArraySize(it); s++) {
                    const cJSON *e = cJSON_GetArrayItem(it, s);
                    int m = cJSON_IsString(e) ? tal_stage_mode_parse(e->valuestring) : -1;
                    if (m < 0) goto bad_mode;
                    c.mode[s] = (tal_stage_mode)m;
                }
            } else {
                goto bad_mode;
            }
        } else if (!strcmp(k, "embed_dim") || !strcmp(k, "mlp_ratio") ||
                   !strcmp(k, "drop_path_rate") || !strcmp(k, "freeze_norms") ||
                   !strcmp(k, "chunk_frames") || !strcmp(k, "seed") ||
                   !strcmp(k, "temporal_from") || int_key(k)) {
            if ((rc = json_number(&v, it, k, err))) goto done;
            if (!strcmp(k, "embed_dim")) c.embed_dim = (int)v;
            else if (!strcmp(k, "mlp_ratio")) c.mlp_ratio = (float)v;
            else if (!strcmp(k, "drop_path_rate")) c.drop_path_rate = (float)v;
            else if (!strcmp(k, "freeze_norms")) c.freeze_norms = v != 0;
            else if (!strcmp(k, "chunk_frames")) c.chunk_frames = (int)v;
            else if (!strcmp(k, "seed")) c.seed = (uint64_t)v;
            else if (!strcmp(k, "temporal_from"))
                for (int s = 0; s < TAL_BACKBONE_MAX_STAGES; s++) c.inflate[s] = s >= (int)v;
            else *int_key_field(&c, k) = (int)v;
        } else {
            rc = tal_err_set(err, TAL_EINVAL, "backbone config: \"%s\": unknown key", k);
            goto done;
        }
    }
    if ((rc = tal_backbone_config_check(&c, err))) goto done;
    *cfg = c;
    goto done;
bad_mode:
    rc = tal_err_set(err, TAL_EINVAL,
                     "backbone config: \"mode\": expected \"vanilla\", \"reversible\" or "
                     "\"rewired_stored\", or a list of them per stage");
done:
    cJSON_Delete(root);
    return rc;
}

int tal_backbone_out_channels(const tal_backbone_config *c) {
    int C = c->embed_dim << (c->n_stages - 1);
    if (c->arch == TAL_ARCH_SLOWFAST) return 4 * C + 4 * C / c->beta_inv;
    return c->arch == TAL_ARCH_RESNET3D ? 4 * C : C;
}

/* Input frames per output step: Swin's temporal patch, SlowFast's fast-pathway stride. */
static int frames_per_output(const tal_backbone_config *c) {
    if (c->arch == TAL_ARCH_SWIN) return c->patch[0];
    return c->arch == TAL_ARCH_SLOWFAST ? c->tau / c->alpha : 1;
}

/* Output length of one chunk (or clip) of n frames. */
static int out_frames_once(const tal_backbone_config *c, int n) {
    int r = frames_per_output(c);
    return (n + r - 1) / r;
}

int tal_backbone_out_frames(const tal_backbone_config *c, int frames) {
    if (c->chunk_frames > 0) {
        int per = out_frames_once(c, c->chunk_frames);
        int chunks = (frames + c->chunk_frames - 1) / c->chunk_frames;
        int tail = frames - (chunks - 1) * c->chunk_frames;
        return (chunks - 1) * per + out_frames_once(c, tail);
    }
    return out_frames_once(c, frames);
}

/* ---------------------------------------------------------------- shared helpers -------- */
int bb_declare(tal_backbone *bb, const char *name, int ndim, const int64_t *shape, int no_decay,
               int is_norm) {
    int trainable = !(is_norm && bb->cfg.freeze_norms);
    return tal_params_declare(bb->params, name, ndim, shape, no_decay ? bb->group_nd : bb->group,
                              trainable);
}

void bb_init_trunc_normal(tal_tensor t, float std, uint64_t seed, uint64_t stream) {
    TAL_ASSERT_CPU(t);
    tal_rng_key key = {seed, 1, stream};
    int64_t n = tal_tensor_numel(t);
    uint64_t ctr = 0;
    for (int64_t i = 0; i < n; i++) {
        float z;
        do z = tal_rng_normal(key, ctr++);
        while (fabsf(z) > 2.0f);
        t.data[i] = z * std;
    }
}

/* ---------------------------------------------------------------- lifecycle ------------- */
tal_status tal_backbone_create(tal_backbone **out, const tal_backbone_config *cfg, tal_params *p,
                               int group, int group_no_decay, tal_err *err) {
    *out = NULL;
    tal_status rc = tal_backbone_config_check(cfg, err);
    if (rc) return rc;
    tal_backbone *bb = calloc(1, sizeof *bb);
    if (!bb) return tal_err_set(err, TAL_ENOMEM, "backbone: out of memory");
    bb->cfg = *cfg;
    bb->params = p;
    bb->group = group;
    bb->group_nd = group_no_decay;
    bb->first_param = tal_params_count(p);
    rc = cfg->arch == TAL_ARCH_SWIN       ? swin_declare(bb, err)
         : cfg->arch == TAL_ARCH_SLOWFAST ? slowfast_declare(bb, err)
                                          : resnet_declare(bb, err);
    bb->n_params = tal_params_count(p) - bb->first_param;
    if (rc) {
        tal_backbone_destroy(bb);
        return rc;
    }
    *out = bb;
    return TAL_OK;
}

void tal_backbone_destroy(tal_backbone *bb) {
    if (!bb) return;
    swin_free(bb);
    resnet_free(bb);
    slowfast_free(bb);
    tal_arena_destroy(bb->consts);
    tal_arena_destroy(bb->keep);
    tal_arena_destroy(bb->scratch);
    free(bb);
}

const tal_backbone_config *tal_backbone_config_of(const tal_backbone *bb) { return &bb->cfg; }

void tal_backbone_init(tal_backbone *bb, uint64_t seed) {
    if (bb->cfg.arch == TAL_ARCH_SWIN)
        swin_init_params(bb, seed);
    else
        rn_pathway_init(bb, seed);
}

void tal_backbone_set_step(tal_backbone *bb, uint64_t step) { bb->step = step; }

/* ---------------------------------------------------------------- planning -------------- */
static int out_len_chunk(const tal_backbone *bb);

static void setup_shapes(tal_backbone *bb) {
    if (bb->cfg.arch == TAL_ARCH_SWIN)
        swin_setup_shapes(bb);
    else if (bb->cfg.arch == TAL_ARCH_SLOWFAST)
        slowfast_setup_shapes(bb);
    else
        resnet_setup_shapes(bb);
    bb->chunk = bb->chunk_feats = tal_tensor_none();
    if (bb->cfg.chunk_frames > 0) { /* one chunk's clip and features, for long inputs */
        bb->chunk = tal_arena_tensor(bb->consts, 5, (int64_t[]){bb->B, 3, bb->T, bb->H, bb->W});
        bb->chunk_feats = tal_arena_tensor(
            bb->consts, 3,
            (int64_t[]){bb->B, tal_backbone_out_channels(&bb->cfg), out_len_chunk(bb)});
    }
}

static void run_forward(tal_backbone *bb, tal_tensor feats, tal_tensor video, int train) {
    bb->block_fwd_s = bb->block_bwd_s = 0;
    if (bb->cfg.arch == TAL_ARCH_SWIN)
        swin_run_forward(bb, feats, video, train);
    else if (bb->cfg.arch == TAL_ARCH_SLOWFAST)
        slowfast_run_forward(bb, feats, video, train);
    else
        resnet_run_forward(bb, feats, video, train);
}

static void run_backward(tal_backbone *bb, tal_tensor dfeats, double *recon_err) {
    bb->block_bwd_s = 0;
    for (int s = 0; s < TAL_BACKBONE_MAX_STAGES; s++) bb->recon_stage[s] = -1;
    if (bb->cfg.arch == TAL_ARCH_SWIN)
        swin_run_backward(bb, dfeats, recon_err);
    else if (bb->cfg.arch == TAL_ARCH_SLOWFAST)
        slowfast_run_backward(bb, dfeats, recon_err);
    else
        resnet_run_backward(bb, dfeats, recon_err);
}

static int out_len_chunk(const tal_backbone *bb) {
    tal_backbone_config c = bb->cfg;
    c.chunk_frames = 0;
    return tal_backbone_out_frames(&c, bb->T);
}

/* Runs inference, then a training forward + backward, on counting arenas for bb's device:
 * their high-water marks are the sizes the real arenas need. */
static void plan_pass(tal_backbone *bb, size_t *consts, size_t *keep, size_t *scratch,
                      size_t *infer) {
    tal_arena *c = tal_arena_create_planner_on(bb->dev);
    tal_arena *k = tal_arena_create_planner_on(bb->dev);
    tal_arena *s = tal_arena_create_planner_on(bb->dev);
    bb->consts = c, bb->keep = k, bb->scratch = s;
    setup_shapes(bb);
    int64_t Cout = tal_backbone_out_channels(&bb->cfg), Tout = out_len_chunk(bb);
    tal_tensor video = tal_t5(NULL, bb->B, 3, bb->T, bb->H, bb->W);
    tal_tensor feats = tal_t3(NULL, bb->B, Cout, Tout);
    run_forward(bb, feats, video, 0);
    *infer = tal_arena_high_water(s);
    run_forward(bb, feats, video, 1);
    run_backward(bb, feats, NULL);
    *consts = tal_arena_high_water(c);
    *keep = tal_arena_high_water(k);
    *scratch = tal_arena_high_water(s);
    tal_arena_destroy(c);
    tal_arena_destroy(k);
    tal_arena_destroy(s);
    bb->consts = bb->keep = bb->scratch = NULL;
}

static tal_status check_shape(const tal_backbone_config *c, int batch, int frames, int height,
                              int width, tal_err *err) {
    if (batch < 1 || frames < 1 || height < 1 || width < 1 || batch > 4096 || frames > 100000 ||
        height > 8192 || width > 8192)
        return tal_err_set(err, TAL_EINVAL,
                           "backbone: clip shape [%d, 3, %d, %d, %d] out of range", batch, frames,
                           height, width);
    if (c->arch != TAL_ARCH_SWIN && (height < 8 || width < 8))
        return tal_err_set(err, TAL_EINVAL, "backbone: resnet3d needs frames at least 8x8, got "
                                            "%dx%d", height, width);
    int prepared = c->chunk_frames > 0 && c->chunk_frames < frames ? c->chunk_frames : frames;
    if (c->arch == TAL_ARCH_SLOWFAST && prepared % c->tau)
        return tal_err_set(err, TAL_EINVAL,
                           "backbone: slowfast clip of %d frames is not a multiple of tau %d",
                           prepared, c->tau);
    return TAL_OK;
}

tal_status tal_backbone_plan_memory(tal_backbone_plan *out, const tal_backbone_config *cfg,
                                    int batch, int frames, int height, int width, tal_err *err) {
    return tal_backbone_plan_memory_on(out, cfg, TAL_DEV_CPU, batch, frames, height, width, err);
}

tal_status tal_backbone_plan_memory_on(tal_backbone_plan *out, const tal_backbone_config *cfg,
                                       tal_device dev, int batch, int frames, int height,
                                       int width, tal_err *err) {
    memset(out, 0, sizeof *out);
    tal_status rc = check_shape(cfg, batch, frames, height, width, err);
    if (rc) return rc;
    tal_params *p = tal_params_create();
    int g = tal_params_add_group(p, "backbone", 1.0f, 0.05f);
    int gnd = tal_params_add_group(p, "backbone_no_decay", 1.0f, 0.0f);
    tal_backbone *bb = NULL;
    rc = tal_backbone_create(&bb, cfg, p, g, gnd, err);
    if (rc) {
        tal_params_destroy(p);
        return rc;
    }
    bb->B = batch, bb->H = height, bb->W = width;
    bb->T = cfg->chunk_frames > 0 && cfg->chunk_frames < frames ? cfg->chunk_frames : frames;
    bb->dev = dev;
    plan_pass(bb, &out->consts_bytes, &out->keep_bytes, &out->scratch_bytes, &out->infer_bytes);
    size_t total = 0, trainable = 0;
    for (int i = 0; i < tal_params_count(p); i++) {
        tal_param *q = tal_params_at(p, i);
        size_t b = tal_arena_round(tal_tensor_bytes(q->value));
        total += b;
        if (q->trainable) trainable += b;
    }
    out->params_bytes = total;
    out->grads_bytes = total;  /* tal_params allocates a gradient for every parameter */
    out->optim_bytes = 2 * trainable;
    tal_backbone_destroy(bb);
    tal_params_destroy(p);
    return TAL_OK;
}

tal_status tal_backbone_prepare(tal_backbone *bb, int batch, int frames, int height, int width,
                                tal_err *err) {
    tal_status rc = check_shape(&bb->cfg, batch, frames, height, width, err);
    if (rc) return rc;
    tal_arena_destroy(bb->consts);
    tal_arena_destroy(bb->keep);
    tal_arena_destroy(bb->scratch);
    bb->consts = bb->keep = bb->scratch = NULL;
    bb->prepared = 0;
    if (bb->cfg.chunk_frames > 0 && bb->cfg.chunk_frames < frames) frames = bb->cfg.chunk_frames;
    bb->B = batch, bb->T = frames, bb->H = height, bb->W = width;
    /* the arenas go where the parameters are (tal_params_move before prepare) */
    bb->dev = bb->n_params ? tal_params_at(bb->params, bb->first_param)->value.device
                           : TAL_DEV_CPU;
    size_t c, k, s, inf;
    plan_pass(bb, &c, &k, &s, &inf);
    if ((rc = tal_arena_create(&bb->consts, bb->dev, c, err)) ||
        (rc = tal_arena_create(&bb->keep, bb->dev, k, err)) ||
        (rc = tal_arena_create(&bb->scratch, bb->dev, s, err)))
        return tal_err_prefix(err, "backbone: clip [%d, 3, %d, %d, %d]", batch, frames, height,
                              width);
    setup_shapes(bb);
    bb->prepared = 1;
    return TAL_OK;
}

void tal_backbone_block_seconds(const tal_backbone *bb, double *fwd_s, double *bwd_s) {
    *fwd_s = bb->block_fwd_s;
    *bwd_s = bb->block_bwd_s;
}

void tal_backbone_high_water(const tal_backbone *bb, size_t *keep_bytes, size_t *scratch_bytes) {
    *keep_bytes = bb->keep ? tal_arena_high_water(bb->keep) : 0;
    *scratch_bytes = bb->scratch ? tal_arena_high_water(bb->scratch) : 0;
}

/* ---------------------------------------------------------------- running --------------- */
/* [A, L, I] view of t: time (or any middle dim of length L) between the rest. */
static tal_tensor along(tal_tensor t, int64_t A, int64_t L) {
    return tal_tensor_reshape(t, 3, (int64_t[]){A, L, tal_tensor_numel(t) / (A * L)});
}

/* Copies frames [t0, t0 + n) of video [B, 3, T, H, W] into chunk [B, 3, Tc, H, W], zeroing the
 * frames past n (a short last chunk). */
static void copy_chunk(tal_tensor chunk, tal_tensor video, int64_t t0, int64_t n) {
    int64_t BC = video.shape[0] * 3, T = video.shape[2], Tc = chunk.shape[2];
    if (n < Tc) tal_fill(chunk, 0.0f);
    tal_copy_slice1(along(chunk, BC, Tc), 0, along(video, BC, T), t0, n);
}

/* Runs fn over the chunks of video: chunk feats [B, C, Tc'] go to feats[:, :, o : o + k]. */
typedef void (*chunk_fn)(tal_backbone *bb, tal_tensor cf, tal_tensor chunk, int64_t o,
                         int64_t k, tal_tensor all);

static void for_chunks(tal_backbone *bb, tal_tensor all, tal_tensor video, chunk_fn fn) {
    int64_t T = video.shape[2], Tc = bb->T, C = all.shape[1];
    int64_t per = out_len_chunk(bb);
    TAL_ASSERT(video.shape[0] == bb->B && all.shape[0] == bb->B);
    tal_tensor chunk = bb->chunk, cf = bb->chunk_feats;
    TAL_ASSERT_MSG(chunk.data && cf.shape[1] == C, "chunking needs chunk_frames in the config");
    int64_t o = 0;
    for (int64_t t0 = 0; t0 < T; t0 += Tc) {
        int64_t n = T - t0 < Tc ? T - t0 : Tc;
        int64_t k = n == Tc ? per : out_frames_once(&bb->cfg, (int)n);
        copy_chunk(chunk, video, t0, n);
        fn(bb, cf, chunk, o, k, all);
        o += k;
    }
    TAL_ASSERT(o == all.shape[2]);
}

static void chunk_infer(tal_backbone *bb, tal_tensor cf, tal_tensor chunk, int64_t o, int64_t k,
                        tal_tensor all) {
    run_forward(bb, cf, chunk, 0);
    int64_t BC = all.shape[0] * all.shape[1];
    tal_copy_slice1(along(all, BC, all.shape[2]), o, along(cf, BC, cf.shape[2]), 0, k);
}

static void chunk_train(tal_backbone *bb, tal_tensor cf, tal_tensor chunk, int64_t o, int64_t k,
                        tal_tensor all) {
    run_forward(bb, cf, chunk, 1);
    /* cf now takes this chunk's slice of dfeats (zero for the padded tail's outputs). */
    int64_t BC = all.shape[0] * all.shape[1];
    tal_fill(cf, 0.0f);
    tal_copy_slice1(along(cf, BC, cf.shape[2]), 0, along(all, BC, all.shape[2]), o, k);
    run_backward(bb, cf, NULL);
    tal_arena_reset(bb->keep);
}

void tal_backbone_forward(tal_backbone *bb, tal_tensor feats, tal_tensor video) {
    TAL_ASSERT_MSG(bb->prepared, "tal_backbone_prepare first");
    TAL_ASSERT(video.ndim == 5 && feats.ndim == 3);
    if (video.shape[2] == bb->T) {
        run_forward(bb, feats, video, 0);
        return;
    }
    TAL_ASSERT_MSG(bb->cfg.chunk_frames > 0, "clip of %lld frames, prepared for %d",
                   (long long)video.shape[2], bb->T);
    for_chunks(bb, feats, video, chunk_infer);
}

void tal_backbone_forward_train(tal_backbone *bb, tal_tensor feats, tal_tensor video) {
    TAL_ASSERT_MSG(bb->prepared, "tal_backbone_prepare first");
    TAL_ASSERT_MSG(video.shape[2] == bb->T, "training clip of %lld frames, prepared for %d",
                   (long long)video.shape[2], bb->T);
    tal_arena_reset(bb->keep);
    run_forward(bb, feats, video, 1);
    bb->pending_backward = 1;
}

void tal_backbone_backward(tal_backbone *bb, tal_tensor dfeats, double *recon_err) {
    TAL_ASSERT_MSG(bb->pending_backward, "backward without a training forward");
    run_backward(bb, dfeats, recon_err);
    bb->pending_backward = 0;
    tal_arena_reset(bb->keep);
}

void tal_backbone_forward_chunked_train(tal_backbone *bb, tal_tensor feats, tal_tensor video) {
    TAL_ASSERT_MSG(bb->prepared, "tal_backbone_prepare first");
    TAL_ASSERT_MSG(bb->cfg.chunk_frames > 0, "chunked training needs chunk_frames in the config");
    bb->features_for_training = 1;
    for_chunks(bb, feats, video, chunk_infer);
    bb->features_for_training = 0;
}

void tal_backbone_backward_chunked(tal_backbone *bb, tal_tensor dfeats, tal_tensor video) {
    TAL_ASSERT_MSG(bb->prepared, "tal_backbone_prepare first");
    tal_arena_reset(bb->keep);
    for_chunks(bb, dfeats, video, chunk_train);
}

void tal_backbone_resize_forward(tal_tensor out, tal_tensor feats) {
    if (out.shape[2] == feats.shape[2])
        tal_copy(out, feats);
    else
        tal_interp1d_forward(out, feats);
}

void tal_backbone_resize_backward(tal_tensor dfeats, tal_tensor dout) {
    if (dout.shape[2] == dfeats.shape[2])
        tal_copy(dfeats, dout);
    else
        tal_interp1d_backward(dfeats, dout);
}

int tal_backbone_recon_errors(const tal_backbone *bb, double *out) {
    for (int s = 0; s < bb->cfg.n_stages; s++) out[s] = bb->recon_stage[s];
    return bb->cfg.n_stages;
}
