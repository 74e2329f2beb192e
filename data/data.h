/* data/data.h: from files on disk to training samples. Annotation readers (ActivityNet / THUMOS
 * JSON, THUMOS per-class text), class maps, subset and block-list filtering, video path
 * resolution, the one place where seconds and feature indices are converted
 * (spec-actionformer.md §8.3), the samplers of §9 (THUMOS truncation, ActivityNet resize, test
 * sliding windows, batch masks), and the built-in synthetic action dataset (`re2tal synth`). */
#ifndef TAL_DATA_H
#define TAL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "nn/nn.h"

/* ================================================================ annotations ============ */
typedef enum {
    TAL_SUBSET_UNKNOWN = 0, /* the file has no subset field (BSN files, detection files) */
    TAL_SUBSET_TRAINING,    /* "training", "train" */
    TAL_SUBSET_VALIDATION,  /* "validation", "val" */
    TAL_SUBSET_TESTING,     /* "testing", "test" */
} tal_subset;

/* "training" / "validation" / "testing" / "unknown". */
const char *tal_subset_name(tal_subset s);
/* Accepts the names above and the aliases "train", "val", "test"; TAL_EINVAL otherwise. */
tal_status tal_subset_parse(tal_subset *out, const char *name, tal_err *err);

/* One ground-truth instance, in seconds. label indexes tal_dataset.class_names. */
typedef struct tal_segment {
    double start_s, end_s;
    int label;
} tal_segment;

typedef struct tal_video_anno {
    char *id;               /* owned; as in the file ("v_" prefix kept if the file has it) */
    tal_subset subset;
    double duration_s;      /* < 0: the file does not say */
    double fps;             /* 0: the file does not say */
    int64_t n_frames;       /* 0: the file does not say */
    int width, height;      /* 0: the file does not say ("resolution": "WxH") */
    tal_segment *segments;  /* owned, file order */
    int n_segments;
    tal_segment *ambiguous; /* owned: THUMOS "Ambiguous" spans (label -1), not targets */
    int n_ambiguous;
} tal_video_anno;

/* Things the official tools tolerate: counted while reading, never fatal. */
typedef struct tal_anno_warnings {
    int n_zero_length;      /* segments with end == start (kept, as the official GT has them) */
    int n_duplicate;        /* same label and bounds within 1e-3 s as an earlier one (kept) */
    int n_past_duration;    /* segments ending after the duration (kept as written) */
    int n_no_duration;      /* videos without a duration */
    int n_no_segments;      /* videos without any instance */
} tal_anno_warnings;

typedef enum {
    TAL_ANNO_ANET_JSON = 1, /* {"database": {id: {subset, duration, annotations[...]}}} */
    TAL_ANNO_PLAIN_JSON,    /* the same entries without the "database" wrapper (lzszq, BSN) */
    TAL_ANNO_RESULTS_JSON,  /* {"results": {id: [{segment, label, score}]}}: scores dropped */
    TAL_ANNO_THUMOS_TXT,    /* a folder of <Class>_<split>.txt (+ Ambiguous_<split>.txt) */
} tal_anno_format;

typedef struct tal_dataset {
    char *source;           /* owned: the file or folder it was read from */
    tal_anno_format format;
    tal_video_anno *videos; /* owned */
    int n_videos;
    char **class_names;     /* owned: sorted label set, or the class map's order */
    int n_classes;
    tal_anno_warnings warn;
} tal_dataset;

/* Reads an annotation file or THUMOS text folder; the format is detected from the content.
 * THUMOS text: `split` picks the files ("test" -> *_test.txt; NULL: "test"); ignored for JSON.
 * Classes become the sorted set of labels seen (use tal_dataset_set_classes for a fixed map).
 * Errors (TAL_EIO unreadable; TAL_EFORMAT bad content) name the file and the JSON path, e.g.
 * "anet.json: database.v_abc.annotations[2].segment: end 12 s is before start 31.5 s";
 * malformed JSON gives line and column. Rejected: wrong types, missing keys, end < start,
 * NaN / infinite / negative times, unknown subset names, duplicate video ids. */
