/* heads/heads.h: the ActionFormer detection head as Re2TAL / OpenTAD use it
 * (spec-actionformer.md §2-§8): projection (masked conv embedding + transformer pyramid),
 * identity FPN neck, shared classification / regression heads, label assignment, focal + DIoU
 * losses, decoding, Soft-NMS, voting, classifier fusion, result writers and .npy feature files.
 * Layout is channel-first everywhere: features [B, C_in, T], masks [B, T] (1 valid, 0 padded),
 * outputs per level l: cls logits [B, K, T_l], reg offsets [B, 2, T_l], T_l = T / 2^l. Positions
 * and segments are in level-0 feature units until converted with data/'s tal_time_map. */
#ifndef TAL_HEADS_H
#define TAL_HEADS_H

#include <stdint.h>

#include "data/data.h"
#include "nn/nn.h"

#define TAL_HEAD_MAX_LEVELS 8

/* Which release the model follows where they differ (only at positions next to padding):
 * OpenTAD: LN eps 1e-6 in the conv units and the neck, the mask re-applied after each unit's
 * ReLU; ActionFormer (actionformer_release): eps 1e-5 everywhere and no mask after the ReLU
 * (padded positions hold relu(beta) and reach the next k = 3 conv at the boundary). */
typedef enum tal_head_variant { TAL_HEAD_OPENTAD = 0, TAL_HEAD_ACTIONFORMER = 1 } tal_head_variant;

/* ================================================================ configuration ========= */
typedef struct tal_head_config {
    /* model */
    tal_head_variant variant; /* JSON "variant": "opentad" (default) or "actionformer" */
    int in_channels;          /* C_in: 768 (Swin-T), 2304 (SlowFast) */
    int channels;             /* C: 512 THUMOS, 256 ANet */
    int n_classes;            /* K */
    int max_seq_len;          /* T at level 0: 512 THUMOS, 192 ANet */
    int arch[3];              /* embed convs, stem blocks (stride 1), branch blocks (stride 2) */
    int n_head;               /* 4 */
    int mha_win;              /* -1: global attention; odd w > 0: banded local attention */
    int use_abs_pe;           /* sinusoidal position encoding after the embedding */
    float path_pdrop;         /* drop-path of the blocks (0.1); 0: no AffineDropPath scale */
    int n_head_convs;         /* tower convs per head branch (2) */
    float regression_range[TAL_HEAD_MAX_LEVELS][2]; /* per level, level-0 feature units */
    /* training */
    float center_radius;      /* 1.5 */
    float init_loss_norm;     /* 100 THUMOS, 200 ANet */
    float loss_norm_momentum; /* 0.9 */
    float label_smoothing;    /* 0 THUMOS, 0.1 ANet */
    float reg_loss_weight;    /* 1 THUMOS, 2 ANet; <= 0: cls / max(reg, 0.01) (no gradient) */
    float focal_alpha, focal_gamma; /* 0.25, 2 */
    uint64_t seed;            /* parameter init and drop-path masks */
    /* inference */
    float pre_nms_thresh;     /* 0.001 (K > 1 only) */
    int pre_nms_topk;         /* 2000 over all levels (K > 1 only); <= 0: keep all */
    int pre_nms_per_level;    /* 1: threshold + top-k per level, for any K (ActionFormer) */
    int clip_segments;        /* 1: seconds clipped to [0, duration] before NMS (OpenTAD); 0:
                               * only after NMS (ActionFormer). Decode-time clipping in feature
                               * units is clip_to_window's */
    float nms_sigma;          /* 0.7 */
    float nms_min_score;      /* 0.001 */
    int nms_multiclass;       /* 1: Soft-NMS per class; 0: class-agnostic */
    float voting_thresh;      /* class-agnostic only; <= 0: no voting (0.9 ANet) */
    int voting_iou_weight;    /* 1: voting weights score x IoU (ActionFormer), 0: score */
    int round_results;        /* 1: windows' seconds to 0.01 s, scores to 1e-4 before pooling
                               * (OpenTAD); 0: not (ActionFormer). Used by the app's inference */
    int max_seg_num;          /* per video after NMS: 2000 THUMOS, 100 ANet */
    int clip_to_window;       /* 0 (default, OpenTAD's): decoded segments are clipped only in
                               * seconds, to [0, duration], so a sliding window's segment may
                               * run past the window's end; 1: clipped to the window's valid
                               * span already in feature units */
    float duration_thresh;    /* decoding keeps segments longer than this, in level-0 feature
                                 steps (ActionFormer's test_duration_thresh, 0.05); 0 keeps all,
                                 zero-length ones too (OpenTAD) */
    int remove_duplicates;    /* 1: exact copies removed after Soft-NMS; 0: kept (ActionFormer) */
} tal_head_config;

