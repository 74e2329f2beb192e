/* app/cmd_bench.c: `re2tal bench WHAT ...`: one entry per benchmark in BENCHES below (adding
 * `bench X` is one line there plus its function). `bench decode VIDEO` times the reader: pure
 * decode, the training path (decode + resize to the short side + normalise to float), and the
 * latency of random 16-frame clips (seek + decode) against decoding from the keyframe before. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/commands.h"
#include "decode/decode.h"

int tal_cmd_bench_backbone(int argc, char **argv); /* app/cmd_bench_backbone.c */
int tal_cmd_bench_allreduce(int argc, char **argv); /* app/cmd_bench_allreduce.c */
static int bench_decode(int argc, char **argv);

static const struct {
    const char *name;
    tal_command_fn run; /* gets argv[0] = the benchmark's name */
    const char *summary;
} BENCHES[] = {
    {"decode", bench_decode, "frames/s of decode + resize + normalise, random-clip latency"},
    {"backbone", tal_cmd_bench_backbone, "training-step time and memory of a Swin stage"},
    {"allreduce", tal_cmd_bench_allreduce, "gradient all-reduce time over MPI ranks (mpirun)"},
};
enum { N_BENCHES = sizeof BENCHES / sizeof BENCHES[0] };

static void usage(FILE *out) {
    fprintf(out, "usage: re2tal bench WHAT [ARGS...]   (re2tal bench WHAT --help for one)\n");
    for (int i = 0; i < N_BENCHES; i++)
        fprintf(out, "  %-10s %s\n", BENCHES[i].name, BENCHES[i].summary);
}

