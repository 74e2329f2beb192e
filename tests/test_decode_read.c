/* Frames are chosen by presentation time: videos whose frame N has luma 16 + 2N (lossless
 * H.264, made with the ffmpeg CLI) tell which frame the reader returned. Covers CFR, B-frames
 * with a long GOP, VFR with a gap, seeks in random order, the last frames, a stream that does not
 * start at 0, frame counts against ffprobe, rotation against ffmpeg's own autorotate, pixels
 * against ffmpeg's rgb24. */
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "decode_check.h"

#define GRAY_SRC "-f lavfi -i nullsrc=s=64x48:r=25:d=4 -vf \"geq=lum='16+2*N':cb=128:cr=128"
#define LOSSLESS "-c:v libx264 -qp 0 -pix_fmt yuv420p"

/* Frame index shown in frame k of out [3, n, H, W] (raw 0..255 RGB: mean 0, std 1). */
static int shown_index(tal_tensor out, int k, int n) {
    int64_t hw = out.shape[2] * out.shape[3];
    double s = 0;
    for (int64_t i = 0; i < hw; i++) s += out.data[(0 * n + k) * hw + i];
    double r = s / hw; /* limited-range luma v -> RGB (v - 16) * 255 / 219 */
    return (int)lround(r * 219.0 / 255.0 / 2.0);
}

static tal_frame_transform raw_transform(const tal_video_info *in) {
    tal_frame_transform tf;
    tal_transform_resize_center(&tf, in, in->height < in->width ? in->height : in->width, 0);
    for (int c = 0; c < 3; c++) tf.mean[c] = 0, tf.std[c] = 1;
    return tf;
}

static void read_and_check(const char *path, const double *times, const int *want, int n) {
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, path, NULL, &err), TAL_OK, "%s", err.msg);
    tal_frame_transform tf = raw_transform(tal_decoder_info(dec));
    tal_tensor out = test_tensor(4, (int64_t[]){3, n, tf.out_h, tf.out_w});
    cr_assert_eq(tal_decoder_read_times(dec, times, n, &tf, out, &err), TAL_OK, "%s", err.msg);
    for (int k = 0; k < n; k++)
        cr_expect_eq(shown_index(out, k, n), want[k], "%s: t=%.4f s: got frame %d, want %d", path,
                     times[k], shown_index(out, k, n), want[k]);
    tal_decoder_close(dec);
}

Test(decode_read, cfr_at_target_fps_gives_last_frame_not_after_t) {
    const char *p = make_video("cfr.mp4", GRAY_SRC "\" " LOSSLESS " -bf 0 -g 12");
    double t[32];
    int want[32];
    tal_times_at_fps(t, 32, 0, 8); /* 8 fps over a 25 fps video */
    for (int k = 0; k < 32; k++) want[k] = (int)floor(k / 8.0 * 25 + 1e-9);
    read_and_check(p, t, want, 32);
}

Test(decode_read, bframes_long_gop_random_seeks) {
    const char *p = make_video("bf.mp4", GRAY_SRC "\" " LOSSLESS " -bf 3 -g 250");
    double t[100];
    int want[100];
    tal_rng_key key = {7, 0, 0};
    for (int k = 0; k < 100; k++) {
        t[k] = 3.99 * tal_rng_uniform(key, (uint64_t)k); /* random order: back and forth */
        want[k] = (int)floor(t[k] * 25 + 1e-6);
    }
    read_and_check(p, t, want, 100);
}

/* Every frame in order, mid-frame times, over B-frames and a keyframe every 2 s (the synthetic
 * dataset's encoder settings): each time gets its own frame, read forward without a seek. */
Test(decode_read, every_frame_in_order_over_bframes_and_keyframes) {
    const char *p = make_video("seq.mp4", GRAY_SRC "\" " LOSSLESS " -bf 3 -g 50");
    double t[100];
    int want[100];
    for (int k = 0; k < 100; k++) t[k] = (k + 0.5) / 25, want[k] = k;
    read_and_check(p, t, want, 100);
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, p, NULL, &err), TAL_OK, "%s", err.msg);
    tal_frame_transform tf = raw_transform(tal_decoder_info(dec));
    tal_tensor out = test_tensor(4, (int64_t[]){3, 100, tf.out_h, tf.out_w});
    cr_assert_eq(tal_decoder_read_times(dec, t, 100, &tf, out, &err), TAL_OK, "%s", err.msg);
    cr_expect_eq(tal_decoder_stats(dec)->seeks, 0, "%lld seeks",
                 (long long)tal_decoder_stats(dec)->seeks);
    tal_decoder_close(dec);
}