/* Re2TAL THUMOS-14 e2e values (C_in 768, C 512, K 20, T 512, global attention, no PE). */
void tal_head_config_thumos(tal_head_config *c);
/* Re2TAL ActivityNet e2e values (C_in 768, C 256, K 1, T 192, abs PE, voting 0.9). */
void tal_head_config_anet(tal_head_config *c);
/* Number of pyramid levels: 1 + arch[2]. */
int tal_head_levels(const tal_head_config *c);
/* TAL_EINVAL naming the field if out of range (T not divisible by 2^(levels-1), C % n_head, even
 * window, ...). */
tal_status tal_head_config_check(const tal_head_config *c, tal_err *err);
/* Overrides fields from a JSON object text with keys named as the fields above ("in_channels",
 * "arch": [2, 2, 5], "regression_range": [[0, 4], ...], "mha_win", ...). Unknown keys and wrong
 * types are TAL_EINVAL naming the key; `name` is used in messages. */
tal_status tal_head_config_from_json(tal_head_config *c, const char *name, const char *json,
                                     tal_err *err);

/* ================================================================ model ================= */
typedef struct tal_head tal_head; /* opaque: parameters (borrowed store), arenas, saved state */

/* Declares every parameter into `params` (before tal_params_allocate) under `prefix` followed
 * by OpenTAD's names ("projection.embed.0.conv.weight", "neck.fpn_norms.0.weight",
 * "rpn_head.scale.0.scale", ...; prefix "" gives OpenTAD's own state-dict names).
 * group_decay takes conv weights, group_no_decay biases, norms, scales (spec §10).
 * max_batch: the largest B forward will see; arenas are sized for it by a planner pass at
 * tal_head_init. `params` is borrowed and must outlive the head. */
tal_status tal_head_create(tal_head **out, const tal_head_config *cfg, tal_params *params,
                           const char *prefix, int group_decay, int group_no_decay,
                           int max_batch, tal_err *err);
/* After tal_params_allocate: finds the parameters, initialises them (PyTorch's defaults:
 * kaiming-uniform weights, zero biases, LN 1/0, layer scales 1e-4, Scale 1, cls prior bias
 * -4.595) from cfg->seed unless `init` is 0 (values loaded later), and allocates the arenas. */
tal_status tal_head_init(tal_head *h, int init, tal_err *err);
/* (Re)makes the arenas and the position table where the head's parameters are now: after
 * tal_params_move, call it again (tal_head_init calls it once). On a device the head's steps
 * run there; label assignment, the loss normaliser and decoding stay on the host (their inputs
 * and outputs cross the bus: tal_head_bus_bytes). */
tal_status tal_head_prepare(tal_head *h, tal_err *err);
/* Bytes one training step's loss sends to the device (targets, positives) and reads back (the
 * mask, on a device), and one decoded item reads back; 0, 0 and 0 on the CPU. For B items. */
void tal_head_bus_bytes(const tal_head *h, int64_t B, size_t *loss_up, size_t *loss_down,
                        size_t *decode_down);
