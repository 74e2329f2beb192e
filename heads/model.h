/* heads/model.h: private to heads/: the head's layers (parameter indices into the borrowed
 * tal_params), what forward saves for backward, and the loss state. */
#ifndef TAL_HEADS_MODEL_H
#define TAL_HEADS_MODEL_H

#include "heads.h"

#define MAX_UNITS 4
#define MAX_BLOCKS 16

typedef struct conv_unit { int w, ln[2]; } conv_unit; /* conv (no bias) + LN + ReLU */
typedef struct unit_saved { tal_tensor x, u, mean, rstd, z; } unit_saved;

typedef struct block {
    int stride;
    int ln1[2], ln2[2];
    int dw[3], dwln[3][2];   /* depthwise q/k/v convs and their LNs */
    int lin_w[4], lin_b[4];  /* query, key, value, proj 1x1 convs */
    int mlp_w[2], mlp_b[2];
    int gamma[2];            /* AffineDropPath scales (attn, mlp); -1 without drop path */
} block;

typedef struct block_saved {
    tal_tensor x, h1, mean1, rstd1;
    tal_tensor dwc[3], dwn[3], dwmean[3], dwrstd[3], lin[3]; /* lin[2] = v * kv_mask */
    tal_tensor probs, att, a, pool_arg, x1, h2, mean2, rstd2, u, g, mo, out;
} block_saved;

typedef struct neck_saved { tal_tensor y, mean, rstd; } neck_saved;

struct tal_head {
    tal_head_config cfg;
    tal_params *params;
    char prefix[64];
    int g_decay, g_no_decay, max_batch, n_levels, n_blocks;
    conv_unit embed[MAX_UNITS];
    block blocks[MAX_BLOCKS];
    int fpn_ln[TAL_HEAD_MAX_LEVELS][2];
    conv_unit cls_units[MAX_UNITS], reg_units[MAX_UNITS];
    int cls_w, cls_b, reg_w, reg_b, scale[TAL_HEAD_MAX_LEVELS];

    tal_device dev;                      /* where the parameters and arenas are */
    tal_arena *act, *bwd, *scratch, *pe_arena;
    tal_tensor pe;                       /* [C, max_seq_len], on dev */
    int plan, train, fwd_done;
    uint64_t step;
    float loss_norm;

    /* last forward */
    int64_t B, T;
    tal_tensor x_in, mask[TAL_HEAD_MAX_LEVELS], feat[TAL_HEAD_MAX_LEVELS];
    unit_saved es[MAX_UNITS];
    block_saved bs[MAX_BLOCKS];
    neck_saved ns[TAL_HEAD_MAX_LEVELS];
    unit_saved cs[TAL_HEAD_MAX_LEVELS][MAX_UNITS], rs[TAL_HEAD_MAX_LEVELS][MAX_UNITS];
    tal_tensor cls_in[TAL_HEAD_MAX_LEVELS], reg_in[TAL_HEAD_MAX_LEVELS];
    tal_tensor cls_out[TAL_HEAD_MAX_LEVELS], reg_raw[TAL_HEAD_MAX_LEVELS],
        reg_out[TAL_HEAD_MAX_LEVELS];
    tal_tensor d_cls[TAL_HEAD_MAX_LEVELS], d_reg[TAL_HEAD_MAX_LEVELS]; /* loss seeds */
    /* the loss's targets per level, on dev: smoothed classes [B, K, Tl], offsets [B, 2, Tl],
     * positives [B, Tl] (valid and assigned) */
    tal_tensor t_cls[TAL_HEAD_MAX_LEVELS], t_reg[TAL_HEAD_MAX_LEVELS], t_pos[TAL_HEAD_MAX_LEVELS];
    /* host memory (malloc, for max_batch): label assignment [B, P, K] and [B, P, 2], the
     * level-0 mask [B, T], and one level's targets before they go to dev */
    float *cls_target, *reg_target, *host_mask, *host_stage;
};

static inline tal_param *P(const tal_head *h, int idx) { return tal_params_at(h->params, idx); }
static inline tal_tensor V(const tal_head *h, int idx) { return P(h, idx)->value; }
static inline tal_tensor G(const tal_head *h, int idx) { return P(h, idx)->grad; }

#endif
