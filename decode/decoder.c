/* decode/decoder.c: opening a video, reading frames by presentation time (forward without
 * seeking when the next time is ahead, seeking to the keyframe before t otherwise), skipping
 * corrupt packets, and decoding every frame for the benchmark path. */
#include "decode/decode.h"
#include "decode/internal.h"

#include <errno.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TIME_EPS_S 1e-6      /* k / fps and pts * time_base differ by rounding only */
#define FAR_AHEAD_S 4.0      /* further than this ahead, a seek beats decoding forward */
/* Timestamp sanity: a frame may lie this far outside the container's duration (2 s + 10 %), and
 * a jump from the previous frame longer than JUMP_S and JUMP_INTERVALS of the interval before
 * it (a slide show's frames are far apart) is checked against the next frame. */
#define SLACK_S 2.0
#define SLACK_FRACTION 0.1
#define JUMP_S 1.0
#define JUMP_INTERVALS 8.0

const char *tal_av_error(int code, char *buf, size_t size) {
    av_strerror(code, buf, size);
    return buf;
}

static double pts_seconds(const tal_decoder *dec, int64_t ts) {
    return (double)(ts - dec->start_pts) * dec->info.time_base;
}

static int rotation_of(const AVStream *st) {
    const uint8_t *m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
    if (!m) return 0;
    double ccw = av_display_rotation_get((const int32_t *)m);
    if (isnan(ccw)) return 0;
    int cw = (int)lround(-ccw) % 360; /* degrees to turn clockwise for display, as ffmpeg */
    if (cw < 0) cw += 360;
    return (cw + 45) / 90 % 4 * 90;
}

/* How many of the container's indexed frames have their data inside the file, and the time
 * just past the last of them; -1 when that cannot be told (unknown file size, or an index of
 * keyframes only, as Matroska's cues: it says nothing of the frames between). */
static int64_t indexed_frames_present(const tal_decoder *dec, double *end_s) {
    int n = avformat_index_get_entries_count(dec->st);
    int64_t file_bytes = dec->fmt->pb ? avio_size(dec->fmt->pb) : -1;
    if (n <= 0 || n < dec->st->nb_frames || file_bytes <= 0) return -1;
    int64_t present = 0, last_ts = AV_NOPTS_VALUE;
    for (int i = 0; i < n; i++) {
        const AVIndexEntry *e = avformat_index_get_entry(dec->st, i);
        if (e && e->pos >= 0 && e->pos + e->size <= file_bytes) {
            present++;
            if (last_ts == AV_NOPTS_VALUE || e->timestamp > last_ts) last_ts = e->timestamp;
        }
    }
    double fps = dec->info.avg_fps > 0 ? dec->info.avg_fps : dec->info.real_fps;
    *end_s = last_ts == AV_NOPTS_VALUE ? 0 : pts_seconds(dec, last_ts) + (fps > 0 ? 1 / fps : 0);
    return present;
}

static void fill_info(tal_decoder *dec) {
    AVStream *st = dec->st;
    tal_video_info *in = &dec->info;
    in->coded_width = dec->cc->width;
    in->coded_height = dec->cc->height;
    in->rotation = rotation_of(st);
    int swap = in->rotation == 90 || in->rotation == 270;
    in->width = swap ? in->coded_height : in->coded_width;
    in->height = swap ? in->coded_width : in->coded_height;
    in->time_base = av_q2d(st->time_base);
    dec->start_pts = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    in->start_s = dec->start_pts * in->time_base;
    in->avg_fps = st->avg_frame_rate.den ? av_q2d(st->avg_frame_rate) : 0;
    in->real_fps = st->r_frame_rate.den ? av_q2d(st->r_frame_rate) : 0;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        in->duration_s = st->duration * in->time_base;
    else if (dec->fmt->duration != AV_NOPTS_VALUE && dec->fmt->duration > 0)
        in->duration_s = (double)dec->fmt->duration / AV_TIME_BASE;
    double fps = in->avg_fps > 0 ? in->avg_fps : in->real_fps;
    double indexed_end_s = 0;
    int64_t indexed = indexed_frames_present(dec, &indexed_end_s);
    if (st->nb_frames > 0 && indexed >= 0 && indexed < st->nb_frames) {
        /* the file was cut after its header was written: what is there is an estimate */
        in->n_frames = indexed;
        if (indexed_end_s < in->duration_s) in->duration_s = indexed_end_s;
    } else if (st->nb_frames > 0) {
        in->n_frames = st->nb_frames;
        in->n_frames_exact = 1;
    } else {
        in->n_frames = fps > 0 ? (int64_t)llround(in->duration_s * fps) : 0;
    }
    in->variable_fps = in->avg_fps > 0 && in->real_fps > 0 &&
                       fabs(in->avg_fps - in->real_fps) > 0.01 * in->real_fps;
    /* a duration guessed from the bit rate says nothing about where frames may lie */
    int trusted = in->duration_s > 0 &&
                  dec->fmt->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE;
    double slack = SLACK_S + SLACK_FRACTION * in->duration_s;
    dec->min_pts_s = trusted ? -slack : -INFINITY;
    dec->max_pts_s = trusted ? in->duration_s + slack : INFINITY;
    snprintf(in->codec, sizeof in->codec, "%s", dec->cc->codec->name);
    const char *pf = av_get_pix_fmt_name(dec->cc->pix_fmt);
    snprintf(in->pix_fmt, sizeof in->pix_fmt, "%s", pf ? pf : "unknown");
}

