/* app/run_config.h: everything a training / inference run is configured with: the data, the
 * optimiser, the schedule and the run, as typed keys (configs/README.md documents each), plus the
 * "backbone" and "head" sections, kept as JSON and handed to backbone/ and heads/ parsers. */
#ifndef TAL_APP_RUN_CONFIG_H
#define TAL_APP_RUN_CONFIG_H

#include "app/config.h"

typedef struct tal_run_config {
    /* data */
    char annotations[TAL_CFG_STR];  /* ActivityNet-style JSON */
    char videos[TAL_CFG_STR];       /* folder of <id>.<ext> */
    char classes[TAL_CFG_STR];      /* optional class list (else the sorted label set) */
    char block_list[TAL_CFG_STR];   /* optional list of video ids left out */
    /* every string key is a char[TAL_CFG_STR]: config.c copies up to that many bytes (a longer
     * "train_subset" once overwrote the numbers after it; fuzz_app_config) */
    char train_subset[TAL_CFG_STR], val_subset[TAL_CFG_STR];
    char sampler[TAL_CFG_STR];      /* "resize" (ActivityNet) or "truncate" (THUMOS) */
    int frames;                     /* resize: frames spread over the video */
    int resize_len;                 /* resize: head length (feature positions) */
    int trunc_len, frame_stride, snippet_stride; /* truncate / sliding windows */
    double trunc_thresh, window_overlap;
    int short_side, crop;           /* test-time resize + centre crop; train crop size = crop */
    double rrc_scale_min, rrc_scale_max, flip; /* train augmentation (rrc_scale_min <= 0: none) */
    int decode_threads, prefetch;   /* FFmpeg threads; clips decoded ahead (0: no thread) */
    int class_agnostic;             /* 1: one class "action" (ANet recipe, + eval.classifier) */
    /* optimisation */
    int epochs, batch_size, accum_steps;
    double lr_head, lr_backbone, weight_decay, warmup_epochs, min_lr, clip_norm, ema_decay;
    /* run */
    int seed, eval_every, eval_start, checkpoint_every, max_steps_per_epoch, stop_after;
    int max_nonfinite_steps;        /* consecutive skipped updates before training stops */
    int deterministic_reduce;       /* MPI ranks: gradient sums in rank order (bit-stable) */
    double bucket_mb;               /* MPI ranks: gradient bucket size */
    int overlap_reduce;             /* MPI ranks: buckets sent while the backward goes on */
    char out_dir[TAL_CFG_STR];
    char pretrained[TAL_CFG_STR];   /* backbone weights (safetensors) loaded before training */
    double tiou[TAL_CFG_LIST];
    int n_tiou;
    char classifier[TAL_CFG_STR];   /* video-level class scores fused into class-agnostic output */
    int classifier_topk;            /* classes per detection from that file (2) */
    /* where and how the model computes (app/device.h); --device overrides `device` */
    char device[16];                /* "cpu", "cuda", "cuda:N" */
    char precision[8];              /* train.precision: "fp32" or "bf16" (CUDA only) */
    int tf32;                       /* train.tf32: fp32 products may use TF32 (CUDA only) */
    /* model sections as JSON object text (owned by the struct's user; see run_config_free) */
    char backbone_json[4096], head_json[4096];
} tal_run_config;

void tal_run_config_default(tal_run_config *c);
const tal_cfg_key *tal_run_config_keys(int *n);
/* Loads a JSON config file on top of the defaults: "backbone" and "head" objects are kept as
 * JSON; everything else must be a known key. */
tal_status tal_run_config_load(tal_run_config *c, const char *path, tal_err *err);
/* --set key=value: "backbone.X" / "head.X" edit those sections, anything else a typed key. */
tal_status tal_run_config_set(tal_run_config *c, const char *assignment, tal_err *err);
/* The whole config as JSON (caller frees). */
char *tal_run_config_to_json(const tal_run_config *c);
/* Everything that can be checked before data is read: rules across keys, and the "backbone" and
 * "head" sections parsed and range-checked. Errors name the key; `where` (the file) prefixes
 * them. */
tal_status tal_run_config_validate(const tal_run_config *c, const char *where, tal_err *err);
/* The one way every command reads a run config: defaults, the file (path may be NULL), the
 * "key=value" assignments in order, then tal_run_config_validate. */
tal_status tal_run_config_read(tal_run_config *c, const char *path, const char *const *sets,
                               int n_sets, tal_err *err);
/* Parses a config written by tal_run_config_to_json (the one saved in a run folder). */
tal_status tal_run_config_parse(tal_run_config *c, const char *json, const char *where, tal_err *err);

#endif
