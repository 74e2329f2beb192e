/* Videos whose metadata lies: an MPEG-TS with one packet stamped thousands of seconds past the
 * end (the frame is dropped and counted, so reading stays bounded by the real duration), a
 * faststart MP4 cut short (its header's frame count is an estimate, not exact), folders and
 * devices given as videos; and the memory-backed open the fuzzer uses gives what the file
 * gives. */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decode/decode.h"

static char g_path[1024];

static const char *tmp(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/hostile_%d_%s", TEST_TMP, (int)getpid(), name);
    return g_path;
}

static void ffmpeg(const char *args, const char *out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -y %s '%s' 2>&1", args, out);
    cr_assert_eq(system(cmd), 0, "ffmpeg failed: %s", cmd);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*n + 1);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spill(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* 33-bit PTS/DTS field of a PES header (5 bytes, marker bits kept). */
static uint64_t read_ts33(const unsigned char *p) {
    return (uint64_t)((p[0] >> 1) & 7) << 30 | (uint64_t)p[1] << 22 | (uint64_t)(p[2] >> 1) << 15 |
           (uint64_t)p[3] << 7 | (p[4] >> 1);
}
static void write_ts33(unsigned char *p, uint64_t v) {
    v &= (1ULL << 33) - 1;
    p[0] = (unsigned char)((p[0] & 0xf0) | ((v >> 30) & 7) << 1 | 1);
    p[1] = (unsigned char)(v >> 22);
    p[2] = (unsigned char)(((v >> 15) & 0x7f) << 1 | 1);
    p[3] = (unsigned char)(v >> 7);
    p[4] = (unsigned char)((v & 0x7f) << 1 | 1);
}

/* Adds add_s seconds to the PTS (and DTS) of video PES packet number `which` (-1: the last) of
 * the transport stream in b; returns how many video PES packets there are. */
static int shift_pes(unsigned char *b, size_t n, int which, double add_s) {
    int count = 0;
    unsigned char *target = NULL;
    for (size_t off = 0; off + 188 <= n; off += 188) {
        unsigned char *p = b + off;
        if (p[0] != 0x47 || !(p[1] & 0x40) || !(p[3] & 0x10)) continue; /* sync, start, payload */
        size_t i = 4 + ((p[3] & 0x20) ? 1u + p[4] : 0u);
        if (i + 14 > 188 || p[i] || p[i + 1] || p[i + 2] != 1) continue;
        if (p[i + 3] < 0xe0 || p[i + 3] > 0xef || !(p[i + 7] & 0x80)) continue; /* video, PTS */
        if (count == which || which < 0) target = p + i;
        count++;
    }
    cr_assert_not_null(target, "no video PES packet %d", which);
    uint64_t add = (uint64_t)(add_s * 90000);
    write_ts33(target + 9, read_ts33(target + 9) + add);
    if (target[7] & 0x40) write_ts33(target + 14, read_ts33(target + 14) + add);
    return count;
}

/* A 4 s, 25 fps MPEG-2 transport stream with one frame stamped 5000 s later. */
static const char *bitflipped_ts(const char *name, int which) {
    char clean[1024];
    snprintf(clean, sizeof clean, "%s", tmp("clean.ts"));
    ffmpeg("-f lavfi -i testsrc=size=64x48:rate=25:duration=4 -c:v mpeg2video -g 12 -f mpegts",
           clean);
    size_t n;
    unsigned char *b = slurp(clean, &n);
    cr_assert_eq(shift_pes(b, n, which, 5000), 100, "one PES packet per frame");
    const char *path = tmp(name);
    spill(path, b, n);
    free(b);
    return path;
}

/* Reads the whole video at 8 fps in chunks of 8; returns the frames read (stops at 10000). */
static int64_t read_at_8fps(tal_decoder *dec, double *last_t) {
    tal_frame_transform tf;
    tal_transform_resize_center(&tf, tal_decoder_info(dec), 16, 0);
    tal_tensor out = test_tensor(4, (int64_t[]){3, 8, tf.out_h, tf.out_w});
    tal_sampling s = {.fps = 8};
    tal_err err = {0};
    cr_assert_eq(tal_decoder_seq_begin(dec, &s, &err), TAL_OK);
    int64_t total = 0;
    int n = 8;
    double times[8];
    while (n == 8 && total < 10000) {
        cr_assert_eq(tal_decoder_read(dec, &tf, out, &n, times, &err), TAL_OK, "%s", err.msg);
        total += n;
        if (n) *last_t = times[n - 1];
    }
    return total;
}

Test(decode_hostile, a_frame_stamped_past_the_end_is_dropped_and_counted) {
    for (int last = 0; last < 2; last++) { /* a packet in the middle, then the last packet */
        const char *path = bitflipped_ts(last ? "flip_last.ts" : "flip_mid.ts", last ? -1 : 50);
        tal_decoder *dec = NULL;
        tal_err err = {0};
        cr_assert_eq(tal_decoder_open(&dec, path, NULL, &err), TAL_OK, "%s", err.msg);
        double last_t = -1;
        int64_t n = read_at_8fps(dec, &last_t);
        cr_expect(n >= 31 && n <= 33, "%s: 4 s at 8 fps is 32 frames, read %lld (last at %.2f s)",
                  path, (long long)n, last_t);
        cr_expect(last_t < 4.5, "%s: last sample at %.2f s", path, last_t);
        const tal_decode_stats *st = tal_decoder_stats(dec);
        cr_expect_eq(st->dropped_frames, 1, "%s", path);
        cr_expect(st->first_dropped_s > 4000, "%s: dropped at %.1f s", path, st->first_dropped_s);
        int64_t count = 0;
        cr_assert_eq(tal_decoder_count_frames(dec, &count, &err), TAL_OK, "%s", err.msg);
        cr_expect_eq(count, 99, "%s: 100 frames less the one dropped", path);
        tal_decoder_close(dec);
    }
}

Test(decode_hostile, rewinding_a_transport_stream_keeps_its_first_gop) {
    const char *path = tmp("gop.ts");
    ffmpeg("-f lavfi -i testsrc=size=64x48:rate=25:duration=4 -c:v mpeg2video -g 12 -f mpegts",
           path);
    tal_decode_opts o = {.count_frames = 1};
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, path, &o, &err), TAL_OK, "%s", err.msg);
    cr_expect_eq(tal_decoder_info(dec)->n_frames, 100, "ffprobe -count_frames says 100");
    cr_expect_eq(tal_decoder_stats(dec)->dropped_frames, 0);
    tal_decoder_close(dec);
}