tal_status tal_dataset_load(tal_dataset **out, const char *path, const char *split, tal_err *err);
/* Same, from bytes in memory; `name` is used in messages. JSON formats only. */
tal_status tal_dataset_parse(tal_dataset **out, const char *name, const char *json, size_t len,
                             tal_err *err);
/* A video entry's duration as annotation JSON gives it ("duration", or "duration_second" which
 * wins; a number or a string holding one): *out_s = the seconds, or -1 when the entry has none.
 * TAL_EFORMAT "<file>: <where>.duration: must be a positive number, got 0" when it is there but
 * not a finite number > 0. video is a cJSON object (void * keeps cJSON out of this header). The
 * one rule for the dataset reader, check-data and eval's ground truth alike. */
tal_status tal_anno_video_duration(double *out_s, const void *video, const char *file,
                                   const char *where, tal_err *err);
void tal_dataset_destroy(tal_dataset *ds); /* NULL is fine */

/* Index of a video id, or -1. Also accepts the id with / without a "v_" prefix. */
int tal_dataset_find(const tal_dataset *ds, const char *id);
/* Number of segments in all videos. */
int64_t tal_dataset_n_segments(const tal_dataset *ds);

/* Keeps only videos of `subset` (in place). Returns how many were dropped. */
int tal_dataset_filter_subset(tal_dataset *ds, tal_subset subset);
/* Drops videos whose id is listed in `path` (a JSON array of ids, or text with one id per
 * line; '#' starts a comment). *n_dropped (may be NULL) gets the count. */
tal_status tal_dataset_block(tal_dataset *ds, const char *path, int *n_dropped, tal_err *err);
/* Drops the videos at the indices where drop[i] != 0 (in place, order kept). */
void tal_dataset_drop(tal_dataset *ds, const uint8_t *drop);

/* A class map: names in index order. */
typedef struct tal_class_map {
    char **names; /* owned */
    int n;
} tal_class_map;
/* Reads a class list: one name per line, or "<id> <name>" lines (THUMOS detclasslist.txt: ids
 * sorted and renumbered 0..n-1 in file order), or a JSON array of strings; a ".csv" file has a
 * header line, which is skipped. Blank lines and '#' comments are skipped; duplicate names are
 * an error. */
tal_status tal_class_map_load(tal_class_map *out, const char *path, tal_err *err);
void tal_class_map_free(tal_class_map *map); /* leaves it empty; zeroed is fine */
/* Index of name, or -1. */
int tal_class_map_find(const tal_class_map *map, const char *name);

/* Merges a BSN-style video table (CSV with a header naming at least "video"; optional columns
 * "numFrame", "seconds", "fps", "subset") into the dataset: matching videos (ids with or
 * without "v_") get those fields. *n_matched (may be NULL) counts rows that matched a video.
 * TAL_EFORMAT names the file and line of a bad row. */
tal_status tal_dataset_apply_video_table(tal_dataset *ds, const char *path, int *n_matched,
                                         tal_err *err);

/* Relabels the dataset with `map`'s order. Segments whose label is not in the map are dropped
 * and counted in *n_unknown (may be NULL); their names go in err->msg when any (not an
 * error). */
tal_status tal_dataset_set_classes(tal_dataset *ds, const tal_class_map *map, int *n_unknown,
                                   tal_err *err);

/* Finds the video file of `id` in `dir`: tries <dir>/<id>.<ext> for each extension (NULL:
 * mp4 mkv webm avi mpeg mpg mov m4v), then the same with a "v_" prefix added or removed.
 * TAL_EIO if none exists (the message names the id and the directory). */
tal_status tal_video_path(char *buf, size_t size, const char *dir, const char *id,
                          const char *const *exts, tal_err *err);