void tal_head_destroy(tal_head *h); /* NULL is fine */
/* A tal_name_map_fn for tal_params_load (ctx = the head): maps an OpenTAD checkpoint name
 * ("module.rpn_head.cls_head.bias", "projection.stem.0.ln1.weight") to this head's parameter
 * name (its prefix + the OpenTAD name); drops everything else (backbone.*, loss_normalizer). */
const char *tal_head_checkpoint_name(const char *file_name, char *buf, size_t size, void *ctx);
const tal_head_config *tal_head_cfg(const tal_head *h);
/* Bytes of the activation arena (forward saves) and the backward arena, as planned. */
size_t tal_head_arena_bytes(const tal_head *h, size_t *backward_bytes);

/* Training mode draws drop-path masks from (cfg.seed, step); eval applies layer scales only. */
void tal_head_set_train(tal_head *h, int train, uint64_t step);

/* Forward: features [B, C_in, T] (B <= max_batch, T == cfg.max_seq_len, or a larger multiple
 * of 2^(levels-1) at inference when PE is off... T must not exceed max_seq_len), mask [B, T].
 * Borrows both until backward. Outputs stay in the head's arena until the next forward. */
void tal_head_forward(tal_head *h, tal_tensor features, tal_tensor mask);
/* Level l outputs of the last forward (views into the head's arena). */
tal_tensor tal_head_cls(const tal_head *h, int level); /* [B, K, T_l] logits (masked) */
tal_tensor tal_head_reg(const tal_head *h, int level); /* [B, 2, T_l] offsets, >= 0 (masked) */
tal_tensor tal_head_level_mask(const tal_head *h, int level); /* [B, T_l] */
/* Points over all levels concatenated (level 0 first): n_points = sum T_l. */
int tal_head_n_points(const tal_head *h);

/* ---------------------------------------------------------------- training -------------- */
/* Ground truth of one batch item, level-0 feature units relative to the window. */
typedef struct tal_head_gt {
    const float *segments; /* [n, 2] start, end */
    const int *labels;     /* [n] in [0, K) */
    int n;
} tal_head_gt;

typedef struct tal_head_losses {
    float cls, reg, total; /* total = cls + reg_weight * reg */
    float reg_weight;      /* cfg.reg_loss_weight, or the automatic one when that is <= 0 */
    int num_pos;
    float normalizer;      /* the N used */
} tal_head_losses;

/* Label assignment for item b of the last forward's shape (spec §6): cls_target [P, K],
 * reg_target [P, 2] (stride-normalised offsets), P = n_points. Caller-owned outputs. Exposed
 * for tests and for feature inspection. */
void tal_head_targets(const tal_head *h, const tal_head_gt *gt, float *cls_target,
                      float *reg_target);
/* Losses of the last forward against gt [B] and the gradient seeds for tal_head_backward.
 * train: updates the EMA normaliser (before use); else uses max(num_pos, 1). TAL_EINVAL if a GT
 * label is out of range or a segment is not finite / has end < start (message names the item). */
tal_status tal_head_loss(tal_head *h, const tal_head_gt *gt, int train, tal_head_losses *out,
                         tal_err *err);
/* Backward from the seeds of tal_head_loss: accumulates parameter gradients; writes
 * d_features [B, C_in, T] (none: skipped). */
void tal_head_backward(tal_head *h, tal_tensor d_features);
/* Backward from caller-given output gradients (per level, [B, K, T_l] and [B, 2, T_l]) instead
 * of the loss seeds: used by tests. */
void tal_head_backward_from(tal_head *h, const tal_tensor *d_cls, const tal_tensor *d_reg,
                            tal_tensor d_features);
/* The gradient seeds tal_head_loss wrote (d total / d outputs, per level; views into the head's
 * arena, writable: e.g. scaled for mixed precision before tal_head_backward). */
