/* app/features.h: training and inference on pre-extracted features (data.features): each
 * video's .npy file and its time grid (from the file's JSON sidecar, else the data.feature_*
 * keys and the annotation), the windows of the head's length cut from it, and whole-video
 * inference. A feature position plays the part of a sampled frame for the samplers. */
#ifndef TAL_APP_FEATURES_H
#define TAL_APP_FEATURES_H

#include "app/pipeline.h"

/* One video's feature file. */
typedef struct tal_feature_file {
    int T;              /* positions in the file */
    int layout;         /* tal_feat_layout to read it with (data.feature_layout, or the sidecar's) */
    tal_time_map map;   /* position -> seconds: (x * stride + offset) / fps, or resize mode */
} tal_feature_file;

/* What a sidecar (<id>.json beside <id>.npy, written by re2tal extract) says of the grid:
 * feature k covers the video frames from k * stride_frames, frames_per_feature of them, and its
 * time is t_k = (offset_frames + k * stride_frames) / fps (their centre). 0: not given. */
typedef struct tal_feature_grid {
    double fps, stride_frames, frames_per_feature, offset_frames, duration_s;
    int channels, length;
    char layout[8];     /* "TC" or "CT" */
} tal_feature_grid;

/* Reads a sidecar. TAL_EIO if it does not exist (not an error for ActionFormer's layout);
 * TAL_EFORMAT naming the file and key if it is malformed. */
tal_status tal_feature_grid_read(tal_feature_grid *g, const char *path, tal_err *err);
/* Writes one (JSON: the grid, times_s of every feature, then `extra` members if not NULL:
 * a JSON object text whose members are appended), atomically. */
tal_status tal_feature_grid_write(const char *path, const char *video_id,
                                  const tal_feature_grid *g, const char *extra, tal_err *err);

/* <name>.json for <name>.npy (the sidecar's path). */
void tal_feature_sidecar_path(char *buf, size_t size, const char *npy_path);
/* The sidecar of a feature file, if any (an all-zero grid when there is none); TAL_EFORMAT if it
 * is malformed. */
tal_status tal_feature_sidecar_of(tal_feature_grid *g, const char *npy_path, tal_err *err);
/* Finds <dir>/<id>.npy, or with a "v_" prefix added or removed (ActionFormer's ActivityNet
 * files). TAL_EIO naming the id and the folder if there is none. */
tal_status tal_feature_path(char *buf, size_t size, const char *dir, const char *id,
                            tal_err *err);
/* Opens one video's file: checks its header against `channels` (<= 0: taken from the file,
 * which then needs data.feature_layout TC or CT; *channels gets it) and builds its time grid
 * from the sidecar (keys set in rc must agree with it) or from rc and the annotation v. Errors
 * name the file and what is missing or inconsistent. */
tal_status tal_feature_file_open(tal_feature_file *ff, const tal_run_config *rc, int *channels,
                                 const char *path, const tal_video_anno *v, tal_err *err);

/* The sample of video v (feature positions as frames): training draws a random window
 * (truncate) or takes the whole file (resize); else test window w. */
tal_status tal_feature_clip_for(tal_clip *clip, const tal_run_config *rc, const tal_video_anno *v,
                                const tal_feature_file *ff, int training, int window,
                                tal_rng_key key, tal_err *err);
/* Number of test windows of a file. */
int tal_feature_window_count(const tal_run_config *rc, const tal_feature_file *ff);
/* The head's input [C, head_len] (input: that many floats) for the clip, from the file's
 * features f [C, T]: the clip's positions, zero after its valid ones (as ActionFormer pads);
 * resize mode: the whole file linearly resized (align_corners=False) to head_len. */
void tal_feature_window(tal_tensor input, const tal_model *m, const tal_features *f,
                        const tal_clip *clip);

/* Whole-video inference on its feature file: every test window, pooled, Soft-NMS'd; seconds. */
tal_status tal_model_infer_features(tal_model *m, const tal_run_config *rc, const char *path,
                                    const tal_video_anno *v, const tal_feature_file *ff,
                                    tal_tensor input, tal_dets *out, tal_err *err);

#endif