static int cmd_bench(int argc, char **argv) {
    if (argc < 2 || tal_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < N_BENCHES; i++)
        if (!strcmp(argv[1], BENCHES[i].name)) return BENCHES[i].run(argc - 1, argv + 1);
    fprintf(stderr, "re2tal bench: unknown benchmark '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
TAL_COMMAND("bench", 940, "benchmarks: bench decode VIDEO, bench backbone (--help lists them)",
            cmd_bench)

/* ------------------------------------------------------------------------ bench decode --- */

static void decode_usage(FILE *out) {
    fprintf(out,
            "usage: re2tal bench decode VIDEO [--size S] [--threads N] [--clips K] [--repeat R]\n"
            "Decodes the whole file three ways and prints one JSON line, then frames/s:\n"
            "  decode_fps: decode only (the ceiling);\n"
            "  fps: the training path, every frame at the native rate, short side resized to S\n"
            "       (default 224) with libswscale and normalised to float [3, 1, H, W];\n"
            "  clip_ms: median latency of K (default 30) random 16-frame clips at the native\n"
            "       rate (seek + decode + convert) on one open decoder, and clip_ideal_ms, the\n"
            "       median cost of decoding the same frames from the keyframe before (frames\n"
            "       the reader decoded x decode-only time + 16 conversions); clip_keyframe_ideal_ms:\n"
            "       every frame from the keyframe before the clip to its end (no frame skipped)\n"
            "       x decode-only time + 16 conversions.\n"
            "--threads N: FFmpeg frame/slice threads (default 0: automatic).\n"
            "--repeat R: R rounds of (decode-only pass, training-path pass), alternating, best\n"
            "       of each (default 3): on a loaded machine the two see the same load.\n"
            "  *_cpu: the same from the process's CPU time (all threads), steadier under load.\n");
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int count_frame(int64_t index, double pts_s, tal_tensor frame, void *ctx) {
    (void)index, (void)pts_s, (void)frame;
    ++*(int64_t *)ctx;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_decode(int argc, char **argv) {
    const char *video = NULL;
    int size = 224, threads = 0, clips = 30, repeat = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *dst = !strcmp(a, "--size") ? &size : !strcmp(a, "--threads") ? &threads
                                                : !strcmp(a, "--clips")   ? &clips
                                                : !strcmp(a, "--repeat")  ? &repeat
                                                                          : NULL;
        if (tal_is_help(a)) {
            decode_usage(stdout);
            return 0;
        } else if (dst) {
            char *end;
            long x = v ? strtol(v, &end, 10) : -1;
            if (!v || *end || x < (dst == &threads ? 0 : 1) || x > 100000) {
                fprintf(stderr, "re2tal bench decode: %s wants a whole number\n", a);
                return 2;
            }
            *dst = (int)x;
            i++;
        } else if (a[0] != '-' && !video) {
            video = a;
        } else {
            fprintf(stderr, "re2tal bench decode: unexpected '%s'\n", a);
            decode_usage(stderr);
            return 2;
        }
    }
    if (!video) {
        decode_usage(stderr);
        return 2;
    }
    tal_decode_opts opts = {.threads = threads};
    tal_decoder *dec = NULL;
    tal_err err = {0};
    float *buf = NULL;
    int rc = 1;
    if (tal_decoder_open(&dec, video, &opts, &err) != TAL_OK) goto fail;
    const tal_video_info *in = tal_decoder_info(dec);
    tal_frame_transform tf;
    tal_transform_resize_center(&tf, in, size, 0);
    enum { CLIP = 16 };
    buf = malloc(sizeof(float) * 3 * CLIP * tf.out_h * tf.out_w);
    if (!buf) {
        tal_err_set(&err, TAL_ENOMEM, "out of memory");
        goto fail;
    }
    tal_tensor frame = tal_t4(buf, 3, 1, tf.out_h, tf.out_w);

    int64_t n_decode = 0, n_full = 0;
    double decode_s = 1e30, full_s = 1e30, decode_cpu = 1e30, full_cpu = 1e30, t0, c0;
    for (int r = 0; r < repeat; r++) { /* A B A B ...: best of each */
        n_decode = n_full = 0;
        t0 = now_s(), c0 = cpu_s();
        if (tal_decoder_for_each(dec, NULL, frame, count_frame, &n_decode, &err) != TAL_OK)
            goto fail;
        decode_s = fmin(decode_s, now_s() - t0), decode_cpu = fmin(decode_cpu, cpu_s() - c0);
        t0 = now_s(), c0 = cpu_s();
        if (tal_decoder_for_each(dec, &tf, frame, count_frame, &n_full, &err) != TAL_OK)
            goto fail;
        full_s = fmin(full_s, now_s() - t0), full_cpu = fmin(full_cpu, cpu_s() - c0);
    }
    double per_decode = decode_s / n_decode, per_full = full_s / n_full;

    /* random clips: 16 frames at the native rate from a uniform start, in random order */
    double fps = in->avg_fps > 0 ? in->avg_fps : in->real_fps > 0 ? in->real_fps : 25;
    double span = n_decode / fps - CLIP / fps;
    double *lat = calloc((size_t)clips * 5, sizeof *lat), *ideal = lat + clips;
    double *lat_cpu = lat + 2 * clips, *ideal_cpu = lat + 3 * clips, *ideal_kf = lat + 4 * clips;
    double per_decode_cpu = decode_cpu / n_decode, per_full_cpu = full_cpu / n_full;
    if (!lat) {
        tal_err_set(&err, TAL_ENOMEM, "out of memory");
        goto fail;
    }
    tal_rng_key key = {2024, 0, 0};
    tal_tensor clip = tal_t4(buf, 3, CLIP, tf.out_h, tf.out_w);
    for (int c = 0; c < clips; c++) {
        double times[CLIP], start = span > 0 ? span * tal_rng_uniform(key, (uint64_t)c) : 0;
        tal_times_at_fps(times, CLIP, start, fps);
        int64_t before = tal_decoder_stats(dec)->frames_decoded;
        t0 = now_s(), c0 = cpu_s();
        if (tal_decoder_read_times(dec, times, CLIP, &tf, clip, &err) != TAL_OK) {
            free(lat);
            goto fail;
        }
        lat[c] = now_s() - t0, lat_cpu[c] = cpu_s() - c0;
        int64_t decoded = tal_decoder_stats(dec)->frames_decoded - before;
        ideal[c] = decoded * per_decode + CLIP * (per_full - per_decode);
        ideal_cpu[c] = decoded * per_decode_cpu + CLIP * (per_full_cpu - per_decode_cpu);
        /* every frame from the keyframe before the clip to its end (+ one lookahead), each at
         * the decode-only cost: the work of reading the clip without skipping any frame */
        double kf = 0;
        tal_decoder_keyframe_before(dec, times[0], &kf);
        double spanned = floor((times[CLIP - 1] - kf) * fps + 1e-6) + 2;
        ideal_kf[c] = spanned * per_decode + CLIP * (per_full - per_decode);
    }
    qsort(lat, (size_t)clips, sizeof *lat, cmp_double);
    qsort(ideal, (size_t)clips, sizeof *ideal, cmp_double);
    qsort(lat_cpu, (size_t)clips, sizeof *lat, cmp_double);
    qsort(ideal_cpu, (size_t)clips, sizeof *ideal, cmp_double);
    qsort(ideal_kf, (size_t)clips, sizeof *ideal, cmp_double);
    double ideal_kf_ms = 1e3 * ideal_kf[clips / 2];
    double clip_ms = 1e3 * lat[clips / 2], ideal_ms = 1e3 * ideal[clips / 2];
    double clip_cpu_ms = 1e3 * lat_cpu[clips / 2], ideal_cpu_ms = 1e3 * ideal_cpu[clips / 2];
    free(lat);
    printf("{\"video\": \"%s\", \"width\": %d, \"height\": %d, \"codec\": \"%s\", \"frames\": %lld, "
           "\"out\": [%d, %d], \"threads\": %d, \"decode_fps\": %.1f, \"fps\": %.1f, "
           "\"fps_vs_decode\": %.3f, \"clip_ms\": %.2f, \"clip_ideal_ms\": %.2f, "
           "\"clip_vs_ideal\": %.3f, \"decode_fps_cpu\": %.1f, \"fps_cpu\": %.1f, "
           "\"fps_vs_decode_cpu\": %.3f, \"clip_cpu_ms\": %.2f, \"clip_ideal_cpu_ms\": %.2f, "
           "\"clip_vs_ideal_cpu\": %.3f, \"clip_keyframe_ideal_ms\": %.2f, "
           "\"clip_vs_keyframe_ideal\": %.3f}\n",
           video, in->width, in->height, in->codec, (long long)n_full, tf.out_w, tf.out_h, threads,
           n_decode / decode_s, n_full / full_s, per_decode / per_full, clip_ms, ideal_ms,
           clip_ms / ideal_ms, n_decode / decode_cpu, n_full / full_cpu,
           (decode_cpu / n_decode) / (full_cpu / n_full), clip_cpu_ms, ideal_cpu_ms,
           clip_cpu_ms / ideal_cpu_ms, ideal_kf_ms, clip_ms / ideal_kf_ms);
    printf("%.1f frames/s\n", n_full / full_s);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "re2tal bench decode: %s\n", err.msg);
done:
    free(buf);
    tal_decoder_close(dec);
    return rc;
}