tal_status tal_decoder_open(tal_decoder **out, const char *path, const tal_decode_opts *opts,
                            tal_err *err) {
    return tal_decoder_open_io(out, path, NULL, NULL, opts, err);
}

tal_status tal_decoder_open_io(tal_decoder **out, const char *path, AVIOContext *io,
                               void (*release_io)(AVIOContext *io), const tal_decode_opts *opts,
                               tal_err *err) {
    *out = NULL;
    tal_decode_opts defaults = {0};
    if (!opts) opts = &defaults;
    if (!getenv("RE2TAL_AV_LOG")) av_log_set_level(AV_LOG_QUIET); /* we report, libav doesn't */
    tal_decoder *dec = calloc(1, sizeof *dec);
    char e[AV_ERROR_MAX_STRING_SIZE];
    tal_status rc = TAL_OK;
    if (!dec || !(dec->path = strdup(path))) {
        free(dec);
        if (io && release_io) release_io(io);
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    }
    dec->io = io;
    dec->release_io = release_io;
    dec->stats.first_error_s = -1;
    if (!io) { /* a folder, a device or a pipe is no video file: say so before libav tries */
        FILE *f;
        if ((rc = tal_file_open(&f, NULL, path, SIZE_MAX, err)) != TAL_OK) {
            tal_decoder_close(dec);
            return rc;
        }
        fclose(f);
    } else {
        if (!(dec->fmt = avformat_alloc_context())) {
            tal_decoder_close(dec);
            return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        }
        dec->fmt->pb = io; /* custom I/O: avformat never closes it, release_io does */
    }
    int ret = avformat_open_input(&dec->fmt, path, NULL, NULL);
    if (ret < 0) {
        int unreadable = ret == AVERROR(ENOENT) || ret == AVERROR(EACCES) ||
                         ret == AVERROR(EISDIR) || ret == AVERROR(ENOTDIR) ||
                         ret == AVERROR(EPERM) || ret == AVERROR(EIO);
        rc = tal_err_set(err, unreadable ? TAL_EIO : TAL_EFORMAT, "%s: cannot open as a video: %s",
                         path, tal_av_error(ret, e, sizeof e));
        goto fail;
    }
    /* Before any decoding (find_stream_info decodes): a still image is no video; and libjxl
     * 0.7 (Debian 12) dereferences NULL on some broken JPEG XL codestreams, 11 bytes were
     * enough (fuzz_decode_video), so JPEG XL is never decoded */
    const char *demuxer = dec->fmt->iformat->name;
    size_t dl = strlen(demuxer);
    if (!strcmp(demuxer, "image2") || (dl > 5 && !strcmp(demuxer + dl - 5, "_pipe"))) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: a still image (%s), not a video", path, demuxer);
        goto fail;
    }
    for (unsigned i = 0; i < dec->fmt->nb_streams; i++)
        if (dec->fmt->streams[i]->codecpar->codec_id == AV_CODEC_ID_JPEGXL) {
            rc = tal_err_set(err, TAL_EFORMAT, "%s: JPEG XL, not a video codec", path);
            goto fail;
        }
    if ((ret = avformat_find_stream_info(dec->fmt, NULL)) < 0) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: cannot read stream info: %s", path,
                         tal_av_error(ret, e, sizeof e));
        goto fail;
    }
    const AVCodec *codec = NULL;
    dec->stream = av_find_best_stream(dec->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (dec->stream == AVERROR_STREAM_NOT_FOUND) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: no video stream (audio-only or not a video)", path);
        goto fail;
    }
    if (dec->stream < 0 || !codec) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: no decoder for the video stream (unknown codec)",
                         path);
        goto fail;
    }

    dec->st = dec->fmt->streams[dec->stream];
    for (unsigned i = 0; i < dec->fmt->nb_streams; i++) /* demux only what we decode */
        if ((int)i != dec->stream) dec->fmt->streams[i]->discard = AVDISCARD_ALL;
    dec->cc = avcodec_alloc_context3(codec);
    if (!dec->cc || avcodec_parameters_to_context(dec->cc, dec->st->codecpar) < 0) {
        rc = tal_err_set(err, TAL_ENOMEM, "%s: cannot set up the decoder", path);
        goto fail;
    }
    dec->cc->thread_count = opts->threads > 0 ? opts->threads : 0;
    dec->cc->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    int64_t max_px = opts->max_pixels > 0 ? opts->max_pixels : 8192LL * 8192;
    if (dec->cc->width <= 0 || dec->cc->height <= 0 ||
        (int64_t)dec->cc->width * dec->cc->height > max_px) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: frame size %dx%d is not usable (limit %lld pixels)",
                         path, dec->cc->width, dec->cc->height, (long long)max_px);
        goto fail;
    }
    if ((ret = avcodec_open2(dec->cc, codec, NULL)) < 0) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: cannot open the %s decoder: %s", path, codec->name,
                         tal_av_error(ret, e, sizeof e));
        goto fail;
    }
    dec->pkt = av_packet_alloc();
    dec->cur = av_frame_alloc();
    dec->next = av_frame_alloc();
    dec->held = av_frame_alloc();
    if (!dec->pkt || !dec->cur || !dec->next || !dec->held) {
        rc = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    fill_info(dec);
    dec->at_start = 1;
    dec->skip_until_s = dec->seen_pts_s = -1e300;
    if (opts->count_frames) {
        int64_t n;
        if ((rc = tal_decoder_count_frames(dec, &n, err)) != TAL_OK) goto fail;
    }
    *out = dec;
    return TAL_OK;
fail:
    tal_decoder_close(dec);
    return rc;
}

