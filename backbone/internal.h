/* backbone/internal.h: private to backbone/: Swin window geometry, the residual functions
 * (Swin attention/MLP branches, ResNet bottleneck) behind the generic engine, ResNet3D
 * pathways and SlowFast. */
#ifndef TAL_BACKBONE_INTERNAL_H
#define TAL_BACKBONE_INTERNAL_H

#include "backbone.h"

static inline int bb_planning(tal_tensor t) { return t.data == NULL; }

/* A view of t's memory from element off with the given shape, on t's device (what
 * tal_t2(t.data + off, ...) would give, but a device tensor stays one); it must fit in t. */
static inline tal_tensor bb_view(tal_tensor t, int64_t off, int ndim, const int64_t *shape) {
    tal_tensor v = tal_tensor_of(NULL, ndim, shape);
    TAL_ASSERT_MSG(off >= 0 && off + tal_tensor_numel(v) <= tal_tensor_numel(t),
                   "view of %lld elements at %lld in a tensor of %lld",
                   (long long)tal_tensor_numel(v), (long long)off, (long long)tal_tensor_numel(t));
    v.data = t.data ? t.data + off : NULL;
    v.device = t.device;
    return v;
}
/* Rows [r0, r0 + rows) of t seen as [*, cols]. */
static inline tal_tensor bb_rows(tal_tensor t, int64_t r0, int64_t rows, int64_t cols) {
    return bb_view(t, r0 * cols, 2, (int64_t[]){rows, cols});
}

/* Window geometry of one Swin stage for one input size (spec-videoswin.md §4). */
typedef struct swin_geom {
    int B, D, H, W, C, heads;
    int full_win[3];        /* configured window (sizes the bias table) */
    int win[3], shift[3];   /* clamped to the input; shift used by odd blocks */
    int Dp, Hp, Wp;         /* padded to window multiples */
    int nW, n;              /* windows per sample, tokens per window */
    int any_shift;
    /* Built on the host, kept in consts on the model's device (data NULL while planning): */
    tal_index map[2];       /* [nW * n]: source token of each window slot or -1 (padding);
                             * [0] unshifted, [1] shifted (none without a shift) */
    tal_tensor mask;        /* [8, n, n] of 0 / -100 for shifted blocks, one per window class
                             * (last along D? H? W?); none if no shift */
    uint8_t *win_cls;       /* [nW]: the class of each window (consts' device memory) */
    tal_index rel_index;    /* [n * n] rows of the bias table */
    tal_index rel_by_row;   /* rel_index grouped by table row (tal_index_group_by) */
} swin_geom;

/* Fills g for x [B, D, H, W, C]; index maps and mask go to consts (planner: counted only). */
void swin_geom_init(swin_geom *g, int B, int D, int H, int W, int C, int heads,
                    const int window[3], tal_arena *consts);

/* Parameter indices in the model's tal_params (-1: absent). */
typedef struct swin_attn_fn {
    const swin_geom *g;
    tal_params *params;
    int shifted;
    int norm_w, norm_b, table, qkv_w, qkv_b, proj_w, proj_b;
    int frozen_norm;
    float drop_p;
    uint64_t seed, stream;
} swin_attn_fn;

typedef struct swin_mlp_fn {
    tal_params *params;
    int hidden;
    int norm_w, norm_b, fc1_w, fc1_b, fc2_w, fc2_b;
    int frozen_norm;
    float drop_p;
    uint64_t seed, stream;
} swin_mlp_fn;

tal_resfn swin_attn_resfn(swin_attn_fn *f);
tal_resfn swin_mlp_resfn(swin_mlp_fn *f);

/* Bottleneck branch of a 3D ResNet on [B, C, T, H, W] (channel-first): conv1 (kt x1x1) - BN -
 * ReLU - conv2 (1x3x3, spatial stride) - BN - ReLU - conv3 (1x1x1) - BN, then a ReLU when
 * final_relu (the post-add ReLU moved inside a rewired branch, spec §2.4). BN frozen:
 * y = x * scale + shift per channel from running stats. */
typedef struct resnet_bneck_fn {
    tal_params *params;
    int cin, planes, kt, stride;
    int conv[3];                 /* weights */
    int bn[3][4];                /* weight, bias, running_mean, running_var */
    float drop_p;
    uint64_t seed, stream;
    int final_relu;              /* 1 inside a rewired chain (then post_relu is 0) */
} resnet_bneck_fn;
tal_resfn resnet_bneck_resfn(resnet_bneck_fn *f);