Test(decode_read, vfr_gap_keeps_last_frame_before_it) {
    /* frames 0..49 at 25 fps, then a 1 s gap, then frames 50..99 */
    const char *p = make_video("vfr.mkv", GRAY_SRC ",setpts='N/25/TB+if(gte(N,50),1/TB,0)'\" "
                                          "-fps_mode passthrough " LOSSLESS "");
    double t[] = {0.0, 1.96, 2.0, 2.5, 2.99, 3.0, 3.04, 4.96, 9.0};
    int want[] = {0, 49, 49, 49, 49, 50, 51, 99, 99};
    read_and_check(p, t, want, 9);
}

Test(decode_read, last_frames_and_past_the_end) {
    const char *p = make_video("end.mp4", GRAY_SRC "\" " LOSSLESS " -bf 2");
    double t[] = {3.92, 3.96, 3.999, 5.0, 100.0};
    int want[] = {98, 99, 99, 99, 99};
    read_and_check(p, t, want, 5);
}

Test(decode_read, stream_not_starting_at_zero) {
    const char *p = make_video("offset.ts", GRAY_SRC "\" " LOSSLESS " -output_ts_offset 2");
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, p, NULL, &err), TAL_OK, "%s", err.msg);
    cr_expect(tal_decoder_info(dec)->start_s > 1.0, "start %f", tal_decoder_info(dec)->start_s);
    tal_decoder_close(dec);
    double t[] = {0.0, 0.04, 1.0, 3.96};
    int want[] = {0, 1, 25, 99};
    read_and_check(p, t, want, 4);
}

Test(decode_read, frame_count_agrees_with_ffprobe) {
    const char *p = make_video("count.mkv", GRAY_SRC ",setpts='N/25/TB+if(gte(N,50),1/TB,0)'\" "
                                            "-fps_mode passthrough " LOSSLESS "");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                              "stream=nb_read_frames -of csv=p=0 '%s'", p);
    FILE *f = popen(cmd, "r");
    long want = -1;
    cr_assert(f && fscanf(f, "%ld", &want) == 1);
    pclose(f);
    tal_decoder *dec = NULL;
    tal_err err = {0};
    tal_decode_opts o = {.count_frames = 1};
    cr_assert_eq(tal_decoder_open(&dec, p, &o, &err), TAL_OK, "%s", err.msg);
    cr_expect_eq(tal_decoder_info(dec)->n_frames, want);
    cr_expect(tal_decoder_info(dec)->n_frames_exact);
    cr_expect(tal_decoder_info(dec)->variable_fps, "a 1 s gap among 25 fps frames is VFR");
    tal_decoder_close(dec);
    p = make_video("count_cfr.mp4", GRAY_SRC "\" " LOSSLESS " -bf 3");
    cr_assert_eq(tal_decoder_open(&dec, p, &o, &err), TAL_OK, "%s", err.msg);
    cr_expect_eq(tal_decoder_info(dec)->n_frames, 100);
    cr_expect_not(tal_decoder_info(dec)->variable_fps, "constant 25 fps with B-frames");
    tal_decoder_close(dec);
}

Test(decode_read, rotation_matches_ffmpeg_autorotate) {
    const char *src = make_video("rot_src.mp4", "-f lavfi -i testsrc2=s=64x48:r=25:d=1 " LOSSLESS "");
    char src_copy[1024];
    snprintf(src_copy, sizeof src_copy, "%s", src);
    char args[2048];
    snprintf(args, sizeof args, "-i '%s' -c copy -metadata:s:v:0 rotate=90", src_copy);
    const char *rot = make_video("rot.mp4", args);
    char rot_copy[1024], raw[1100], cmd[4096];
    snprintf(rot_copy, sizeof rot_copy, "%s", rot);
    snprintf(raw, sizeof raw, "%s/rot.rgb", TEST_TMP);
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -i '%s' -frames:v 1 -f rawvideo -pix_fmt rgb24 '%s'",
             rot_copy, raw);
    cr_assert_eq(system(cmd), 0);
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, rot_copy, NULL, &err), TAL_OK, "%s", err.msg);
    const tal_video_info *in = tal_decoder_info(dec);
    cr_assert_eq(in->width, 48);
    cr_assert_eq(in->height, 64);
    tal_frame_transform tf = raw_transform(in);
    tf.channels_last = 1;
    tal_tensor out = test_tensor(4, (int64_t[]){1, 64, 48, 3});
    double t0 = 0;
    cr_assert_eq(tal_decoder_read_times(dec, &t0, 1, &tf, out, &err), TAL_OK, "%s", err.msg);
    FILE *f = fopen(raw, "rb");
    unsigned char want[64 * 48 * 3];
    cr_assert(f && fread(want, 1, sizeof want, f) == sizeof want);
    fclose(f);
    double mad = 0, mad_mirror = 0, mad_turned = 0;
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 48; x++)
            for (int c = 0; c < 3; c++) {
                float got = out.data[(y * 48 + x) * 3 + c];
                mad += fabs(got - want[(y * 48 + x) * 3 + c]);
                mad_mirror += fabs(got - want[(y * 48 + 47 - x) * 3 + c]);
                mad_turned += fabs(got - want[((63 - y) * 48 + 47 - x) * 3 + c]); /* 180 off */
            }
    mad /= 64 * 48 * 3;
    mad_mirror /= 64 * 48 * 3;
    mad_turned /= 64 * 48 * 3;
    /* same pixels (both are rgb24 with chroma repeated per block); a mirror or the opposite
     * turn is far off */
    cr_expect_lt(mad, 0.1, "mean abs difference %.2f to ffmpeg's autorotated frame", mad);
    cr_expect_gt(mad_mirror, 3 * mad, "mirrored: %.2f vs %.2f", mad_mirror, mad);
    cr_expect_gt(mad_turned, 3 * mad, "turned the other way: %.2f vs %.2f", mad_turned, mad);
    tal_decoder_close(dec);
}

