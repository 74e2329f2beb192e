/* app/pipeline.h: the end-to-end model (reversible backbone + ActionFormer head sharing one
 * parameter store), clip loading from video files, one training step, and inference on a clip. */
#ifndef TAL_APP_PIPELINE_H
#define TAL_APP_PIPELINE_H

#include "app/device.h"
#include "app/run_config.h"
#include "backbone/backbone.h"
#include "data/data.h"
#include "decode/decode.h"
#include "heads/heads.h"

typedef struct tal_model {
    tal_params *params;
    tal_backbone *bb;
    tal_head *head;
    tal_backbone_config bcfg;
    tal_head_config hcfg;
    int clip_frames, crop;       /* backbone input [1, 3, clip_frames, crop, crop] */
    int feat_len, head_len;      /* backbone output length, head length */
    int feat_ch;
    int head_first_param;        /* the head's parameters are [head_first_param, count) */
    tal_device dev;              /* where it computes (the run config's `device`) */
    tal_arena *work;             /* on dev */
    tal_tensor feats, feats_head, dfeats_head, dfeats, mask;
    tal_tensor video_dev;        /* on a device: the clip uploaded there */
    float *mask_host;            /* [head_len]: the mask, made on the host */
    tal_arena *pinned;           /* on a device, inference: a second window buffer (pinned) */
    tal_tensor video_host2;
} tal_model;

typedef struct tal_model_shape {
    int clip_frames, crop;       /* backbone input [1, 3, clip_frames, crop, crop] */
    int feat_len, feat_ch;       /* backbone output [1, feat_ch, feat_len] */
    int head_len;                /* positions the head sees */
} tal_model_shape;

/* The backbone and head configurations a run config describes for n_classes (parsed from its
 * sections and checked), and the shapes that follow. No allocation: the config validation runs
 * it before any data is read. */
tal_status tal_model_configs(const tal_run_config *rc, int n_classes, tal_model_shape *ms,
                             tal_backbone_config *bcfg, tal_head_config *hcfg, tal_err *err);
/* Builds the model for n_classes from the config; init: random initialisation (else the caller
 * loads weights, tal_params_load copies them to the device). Built and initialised on the host,
 * then moved to the config's device: parameters, head, backbone plans and the work arena. The
 * clips given to the step and inference may be host tensors: they are uploaded (m->video_dev). */
tal_status tal_model_create(tal_model *m, const tal_run_config *rc, int n_classes, int init,
                            tal_err *err);
void tal_model_destroy(tal_model *m);
/* What m asks of a device's memory (app/device.h): weights, gradients and activations, and
 * when training AdamW, the EMA, the gradient stash and rc's prefetched clips. From the plans:
 * callable before the model moves. */
tal_status tal_model_device_need(const tal_model *m, const tal_run_config *rc, int training,
                                 tal_device_need *need, tal_err *err);

/* The clip sampled for video v of the dataset (training: random window / augmentation from key;
 * else the test sampling, window w). */
tal_status tal_clip_for(tal_clip *clip, const tal_run_config *rc, const tal_video_anno *v,
                        int training, int window, tal_rng_key key, tal_err *err);
/* Decodes the clip's frames from the video file into video [1, 3, clip_frames, crop, crop]. */
tal_status tal_clip_load(tal_tensor video, const tal_run_config *rc, const char *path,
                         const tal_clip *clip, int training, tal_rng_key key, tal_err *err);

typedef struct tal_step_stats {
    tal_head_losses losses;
    double recon_err;            /* the worst stage's (-1: none measured) */
    double recon_stages[TAL_BACKBONE_MAX_STAGES]; /* per backbone stage (-1: none) */
    int n_stages;
} tal_step_stats;

/* Forward + backward of one clip; gradients accumulate (scaled by grad_scale). */
tal_status tal_model_train_clip(tal_model *m, tal_tensor video, const tal_clip *clip,
                                uint64_t step, float grad_scale, tal_step_stats *st, tal_err *err);
/* Inference of one clip: detections appended to out in seconds of the video. */
tal_status tal_model_infer_clip(tal_model *m, tal_tensor video, const tal_clip *clip,
                                tal_dets *out, tal_err *err);

/* The backbone's features of one clip (inference), into host memory feats [feat_ch,
 * feat_len]. */
void tal_model_clip_features(tal_model *m, tal_tensor video, float *feats);

/* Whole-video inference: every test window, pooled, Soft-NMS'd; out in seconds. A video that
 * decoded with trouble (corrupt packets, frames with impossible timestamps) succeeds with a
 * warning naming it in err->msg (err->code TAL_OK): print it, the user should know. On a
 * device the next window is decoded while the current one computes. */
tal_status tal_model_infer_video(tal_model *m, const tal_run_config *rc, const char *path,
                                 const tal_video_anno *v, tal_tensor video_buf, tal_dets *out,
                                 tal_err *err);

#endif