static inline tal_tensor bb_value(tal_params *p, int i) {
    return i < 0 ? tal_tensor_none() : tal_params_at(p, i)->value;
}
/* The gradient of a trainable parameter, none for a frozen or absent one. */
static inline tal_tensor bb_grad(tal_params *p, int i) {
    if (i < 0) return tal_tensor_none();
    tal_param *q = tal_params_at(p, i);
    return q->trainable ? q->grad : tal_tensor_none();
}


/* ---------------------------------------------------------------- the model ------------- */
typedef struct swin_stage {
    int C, heads, depth;
    int D, H, W;              /* token grid of the prepared clip */
    swin_geom geom;
    swin_attn_fn *attn;       /* [depth] (owned) */
    swin_mlp_fn *mlp;         /* [depth] (owned) */
    tal_resfn *fns;           /* [2 * depth]: F_0, G_0, F_1, ... (owned) */
    int ds_norm_w, ds_norm_b, ds_red_w; /* PatchMerging after this stage, -1 for the last */
    /* what the last training forward kept (views into keep) */
    tal_tensor x, y;          /* stage input and output [B, D, H, W, C] */
    tal_revstage *rs;
    tal_tensor m4, m4n, mmean, mrstd; /* PatchMerging: gathered 4C, normalised, LN stats */
} swin_stage;

/* One ResNet3D pathway (resnet3d.c): stem + stages, parameters named `prefix` + mmaction2's
 * ResNet3d names. SlowOnly is one alone; SlowFast two with laterals (slowfast.c). */
typedef struct rn_pathway rn_pathway;
typedef struct rn_pathway_spec {
    const char *prefix;           /* "" or "slow_path." / "fast_path." (static string) */
    int base, n_stages, stem_kt;  /* stem channels, stem conv kt x7x7 */
    int depths[TAL_BACKBONE_MAX_STAGES], inflate[TAL_BACKBONE_MAX_STAGES];
    int lateral_in[TAL_BACKBONE_MAX_STAGES]; /* channels concatenated to stage s's input */
    tal_stage_mode mode[TAL_BACKBONE_MAX_STAGES];
    float drop_path_rate;
    uint64_t seed, stream0;       /* drop-path keys: stream0 + block index */
} rn_pathway_spec;
tal_status rn_pathway_declare(rn_pathway **out, tal_backbone *bb, const rn_pathway_spec *spec,
                              tal_err *err);
void rn_pathway_free(rn_pathway *pw); /* NULL is fine */
/* Grids for a pathway input of T frames at H x W. */
void rn_pathway_setup(rn_pathway *pw, int T, int H, int W);
/* He init of convs, identity BN, over all of bb's parameters. */
void rn_pathway_init(tal_backbone *bb, uint64_t seed);
/* Stage s's output channels and shape [B, C, T, H, W]; s = -1: the pooled stem. */
int rn_stage_out_channels(const rn_pathway *pw, int s);
void rn_stage_out_shape(const rn_pathway *pw, int s, int64_t B, int64_t shape[5]);
/* Conv weight "<prefix>.conv.weight" [co, ci, kt, k, k] (laterals use it too). */
int rn_declare_conv(tal_backbone *bb, const char *prefix, int64_t co, int64_t ci, int kt, int k);
/* Forward pieces; with train the outputs and what backward needs go to bb->keep, else to
 * bb->scratch (released by the caller). video stays borrowed until the stem's backward. */
tal_tensor rn_stem_forward(tal_backbone *bb, rn_pathway *pw, tal_tensor video, int train);
tal_tensor rn_stage_forward(tal_backbone *bb, rn_pathway *pw, int s, tal_tensor x, int train);
/* dx (stage s's input shape) = J^T dy, overwritten; dy is used up (overwritten too);
 * parameter gradients accumulate. The worst reversible reconstruction error goes to
 * *recon_err when larger. */
void rn_stage_backward(tal_backbone *bb, rn_pathway *pw, int s, tal_tensor dx, tal_tensor dy,
                       double *recon_err);
void rn_stem_backward(tal_backbone *bb, rn_pathway *pw, tal_tensor dpooled);

typedef struct slowfast_model slowfast_model; /* slowfast.c */

