/* Sequential reading (chunks of T frames at a target fps, every n-th frame), open-GOP seeks,
 * random-resized crop (one crop per sample), and the prefetch queue. Videos whose frame N has
 * luma 16 + 2N (lossless H.264 from the ffmpeg CLI) tell which frame the reader returned. */
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "decode_check.h"

#define GRAY_SRC "-f lavfi -i nullsrc=s=64x48:r=25:d=4 -vf \"geq=lum='16+2*N':cb=128:cr=128\" "
#define LOSSLESS "-c:v libx264 -qp 0 -pix_fmt yuv420p "

/* Frame index shown in frame k of out [3, n, H, W] (raw 0..255 RGB: mean 0, std 1). */
static int shown_index(tal_tensor out, int k, int n) {
    int64_t hw = out.shape[2] * out.shape[3];
    double s = 0;
    for (int64_t i = 0; i < hw; i++) s += out.data[(0 * n + k) * hw + i];
    return (int)lround(s / hw * 219.0 / 255.0 / 2.0); /* limited-range luma -> RGB */
}

static tal_decoder *open_ok(const char *path) {
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, path, NULL, &err), TAL_OK, "%s", err.msg);
    return dec;
}

static tal_frame_transform raw_transform(const tal_video_info *in) {
    tal_frame_transform tf;
    tal_transform_resize_center(&tf, in, in->height < in->width ? in->height : in->width, 0);
    for (int c = 0; c < 3; c++) tf.mean[c] = 0, tf.std[c] = 1;
    return tf;
}

Test(decode_seq, chunks_at_fps_cover_the_video_in_order) {
    const char *p = make_video("seq.mp4", GRAY_SRC LOSSLESS "-bf 3 -g 30");
    tal_decoder *dec = open_ok(p);
    tal_frame_transform tf = raw_transform(tal_decoder_info(dec));
    tal_sampling s = {.fps = 8};
    tal_err err = {0};
    cr_assert_eq(tal_decoder_seq_begin(dec, &s, &err), TAL_OK, "%s", err.msg);
    enum { T = 5 };
    tal_tensor out = test_tensor(4, (int64_t[]){3, T, tf.out_h, tf.out_w});
    double times[T];
    int total = 0, n_read = T;
    while (n_read == T) {
        cr_assert_eq(tal_decoder_read(dec, &tf, out, &n_read, times, &err), TAL_OK, "%s", err.msg);
        for (int k = 0; k < n_read; k++) {
            int j = total + k;
            cr_expect_float_eq(times[k], j / 8.0, 1e-9);
            int want = (int)floor(j / 8.0 * 25 + 1e-9);
            cr_expect_eq(shown_index(out, k, T), want, "sample %d: frame %d, want %d", j,
                         shown_index(out, k, T), want);
        }
        for (int64_t i = (int64_t)n_read * tf.out_h * tf.out_w; i < T * tf.out_h * tf.out_w; i++)
            cr_assert_eq(out.data[i], 0.0f, "the unused tail must be zeroed");
        total += n_read;
    }
    /* 4 s at 8 fps: the samples at 0 .. 3.875 s, none at or past the end of the last frame */
    cr_expect_eq(total, 32);
    cr_expect_eq(total, tal_frames_at_fps(tal_decoder_info(dec)->duration_s, 8));
    cr_expect_eq(tal_decoder_read(dec, &tf, out, &n_read, NULL, &err), TAL_OK);
    cr_expect_eq(n_read, 0, "nothing left after the end");
    tal_decoder_close(dec);
}

Test(decode_seq, start_time_and_restart) {
    const char *p = make_video("seq2.mp4", GRAY_SRC LOSSLESS "-bf 2 -g 250");
    tal_decoder *dec = open_ok(p);
    tal_frame_transform tf = raw_transform(tal_decoder_info(dec));
    tal_tensor out = test_tensor(4, (int64_t[]){3, 4, tf.out_h, tf.out_w});
    tal_err err = {0};
    int n_read;
    for (int round = 0; round < 2; round++) { /* restarting goes back to start_s */
        tal_sampling s = {.fps = 2, .start_s = 2.5};
        cr_assert_eq(tal_decoder_seq_begin(dec, &s, &err), TAL_OK, "%s", err.msg);
        cr_assert_eq(tal_decoder_read(dec, &tf, out, &n_read, NULL, &err), TAL_OK, "%s", err.msg);
        cr_assert_eq(n_read, 3); /* 2.5, 3.0, 3.5 */
        int want[] = {62, 75, 87};
        for (int k = 0; k < 3; k++) cr_expect_eq(shown_index(out, k, 4), want[k]);
    }
    tal_decoder_close(dec);
}