void tal_decoder_close(tal_decoder *dec) {
    if (!dec) return;
    av_frame_free(&dec->cur);
    av_frame_free(&dec->next);
    av_frame_free(&dec->held);
    av_packet_free(&dec->pkt);
    avcodec_free_context(&dec->cc);
    avformat_close_input(&dec->fmt);
    if (dec->io && dec->release_io) dec->release_io(dec->io);
    tal_convert_free(&dec->conv);
    free(dec->path);
    free(dec);
}

const tal_video_info *tal_decoder_info(const tal_decoder *dec) { return &dec->info; }
const tal_decode_stats *tal_decoder_stats(const tal_decoder *dec) { return &dec->stats; }
const char *tal_decoder_path(const tal_decoder *dec) { return dec->path; }

static void note_error(tal_decoder *dec, double t_s) {
    dec->stats.corrupt_packets++;
    if (dec->stats.first_error_s < 0) dec->stats.first_error_s = t_s;
}

/* Next decoded frame into dst: 1 got one, 0 end of stream. Corrupt packets and frames are
 * skipped and counted; only the end of the stream stops it. */
static int decode_raw(tal_decoder *dec, AVFrame *dst, double *pts_s) {
    for (;;) {
        int ret = avcodec_receive_frame(dec->cc, dst);
        if (ret == 0) {
            int64_t ts = dst->best_effort_timestamp != AV_NOPTS_VALUE ? dst->best_effort_timestamp
                                                                      : dst->pts;
            double t = ts != AV_NOPTS_VALUE ? pts_seconds(dec, ts)
                                            : dec->last_pts_s + (dec->info.avg_fps > 0
                                                                     ? 1.0 / dec->info.avg_fps
                                                                     : 0.04);
            if ((dst->flags & AV_FRAME_FLAG_CORRUPT) || dst->decode_error_flags) {
                note_error(dec, t);
                av_frame_unref(dst);
                continue;
            }
            dec->last_pts_s = t;
            *pts_s = t;
            dec->stats.frames_decoded++;
            return 1;
        }
        if (ret == AVERROR_EOF) return 0;
        if (ret != AVERROR(EAGAIN)) { /* a broken frame: count it, keep going */
            note_error(dec, dec->last_pts_s);
            if (dec->demux_eof) return 0;
            continue;
        }
        if (dec->demux_eof) return 0; /* drained */
        ret = av_read_frame(dec->fmt, dec->pkt);
        if (ret < 0) {
            if (ret != AVERROR_EOF && ++dec->read_errors < 64 && !avio_feof(dec->fmt->pb)) {
                note_error(dec, dec->last_pts_s);
                continue;
            }
            dec->demux_eof = 1; /* the decoder holds frames back until flushed */
            avcodec_send_packet(dec->cc, NULL);
            continue;
        }
        if (dec->pkt->stream_index == dec->stream) {
            /* Random access: a packet whose pts lies before that of one sent earlier (since the
             * seek) that is itself <= the time asked can never be the frame returned, so when it
             * is not a reference (B-frames mostly) it need not be decoded at all. */
            int skip = 0;
            if (dec->skip_until_s > -1e299 && dec->pkt->pts != AV_NOPTS_VALUE) {
                double p = pts_seconds(dec, dec->pkt->pts);
                if (p <= dec->skip_until_s + TIME_EPS_S) {
                    if (p < dec->seen_pts_s) skip = 1;
                    else dec->seen_pts_s = p;
                }
            }
            dec->cc->skip_frame = skip ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
            ret = avcodec_send_packet(dec->cc, dec->pkt);
            if (ret < 0 && ret != AVERROR(EAGAIN)) {
                double t = dec->pkt->pts != AV_NOPTS_VALUE ? pts_seconds(dec, dec->pkt->pts)
                                                           : dec->last_pts_s;
                note_error(dec, t);
            }
        }
        av_packet_unref(dec->pkt);
    }
}