/* ================================================================ dataset checks ======== */
/* What a video file really is, as a probe (app/ passes one built on decode/) reports it. */
typedef tal_status (*tal_probe_fn)(const char *path, double *duration_s, int64_t *n_frames,
                                   double *fps, void *ctx, tal_err *err);

typedef enum {
    TAL_CHECK_MISSING_VIDEO = 0, /* no file for the id in the video folder */
    TAL_CHECK_UNDECODABLE,       /* the probe failed */
    TAL_CHECK_DURATION_MISMATCH, /* |annotated - real| > tolerance */
    TAL_CHECK_NO_DURATION,       /* neither the annotation nor the probe gives one */
    TAL_CHECK_OUTSIDE,           /* segment not within [0, duration]: clipped in place */
    TAL_CHECK_ZERO_LENGTH,       /* end == start (after clipping) */
    TAL_CHECK_DUPLICATE,         /* same label and bounds within 1e-3 s as an earlier one */
    TAL_CHECK_UNKNOWN_LABEL,     /* label not in the class map */
    TAL_CHECK_EMPTY_CLASS,       /* a class without any instance */
    TAL_CHECK_KINDS
} tal_check_kind;
/* "missing_video", "undecodable", ... (JSON keys and table rows). */
const char *tal_check_kind_name(tal_check_kind k);

typedef struct tal_check_issue {
    tal_check_kind kind;
    int video;              /* index in the dataset, or -1 (empty class) */
    int segment;            /* index in the video, or -1 */
    char msg[200];          /* "v_abc: annotated 120.0 s, file 118.2 s" */
} tal_check_issue;

typedef struct tal_check_opts {
    const char *video_dir;  /* NULL: no file checks */
    const char *const *exts;/* NULL: tal_video_path's default list */
    const tal_class_map *classes; /* NULL: the dataset's own classes (no unknown labels) */
    tal_probe_fn probe;     /* NULL: files are only looked for, not opened */
    void *probe_ctx;        /* must be safe to call from several threads */
    double duration_tol_s;  /* mismatch when above max(tol, 2 % of the duration); 0: 1 s */
} tal_check_opts;

typedef struct tal_check_report {
    int n_videos, n_segments, n_classes;
    int counts[TAL_CHECK_KINDS];
    tal_check_issue *issues;  /* owned, in video order, then empty classes */
    int n_issues;
    int *class_instances;     /* owned [n_classes]: instances per class after the checks */
    char **class_names;       /* owned [n_classes] */
    double *real_duration_s;  /* owned [n_videos]: probed duration, < 0 if not probed */
} tal_check_report;

/* Checks every video of ds (segments outside [0, duration] are clipped in place; the real
 * duration wins over the annotated one when probed). Bad data is reported, not an error; errors
 * are only out of memory. */
tal_status tal_dataset_check(tal_check_report *out, tal_dataset *ds, const tal_check_opts *o,
                             tal_err *err);
/* The report as JSON text (caller frees with free()), naming video ids from ds. */
char *tal_check_report_json(const tal_check_report *r, const tal_dataset *ds);
void tal_check_report_free(tal_check_report *r); /* leaves it zeroed */

/* ================================================================ time ================== */
/* Seconds <-> feature index, used by training and inference alike (spec §8.3).
 * Sliding-window mode (resize_len == 0, THUMOS):
 *   t = (x * snippet_stride + window_start_frame + offset_frames) / fps
 * Resize mode (resize_len > 0, ActivityNet): t = x / resize_len * duration_s.
 * Results in seconds are clipped to [0, duration_s] (no clipping if duration_s <= 0). */
typedef struct tal_time_map {
    double fps;                /* original frames per second (= n_frames / duration) */
    double snippet_stride;     /* original frames per feature step (4 for THUMOS e2e) */
    double window_start_frame; /* original frame index of the window's first frame */
    double offset_frames;      /* 0 in OpenTAD; 0.5 * clip frames in original ActionFormer */
    double duration_s;
    int resize_len;            /* > 0: resize mode with this many feature positions (192) */
} tal_time_map;

