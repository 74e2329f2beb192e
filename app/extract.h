/* app/extract.h: backbone features of whole videos (re2tal extract). Frames are sampled by
 * presentation time (every N-th frame, F per second, or a fixed count spread over the video),
 * resized (short side) and centre-cropped, normalised as in training ((x - mean) / std per RGB
 * channel, x in 0..255, ImageNet mean 123.675 116.28 103.53, std 58.395 57.12 57.375), and run
 * through the backbone either in snippets (feature k = the backbone on frames_per_feature
 * sampled frames from k * stride, averaged over time and space) or in windows (consecutive
 * windows of `window` frames, every output step of the backbone one feature, averaged over
 * space). Written as <id>.npy ([C, T] or [T, C]) and the sidecar <id>.json (features.h). */
#ifndef TAL_APP_EXTRACT_H
#define TAL_APP_EXTRACT_H

#include "app/trainer.h"

typedef struct tal_extract_opts {
    int every;                 /* sample every N-th video frame (> 0), else: */
    double fps;                /* sample F frames per second (> 0), else: */
    int spread;                /* this many frames spread uniformly over the whole video (the
                                * resize sampler of ActivityNet configs; one window) */
    int frames_per_feature;    /* snippet mode: sampled frames per feature */
    int stride;                /* snippet mode: sampled frames between features */
    int window;                /* > 0: window mode, windows of this many sampled frames */
    int short_side, crop;      /* resize the short side, then a centre crop (crop x crop) */
    tal_feat_layout layout;    /* of the .npy (AUTO: CT) */
    const char *sidecar_extra; /* JSON object text: members added to each sidecar, or NULL */
    tal_device device;         /* where the backbone's parameters live: clips go up, features
                                * come back (CPU: no copies) */
} tal_extract_opts;

/* The backbone input length the options need (frames_per_feature, window or spread): prepare
 * the backbone for [1, 3, that, crop, crop]. */
int tal_extract_clip_frames(const tal_extract_opts *o);
/* Features of one video into out_dir/<id>.npy and <id>.json. bb: prepared as above. Errors
 * name the video. */
tal_status tal_extract_video(tal_backbone *bb, const tal_extract_opts *o, const char *path,
                             const char *out_dir, tal_err *err);

/* The extraction a run config describes: its test-time sampler (truncate: windows of
 * data.trunc_len frames every data.frame_stride-th frame; resize: data.frames spread over the
 * video) and its resize and crop. */
tal_extract_opts tal_extract_opts_for_run(const tal_run_config *rc);
/* Features of every video of dataset d that has a file (training and validation alike) with
 * model m's backbone, into out_dir (created). Unreadable videos are counted in *n_skipped and
 * reported on stderr. */
tal_status tal_extract_dataset(tal_model *m, const tal_run_config *rc, const tal_run_data *d,
                               const char *out_dir, const char *sidecar_extra, int quiet,
                               int *n_skipped, tal_err *err);

#endif
