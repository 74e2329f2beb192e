/* decode/decode.h: turn one video file into float frames for the backbone, on libavformat /
 * libavcodec / libswscale. Frames are chosen by presentation time, never by index x fps: for a
 * requested time t the reader returns the last frame whose PTS is <= t (the first frame for t
 * before it, the last frame for t past the end), which is right for variable frame rates,
 * B-frames, open GOPs and streams that do not start at 0. Times are seconds from the stream's
 * start time (info.start_s, normally its first frame's PTS), so t = 0 is always the first frame.
 * Corrupt packets are skipped and counted; a requested time whose own frame was lost gets the
 * previous good frame (counted as repaired).
 * Three ways in: open + info (+ count) to check a dataset; read_times for a training clip at
 * given times into a caller-owned tensor (random access); seq_begin + read for chunks of T
 * frames over a whole video with bounded memory (inference, feature extraction). One decoder is
 * used by one thread at a time; the prefetch queue below runs one in a worker thread. */
#ifndef TAL_DECODE_H
#define TAL_DECODE_H

#include <stdint.h>

#include "nn/nn.h"

typedef struct tal_decoder tal_decoder; /* opaque: owns the libav contexts */

typedef struct tal_video_info {
    int width, height;        /* as displayed (rotation applied) */
    int coded_width, coded_height;
    int rotation;             /* clockwise turn for display: 0, 90, 180, 270 (ffprobe prints
                                 the counter-clockwise angle: its 90 is our 270) */
    double duration_s;        /* from the first frame to the end of the last one */
    double start_s;           /* the stream's first PTS in seconds (times are relative to it) */
    double time_base;         /* seconds per PTS tick */
    double avg_fps;           /* the container's average frame rate (0 if unknown) */
    double real_fps;          /* the base frame rate (r_frame_rate; 0 if unknown) */
    int64_t n_frames;         /* frames in the stream: counted, the container's count, or an
                                 estimate (duration x fps; frames indexed inside a cut file) */
    int n_frames_exact;       /* 1 when counted, or when the container's count is trusted: its
                                 index lies whole inside the file (a faststart MP4 cut short
                                 still announces every frame in its header) */
    int n_frames_counted;     /* 1 once counted by decoding, the only count that is known */
    int variable_fps;         /* 1 if avg and real frame rates disagree; after counting: 1 if
                                 the frame intervals differ (VFR) */
    char codec[32];           /* decoder name, e.g. "h264" */
    char pix_fmt[32];
} tal_video_info;

typedef struct tal_decode_opts {
    int threads;              /* FFmpeg frame/slice threads; 0: automatic */
    int count_frames;         /* count frames exactly at open (decodes the whole stream) */
    int max_pixels;           /* refuse larger frames (absurd dimensions); 0: 8192 x 8192 */
} tal_decode_opts;

/* What the caller wants each frame to become: a source rectangle of the displayed (rotated)
 * frame, scaled to out_w x out_h, optionally mirrored, then (x - mean) / std per channel with x
 * in 0..255, the reference's convention (spec-actionformer.md §9). mean 0, std 1: raw RGB. */
typedef struct tal_frame_transform {
    int out_w, out_h;         /* the frame's size in the output tensor */
    double src_x, src_y, src_w, src_h; /* source rectangle in displayed pixels; w <= 0: whole */
    int flip;                 /* mirror horizontally */
    float mean[3], std[3];    /* RGB, 0..255 scale */
    int channels_last;        /* output [T, H, W, 3] instead of [3, T, H, W] */
    int area;                 /* area filter (downscaling) instead of bilinear */
} tal_frame_transform;

/* Short side resized to `short_side`, then a centre crop of crop x crop (crop <= 0: no crop,
 * output is the resized frame). mean/std: the reference's ImageNet values. */
void tal_transform_resize_center(tal_frame_transform *tf, const tal_video_info *info,
                                 int short_side, int crop);
