/* app/cmd_synth.c: `re2tal synth`: writes the built-in synthetic action dataset (encoded videos
 * + ActivityNet-format annotations) with tal_synth_generate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/commands.h"
#include "app/progress.h"
#include "data/data.h"

static void usage(FILE *out) {
    tal_synth_opts d;
    tal_synth_opts_default(&d);
    fprintf(out,
            "usage: re2tal synth --out DIR [options]\n\n"
            "Renders a synthetic temporal action localization dataset: DIR/videos/<id>.mp4,\n"
            "DIR/annotations.json (ActivityNet format, subsets training/validation) and\n"
            "DIR/classes.txt. Classes come in pairs that differ only in motion direction.\n"
            "The same options always give the same bytes.\n\n"
            "options:\n"
            "  --out DIR          output folder (created)\n"
            "  --videos N         number of videos (%d)\n"
            "  --classes K        number of classes, 2..%d (%d)\n"
            "  --seed S           random seed (%llu)\n"
            "  --size PX          frame width = height, even (%d)\n"
            "  --fps F            frame rate (%g)\n"
            "  --min-len S        shortest video in seconds (%g)\n"
            "  --max-len S        longest video in seconds (%g)\n"
            "  --min-action S     shortest action in seconds (%g)\n"
            "  --max-action S     longest action in seconds (%g)\n"
            "  --max-instances N  most actions per video, 0..%d (%d)\n"
            "  --val-fraction F   share of validation videos, 0..0.5 (%g)\n"
            "  --codec NAME       libavcodec encoder (default: %s)\n"
            "  --quiet            no progress line\n",
            d.n_videos, TAL_SYNTH_MAX_CLASSES, d.n_classes, (unsigned long long)d.seed, d.size,
            d.fps, d.min_len_s, d.max_len_s, d.min_action_s, d.max_action_s,
            TAL_SYNTH_MAX_INSTANCES, d.max_instances, d.val_fraction,
            tal_synth_default_codec() ? tal_synth_default_codec() : "none found");
}

static int parse_int(const char *opt, const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < -2147483647L || v > 2147483647L) {
        fprintf(stderr, "re2tal synth: %s wants a whole number, got '%s'\n", opt, s);
        return 0;
    }
    *out = (int)v;
    return 1;
}

static int parse_double(const char *opt, const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || v != v) {
        fprintf(stderr, "re2tal synth: %s wants a number, got '%s'\n", opt, s);
        return 0;
    }
    *out = v;
    return 1;
}

static void on_progress(int n_done, int n_total, void *ctx) {
    (void)n_total;
    tal_progress_update((tal_progress *)ctx, n_done, NULL);
}

static int cmd_synth(int argc, char **argv) {
    tal_synth_opts o;
    tal_synth_opts_default(&o);
    const char *out_dir = NULL;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (tal_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        } else if (!v) {
            fprintf(stderr, "re2tal synth: unknown option or missing value: '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!strcmp(a, "--out")) {
            out_dir = v;
        } else if (!strcmp(a, "--videos")) {
            ok = parse_int(a, v, &o.n_videos);
        } else if (!strcmp(a, "--classes")) {
            ok = parse_int(a, v, &o.n_classes);
        } else if (!strcmp(a, "--seed")) {
            char *end;
            o.seed = strtoull(v, &end, 10);
            if (!*v || *end || v[0] == '-') {
                fprintf(stderr, "re2tal synth: --seed wants a whole number >= 0, got '%s'\n", v);
                ok = 0;
            }
        } else if (!strcmp(a, "--size")) {
            ok = parse_int(a, v, &o.size);
        } else if (!strcmp(a, "--fps")) {
            ok = parse_double(a, v, &o.fps);
        } else if (!strcmp(a, "--min-len")) {
            ok = parse_double(a, v, &o.min_len_s);
        } else if (!strcmp(a, "--max-len")) {
            ok = parse_double(a, v, &o.max_len_s);
        } else if (!strcmp(a, "--min-action")) {
            ok = parse_double(a, v, &o.min_action_s);
        } else if (!strcmp(a, "--max-action")) {
            ok = parse_double(a, v, &o.max_action_s);
        } else if (!strcmp(a, "--max-instances")) {
            ok = parse_int(a, v, &o.max_instances);
        } else if (!strcmp(a, "--val-fraction")) {
            ok = parse_double(a, v, &o.val_fraction);
        } else if (!strcmp(a, "--codec")) {
            o.codec = v;
        } else {
            fprintf(stderr, "re2tal synth: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) return 2;
        i++;
    }
    if (!out_dir) {
        fprintf(stderr, "re2tal synth: --out DIR is required\n");
        usage(stderr);
        return 2;
    }
    tal_err err = {0};
    if (tal_synth_check_opts(&o, &err) != TAL_OK) {
        fprintf(stderr, "re2tal %s\n", err.msg);
        return 2;
    }
    tal_progress prog;
    tal_progress_start(&prog, stderr, "synth", "videos", o.n_videos, quiet);
    double t0 = tal_now_s();
    if (tal_synth_generate(&o, out_dir, on_progress, &prog, &err) != TAL_OK) {
        tal_progress_finish(&prog, "failed");
        fprintf(stderr, "re2tal synth: %s\n", err.msg);
        return 1;
    }
    tal_progress_finish(&prog, NULL);
    if (!quiet)
        fprintf(stderr, "re2tal synth: %d videos, %d classes, codec %s, in %.1f s -> %s\n",
                o.n_videos, o.n_classes, o.codec ? o.codec : tal_synth_default_codec(),
                tal_now_s() - t0, out_dir);
    return 0;
}
TAL_COMMAND("synth", 20, "write the built-in synthetic action dataset (videos + annotations)",
            cmd_synth)