Test(decode_seq, every_nth_frame) {
    const char *p = make_video("every.mp4", GRAY_SRC LOSSLESS "-bf 3 -g 12");
    tal_decoder *dec = open_ok(p);
    tal_frame_transform tf = raw_transform(tal_decoder_info(dec));
    tal_tensor out = test_tensor(4, (int64_t[]){3, 16, tf.out_h, tf.out_w});
    tal_err err = {0};
    double t0 = 3.0; /* a random-access read first: sequential reading must start over */
    cr_assert_eq(tal_decoder_read_times(dec, &t0, 1, &tf, tal_t4(out.data, 3, 1, tf.out_h,
                                                                  tf.out_w), &err), TAL_OK);
    tal_sampling s = {.every_n = 7};
    cr_assert_eq(tal_decoder_seq_begin(dec, &s, &err), TAL_OK, "%s", err.msg);
    double times[16];
    int n_read;
    cr_assert_eq(tal_decoder_read(dec, &tf, out, &n_read, times, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(n_read, 15); /* frames 0, 7, ..., 98 */
    for (int k = 0; k < n_read; k++) {
        cr_expect_eq(shown_index(out, k, 16), 7 * k);
        cr_expect_float_eq(times[k], 7 * k / 25.0, 1e-6);
    }
    tal_decoder_close(dec);
}

Test(decode_seq, bad_sampling_and_read_before_begin) {
    const char *p = make_video("bad_s.mp4", GRAY_SRC LOSSLESS);
    tal_decoder *dec = open_ok(p);
    tal_frame_transform tf = raw_transform(tal_decoder_info(dec));
    tal_tensor out = test_tensor(4, (int64_t[]){3, 2, tf.out_h, tf.out_w});
    tal_err err = {0};
    int n_read = -1;
    cr_expect_eq(tal_decoder_read(dec, &tf, out, &n_read, NULL, &err), TAL_EINVAL);
    cr_expect_eq(n_read, 0);
    cr_expect(strstr(err.msg, "bad_s.mp4"), "%s", err.msg);
    tal_sampling s = {0};
    cr_expect_eq(tal_decoder_seq_begin(dec, &s, &err), TAL_EINVAL);
    cr_expect(strstr(err.msg, "bad_s.mp4"), "%s", err.msg);
    tal_decoder_close(dec);
}

Test(decode_seq, open_gop_random_seeks) {
    const char *p = make_video("opengop.mkv", GRAY_SRC LOSSLESS
                               "-x264-params open-gop=1:keyint=20:min-keyint=20:bframes=3:"
                               "b-pyramid=normal:scenecut=0");
    tal_decoder *dec = open_ok(p);
    tal_frame_transform tf = raw_transform(tal_decoder_info(dec));
    enum { N = 100 };
    double t[N];
    tal_rng_key key = {11, 0, 0};
    for (int k = 0; k < N; k++) t[k] = 3.99 * tal_rng_uniform(key, (uint64_t)k);
    tal_tensor out = test_tensor(4, (int64_t[]){3, N, tf.out_h, tf.out_w});
    tal_err err = {0};
    cr_assert_eq(tal_decoder_read_times(dec, t, N, &tf, out, &err), TAL_OK, "%s", err.msg);
    for (int k = 0; k < N; k++) {
        int want = (int)floor(t[k] * 25 + 1e-6);
        cr_expect_eq(shown_index(out, k, N), want, "t=%.4f: frame %d, want %d", t[k],
                     shown_index(out, k, N), want);
    }
    cr_expect_gt(tal_decoder_stats(dec)->seeks, 10);
    cr_expect_eq(tal_decoder_stats(dec)->corrupt_packets, 0, "seeking is not corruption");
    tal_decoder_close(dec);
}

Test(decode_seq, first_read_deep_into_the_video_seeks) {
    const char *p = make_video("deep.mp4", "-f lavfi -i nullsrc=s=64x48:r=25:d=20 -vf "
                               "\"geq=lum='16+mod(N,100)*2':cb=128:cr=128\" " LOSSLESS "-g 25");
    tal_decoder *dec = open_ok(p);
    tal_frame_transform tf = raw_transform(tal_decoder_info(dec));
    tal_tensor out = test_tensor(4, (int64_t[]){3, 1, tf.out_h, tf.out_w});
    tal_err err = {0};
    double t = 17.0;
    cr_assert_eq(tal_decoder_read_times(dec, &t, 1, &tf, out, &err), TAL_OK, "%s", err.msg);
    cr_expect_eq(shown_index(out, 0, 1), 425 % 100);
    /* a training sample must not decode the 17 s before it */
    cr_expect_lt(tal_decoder_stats(dec)->frames_decoded, 60, "decoded %lld frames",
                 (long long)tal_decoder_stats(dec)->frames_decoded);
    tal_decoder_close(dec);
}

Test(decode_seq, random_resized_crop_same_for_every_frame) {
    const char *p = make_video("rrc.mp4", "-f lavfi -i testsrc2=s=160x120:r=25:d=1 " LOSSLESS);
    tal_decoder *dec = open_ok(p);
    const tal_video_info *in = tal_decoder_info(dec);
    tal_frame_transform a, b, c;
    tal_rng_key key = {5, 1, 0};
    tal_transform_random_resized_crop(&a, in, 32, 0.08, 1.0, 3.0 / 4, 4.0 / 3, 0.5, key);
    tal_transform_random_resized_crop(&b, in, 32, 0.08, 1.0, 3.0 / 4, 4.0 / 3, 0.5, key);
    cr_assert(!memcmp(&a, &b, sizeof a), "same key, same crop");
    cr_expect_eq(a.out_w, 32);
    cr_expect_eq(a.out_h, 32);
    int differs = 0, flips = 0;
    for (uint64_t i = 0; i < 64; i++) {
        tal_rng_key k2 = {5, 2, i};
        tal_transform_random_resized_crop(&c, in, 32, 0.08, 1.0, 3.0 / 4, 4.0 / 3, 0.5, k2);
        double area = c.src_w * c.src_h / (160.0 * 120.0), ratio = c.src_w / c.src_h;
        cr_expect(c.src_x >= 0 && c.src_y >= 0 && c.src_x + c.src_w <= 160 &&
                  c.src_y + c.src_h <= 120, "crop inside the frame");
        cr_expect(area >= 0.07 && area <= 1.0, "area fraction %f", area);
        cr_expect(ratio >= 0.7 && ratio <= 1.4, "aspect %f", ratio);
        differs += memcmp(&c, &a, sizeof c) != 0;
        flips += c.flip;
    }
    cr_expect_gt(differs, 60);
    cr_expect(flips > 16 && flips < 48, "flip drawn with p = 0.5: %d of 64", flips);
    /* the same rectangle in every frame: a still video gives identical frames */
    const char *still = make_video("still.mp4", "-f lavfi -i testsrc2=s=160x120:r=25:d=1 "
                                   "-vf \"select='eq(n,0)',loop=24:1:0,setpts=N/25/TB\" " LOSSLESS);
    tal_decoder_close(dec);
    dec = open_ok(still);
    tal_tensor out = test_tensor(4, (int64_t[]){3, 4, 32, 32});
    double t[4] = {0, 0.3, 0.6, 0.9};
    tal_err err = {0};
    cr_assert_eq(tal_decoder_read_times(dec, t, 4, &a, out, &err), TAL_OK, "%s", err.msg);
    for (int ch = 0; ch < 3; ch++)
        for (int k = 1; k < 4; k++)
            for (int i = 0; i < 32 * 32; i++)
                cr_assert_float_eq(out.data[(ch * 4 + k) * 1024 + i], out.data[(ch * 4) * 1024 + i],
                                   1e-6);
    tal_decoder_close(dec);
}

/* Prefetch: items come back in order with the producer's status; the producer never runs more
 * than `depth` items ahead of the consumer. */
typedef struct {
    int values[4];
    int64_t max_ahead, released;
} pf_ctx;

static tal_status produce(int64_t i, int slot, void *ctx, tal_err *err) {
    pf_ctx *c = ctx;
    if (i - __atomic_load_n(&c->released, __ATOMIC_SEQ_CST) > c->max_ahead)
        c->max_ahead = i - c->released;
    c->values[slot] = (int)(i * 10);
    if (i == 7) return tal_err_set(err, TAL_EFORMAT, "item 7 is broken");
    return TAL_OK;
}

Test(decode_seq, prefetch_in_order_bounded_with_errors) {
    pf_ctx c = {0};
    tal_prefetch *pf = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_prefetch_start(&pf, 20, 3, produce, &c, &err), TAL_OK);
    for (int64_t i = 0; i < 20; i++) {
        int slot;
        tal_err e = {0};
        tal_status rc = tal_prefetch_wait(pf, i, &slot, &e);
        if (i == 7) {
            cr_expect_eq(rc, TAL_EFORMAT);
            cr_expect(strstr(e.msg, "item 7"), "%s", e.msg);
        } else {
            cr_expect_eq(rc, TAL_OK);
            cr_expect_eq(c.values[slot], i * 10);
        }
        __atomic_store_n(&c.released, i + 1, __ATOMIC_SEQ_CST);
        tal_prefetch_release(pf, i);
    }
    tal_prefetch_stop(pf);
    cr_expect_lt(c.max_ahead, 3, "producer ran %lld items ahead", (long long)c.max_ahead);
}

Test(decode_seq, prefetch_stop_early) {
    pf_ctx c = {0};
    tal_prefetch *pf = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_prefetch_start(&pf, 1000000, 2, produce, &c, &err), TAL_OK);
    int slot;
    cr_expect_eq(tal_prefetch_wait(pf, 0, &slot, &err), TAL_OK);
    tal_prefetch_stop(pf); /* joins a worker blocked on a full queue */
    tal_prefetch_stop(NULL);
}
