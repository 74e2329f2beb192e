/* decode/internal.h: private to decode/: the decoder's state and the frame converter. */
#ifndef TAL_DECODE_INTERNAL_H
#define TAL_DECODE_INTERNAL_H

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>

#include "decode/decode.h"

/* One axis of a separable resampling filter: output i = sum over t < taps of
 * w[i * taps + t] * source[first[i] + t] (first[i] + taps <= the source's length). */
typedef struct tal_resample_axis {
    int n_out, taps;
    int *first;
    float *w;
} tal_resample_axis;

/* The geometry the resize filters were built for. */
typedef struct tal_resize_key {
    double rect[4];              /* source x, y, w, h in coded pixels */
    int src_w, src_h, out_w, out_h, flip, area;
} tal_resize_key;

/* libswscale state and buffers, reused across frames of one decoder. */
typedef struct tal_convert {
    struct SwsContext *sws, *sws2;
    struct SwsContext *yuv_sws;  /* 8-bit planar YUV: scales in YUV, before sws (to RGB24) */
    uint8_t *rgb, *full, *yuv;   /* RGB24 at the output size; whole frame (packed fallback);
                                    YUV planes at the output size */
    size_t rgb_size, full_size, yuv_size;
    tal_resample_axis axes[4];   /* our YUV420P resize: luma x, luma y, chroma x, chroma y */
    tal_resize_key resize_key;
    int resize_ready;
    float *resize_buf;           /* its rows, columns and channels for one block of 8 rows */
    size_t resize_floats;
} tal_convert;

struct tal_decoder {
    char *path;
    AVFormatContext *fmt;
    AVIOContext *io;             /* custom I/O (memory), NULL for files; released by release_io */
    void (*release_io)(AVIOContext *io);
    AVCodecContext *cc;
    AVStream *st;
    int stream;
    AVPacket *pkt;
    AVFrame *cur, *next;         /* cur: last frame with pts <= the time asked; next: lookahead */
    int have_cur, have_next;
    double cur_pts, next_pts, last_pts_s;
    AVFrame *held;               /* a frame decoded to judge the one before it (timestamp check) */
    int have_held, have_prev;
    double held_pts, prev_pts;   /* held's time; the last frame handed out since the last seek */
    double prev_dt;              /* the interval before it */
    double min_pts_s, max_pts_s; /* frames stamped outside are dropped (container duration) */
    int64_t start_pts;
    int demux_eof, read_errors;
    int at_start;                /* demuxer at the stream's start, decoder empty, no frame held */
    double skip_until_s;         /* random access: frames before a later one with pts <= this
                                    are not wanted; -1e300: every frame is */
    double seen_pts_s;           /* largest pts <= skip_until_s sent since the last seek */
    tal_sampling seq;            /* sequential reading: sampling, next sample, finished */
    int seq_active, seq_done;
    int64_t seq_k;
    tal_convert conv;
    tal_video_info info;
    tal_decode_stats stats;
};

/* tal_decoder_open on bytes from io instead of the file `path` (which names it in messages);
 * io is released with release_io when the decoder closes, or at once if opening fails.
 * io NULL: the file. */
tal_status tal_decoder_open_io(tal_decoder **out, const char *path, AVIOContext *io,
                               void (*release_io)(AVIOContext *io), const tal_decode_opts *opts,
                               tal_err *err);

/* Writes frame f, transformed by tf, as frame k of the n frames in out. */
tal_status tal_convert_frame(tal_convert *c, const AVFrame *f, const tal_video_info *info,
                             const tal_frame_transform *tf, tal_tensor out, int k, int n,
                             tal_err *err);
void tal_convert_free(tal_convert *c);
/* Planar YUV420P frame f, source rectangle rect (x, y, w, h in coded pixels, fractions
 * allowed) -> frame k of the n frames of the [3, n, out_h, out_w] tensor out, resampled, converted
 * and normalised as tf says (rotation 0, channels first). */
tal_status tal_resize_yuv420(tal_convert *c, const AVFrame *f, const double rect[4],
                             const tal_frame_transform *tf, tal_tensor out, int k, int n,
                             tal_err *err);
void tal_resample_axis_free(tal_resample_axis *a);

const char *tal_av_error(int code, char *buf, size_t size);

#endif