static void drop_frame(tal_decoder *dec, AVFrame *f, double t_s) {
    if (dec->stats.dropped_frames++ == 0) dec->stats.first_dropped_s = t_s;
    av_frame_unref(f);
}

/* decode_raw, less the frames whose timestamp cannot be right: outside the container's duration
 * (with slack), or far from the frame before while the frame after is back near it (one
 * corrupt stamp, e.g. a flipped bit in a PES header). Such a frame would make a reader by
 * presentation time walk thousands of seconds past the end, or count frames that were never
 * there. A frame far from its predecessor with nothing after it is dropped too. */
static int decode_next(tal_decoder *dec, AVFrame *dst, double *pts_s) {
    for (;;) {
        double t;
        if (dec->have_held) {
            av_frame_unref(dst);
            av_frame_move_ref(dst, dec->held);
            t = dec->held_pts;
            dec->have_held = 0;
        } else if (!decode_raw(dec, dst, &t)) {
            return 0;
        }
        if (t < dec->min_pts_s || t > dec->max_pts_s) {
            drop_frame(dec, dst, t);
            continue;
        }
        double jump = fmax(JUMP_S, JUMP_INTERVALS * dec->prev_dt);
        if (dec->have_prev && fabs(t - dec->prev_pts) > jump) {
            double after;
            int more = decode_raw(dec, dec->held, &after);
            dec->have_held = more;
            dec->held_pts = after;
            if (!more || fabs(after - dec->prev_pts) < fabs(after - t)) {
                drop_frame(dec, dst, t);
                continue;
            }
        }
        dec->prev_dt = dec->have_prev ? fabs(t - dec->prev_pts) : 0;
        dec->prev_pts = t;
        dec->have_prev = 1;
        *pts_s = t;
        return 1;
    }
}

