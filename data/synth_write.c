/* data/synth_write.c: writes the synthetic dataset: each plan rendered (synth_render.c),
 * converted to YUV 4:2:0 (BT.601 limited range) and encoded with libavcodec into mp4
 * (H.264 via libx264 when present, else MPEG-4 part 2), plus annotations.json (ActivityNet
 * format) and classes.txt. Same options -> same bytes: one encoder thread, bit-exact flags. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>

#include "data/data.h"

const char *tal_synth_default_codec(void) {
    if (avcodec_find_encoder_by_name("libx264")) return "libx264";
    if (avcodec_find_encoder_by_name("mpeg4")) return "mpeg4";
    return NULL;
}

static const char *av_text(int ret, char *buf) {
    av_strerror(ret, buf, AV_ERROR_MAX_STRING_SIZE);
    return buf;
}

/* RGB [S, S, 3] -> the frame's Y, U, V planes, integer BT.601 limited range. */
static void rgb_to_yuv420(AVFrame *f, const uint8_t *rgb, int S) {
    for (int y = 0; y < S; y++) {
        const uint8_t *p = rgb + 3 * y * S;
        uint8_t *dy = f->data[0] + y * f->linesize[0];
        for (int x = 0; x < S; x++, p += 3)
            dy[x] = (uint8_t)(((66 * p[0] + 129 * p[1] + 25 * p[2] + 128) >> 8) + 16);
    }
    for (int y = 0; y < S / 2; y++) {
        uint8_t *du = f->data[1] + y * f->linesize[1], *dv = f->data[2] + y * f->linesize[2];
        for (int x = 0; x < S / 2; x++) {
            int r = 0, g = 0, b = 0;
            for (int k = 0; k < 4; k++) {
                const uint8_t *p = rgb + 3 * ((2 * y + k / 2) * S + 2 * x + k % 2);
                r += p[0], g += p[1], b += p[2];
            }
            r = (r + 2) / 4, g = (g + 2) / 4, b = (b + 2) / 4;
            du[x] = (uint8_t)(((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128);
            dv[x] = (uint8_t)(((112 * r - 94 * g - 18 * b + 128) >> 8) + 128);
        }
    }
}

/* Sends one frame (NULL flushes) and writes every packet the encoder gives back. */
static int encode_and_write(AVFormatContext *oc, AVCodecContext *c, AVStream *st, AVFrame *frame,
                            AVPacket *pkt) {
    int ret = avcodec_send_frame(c, frame);
    while (ret >= 0) {
        ret = avcodec_receive_packet(c, pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return 0;
        if (ret < 0) return ret;
        av_packet_rescale_ts(pkt, c->time_base, st->time_base);
        pkt->stream_index = st->index;
        ret = av_interleaved_write_frame(oc, pkt); /* takes the packet's reference */
    }
    return ret;
}

tal_status tal_synth_write_video(const char *path, const tal_synth_opts *o,
                                 const tal_synth_plan *plan, tal_err *err) {
    char ebuf[AV_ERROR_MAX_STRING_SIZE];
    tal_status st_code = TAL_OK;
    AVFormatContext *oc = NULL;
    AVCodecContext *c = NULL;
    AVFrame *frame = NULL;
    AVPacket *pkt = NULL;
    uint8_t *rgb = NULL, *texture = NULL;
    int S = o->size, ret;
    const char *codec_name = o->codec ? o->codec : tal_synth_default_codec();
    const AVCodec *codec = codec_name ? avcodec_find_encoder_by_name(codec_name) : NULL;
    /* Libraries never print: the encoders' statistics go to av_log, errors come back here. */
    if (av_log_get_level() > AV_LOG_ERROR) av_log_set_level(AV_LOG_ERROR);
    if (!codec)
        return tal_err_set(err, TAL_EINVAL, "%s: video encoder '%s' is not in this libavcodec",
                           path, codec_name ? codec_name : "libx264 or mpeg4");

    ret = avformat_alloc_output_context2(&oc, NULL, "mp4", path);
    if (ret < 0 || !oc) {
        st_code = tal_err_set(err, TAL_EIO, "%s: mp4 muxer: %s", path, av_text(ret, ebuf));
        goto done;
    }
    oc->flags |= AVFMT_FLAG_BITEXACT; /* no library version strings in the file */
    AVStream *st = avformat_new_stream(oc, NULL);
    c = avcodec_alloc_context3(codec);
    frame = av_frame_alloc();
    pkt = av_packet_alloc();
    rgb = malloc((size_t)3 * S * S);
    texture = malloc(TAL_SYNTH_TEXTURE * TAL_SYNTH_TEXTURE);
    if (!st || !c || !frame || !pkt || !rgb || !texture) {
        st_code = tal_err_set(err, TAL_ENOMEM, "%s: out of memory setting up the encoder", path);
        goto done;
    }
    AVRational fps = av_d2q(o->fps, 1000000);
    c->width = S;
    c->height = S;
    c->time_base = av_inv_q(fps);
    c->framerate = fps;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->gop_size = (int)lround(2 * o->fps); /* a key frame every 2 s keeps seeking cheap */
    c->thread_count = 1;                   /* determinism: one encoder thread */
    c->flags |= AV_CODEC_FLAG_BITEXACT;
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (!strcmp(codec->name, "libx264")) {
        av_opt_set(c->priv_data, "preset", "veryfast", 0);
        av_opt_set(c->priv_data, "crf", "20", 0);
    } else {
        c->flags |= AV_CODEC_FLAG_QSCALE; /* constant quality */
        c->global_quality = FF_QP2LAMBDA * 3;
        c->max_b_frames = 0;
    }
    if ((ret = avcodec_open2(c, codec, NULL)) < 0) {
        st_code = tal_err_set(err, TAL_EINVAL, "%s: opening encoder %s: %s", path, codec->name,
                              av_text(ret, ebuf));
        goto done;
    }
    if ((ret = avcodec_parameters_from_context(st->codecpar, c)) < 0) {
        st_code = tal_err_set(err, TAL_ENOMEM, "%s: stream parameters: %s", path,
                              av_text(ret, ebuf));
        goto done;
    }
    st->time_base = c->time_base;
    st->avg_frame_rate = fps;
    if ((ret = avio_open(&oc->pb, path, AVIO_FLAG_WRITE)) < 0) {
        st_code = tal_err_set(err, TAL_EIO, "%s: cannot open for writing: %s", path,
                              av_text(ret, ebuf));
        goto done;
    }
    if ((ret = avformat_write_header(oc, NULL)) < 0) {
        st_code = tal_err_set(err, TAL_EIO, "%s: writing header: %s", path, av_text(ret, ebuf));
        goto done;
    }
    frame->format = c->pix_fmt;
    frame->width = S;
    frame->height = S;
    if ((ret = av_frame_get_buffer(frame, 0)) < 0) {
        st_code = tal_err_set(err, TAL_ENOMEM, "%s: frame buffer: %s", path, av_text(ret, ebuf));
        goto done;
    }
    tal_synth_texture(texture, plan);
    for (int f = 0; f < plan->n_frames; f++) {
        if ((ret = av_frame_make_writable(frame)) < 0) break;
        tal_synth_render(rgb, texture, o, plan, f, TAL_SYNTH_ALL);
        rgb_to_yuv420(frame, rgb, S);
        frame->pts = f;
        if ((ret = encode_and_write(oc, c, st, frame, pkt)) < 0) break;
    }
    if (ret >= 0) ret = encode_and_write(oc, c, st, NULL, pkt);
    if (ret < 0) {
        st_code = tal_err_set(err, TAL_EIO, "%s: encoding: %s", path, av_text(ret, ebuf));
        goto done;
    }
    if ((ret = av_write_trailer(oc)) < 0)
        st_code = tal_err_set(err, TAL_EIO, "%s: writing trailer: %s", path, av_text(ret, ebuf));
done:
    if (oc && oc->pb) avio_closep(&oc->pb);
    avformat_free_context(oc);
    avcodec_free_context(&c);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    free(rgb);
    free(texture);
    if (st_code != TAL_OK) remove(path);
    return st_code;
}

/* ---------------------------------------------------------------- the dataset ----------- */
static tal_status make_dir(const char *path, tal_err *err) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return TAL_OK;
        return tal_err_set(err, TAL_EIO, "%s: exists and is not a directory", path);
    }
    return tal_err_set(err, TAL_EIO, "%s: cannot create directory: %s", path, strerror(errno));
}

/* mkdir -p */
static tal_status make_dirs(const char *path, tal_err *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return tal_err_set(err, TAL_EINVAL, "%.64s...: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        tal_status s = make_dir(buf, err);
        *p = '/';
        if (s != TAL_OK) return s;
    }
    return make_dir(buf, err);
}

/* Seconds of a frame boundary, rounded to microseconds so the JSON prints short. */
static double frame_seconds(int frame, double fps) { return round(frame / fps * 1e6) / 1e6; }

static tal_status write_text(const char *path, const char *text, tal_err *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return tal_err_set(err, TAL_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    return TAL_OK;
}

static tal_status write_annotations(const char *path, const tal_synth_opts *o,
                                    const tal_synth_plan *plans, tal_err *err) {
    cJSON *root = cJSON_CreateObject(), *db = NULL;
    cJSON *classes = cJSON_AddArrayToObject(root, "classes");
    char res[32];
    snprintf(res, sizeof res, "%dx%d", o->size, o->size);
    cJSON_AddStringToObject(root, "version", "re2tal-synth 1");
    cJSON_AddNumberToObject(root, "seed", (double)o->seed);
    for (int k = 0; k < o->n_classes; k++) {
        tal_synth_class cls;
        tal_synth_class_info(&cls, k, o->n_classes);
        cJSON_AddItemToArray(classes, cJSON_CreateString(cls.name));
    }
    db = cJSON_AddObjectToObject(root, "database");
    for (int v = 0; v < o->n_videos; v++) {
        const tal_synth_plan *p = &plans[v];
        cJSON *e = cJSON_AddObjectToObject(db, p->id);
        cJSON_AddStringToObject(e, "subset", tal_subset_name(p->subset));
        cJSON_AddNumberToObject(e, "duration", frame_seconds(p->n_frames, o->fps));
        cJSON_AddNumberToObject(e, "fps", o->fps);
        cJSON_AddNumberToObject(e, "frames", p->n_frames);
        cJSON_AddStringToObject(e, "resolution", res);
        cJSON *annos = cJSON_AddArrayToObject(e, "annotations");
        for (int i = 0; i < p->n_instances; i++) {
            tal_synth_class cls;
            tal_synth_class_info(&cls, p->inst[i].label, o->n_classes);
            cJSON *a = cJSON_CreateObject();
            double seg[2] = {frame_seconds(p->inst[i].start_frame, o->fps),
                             frame_seconds(p->inst[i].end_frame, o->fps)};
            cJSON_AddItemToObject(a, "segment", cJSON_CreateDoubleArray(seg, 2));
            cJSON_AddStringToObject(a, "label", cls.name);
            cJSON_AddNumberToObject(a, "label_id", p->inst[i].label);
            cJSON_AddItemToArray(annos, a);
        }
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory printing JSON", path);
    tal_status s = write_text(path, text, err);
    cJSON_free(text);
    return s;
}

tal_status tal_synth_generate(const tal_synth_opts *o, const char *out_dir,
                              tal_synth_progress_fn progress, void *ctx, tal_err *err) {
    tal_status s = tal_synth_check_opts(o, err);
    if (s != TAL_OK) return s;
    const char *codec = o->codec ? o->codec : tal_synth_default_codec();
    if (!codec || !avcodec_find_encoder_by_name(codec))
        return tal_err_set(err, TAL_EINVAL, "synth: video encoder '%s' is not available",
                           codec ? codec : "libx264 or mpeg4");
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s/videos", out_dir) >= (int)sizeof dir - 64)
        return tal_err_set(err, TAL_EINVAL, "%.64s...: output path too long", out_dir);
    if ((s = make_dirs(dir, err)) != TAL_OK) return s;

    tal_synth_plan *plans = calloc((size_t)o->n_videos, sizeof *plans);
    if (!plans) return tal_err_set(err, TAL_ENOMEM, "synth: out of memory for %d plans",
                                   o->n_videos);
    for (int v = 0; v < o->n_videos; v++) tal_synth_plan_video(&plans[v], o, v);

    /* Videos are independent (each a function of seed and index), so the order in which the
     * threads finish does not change a byte. The first error wins; later videos are skipped. */
    int n_done = 0, failed = 0;
    tal_err first = {0};
#pragma omp parallel for schedule(dynamic, 1)
    for (int v = 0; v < o->n_videos; v++) {
        int skip;
#pragma omp atomic read
        skip = failed;
        if (skip) continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.mp4", dir, plans[v].id);
        tal_err e = {0};
        tal_status vs = tal_synth_write_video(path, o, &plans[v], &e);
#pragma omp critical(tal_synth_progress)
        {
            if (vs != TAL_OK && !failed) {
                failed = 1;
                first = e;
            }
            n_done++;
            if (vs == TAL_OK && progress) progress(n_done, o->n_videos, ctx);
        }
    }
    if (failed) {
        free(plans);
        if (err) *err = first;
        return first.code;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/annotations.json", out_dir);
    s = write_annotations(path, o, plans, err);
    free(plans);
    if (s != TAL_OK) return s;

    size_t cap = (size_t)o->n_classes * 72 + 1, used = 0;
    char *text = malloc(cap);
    if (!text) return tal_err_set(err, TAL_ENOMEM, "synth: out of memory");
    text[0] = 0;
    for (int k = 0; k < o->n_classes; k++) {
        tal_synth_class cls;
        tal_synth_class_info(&cls, k, o->n_classes);
        used += (size_t)snprintf(text + used, cap - used, "%s\n", cls.name);
    }
    snprintf(path, sizeof path, "%s/classes.txt", out_dir);
    s = write_text(path, text, err);
    free(text);
    return s;
}