/* Random-resized crop (area fraction in [scale_min, scale_max], aspect in [ratio_min,
 * ratio_max], log-uniform), as torchvision / mmaction RandomResizedCrop, with a flip drawn with
 * probability flip_p; the same for every frame of a sample. Randomness from key. */
void tal_transform_random_resized_crop(tal_frame_transform *tf, const tal_video_info *info,
                                       int out_size, double scale_min, double scale_max,
                                       double ratio_min, double ratio_max, double flip_p,
                                       tal_rng_key key);

typedef struct tal_decode_stats {
    int64_t frames_decoded;   /* frames that came out of the decoder */
    int64_t frames_written;   /* frames written to tensors */
    int64_t corrupt_packets;  /* packets the decoder rejected (skipped) */
    int64_t repaired;         /* requested times whose frame was missing: previous frame used */
    int64_t seeks;
    double first_error_s;     /* time of the first decode error, -1 if none */
    int64_t dropped_frames;   /* frames whose timestamp lay far outside the container's duration,
                                 or far from both neighbours (a corrupt stamp): dropped, so the
                                 work stays bounded by the real duration */
    double first_dropped_s;   /* the first such frame's (bogus) time, 0 if none */
} tal_decode_stats;

/* Opens `path`. On failure returns the code (TAL_EIO missing/unreadable, TAL_EFORMAT not a
 * video, no video stream, unknown codec, absurd dimensions, empty stream), sets *out to NULL and
 * fills *err with a message naming the file. opts may be NULL. */
tal_status tal_decoder_open(tal_decoder **out, const char *path, const tal_decode_opts *opts,
                            tal_err *err);
/* The same for a video held in memory: data (borrowed, size bytes) must outlive the decoder;
 * name stands for the file in messages and hints the container by its extension. */
tal_status tal_decoder_open_memory(tal_decoder **out, const char *name, const void *data,
                                   size_t size, const tal_decode_opts *opts, tal_err *err);
void tal_decoder_close(tal_decoder *dec); /* NULL is fine */
/* Writes frame k of frames [3, T, H, W] (or [T, H, W, 3] with tf->channels_last), undoing tf's
 * normalisation, as an 8-bit RGB PNG at path. TAL_EIO if the file cannot be written. */
tal_status tal_frame_write_png(const char *path, tal_tensor frames, int k,
                               const tal_frame_transform *tf, tal_err *err);
/* Borrowed: valid until tal_decoder_close(). */
const tal_video_info *tal_decoder_info(const tal_decoder *dec);
const tal_decode_stats *tal_decoder_stats(const tal_decoder *dec);
const char *tal_decoder_path(const tal_decoder *dec);

/* Counts the frames exactly (decodes the whole stream once; the position is reset), stores the
 * count in the info (n_frames_exact = 1, variable_fps from the measured intervals) and returns it
 * in *n. */
tal_status tal_decoder_count_frames(tal_decoder *dec, int64_t *n, tal_err *err);

/* Fills out [3, n, H, W] (or [n, H, W, 3] with channels_last; H, W = tf->out_h, out_w) with the
 * frames at times_s[0..n-1] (seconds from the first frame, non-decreasing for speed; any order
 * works). Reads forward when the next time is ahead (sequential, no seek); seeks to the keyframe
 * before t when t is behind, or when that keyframe (from the container's index) lies past the
 * frames already decoded, e.g. a training clip deep into a freshly opened file. Ends any
 * sequential reading. TAL_EFORMAT if the stream yields no frame at all. */
tal_status tal_decoder_read_times(tal_decoder *dec, const double *times_s, int n,
                                  const tal_frame_transform *tf, tal_tensor out, tal_err *err);

/* The time of the last keyframe at or before t from the container's index (seconds from the
 * first frame; 0 when t is before the first indexed keyframe): where random access to t starts
 * decoding. Some containers index decode times, which run ahead of the keyframe's presentation
 * time by the B-frame delay (a few frames). Returns 0 if the container has no index, else 1. */
