/* app/cmd_frames.c: `re2tal frames VIDEO --fps 8 --size 224 --out DIR`: writes the frames the
 * model would see (sampled by presentation time, resized, optionally centre-cropped) as PNGs,
 * one line per frame on stdout: the file and the sample's time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/commands.h"
#include "decode/decode.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal frames VIDEO --out DIR [--fps F | --every N] [--size S] [--crop C]\n"
            "                     [--start SECONDS] [--max N] [--decode-threads N]\n"
            "Writes DIR/000000.png, 000001.png, ...: the frames at START + k / F seconds (each the\n"
            "last frame shown at that time), or every N-th decoded frame; short side resized to S\n"
            "(default 224), then a centre crop of C x C if given. Prints 'FILE TIME_S' per frame.\n"
            "Defaults: --fps 8, all frames to the end (--max limits the count).\n");
}

static int parse_num(const char *opt, const char *v, double lo, double *out) {
    char *end;
    double x = v ? strtod(v, &end) : 0;
    if (!v || *end || !(x >= lo) || x > 1e9) {
        fprintf(stderr, "re2tal frames: %s wants a number >= %g\n", opt, lo);
        return 0;
    }
    *out = x;
    return 1;
}

static int cmd_frames(int argc, char **argv) {
    const char *video = NULL, *dir = NULL;
    double fps = 8, every = 0, size = 224, crop = 0, start = 0, max = 1e9, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (tal_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--out")) {
            dir = v;
            ok = v != NULL;
        } else if (!strcmp(a, "--fps")) ok = parse_num(a, v, 1e-3, &fps);
        else if (!strcmp(a, "--every")) ok = parse_num(a, v, 1, &every);
        else if (!strcmp(a, "--size")) ok = parse_num(a, v, 1, &size);
        else if (!strcmp(a, "--crop")) ok = parse_num(a, v, 1, &crop);
        else if (!strcmp(a, "--start")) ok = parse_num(a, v, 0, &start);
        else if (!strcmp(a, "--max")) ok = parse_num(a, v, 1, &max);
        else if (!strcmp(a, "--decode-threads")) ok = parse_num(a, v, 0, &threads);
        else if (a[0] == '-') {
            fprintf(stderr, "re2tal frames: unknown option '%s'\n", a);
            ok = 0;
        } else if (!video) {
            video = a;
            continue;
        } else {
            fprintf(stderr, "re2tal frames: one video at a time ('%s' and '%s')\n", video, a);
            ok = 0;
        }
        if (!ok) {
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!video || !dir) {
        usage(stderr);
        return 2;
    }
    if (crop > size) {
        fprintf(stderr, "re2tal frames: --crop %g is larger than --size %g\n", crop, size);
        return 2;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "re2tal frames: %s: cannot create: %s\n", dir, strerror(errno));
        return 1;
    }
    tal_decode_opts opts = {.threads = (int)threads};
    tal_decoder *dec = NULL;
    tal_err err = {0};
    if (tal_decoder_open(&dec, video, &opts, &err) != TAL_OK) {
        fprintf(stderr, "re2tal frames: %s\n", err.msg);
        return 1;
    }
    tal_frame_transform tf;
    tal_transform_resize_center(&tf, tal_decoder_info(dec), (int)size, (int)crop);
    enum { T = 8 };
    float *buf = malloc(sizeof(float) * 3 * T * tf.out_h * tf.out_w);
    tal_sampling s = {.fps = every > 0 ? 0 : fps, .every_n = (int)every, .start_s = start};
    int rc = 1, n_read = T;
    int64_t written = 0;
    double times[T];
    if (!buf) {
        fprintf(stderr, "re2tal frames: out of memory\n");
        goto done;
    }
    if (tal_decoder_seq_begin(dec, &s, &err) != TAL_OK) goto fail;
    tal_tensor out = tal_t4(buf, 3, T, tf.out_h, tf.out_w);
    while (n_read == T && written < (int64_t)max) {
        if (tal_decoder_read(dec, &tf, out, &n_read, times, &err) != TAL_OK) goto fail;
        for (int k = 0; k < n_read && written < (int64_t)max; k++, written++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%06lld.png", dir, (long long)written);
            if (tal_frame_write_png(path, out, k, &tf, &err) != TAL_OK) goto fail;
            printf("%s %.3f\n", path, times[k]);
        }
    }
    const tal_decode_stats *st = tal_decoder_stats(dec);
    if (st->corrupt_packets)
        fprintf(stderr, "re2tal frames: %s: %lld corrupt packets skipped (first at %.2f s), %lld "
                "frames repaired\n", video, (long long)st->corrupt_packets, st->first_error_s,
                (long long)st->repaired);
    if (st->dropped_frames)
        fprintf(stderr, "re2tal frames: %s: %lld frames with an impossible timestamp dropped "
                "(first stamped %.2f s, the video lasts %.2f s)\n", video,
                (long long)st->dropped_frames, st->first_dropped_s,
                tal_decoder_info(dec)->duration_s);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "re2tal frames: %s\n", err.msg);
done:
    free(buf);
    tal_decoder_close(dec);
    return rc;
}
TAL_COMMAND("frames", 31, "write sampled, resized frames of a video as PNGs (what the model sees)",
            cmd_frames)