Test(decode_hostile, a_faststart_mp4_cut_short_has_an_estimated_count) {
    char whole[1024];
    snprintf(whole, sizeof whole, "%s", tmp("faststart.mp4"));
    ffmpeg("-f lavfi -i testsrc=size=64x48:rate=25:duration=8 -c:v libx264 -g 25 "
           "-movflags +faststart",
           whole);
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&dec, whole, NULL, &err), TAL_OK, "%s", err.msg);
    cr_expect_eq(tal_decoder_info(dec)->n_frames, 200);
    cr_expect(tal_decoder_info(dec)->n_frames_exact, "the whole file: the header holds");
    cr_expect_not(tal_decoder_info(dec)->n_frames_counted);
    tal_decoder_close(dec);

    size_t n;
    unsigned char *b = slurp(whole, &n);
    const char *cut = tmp("faststart_cut.mp4");
    spill(cut, b, n / 2);
    free(b);
    cr_assert_eq(tal_decoder_open(&dec, cut, NULL, &err), TAL_OK, "%s", err.msg);
    const tal_video_info *in = tal_decoder_info(dec);
    cr_expect_not(in->n_frames_exact, "the header's 200 frames are not all in the file");
    cr_expect(in->n_frames < 200 && in->n_frames > 20, "frames indexed in the file: %lld",
              (long long)in->n_frames);
    cr_expect(in->duration_s < 8 && in->duration_s > 0.5, "duration %.2f s", in->duration_s);
    int64_t counted = 0;
    cr_assert_eq(tal_decoder_count_frames(dec, &counted, &err), TAL_OK, "%s", err.msg);
    cr_expect(in->n_frames_exact && in->n_frames_counted);
    cr_expect(counted <= in->n_frames + 2 && counted > 20, "counted %lld", (long long)counted);
    tal_decoder_close(dec);
}

/* Runs `re2tal ARGS` in TEST_TMP with its output in out_name; returns the exit status and
 * the output in *text (caller frees). */
static int re2tal_in_tmp(char **text, const char *out_name, const char *args) {
    int rc = test_sh_in(TEST_TMP, "%s %s > %s 2>&1", RE2TAL_BIN, args, out_name);
    *text = test_slurp_in(TEST_TMP, out_name);
    cr_assert_not_null(*text);
    return rc;
}