struct tal_backbone {
    tal_backbone_config cfg;
    tal_params *params;
    int group, group_nd;
    int first_param, n_params;  /* this model's parameters: indices [first, first + n) */
    int B, T, H, W;           /* prepared clip (per chunk) */
    int prepared, pending_backward;
    tal_device dev;             /* where the parameters are: the arenas follow (prepare) */
    tal_arena *consts, *keep, *scratch;
    uint64_t step;
    int features_for_training;  /* a chunked training step's first, keep-nothing forward */
    double block_fwd_s, block_bwd_s; /* last training step's time inside the residual chains */
    double recon_stage[TAL_BACKBONE_MAX_STAGES]; /* last backward's, per stage (-1: none) */
    tal_tensor chunk, chunk_feats; /* chunk_frames > 0: one chunk's clip and features */
    /* Swin */
    int pe_w, pe_b, pe_nw, pe_nb, fin_w, fin_b;
    swin_stage st[TAL_BACKBONE_MAX_STAGES];
    tal_tensor pe_in;         /* conv input (the video, or its padded copy) */
    tal_tensor pe_ln_in, pe_mean, pe_rstd, fin_mean, fin_rstd;
    /* ResNet3D (SlowOnly) */
    rn_pathway *rn;
    /* SlowFast */
    slowfast_model *sf;
};

/* A stage's reconstruction error e (-1: none): into the backward's worst (*recon_err, when
 * asked for) and stage s's (both pathways of SlowFast: their worst). */
static inline void bb_note_recon(tal_backbone *bb, int s, double e, double *recon_err) {
    if (!recon_err) return;
    if (e > *recon_err) *recon_err = e;
    if (e > bb->recon_stage[s]) bb->recon_stage[s] = e;
}

/* Swin parts (swin3d.c). */
tal_status swin_declare(tal_backbone *bb, tal_err *err);
void swin_free(tal_backbone *bb);
void swin_init_params(tal_backbone *bb, uint64_t seed);
void swin_setup_shapes(tal_backbone *bb); /* stage grids and geometry from bb->consts */
/* video [B, 3, T, H, W] -> feats [B, C, D]; training when bb->keep is given (train = 1). */
void swin_run_forward(tal_backbone *bb, tal_tensor feats, tal_tensor video, int train);
void swin_run_backward(tal_backbone *bb, tal_tensor dfeats, double *recon_err);

/* ResNet parts (resnet3d.c). */
tal_status resnet_declare(tal_backbone *bb, tal_err *err);
void resnet_free(tal_backbone *bb);
void resnet_setup_shapes(tal_backbone *bb);
void resnet_run_forward(tal_backbone *bb, tal_tensor feats, tal_tensor video, int train);
void resnet_run_backward(tal_backbone *bb, tal_tensor dfeats, double *recon_err);

/* SlowFast parts (slowfast.c). */
tal_status slowfast_declare(tal_backbone *bb, tal_err *err);
void slowfast_free(tal_backbone *bb);
void slowfast_setup_shapes(tal_backbone *bb);
void slowfast_run_forward(tal_backbone *bb, tal_tensor feats, tal_tensor video, int train);
void slowfast_run_backward(tal_backbone *bb, tal_tensor dfeats, double *recon_err);

/* Shared helpers (model.c). */
int bb_declare(tal_backbone *bb, const char *name, int ndim, const int64_t *shape, int no_decay,
               int is_norm);
/* Trunc-normal(0, std) clipped at 2 std, deterministic per (seed, param index). Host tensors
 * (models are initialised on the CPU, then moved). */
void bb_init_trunc_normal(tal_tensor t, float std, uint64_t seed, uint64_t stream);

/* Adds the chain's forward (fwd = 1) or backward time to bb's block timers. */
static inline void bb_count_block_time(tal_backbone *bb, const tal_revstage *rs, int fwd) {
    double f, b;
    tal_revstage_seconds(rs, &f, &b);
    if (fwd) bb->block_fwd_s += f;
    else bb->block_bwd_s += b;
}

/* The step inference runs at: drop-path is a training-time regulariser, so a forward at this
 * step leaves every residual branch whole (eval mode in the reference). */
#define BB_STEP_INFER UINT64_MAX
static inline int bb_drop_path_on(float p, uint64_t step) { return p > 0 && step != BB_STEP_INFER; }
/* The drop-path step of a forward: the training step when training, and also in the
 * keep-nothing forward that gives a chunked training step its features (each chunk's recompute
 * must draw the masks those features were computed with); inference otherwise. */
static inline uint64_t bb_forward_step(const tal_backbone *bb, int train) {
    return train || bb->features_for_training ? bb->step : BB_STEP_INFER;
}

#endif
