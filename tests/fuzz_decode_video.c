/* tests/fuzz_decode_video.c: libFuzzer target for video containers and codecs through
 * libavformat / libavcodec, opened from memory (tal_decoder_open_memory) with a decode budget:
 * frames of at most 128 x 128 pixels, 48 samples per reading mode. Any bytes give either a
 * video whose reading modes (by time, sequential at an fps, every n-th frame, counting) keep
 * their contracts, or an error naming the input; never a crash, leak, hang or undefined
 * behaviour. Build: cmake -DRE2TAL_FUZZ=ON -DCMAKE_C_COMPILER=clang; seeds: tests/fuzz/video. */
#include <math.h>

#include "decode/decode.h"
#include "fuzz_util.h"

#define NAME "fuzz.video"
#define BUDGET 48 /* samples per reading mode */
#define T 8       /* frames per read */

static void check_frames(tal_tensor out, int n) {
    for (int64_t i = 0; i < (int64_t)n * 3 * out.shape[2] * out.shape[3]; i++)
        FUZZ_CHECK(isfinite(out.data[i]), "sample %lld", (long long)i);
}

/* Sequential reading (fps > 0 or every_n), at most BUDGET samples; their times never go back. */
static void read_sequential(tal_decoder *dec, const tal_frame_transform *tf, tal_tensor out,
                            tal_sampling s) {
    tal_err err = {0};
    if (tal_decoder_seq_begin(dec, &s, &err) != TAL_OK) return;
    double times[T], last = -INFINITY;
    int n = T, total = 0;
    while (n == T && total < BUDGET) {
        if (tal_decoder_read(dec, tf, out, &n, times, &err) != TAL_OK) {
            fuzz_check_names(&err, NAME);
            return;
        }
        FUZZ_CHECK(n >= 0 && n <= T, "n_read %d", n);
        check_frames(out, n);
        for (int k = 0; k < n; k++) {
            FUZZ_CHECK(s.fps == 0 || times[k] >= last, "time %g after %g", times[k], last);
            last = times[k];
        }
        total += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    tal_decode_opts o = {.threads = 1, .max_pixels = 128 * 128};
    tal_decoder *dec = NULL;
    tal_err err = {0};
    if (tal_decoder_open_memory(&dec, NAME, bytes, size, &o, &err) != TAL_OK) {
        FUZZ_CHECK(dec == NULL, "a decoder with an error");
        fuzz_check_names(&err, NAME);
        return 0;
    }
    const tal_video_info *in = tal_decoder_info(dec);
    FUZZ_CHECK(in->width > 0 && in->height > 0 && (int64_t)in->width * in->height <= 128 * 128,
               "%dx%d", in->width, in->height);
    FUZZ_CHECK(isfinite(in->duration_s) && in->duration_s >= 0, "duration %g", in->duration_s);
    tal_frame_transform tf;
    tal_transform_resize_center(&tf, in, 8, 8);
    float buf[T * 3 * 8 * 8];
    FUZZ_CHECK(tf.out_w == 8 && tf.out_h == 8, "%dx%d", tf.out_w, tf.out_h);
    tal_tensor out = tal_t4(buf, 3, T, tf.out_h, tf.out_w);

    double d = in->duration_s > 0 ? in->duration_s : 1;
    double times[T] = {0, d / 2, d / 4, d, 0.04, 3 * d / 4, d / 8, -1};
    if (tal_decoder_read_times(dec, times, T, &tf, out, &err) == TAL_OK) check_frames(out, T);
    else fuzz_check_names(&err, NAME);
    read_sequential(dec, &tf, out, (tal_sampling){.fps = 4});
    read_sequential(dec, &tf, out, (tal_sampling){.every_n = 2});
    int64_t n = 0;
    if (tal_decoder_count_frames(dec, &n, &err) == TAL_OK)
        FUZZ_CHECK(n > 0 && in->n_frames == n && in->n_frames_counted, "count %lld",
                   (long long)n);
    else fuzz_check_names(&err, NAME);
    tal_decoder_close(dec);
    return 0;
}