Test(decode_hostile, frames_and_probe_stay_bounded_and_say_so) {
    if (access(RE2TAL_BIN, X_OK) != 0) cr_skip_test("re2tal binary not built");
    char ts[1024], dir[1024], args[4096], *out;
    snprintf(ts, sizeof ts, "%s", bitflipped_ts("cli_flip.ts", 50));
    snprintf(dir, sizeof dir, "%s", tmp("cli_frames"));
    snprintf(args, sizeof args, "frames '%s' --fps 8 --size 16 --out '%s'", ts, dir);
    cr_assert_eq(re2tal_in_tmp(&out, "hostile_frames.txt", args), 0, "%s", out);
    cr_expect(strstr(out, "1 frames with an impossible timestamp dropped (first stamped 50"),
              "the dropped frame is reported: %s", out);
    free(out);
    int pngs = 0;
    for (int k = 0; k < 100; k++) {
        char png[1200];
        snprintf(png, sizeof png, "%s/%06d.png", dir, k);
        pngs += access(png, F_OK) == 0;
    }
    cr_expect(pngs >= 31 && pngs <= 33, "PNGs written: %d", pngs);

    snprintf(args, sizeof args, "probe '%s'", ts);
    cr_assert_eq(re2tal_in_tmp(&out, "hostile_probe.txt", args), 0, "%s", out);
    cr_expect(strstr(out, "\"n_frames_exact\":false,\"n_frames_from\":\"estimate\""), "%s", out);
    cr_expect(strstr(out, "\"duration_s\":4,"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "probe --count '%s'", ts);
    cr_assert_eq(re2tal_in_tmp(&out, "hostile_count.txt", args), 0, "%s", out);
    cr_expect(strstr(out, "\"n_frames\":99,\"n_frames_exact\":true,\"n_frames_from\":\"count\","
                          "\"frames_dropped\":1"), "%s", out);
    free(out);
}

Test(decode_hostile, folders_and_devices_are_no_videos) {
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_expect_eq(tal_decoder_open(&dec, TEST_TMP, NULL, &err), TAL_EIO);
    cr_expect_null(dec);
    cr_expect(strstr(err.msg, TEST_TMP) && strstr(err.msg, "is a folder"), "%s", err.msg);
    cr_expect_eq(tal_decoder_open(&dec, "/dev/zero", NULL, &err), TAL_EIO);
    cr_expect(strstr(err.msg, "/dev/zero: is a character device"), "%s", err.msg);
}

Test(decode_hostile, a_video_in_memory_reads_as_the_file) {
    char path[1024];
    snprintf(path, sizeof path, "%s", tmp("memory.mp4"));
    ffmpeg("-f lavfi -i testsrc2=size=64x48:rate=25:duration=2 -c:v libx264 -bf 2", path);
    size_t n;
    unsigned char *b = slurp(path, &n);
    tal_decoder *file = NULL, *mem = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_decoder_open(&file, path, NULL, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_decoder_open_memory(&mem, "in_memory.mp4", b, n, NULL, &err), TAL_OK, "%s",
                 err.msg);
    const tal_video_info *a = tal_decoder_info(file), *m = tal_decoder_info(mem);
    cr_expect_eq(a->n_frames, m->n_frames);
    cr_expect_eq(a->duration_s, m->duration_s);
    cr_expect_str_eq(tal_decoder_path(mem), "in_memory.mp4");
    tal_frame_transform tf;
    tal_transform_resize_center(&tf, a, 32, 0);
    double times[5] = {1.5, 0.0, 0.52, 1.96, 0.04}; /* seeks back and forth */
    tal_tensor x = test_tensor(4, (int64_t[]){3, 5, tf.out_h, tf.out_w});
    tal_tensor y = test_tensor_like(x);
    cr_assert_eq(tal_decoder_read_times(file, times, 5, &tf, x, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_decoder_read_times(mem, times, 5, &tf, y, &err), TAL_OK, "%s", err.msg);
    expect_close(y, x, 0, 0);
    int64_t c1, c2;
    cr_assert_eq(tal_decoder_count_frames(file, &c1, &err), TAL_OK);
    cr_assert_eq(tal_decoder_count_frames(mem, &c2, &err), TAL_OK);
    cr_expect_eq(c1, 50);
    cr_expect_eq(c2, 50);
    tal_decoder_close(file);
    tal_decoder_close(mem);

    cr_expect_eq(tal_decoder_open_memory(&mem, "garbage.mp4", b + 100, 300, NULL, &err),
                 TAL_EFORMAT);
    cr_expect_null(mem);
    cr_expect(strstr(err.msg, "garbage.mp4"), "%s", err.msg);
    cr_expect_eq(tal_decoder_open_memory(&mem, "empty.mp4", b, 0, NULL, &err), TAL_EFORMAT);
    free(b);
}

/* fuzz_decode_video: 11 bytes that libavformat takes for a JPEG XL codestream made libjxl 0.7
 * dereference NULL inside avcodec_send_packet; still images are no videos, and JPEG XL is never
 * opened. */
Test(decode_hostile, still_images_and_jpeg_xl_are_refused) {
    static const unsigned char jxl[11] = {0xff, 0x0a, 'S', 'a', 't', 'a', 4, 0, 0, 'S', ' '};
    tal_decoder *dec = NULL;
    tal_err err = {0};
    cr_expect_eq(tal_decoder_open_memory(&dec, "crash.mp4", jxl, sizeof jxl, NULL, &err),
                 TAL_EFORMAT);
    cr_expect_null(dec);
    cr_expect(strstr(err.msg, "crash.mp4: a still image"), "%s", err.msg);
    const char *path = tmp("frame.png");
    ffmpeg("-f lavfi -i testsrc=size=32x32 -frames:v 1", path);
    cr_expect_eq(tal_decoder_open(&dec, path, NULL, &err), TAL_EFORMAT);
    cr_expect(strstr(err.msg, "frame.png: a still image (png_pipe), not a video"), "%s", err.msg);
    path = tmp("clip.gif"); /* an animated GIF is a video */
    ffmpeg("-f lavfi -i testsrc=size=32x32:rate=5:duration=1", path);
    cr_expect_eq(tal_decoder_open(&dec, path, NULL, &err), TAL_OK, "%s", err.msg);
    tal_decoder_close(dec);
}