/* Back to a position at or before t (t < 0: the start), with no frames held. */
static void seek_to(tal_decoder *dec, double t_s) {
    int64_t ts = dec->start_pts;
    if (t_s > 0) ts += (int64_t)floor(t_s / dec->info.time_base);
    /* MPEG-TS / PS seek by timestamp lands on the second keyframe when asked for the first:
     * to rewind, go back to byte 0, where their demuxers start anyway */
    int rewound = t_s < 0 && (dec->fmt->iformat->flags & AVFMT_TS_DISCONT) &&
                  av_seek_frame(dec->fmt, -1, 0, AVSEEK_FLAG_BYTE) >= 0;
    if (!rewound && av_seek_frame(dec->fmt, dec->stream, ts, AVSEEK_FLAG_BACKWARD) < 0)
        av_seek_frame(dec->fmt, dec->stream, dec->start_pts, AVSEEK_FLAG_BACKWARD | AVSEEK_FLAG_ANY);
    avcodec_flush_buffers(dec->cc);
    av_frame_unref(dec->held);
    dec->have_held = dec->have_prev = 0;
    dec->seen_pts_s = -1e300;
    dec->demux_eof = 0;
    dec->read_errors = 0;
    dec->have_cur = dec->have_next = 0;
    dec->at_start = t_s < 0;
    dec->stats.seeks++;
}

/* Whether reaching t by seeking beats decoding forward from the current position: the index's
 * keyframe before t lies past the frames already decoded (without an index: t is far ahead). */
static int seek_pays(tal_decoder *dec, double t) {
    double pos = dec->have_next ? dec->next_pts : dec->have_cur ? dec->cur_pts : 0;
    if (t <= pos) return 0;
    int64_t ts = dec->start_pts + (int64_t)floor(t / dec->info.time_base);
    int i = av_index_search_timestamp(dec->st, ts, AVSEEK_FLAG_BACKWARD);
    const AVIndexEntry *e = i >= 0 ? avformat_index_get_entry(dec->st, i) : NULL;
    if (e) return pts_seconds(dec, e->timestamp) > pos + TIME_EPS_S;
    return t > pos + FAR_AHEAD_S;
}

int tal_decoder_keyframe_before(const tal_decoder *dec, double t, double *keyframe_s) {
    *keyframe_s = 0;
    if (t > dec->info.duration_s) t = dec->info.duration_s; /* past the index's end */
    int64_t ts = dec->start_pts + (int64_t)floor((t > 0 ? t : 0) / dec->info.time_base);
    /* an index of decode times: a keyframe's decode time runs ahead of its presentation time
     * by the reorder delay, so look that much earlier */
    double fps = dec->info.avg_fps > 0 ? dec->info.avg_fps : dec->info.real_fps;
    if (fps > 0) ts -= (int64_t)ceil(dec->st->codecpar->video_delay / fps / dec->info.time_base);
    int i = av_index_search_timestamp(dec->st, ts, AVSEEK_FLAG_BACKWARD);
    const AVIndexEntry *e = i >= 0 ? avformat_index_get_entry(dec->st, i) : NULL;
    if (!e) return avformat_index_get_entry(dec->st, 0) != NULL;
    *keyframe_s = pts_seconds(dec, e->timestamp);
    return 1;
}

/* Positions cur on the last frame with pts <= t (or the first frame). 0 if the stream has no
 * frame at all. */
static int advance_to(tal_decoder *dec, double t) {
    int behind = dec->have_cur && t + TIME_EPS_S < dec->cur_pts;
    if (behind || (!dec->have_cur && !dec->at_start) || seek_pays(dec, t)) {
        /* going back, or far ahead: seek; try earlier keyframes if the seek lands after t */
        double back = 0;
        for (int attempt = 0; attempt < 4; attempt++) {
            seek_to(dec, attempt == 3 ? -1 : t - back);
            back = back ? back * 4 : 1.0;
            if (!decode_next(dec, dec->cur, &dec->cur_pts)) { /* landed at the end (truncated) */
                if (attempt == 3) return 0;
                continue;
            }
            dec->have_cur = 1;
            if (dec->cur_pts <= t + TIME_EPS_S || attempt == 3) break;
        }
        dec->have_next = decode_next(dec, dec->next, &dec->next_pts);
    } else if (!dec->have_cur) {
        if (!decode_next(dec, dec->cur, &dec->cur_pts)) return 0;
        dec->have_cur = 1;
        dec->have_next = decode_next(dec, dec->next, &dec->next_pts);
    }
    dec->at_start = 0;
    while (dec->have_next && dec->next_pts <= t + TIME_EPS_S) {
        AVFrame *tmp = dec->cur;
        dec->cur = dec->next;
        dec->next = tmp;
        dec->cur_pts = dec->next_pts;
        av_frame_unref(dec->next);
        dec->have_next = decode_next(dec, dec->next, &dec->next_pts);
    }
    return 1;
}