/* At the native size the frame is ffmpeg's (and PyAV's) rgb24 frame, the pixels the reference
 * models were trained on: 4:2:0 chroma repeated per 2x2 block, not interpolated (swscale's
 * planar GBRP output interpolates it and blurs every coloured edge). */
Test(decode_read, native_size_pixels_are_ffmpeg_rgb24) {
    const char *src = make_video("colour.mp4", "-f lavfi -i testsrc2=s=64x48:r=25:d=1 " LOSSLESS "");
    char path[1024], raw[1100], cmd[4096];
    snprintf(path, sizeof path, "%s", src);
    snprintf(raw, sizeof raw, "%s/colour.rgb", TEST_TMP);
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -i '%s' -frames:v 1 -f rawvideo -pix_fmt rgb24 '%s'",
             path, raw);
    cr_assert_eq(system(cmd), 0);
    unsigned char want[64 * 48 * 3];
    FILE *f = fopen(raw, "rb");
    cr_assert(f && fread(want, 1, sizeof want, f) == sizeof want);
    fclose(f);
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, path, NULL, &err), TAL_OK, "%s", err.msg);
    tal_frame_transform tf = raw_transform(tal_decoder_info(dec));
    tal_tensor chw = test_tensor(4, (int64_t[]){3, 1, 48, 64});
    tal_tensor hwc = test_tensor(4, (int64_t[]){1, 48, 64, 3});
    double t0 = 0;
    cr_assert_eq(tal_decoder_read_times(dec, &t0, 1, &tf, chw, &err), TAL_OK, "%s", err.msg);
    tf.channels_last = 1;
    cr_assert_eq(tal_decoder_read_times(dec, &t0, 1, &tf, hwc, &err), TAL_OK, "%s", err.msg);
    double mad = 0, worst = 0;
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++)
            for (int c = 0; c < 3; c++) {
                float w = want[(y * 64 + x) * 3 + c];
                float a = chw.data[(c * 48 + y) * 64 + x], b = hwc.data[(y * 64 + x) * 3 + c];
                cr_assert_eq(a, b, "layouts differ at (%d, %d, %d)", x, y, c);
                mad += fabs(a - w);
                worst = fmax(worst, fabs(a - w));
            }
    mad /= 64 * 48 * 3;
    cr_expect_lt(mad, 0.1, "mean abs difference %.2f to ffmpeg's rgb24 frame", mad);
    cr_expect_leq(worst, 2.0, "largest difference %.0f to ffmpeg's rgb24 frame", worst);
    tal_decoder_close(dec);
}

Test(decode_read, resize_crop_flip_normalise) {
    const char *p = make_video("big.mp4", "-f lavfi -i testsrc2=s=160x120:r=25:d=1 " LOSSLESS "");
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, p, NULL, &err), TAL_OK, "%s", err.msg);
    tal_frame_transform tf, tf_flip;
    tal_transform_resize_center(&tf, tal_decoder_info(dec), 64, 56);
    cr_assert_eq(tf.out_w, 56);
    cr_assert_eq(tf.out_h, 56);
    tf_flip = tf;
    tf_flip.flip = 1;
    tal_tensor a = test_tensor(4, (int64_t[]){3, 1, 56, 56}), b = test_tensor_like(a);
    double t0 = 0.5;
    cr_assert_eq(tal_decoder_read_times(dec, &t0, 1, &tf, a, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_decoder_read_times(dec, &t0, 1, &tf_flip, b, &err), TAL_OK, "%s", err.msg);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 56; y++)
            for (int x = 0; x < 56; x++)
                cr_assert_float_eq(a.data[(c * 56 + y) * 56 + x], b.data[(c * 56 + y) * 56 + 55 - x],
                                   1e-6);
    double mn = 1e9, mx = -1e9;
    for (int64_t i = 0; i < tal_tensor_numel(a); i++) mn = fmin(mn, a.data[i]), mx = fmax(mx, a.data[i]);
    cr_expect(mn >= -2.2 && mx <= 2.7 && mx - mn > 1.0, "normalised range [%f, %f]", mn, mx);
    tal_decoder_close(dec);
}