double tal_time_feat_to_s(const tal_time_map *m, double feat_index);
/* The same without the clipping (ActionFormer clips after NMS). */
double tal_time_feat_to_s_unclipped(const tal_time_map *m, double feat_index);
/* The inverse (no clipping of the feature index; t is clipped to [0, duration] first). */
double tal_time_s_to_feat(const tal_time_map *m, double t_s);

/* ================================================================ samplers ============== */
/* What one training or test sample needs: the original frame indices to decode, the valid
 * length, the targets in feature units relative to the sample, and the time map back to
 * seconds. Arrays are owned by the clip (tal_clip_free). */
typedef struct tal_clip {
    int video;              /* index into the dataset */
    int64_t *frame_idx;     /* [n_frames] original frame indices (padding repeats the last) */
    int n_frames;           /* frames the backbone gets (trunc_len, or the resize count) */
    int n_valid_frames;     /* frames before the padding */
    int n_feat;             /* feature positions (n_frames / frames_per_feat, or resize_len) */
    int n_valid_feat;       /* positions that are not padding (mask = 1) */
    tal_segment *segments;  /* [n_segments] targets in feature units, within [0, n_feat] */
    int n_segments;
    tal_time_map time;      /* feature index of this clip -> seconds in the video */
} tal_clip;
void tal_clip_free(tal_clip *c); /* leaves it zeroed; zeroed is fine */

/* What the sampler needs to know of one video (from the annotation and/or the decoder). */
typedef struct tal_video_meta {
    int64_t n_frames;       /* frames in the video file */
    double duration_s;
    const tal_segment *segments; /* in seconds; borrowed */
    int n_segments;
} tal_video_meta;

/* The sampler's view of an annotated video (segments borrowed from it): n_frames as annotated,
 * else round(fps * duration) when both are known, else 0 (probe the file, then fill it in). */
tal_video_meta tal_video_meta_of(const tal_video_anno *v);

/* THUMOS-style training (spec §9.1, OpenTAD ThumosPaddingDataset + random truncation). */
typedef struct tal_trunc_opts {
    int trunc_len;          /* sampled frames per window (1024) */
    int frame_stride;       /* original frames between sampled frames (2) */
    int snippet_stride;     /* original frames per feature (4): frames_per_feat = 4 / 2 */
    double trunc_thresh;    /* fraction of a GT inside the window to keep it (0.75) */
    double crop_ratio_min, crop_ratio_max; /* for videos not longer than the window (0.9, 1) */
    int max_trials;         /* 200 */
    /* Pre-extracted features instead of frames (NULL for videos): n_frames counts feature
     * positions, each one "frame" (frame and snippet strides 1); GT seconds become positions
     * through this map (no flooring), and the clip's time map is this one moved to its window.
     * Borrowed. Also in tal_window_opts. */
    const tal_time_map *feat_map;
} tal_trunc_opts;
void tal_trunc_opts_default(tal_trunc_opts *o); /* the Re2TAL THUMOS values above */
/* Draws a window with randomness from `key` (same key, same window). EINVAL on bad opts or a
 * video without frames. */
tal_status tal_sample_trunc(tal_clip *out, const tal_video_meta *v, const tal_trunc_opts *o,
                            tal_rng_key key, tal_err *err);

/* ActivityNet-style resize (spec §9.2, OpenTAD AnetResizeDataset). */
typedef struct tal_resize_opts {
    int n_frames;           /* frames spread over the video (768) */
    int resize_len;         /* feature positions (192) */
    double min_gt_frac;     /* drop GT shorter than this fraction of the video (0.01) */
    int class_agnostic;     /* labels become 0 */
} tal_resize_opts;
void tal_resize_opts_default(tal_resize_opts *o);
tal_status tal_sample_resize(tal_clip *out, const tal_video_meta *v, const tal_resize_opts *o,
                             tal_err *err);