int tal_decoder_keyframe_before(const tal_decoder *dec, double t, double *keyframe_s);

/* Times t0 + k / fps for k = 0..n-1 into times_s: the sampling grid "frames at fps". */
void tal_times_at_fps(double *times_s, int n, double t0, double fps);
/* Number of samples at `fps` in a video of duration_s (at least 1 for a non-empty video). */
int64_t tal_frames_at_fps(double duration_s, double fps);

/* ------------------------------------------------- sequential reading (inference, data) --- */
/* How sequential reading samples the stream: by presentation time at `fps` (the frames at
 * start_s + k / fps, each the last frame with PTS <= its time, while the time is before the end
 * of the last frame), or, with fps == 0, every n-th decoded frame from the first (every_n = 1:
 * all of them; corrupt frames skipped first). */
typedef struct tal_sampling {
    double fps;
    int every_n;
    double start_s;           /* fps mode: seconds from the first frame */
} tal_sampling;

/* (Re)starts sequential reading of the whole video. TAL_EINVAL for a sampling with neither
 * fps > 0 nor every_n > 0. */
tal_status tal_decoder_seq_begin(tal_decoder *dec, const tal_sampling *s, tal_err *err);
/* Fills out [3, T, H, W] (or [T, H, W, 3] with channels_last) with the next T sampled frames,
 * T = numel(out) / (3 H W). *n_read < T only at the end of the video (0: nothing left); the
 * unused tail is zeroed. times_s (caller-owned [T], may be NULL) gets each frame's time: the
 * requested time (fps mode) or the frame's PTS (every_n), seconds from the first frame. Memory
 * stays at two decoded frames whatever the video's length. TAL_EINVAL without seq_begin;
 * TAL_EFORMAT if the stream yields no frame at all. */
tal_status tal_decoder_read(tal_decoder *dec, const tal_frame_transform *tf, tal_tensor out,
                            int *n_read, double *times_s, tal_err *err);

/* Decodes every frame in order (no selection), converting with tf into a one-frame buffer
 * (caller-owned [3, 1, H, W] or [1, H, W, 3]); for each frame calls fn(frame_index, pts_s, out,
 * ctx); a nonzero return stops early. tf NULL: decode only (fn gets an empty tensor), the
 * benchmark's baseline. The path `re2tal bench decode` measures. */
typedef int (*tal_frame_fn)(int64_t index, double pts_s, tal_tensor frame, void *ctx);
tal_status tal_decoder_for_each(tal_decoder *dec, const tal_frame_transform *tf, tal_tensor frame,
                                tal_frame_fn fn, void *ctx, tal_err *err);

/* --------------------------------------------------------------- background prefetch ---- */
/* A worker thread that produces items 0..n-1 in order into a ring of `depth` slots while the
 * caller consumes them, so training never waits on decoding when decoding is faster than the
 * model. produce(i, slot, ctx) fills slot i % depth; its status is handed to the consumer. */
typedef struct tal_prefetch tal_prefetch;
typedef tal_status (*tal_produce_fn)(int64_t i, int slot, void *ctx, tal_err *err);
tal_status tal_prefetch_start(tal_prefetch **out, int64_t n_items, int depth, tal_produce_fn fn,
                              void *ctx, tal_err *err);
/* Waits for item i (consumed strictly in order 0, 1, ...); returns its slot in *slot and the
 * producer's status (with its message in *err). */
tal_status tal_prefetch_wait(tal_prefetch *pf, int64_t i, int *slot, tal_err *err);
/* Marks item i's slot free for reuse. */
void tal_prefetch_release(tal_prefetch *pf, int64_t i);
void tal_prefetch_stop(tal_prefetch *pf); /* joins the worker; NULL is fine */

#endif /* TAL_DECODE_H */