tal_tensor tal_head_seed_cls(const tal_head *h, int level); /* [B, K, T_l] */
tal_tensor tal_head_seed_reg(const tal_head *h, int level); /* [B, 2, T_l] */
float tal_head_loss_normalizer(const tal_head *h);
void tal_head_set_loss_normalizer(tal_head *h, float n);

/* Sigmoid focal loss summed over n logits x against targets t (already smoothed); writes the
 * gradient (scaled by `gscale`) into dx when not NULL. Returns the sum in double. */
double tal_focal_loss(float *dx, const float *x, const float *t, int64_t n, float alpha,
                      float gamma, float gscale);
/* 1-D DIoU loss of predicted vs target segments [n, 2] (start, end); writes d/d(pred) scaled
 * by gscale into dpred when not NULL. Returns the sum. */
double tal_diou_loss(float *dpred, const float *pred, const float *target, int64_t n,
                     float gscale);

/* ================================================================ inference ============= */
typedef struct tal_detection {
    double start, end; /* feature units, or seconds after tal_dets_to_seconds */
    float score;
    int label;
} tal_detection;

/* A growable list (owned array). */
typedef struct tal_dets {
    tal_detection *items;
    int n, capacity;
} tal_dets;
tal_status tal_dets_push(tal_dets *d, tal_detection x, tal_err *err);
void tal_dets_free(tal_dets *d); /* leaves it zeroed; zeroed is fine */

/* Decodes item b of the last forward (spec §8.1): sigmoid scores, threshold + top-k over all
 * levels (K > 1), segments clipped to [0, valid length] (cfg.clip_to_window; else unclipped
 * here), then those not longer than duration_thresh dropped (after the top-k, before NMS, as
 * ActionFormer; but measured after the clipping, which ActionFormer does later, so no clipped
 * segment of length 0 survives); appended to out, score order. ActionFormer's way with
 * cfg.pre_nms_per_level (threshold + top-k within each level, for any K; out gets level 0's in
 * score order, then level 1's, ...) and cfg.clip_segments 0 (seconds clipped to the video only
 * after NMS). */
tal_status tal_head_decode(const tal_head *h, int b, tal_dets *out, tal_err *err);

typedef struct tal_nms_opts {
    float sigma;        /* Gaussian: score *= exp(-iou^2 / sigma) */
    float min_score;    /* dropped below this */
    int multiclass;     /* per class, else class-agnostic */
    float voting_thresh;/* > 0 and class-agnostic: score-weighted voting over pre-NMS segments */
    int max_seg_num;    /* keep the top ones (<= 0: all) */
    int drop_empty;     /* 1: segments of zero length after rounding to 0.01 s are dropped too */
    int voting_iou_weight; /* weights score x IoU (ActionFormer's seg_voting), else score */
    int keep_duplicates;   /* exact copies stay (ActionFormer), else removed */
} tal_nms_opts;
/* One window of a video (spec §8.4): decodes item b, converts what it appended to seconds
 * with the window's time map (rounded to 0.01 s / 1e-4 score when `round`), so that the windows
 * of one video can be pooled into `out` and Soft-NMS run once on the pool. With
 * cfg.clip_segments 0 (ActionFormer) the seconds are not clipped to the duration here:
 * tal_head_nms_video does it after the NMS. */
tal_status tal_head_decode_window(const tal_head *h, int b, const tal_time_map *map, int round,
                                  tal_dets *out, tal_err *err);

tal_nms_opts tal_head_nms_opts(const tal_head_config *c);
/* Soft-NMS (+ voting) of one video's pooled detections in seconds with c's options; then, with
 * c->clip_segments 0 (ActionFormer), segments clipped to [0, duration_s] (> 0). */
tal_status tal_head_nms_video(const tal_head_config *c, tal_dets *d, double duration_s,
                              tal_err *err);