tal_status tal_decoder_count_frames(tal_decoder *dec, int64_t *n, tal_err *err) {
    seek_to(dec, -1);
    AVFrame *f = dec->next;
    double t, prev = 0, dt_min = 1e30, dt_max = 0;
    int64_t count = 0;
    while (decode_next(dec, f, &t)) {
        if (count++) { /* frame intervals: a variable rate shows as intervals that differ */
            dt_min = fmin(dt_min, t - prev);
            dt_max = fmax(dt_max, t - prev);
        }
        prev = t;
        av_frame_unref(f);
    }
    if (count > 2)
        dec->info.variable_fps = dt_max - dt_min > 0.1 * dt_min + 2 * dec->info.time_base;
    seek_to(dec, -1);
    dec->seq_active = 0;
    if (count == 0)
        return tal_err_set(err, TAL_EFORMAT, "%s: the video stream has no decodable frame",
                           dec->path);
    dec->info.n_frames = count;
    dec->info.n_frames_exact = dec->info.n_frames_counted = 1;
    *n = count;
    return TAL_OK;
}

/* The frame for t was lost to a decode error when, after corruption, the frame standing in is
 * more than 1.5 periods older than t (and the video goes on): the previous one repairs it. */
static void count_repair(tal_decoder *dec, double t, double fps) {
    if (dec->stats.corrupt_packets > 0 && fps > 0 && dec->cur_pts < t - 1.5 / fps &&
        dec->have_next)
        dec->stats.repaired++;
}

tal_status tal_decoder_read_times(tal_decoder *dec, const double *times_s, int n,
                                  const tal_frame_transform *tf, tal_tensor out, tal_err *err) {
    TAL_ASSERT_MSG(tal_tensor_numel(out) == (int64_t)n * 3 * tf->out_h * tf->out_w,
                   "read_times: output has %lld elements for %d frames of %dx%d",
                   (long long)tal_tensor_numel(out), n, tf->out_w, tf->out_h);
    double fps = dec->info.real_fps > 0 ? dec->info.real_fps : dec->info.avg_fps;
    dec->seq_active = 0;
    for (int k = 0; k < n; k++) {
        dec->skip_until_s = times_s[k];
        int found = advance_to(dec, times_s[k]);
        dec->skip_until_s = -1e300;
        if (!found)
            return tal_err_set(err, TAL_EFORMAT, "%s: t=%.2fs: no decodable frame in the stream",
                               dec->path, times_s[k]);
        count_repair(dec, times_s[k], fps);
        tal_status rc = tal_convert_frame(&dec->conv, dec->cur, &dec->info, tf, out, k, n, err);
        if (rc != TAL_OK) return tal_err_prefix(err, "%s: t=%.2fs", dec->path, times_s[k]);
        dec->stats.frames_written++;
    }
    return TAL_OK;
}

tal_status tal_decoder_for_each(tal_decoder *dec, const tal_frame_transform *tf, tal_tensor frame,
                                tal_frame_fn fn, void *ctx, tal_err *err) {
    seek_to(dec, -1);
    double t;
    int64_t i = 0;
    tal_status rc = TAL_OK;
    while (decode_next(dec, dec->next, &t)) {
        if (tf) rc = tal_convert_frame(&dec->conv, dec->next, &dec->info, tf, frame, 0, 1, err);
        av_frame_unref(dec->next);
        if (rc != TAL_OK) break;
        dec->stats.frames_written++;
        if (fn(i++, t, frame, ctx)) break;
    }
    seek_to(dec, -1);
    dec->seq_active = 0;
    if (rc == TAL_OK && i == 0)
        rc = tal_err_set(err, TAL_EFORMAT, "%s: the video stream has no decodable frame", dec->path);
    return rc;
}

tal_status tal_decoder_seq_begin(tal_decoder *dec, const tal_sampling *s, tal_err *err) {
    if (!(s->fps > 0) && s->every_n <= 0)
        return tal_err_set(err, TAL_EINVAL, "%s: sampling needs fps > 0 or every_n > 0 "
                           "(got fps %g, every_n %d)", dec->path, s->fps, s->every_n);
    dec->seq = *s;
    dec->seq_active = 1;
    dec->seq_done = 0;
    dec->seq_k = 0;
    if (!(s->fps > 0) && !dec->at_start) seek_to(dec, -1); /* fps mode seeks by itself */
    return TAL_OK;
}