/* Test sliding windows (spec §8.4): windows of window_len sampled frames every window_stride
 * sampled frames, the last right-aligned to the end; a video shorter than a window gets one
 * padded window. Segments of the video are included (feature units, clipped; those with no
 * overlap dropped) so validation losses can use them. */
typedef struct tal_window_opts {
    int window_len;         /* sampled frames per window (1024) */
    int window_stride;      /* sampled frames between window starts (512) */
    int frame_stride;       /* 2 */
    int snippet_stride;     /* 4 */
    const tal_time_map *feat_map; /* as in tal_trunc_opts (NULL for videos) */
} tal_window_opts;
void tal_window_opts_default(tal_window_opts *o);
/* Number of windows for a video of n_frames. */
int tal_window_count(int64_t n_frames, const tal_window_opts *o);
/* Window w (0 <= w < tal_window_count). */
tal_status tal_sample_window(tal_clip *out, const tal_video_meta *v, const tal_window_opts *o,
                             int w, tal_err *err);

/* Batching: mask [B, T] gets 1 for the valid feature positions of clip b and 0 for padding
 * (T >= every clip's n_feat; positions past n_feat are padding too). */
void tal_batch_mask(tal_tensor mask, const tal_clip *clips, int B);
/* Smallest length >= every clip's n_feat that is a multiple of `div` (div <= 1: no rounding). */
int tal_batch_len(const tal_clip *clips, int B, int div);

/* ================================================================ synthetic dataset ===== */
/* Rendered, really encoded videos with ActivityNet-format annotations. Each class is a
 * (shape, colour, motion); classes come in pairs that differ only in the direction of their
 * motion (left / right, up / down, grow / shrink, clockwise / anticlockwise, blink fast /
 * slow, diagonal up / down), so a model must use time to tell a pair apart. Everything is a
 * function of (seed, video index): the same options give the same bytes. */
#define TAL_SYNTH_MAX_INSTANCES 6
#define TAL_SYNTH_MAX_DISTRACTORS 4

typedef struct tal_synth_opts {
    int n_videos;           /* 200 */
    int n_classes;          /* 8; 2 .. TAL_SYNTH_MAX_CLASSES */
    uint64_t seed;          /* 0 */
    int size;               /* frame width = height in pixels (96); 32 .. 512, even */
    double fps;             /* 25 */
    double min_len_s, max_len_s;       /* video length (20, 90) */
    double min_action_s, max_action_s; /* instance length (0.5, 20) */
    int max_instances;      /* 0 .. TAL_SYNTH_MAX_INSTANCES (6) */
    double val_fraction;    /* every round(1/val_fraction)-th video is "validation" (0.2) */
    const char *codec;      /* libavcodec encoder name; NULL: libx264 if present, else mpeg4 */
} tal_synth_opts;
#define TAL_SYNTH_MAX_CLASSES 64
void tal_synth_opts_default(tal_synth_opts *o);

typedef enum {
    TAL_MOTION_LEFT = 0, TAL_MOTION_RIGHT,
    TAL_MOTION_UP, TAL_MOTION_DOWN,
    TAL_MOTION_GROW, TAL_MOTION_SHRINK,
    TAL_MOTION_ROTATE_CW, TAL_MOTION_ROTATE_CCW,
    TAL_MOTION_BLINK_FAST, TAL_MOTION_BLINK_SLOW,
    TAL_MOTION_DIAG_UP, TAL_MOTION_DIAG_DOWN,
    TAL_MOTION_STILL,       /* the unpaired last class when n_classes is odd */
} tal_motion;

typedef enum {
    TAL_SHAPE_SQUARE = 0, TAL_SHAPE_TRIANGLE, TAL_SHAPE_CROSS, TAL_SHAPE_RING, TAL_SHAPE_DIAMOND,
    TAL_SHAPE_TEE, TAL_SHAPE_DISC, TAL_SHAPE_BAR, TAL_SHAPE_ARROW, TAL_SHAPE_COUNT
} tal_shape;

