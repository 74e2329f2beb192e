/* decode/internal.h: private to decode/: the decoder's state and the frame converter. */
#ifndef TAL_DECODE_INTERNAL_H
#define TAL_DECODE_INTERNAL_H

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>

#include "decode/decode.h"

/* libswscale state and buffers, reused across frames of one decoder. */
typedef struct tal_convert {
    struct SwsContext *sws, *sws2;
    struct SwsContext *yuv_sws;  /* 8-bit planar YUV: scales in YUV, before sws (to RGB24) */
    uint8_t *rgb, *full, *yuv;   /* RGB24 at the output size; whole frame (packed fallback);
                                    YUV planes at the output size */
    size_t rgb_size, full_size, yuv_size;
} tal_convert;

struct tal_decoder {
    char *path;
    AVFormatContext *fmt;
    AVCodecContext *cc;
    AVStream *st;
    int stream;
    AVPacket *pkt;
    AVFrame *cur, *next;         /* cur: last frame with pts <= the time asked; next: lookahead */
    int have_cur, have_next;
    double cur_pts, next_pts, last_pts_s;
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

/* Writes frame f, transformed by tf, as frame k of the n frames in out. */
tal_status tal_convert_frame(tal_convert *c, const AVFrame *f, const tal_video_info *info,
                             const tal_frame_transform *tf, tal_tensor out, int k, int n,
                             tal_err *err);
void tal_convert_free(tal_convert *c);
const char *tal_av_error(int code, char *buf, size_t size);

#endif