/* Soft-NMS (+ voting) of one video's pooled detections, in place: d ends sorted by score. Ties
 * in score keep the earlier item first. Zero-length segments have IoU 0 with everything, and
 * Gaussian decay never removes a copy, so exact duplicates (same label, start and end) are
 * removed afterwards (unless keep_duplicates), the higher score kept; with drop_empty, so are
 * zero-length segments. */
tal_status tal_soft_nms(tal_dets *d, const tal_nms_opts *o, tal_err *err);
/* Feature units -> seconds (clipped to the duration) for items [from, n); round: 0.01 s and
 * score 1e-4 (as OpenTAD's window pooling). */
void tal_dets_to_seconds(tal_dets *d, int from, const tal_time_map *map, int round);
/* ActivityNet trick (spec §8.5): each class-agnostic detection becomes top_k detections, one
 * per best video-level class (class_scores [n_classes]), score x class score. Appends to out. */
tal_status tal_dets_fuse_classifier(tal_dets *out, const tal_dets *agnostic,
                                    const float *class_scores, int n_classes, int top_k,
                                    tal_err *err);

/* One video's final detections (seconds) for the writers. */
typedef struct tal_video_dets {
    const char *id;
    const tal_dets *dets;
} tal_video_dets;
/* ActivityNet results JSON: {"version", "results": {id: [{"label", "score", "segment"}]},
 * "external_data"}. class_names [n_classes]. Atomic write. */
tal_status tal_results_write_json(const char *path, const tal_video_dets *videos, int n_videos,
                                  char *const *class_names, int n_classes, tal_err *err);
/* SRT subtitles of the top_n segments of one video (by score, then shown in time order). */
tal_status tal_results_write_srt(const char *path, const tal_dets *dets,
                                 char *const *class_names, int n_classes, int top_n,
                                 tal_err *err);

/* ================================================================ feature files ========= */
/* Feature files are 2-D .npy arrays: [T, C] (time first, ActionFormer's layout) or [C, T]
 * (channels first, what re2tal extract writes by default), float32 or float16, C- or
 * Fortran-order. In memory they are always [C, T]. */
typedef enum {
    TAL_FEAT_AUTO = 0, /* the dimension that equals the expected channels is C ([T, C] if both) */
    TAL_FEAT_TC = 1,   /* [T, C] */
    TAL_FEAT_CT = 2,   /* [C, T] */
} tal_feat_layout;
const char *tal_feat_layout_name(tal_feat_layout l); /* "auto", "TC", "CT" */
int tal_feat_layout_parse(const char *s);            /* -1 if unknown */

typedef struct tal_features {
    float *data;  /* [C, T] */
    int C, T;
} tal_features;
/* Loads a feature file into out [C, T] (owned: free with tal_features_free). channels: the
 * expected C. T == 0 is fine. Errors name the file: TAL_EIO unreadable, TAL_EFORMAT bad magic /
 * header / dtype / shape (a dimension that is not C, read in `layout`) / truncated / NaN or inf
 * (with the position and channel). */
tal_status tal_features_read(tal_features *out, const char *path, int channels,
                             tal_feat_layout layout, tal_err *err);
/* tal_features_read with TAL_FEAT_AUTO. */
tal_status tal_features_load(tal_features *out, const char *path, int channels, tal_err *err);
/* Checks a feature file without reading its values (header, layout, file size): *C and *T get
 * its shape. channels <= 0: not known, the layout (TC or CT) says which dimension it is. Same
 * errors as tal_features_read, except non-finite values. */
tal_status tal_features_probe(const char *path, int channels, tal_feat_layout layout, int *C,
                              int *T, tal_err *err);
/* Writes data [C, T] as a float32 C-order .npy in `layout` (TC: transposed to [T, C]; AUTO is
 * CT), atomically. */
tal_status tal_features_write(const char *path, const float *data, int C, int T,
                              tal_feat_layout layout, tal_err *err);
void tal_features_free(tal_features *f);

#endif /* TAL_HEADS_H */