typedef struct tal_synth_class {
    char name[64];          /* e.g. "red_triangle_rotate_cw" */
    tal_shape shape;
    uint8_t rgb[3];
    tal_motion motion;
    int partner;            /* the class with the same look and the opposite motion, or -1 */
} tal_synth_class;
/* Class k of a dataset with n_classes classes. */
void tal_synth_class_info(tal_synth_class *out, int k, int n_classes);

/* One action instance: the object is drawn in frames [start_frame, end_frame) only, and the
 * annotation is [start_frame / fps, end_frame / fps]. */
typedef struct tal_synth_instance {
    int start_frame, end_frame;
    int label;
    float x0, y0;           /* centre at start_frame, pixels */
    float angle0;           /* radians */
    float half_size;        /* pixels (at start for grow / shrink) */
} tal_synth_instance;

typedef struct tal_synth_distractor {
    tal_shape shape;
    uint8_t rgb[3];
    float x0, y0, vx, vy;   /* pixels, pixels per frame (bounces off the borders) */
    float half_size;
} tal_synth_distractor;

/* Everything a video shows: the annotation and the rendering parameters. */
typedef struct tal_synth_plan {
    char id[32];            /* "synth_00042" */
    int index;
    tal_subset subset;
    int n_frames;
    tal_synth_instance inst[TAL_SYNTH_MAX_INSTANCES];
    int n_instances;        /* sorted by start, not overlapping */
    tal_synth_distractor distractor[TAL_SYNTH_MAX_DISTRACTORS];
    int n_distractors;
    float bg_vx, bg_vy;     /* background texture drift, pixels per frame */
    uint8_t bg_rgb[3];      /* mean background colour */
    uint64_t texture_seed;
} tal_synth_plan;
/* EINVAL if the options are out of range (the message names the option). */
tal_status tal_synth_check_opts(const tal_synth_opts *o, tal_err *err);
void tal_synth_plan_video(tal_synth_plan *out, const tal_synth_opts *o, int index);

/* Layers for tal_synth_render. */
enum { TAL_SYNTH_BACKGROUND = 1, TAL_SYNTH_DISTRACTORS = 2, TAL_SYNTH_ACTIONS = 4,
       TAL_SYNTH_ALL = 7 };
/* Renders frame `frame` of the plan into rgb [size, size, 3] (caller-owned); layers left out
 * stay black. texture: caller-owned [tex, tex] scratch from tal_synth_texture (may be shared
 * by all frames of the video). Returns the number of pixels the action layer covered. */
#define TAL_SYNTH_TEXTURE 128
void tal_synth_texture(uint8_t *texture, const tal_synth_plan *plan);
int tal_synth_render(uint8_t *rgb, const uint8_t *texture, const tal_synth_opts *o,
                     const tal_synth_plan *plan, int frame, int layers);

/* Writes one video: renders and encodes the plan into `path` (mp4). */
tal_status tal_synth_write_video(const char *path, const tal_synth_opts *o,
                                 const tal_synth_plan *plan, tal_err *err);

/* Called after each finished video, from one thread at a time. */
typedef void (*tal_synth_progress_fn)(int n_done, int n_total, void *ctx);
/* Writes out_dir/videos/<id>.mp4 for every video (in parallel over videos, OpenMP),
 * out_dir/annotations.json (ActivityNet format, subsets training / validation, plus fps,
 * n_frames and resolution per video) and out_dir/classes.txt. Creates the folders. */
tal_status tal_synth_generate(const tal_synth_opts *o, const char *out_dir,
                              tal_synth_progress_fn progress, void *ctx, tal_err *err);
/* The encoder that codec == NULL picks here ("libx264" or "mpeg4"), or NULL if neither. */
const char *tal_synth_default_codec(void);

#endif /* TAL_DATA_H */
