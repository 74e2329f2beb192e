/* decode/png.c: one float frame back to 8-bit RGB (undoing the transform's mean/std) and into a
 * PNG file through libavcodec's PNG encoder, for eyeballing what the model sees. */
#include "decode/internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static tal_status encode_png(AVCodecContext *cc, AVFrame *f, AVPacket *pkt, const char *path,
                             tal_err *err) {
    char e[AV_ERROR_MAX_STRING_SIZE];
    int ret = avcodec_send_frame(cc, f);
    if (ret >= 0) ret = avcodec_send_frame(cc, NULL);
    if (ret >= 0) ret = avcodec_receive_packet(cc, pkt);
    if (ret < 0)
        return tal_err_set(err, TAL_EFORMAT, "%s: PNG encoder: %s", path,
                           tal_av_error(ret, e, sizeof e));
    FILE *out = fopen(path, "wb");
    if (!out) return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", path, strerror(errno));
    size_t n = fwrite(pkt->data, 1, (size_t)pkt->size, out);
    if (fclose(out) != 0 || n != (size_t)pkt->size)
        return tal_err_set(err, TAL_EIO, "%s: short write", path);
    return TAL_OK;
}

tal_status tal_frame_write_png(const char *path, tal_tensor frames, int k,
                               const tal_frame_transform *tf, tal_err *err) {
    const int W = tf->out_w, H = tf->out_h;
    int64_t per = 3LL * W * H;
    TAL_ASSERT_MSG(per > 0 && tal_tensor_numel(frames) % per == 0 &&
                       k < tal_tensor_numel(frames) / per,
                   "write_png: frame %d of a tensor of %lld elements (%dx%d frames)", k,
                   (long long)tal_tensor_numel(frames), W, H);
    int n = (int)(tal_tensor_numel(frames) / per);
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    if (!codec) return tal_err_set(err, TAL_EFORMAT, "%s: this FFmpeg has no PNG encoder", path);
    AVCodecContext *cc = avcodec_alloc_context3(codec);
    AVFrame *f = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    tal_status rc = TAL_OK;
    if (!cc || !f || !pkt) {
        rc = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    cc->width = W;
    cc->height = H;
    cc->pix_fmt = AV_PIX_FMT_RGB24;
    cc->time_base = (AVRational){1, 25};
    f->width = W;
    f->height = H;
    f->format = AV_PIX_FMT_RGB24;
    if (avcodec_open2(cc, codec, NULL) < 0 || av_frame_get_buffer(f, 0) < 0) {
        rc = tal_err_set(err, TAL_ENOMEM, "%s: cannot set up the PNG encoder", path);
        goto done;
    }
    size_t hw = (size_t)H * W;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                size_t i = tf->channels_last ? (((size_t)k * H + y) * W + x) * 3 + c
                                             : ((size_t)c * n + k) * hw + (size_t)y * W + x;
                float v = frames.data[i] * (tf->std[c] > 0 ? tf->std[c] : 1) + tf->mean[c];
                f->data[0][(size_t)y * f->linesize[0] + (size_t)x * 3 + c] =
                    (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
            }
    rc = encode_png(cc, f, pkt, path, err);
done:
    av_packet_free(&pkt);
    av_frame_free(&f);
    avcodec_free_context(&cc);
    return rc;
}