/* Seconds the frame in cur lasts: its packet's duration, else one period of the frame rate. */
static double cur_duration(const tal_decoder *dec) {
    if (dec->cur->pkt_duration > 0) return dec->cur->pkt_duration * dec->info.time_base;
    double fps = dec->info.avg_fps > 0 ? dec->info.avg_fps : dec->info.real_fps;
    return fps > 0 ? 1.0 / fps : 0;
}

/* Zeroes frames k..n-1 of out. */
static void zero_tail(tal_tensor out, int k, int n, const tal_frame_transform *tf) {
    size_t hw = (size_t)tf->out_h * tf->out_w;
    if (k >= n) return;
    if (tf->channels_last) {
        memset(out.data + (size_t)k * hw * 3, 0, (size_t)(n - k) * hw * 3 * sizeof(float));
        return;
    }
    for (int c = 0; c < 3; c++)
        memset(out.data + ((size_t)c * n + k) * hw, 0, (size_t)(n - k) * hw * sizeof(float));
}

tal_status tal_decoder_read(tal_decoder *dec, const tal_frame_transform *tf, tal_tensor out,
                            int *n_read, double *times_s, tal_err *err) {
    int64_t per = 3LL * tf->out_h * tf->out_w;
    TAL_ASSERT_MSG(per > 0 && tal_tensor_numel(out) % per == 0,
                   "read: output has %lld elements, not whole %dx%d frames",
                   (long long)tal_tensor_numel(out), tf->out_w, tf->out_h);
    int n = (int)(tal_tensor_numel(out) / per), k = 0;
    *n_read = 0;
    if (!dec->seq_active)
        return tal_err_set(err, TAL_EINVAL, "%s: tal_decoder_read before tal_decoder_seq_begin",
                           dec->path);
    tal_status rc = TAL_OK;
    while (k < n && !dec->seq_done) {
        double t;
        if (dec->seq.fps > 0) {
            t = dec->seq.start_s + (double)dec->seq_k / dec->seq.fps;
            if (!advance_to(dec, t)) {
                dec->seq_done = 1;
                if (dec->seq_k == 0)
                    rc = tal_err_set(err, TAL_EFORMAT, "%s: no decodable frame in the stream",
                                     dec->path);
                break;
            }
            /* past the end of the last frame: the video is over */
            if (!dec->have_next && t >= dec->cur_pts + cur_duration(dec) - TIME_EPS_S) {
                dec->seq_done = 1;
                break;
            }
            count_repair(dec, t, dec->info.real_fps > 0 ? dec->info.real_fps : dec->info.avg_fps);
        } else {
            /* every n-th frame: decode into cur, keep the frames whose index is a multiple */
            dec->have_next = 0;
            dec->at_start = 0;
            av_frame_unref(dec->cur);
            dec->have_cur = 0;
            int got;
            for (;;) {
                got = decode_next(dec, dec->cur, &t);
                if (!got || dec->seq_k % dec->seq.every_n == 0) break;
                dec->seq_k++;
                av_frame_unref(dec->cur);
            }
            if (!got) {
                dec->seq_done = 1;
                if (dec->seq_k == 0)
                    rc = tal_err_set(err, TAL_EFORMAT, "%s: no decodable frame in the stream",
                                     dec->path);
                break;
            }
            dec->have_cur = 1;
            dec->cur_pts = t;
        }
        rc = tal_convert_frame(&dec->conv, dec->cur, &dec->info, tf, out, k, n, err);
        if (rc != TAL_OK) {
            tal_err_prefix(err, "%s: t=%.2fs", dec->path, t);
            break;
        }
        if (times_s) times_s[k] = t;
        dec->stats.frames_written++;
        dec->seq_k++;
        k++;
    }
    zero_tail(out, k, n, tf);
    *n_read = k;
    return rc;
}

void tal_times_at_fps(double *times_s, int n, double t0, double fps) {
    for (int k = 0; k < n; k++) times_s[k] = t0 + k / fps;
}

int64_t tal_frames_at_fps(double duration_s, double fps) {
    if (!(duration_s > 0) || !(fps > 0)) return 0;
    int64_t n = (int64_t)floor(duration_s * fps + 1e-9);
    return n < 1 ? 1 : n;
}
