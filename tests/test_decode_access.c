/* Random access skips work without changing the answer: while read_times decodes towards a time
 * t, packets that can never be the frame returned (a later packet with pts <= t was already
 * sent) and that no other frame references are not decoded. Videos: frame N has luma 16 + 2N
 * (H.264 at qp 1 with non-reference B-frames, made with the ffmpeg CLI: at qp 0 x264 makes no
 * B-frames from this source), so the frame returned tells its index; 1 and 2 decoder threads (frame threading copies the skip setting per packet). */
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "decode_check.h"

#define BFRAMES_SRC                                                                                \
    "-f lavfi -i nullsrc=s=64x48:r=25:d=4 -vf \"geq=lum='16+2*N':cb=128:cr=128\" -c:v libx264 "     \
    "-qp 1 -pix_fmt yuv420p -bf 3 -b-pyramid none -g 50"

static int shown_index(tal_tensor out, int k, int n) {
    int64_t hw = out.shape[2] * out.shape[3];
    double s = 0;
    for (int64_t i = 0; i < hw; i++) s += out.data[(0 * n + k) * hw + i];
    return (int)lround(s / hw * 219.0 / 255.0 / 2.0);
}

static tal_frame_transform raw_transform(const tal_video_info *in) {
    tal_frame_transform tf;
    tal_transform_resize_center(&tf, in, in->height, 0);
    for (int c = 0; c < 3; c++) tf.mean[c] = 0, tf.std[c] = 1;
    return tf;
}

/* 16-frame clips at 25 fps from random starts (random order: seeks back and forth), then the
 * whole video sequentially: right frames every time, and the clips decoded fewer frames than
 * they span from their keyframe. */
static void clips_then_sequence(int threads) {
    char name[64]; /* one file per test: Criterion runs tests in parallel processes */
    snprintf(name, sizeof name, "access_bf_%d.mp4", threads);
    const char *p = make_video(name, BFRAMES_SRC);
    tal_decoder *dec = NULL;
    tal_err err = {0};
    tal_decode_opts opts = {.threads = threads};
    cr_assert_eq(tal_decoder_open(&dec, p, &opts, &err), TAL_OK, "%s", err.msg);
    tal_frame_transform tf = raw_transform(tal_decoder_info(dec));
    enum { CLIP = 16, CLIPS = 12 };
    tal_tensor out = test_tensor(4, (int64_t[]){3, CLIP, tf.out_h, tf.out_w});
    tal_rng_key key = {11, (uint64_t)threads, 0};
    int64_t spanned = 0;
    for (int c = 0; c < CLIPS; c++) {
        /* 20..33 or 70..83: at least 20 frames after the keyframe (0 or 50) before the clip */
        int kf = c % 2 ? 50 : 0, start = kf + 20 + (int)(14 * tal_rng_uniform(key, (uint64_t)c));
        double t[CLIP];
        tal_times_at_fps(t, CLIP, start / 25.0, 25);
        cr_assert_eq(tal_decoder_read_times(dec, t, CLIP, &tf, out, &err), TAL_OK, "%s", err.msg);
        for (int k = 0; k < CLIP; k++)
            cr_expect_eq(shown_index(out, k, CLIP), start + k, "threads %d clip %d frame %d: %d",
                         threads, c, k, shown_index(out, k, CLIP));
        spanned += start + CLIP - kf; /* frames from the keyframe to the clip's end */
    }
    int64_t decoded = tal_decoder_stats(dec)->frames_decoded;
    cr_expect_lt(decoded, spanned * 3 / 4, "threads %d: decoded %lld of the %lld frames spanned",
                 threads, (long long)decoded, (long long)spanned);
    /* sequential reading afterwards decodes every frame again */
    tal_sampling all = {.every_n = 1};
    cr_assert_eq(tal_decoder_seq_begin(dec, &all, &err), TAL_OK, "%s", err.msg);
    tal_tensor one = test_tensor(4, (int64_t[]){3, 8, tf.out_h, tf.out_w});
    int next = 0, n_read = 0;
    do {
        cr_assert_eq(tal_decoder_read(dec, &tf, one, &n_read, NULL, &err), TAL_OK, "%s", err.msg);
        for (int k = 0; k < n_read; k++, next++)
            cr_expect_eq(shown_index(one, k, 8), next, "threads %d: sequential frame %d", threads,
                         next);
    } while (n_read == 8);
    cr_expect_eq(next, 100, "threads %d: %d frames read sequentially", threads, next);
    tal_decoder_close(dec);
}

Test(decode_access, clips_skip_unreferenced_frames_1_thread) { clips_then_sequence(1); }
Test(decode_access, clips_skip_unreferenced_frames_2_threads) { clips_then_sequence(2); }

/* A time between frames and a time just before a keyframe: the last frame not after t, even when
 * the frames before it were skipped. */
Test(decode_access, last_frame_not_after_t_between_frames) {
    const char *p = make_video("access_bf2.mp4", BFRAMES_SRC);
    for (int threads = 1; threads <= 2; threads++) {
        tal_decoder *dec = NULL;
        tal_err err = {0};
        tal_decode_opts opts = {.threads = threads};
        cr_assert_eq(tal_decoder_open(&dec, p, &opts, &err), TAL_OK, "%s", err.msg);
        tal_frame_transform tf = raw_transform(tal_decoder_info(dec));
        const double t[] = {2.0 - 0.5 / 25, 3.5 + 0.9 / 25, 0.7 + 0.3 / 25, 7.99};
        const int want[] = {49, 88, 17, 99}; /* just before keyframe 50; ...; past the end */
        for (int i = 0; i < 4; i++) {
            tal_tensor out = test_tensor(4, (int64_t[]){3, 1, tf.out_h, tf.out_w});
            cr_assert_eq(tal_decoder_read_times(dec, &t[i], 1, &tf, out, &err), TAL_OK, "%s",
                         err.msg);
            cr_expect_eq(shown_index(out, 0, 1), want[i], "threads %d t=%.4f: frame %d, want %d",
                         threads, t[i], shown_index(out, 0, 1), want[i]);
        }
        tal_decoder_close(dec);
    }
}

/* Where random access starts: the keyframe at or before t (GOP 50 at 25 fps: 0 s and 2 s),
 * never one after t. */
Test(decode_access, keyframe_before_t) {
    const char *p = make_video("access_kf.mp4", BFRAMES_SRC);
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, p, NULL, &err), TAL_OK, "%s", err.msg);
    const double t[] = {-1.0, 0.0, 1.98, 2.0, 3.5, 100.0};
    const double want[] = {0.0, 0.0, 0.0, 2.0, 2.0, 2.0};
    for (int i = 0; i < 6; i++) {
        double kf = -7;
        cr_expect_eq(tal_decoder_keyframe_before(dec, t[i], &kf), 1);
        /* mp4 indexes decode times: up to the B-frame delay (3 frames) early */
        cr_expect(kf <= want[i] + 1e-9 && kf >= want[i] - 3 / 25.0 - 1e-9,
                  "t=%.2f: keyframe at %.4f, want %.1f", t[i], kf, want[i]);
    }
    tal_decoder_close(dec);
}
