/* app/cmd_demo.c: `re2tal demo`, what `make demo` runs: render the synthetic dataset, train a
 * small reversible Swin + ActionFormer end to end on it, detect actions in the held-out videos
 * and score them: demo-out/{data,run,results.json,srt/,eval.json,report.html}. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/checkpoint.h"
#include "app/commands.h"
#include "app/device.h"
#include "app/progress.h"
#include "app/report.h"
#include "app/trainer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal demo [--config configs/demo.json] [--out demo-out] [--videos N]\n"
            "                   [--classes K] [--set KEY=VALUE ...] [--device D] [--quiet]\n\n"
            "The whole pipeline on built-in data, on a CPU (--device cuda: a GPU): renders the\n"
            "synthetic action dataset (re2tal synth: classes that differ only in motion\n"
            "direction), trains a small reversible Video Swin + ActionFormer head end to end\n"
            "from the encoded videos, detects actions in the held-out videos and evaluates\n"
            "them. Writes into OUT:\n"
            "data/ (videos + annotations), run/ (checkpoints, log), results.json, srt/ (subtitles\n"
            "of the top segments per video), eval.json (the mAP table, as re2tal eval --json) and\n"
            "report.html (re2tal report of the results, with the training curves).\n");
}

static void on_synth(int done, int total, void *ctx) {
    tal_progress_update(ctx, done, NULL);
    (void)total;
}

/* Every option that shapes the rendered set, one line: kept beside the data so that a later
 * run with other options (another --videos, a newer default) renders again instead of
 * training on the old set. */
static void synth_signature(const tal_synth_opts *so, char *buf, size_t size) {
    snprintf(buf, size,
             "videos %d classes %d seed %llu size %d fps %.9g length %.9g %.9g action %.9g %.9g "
             "instances %d val %.9g codec %s\n",
             so->n_videos, so->n_classes, (unsigned long long)so->seed, so->size, so->fps,
             so->min_len_s, so->max_len_s, so->min_action_s, so->max_action_s, so->max_instances,
             so->val_fraction, so->codec ? so->codec : "default");
}

/* 1 if the set's annotations exist and options_path holds these options. */
static int synth_matches(const char *options_path, const char *annotations,
                         const char *signature) {
    if (access(annotations, R_OK) != 0) return 0;
    tal_err ignore = {0};
    char *kept = tal_read_file(options_path, &ignore);
    int same = kept && !strcmp(kept, signature);
    free(kept);
    return same;
}

static int cmd_demo(int argc, char **argv) {
    const char *config = "configs/demo.json", *out = "demo-out";
    int quiet = 0, n_sets = 0;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    tal_synth_opts so;
    tal_synth_opts_default(&so);
    so.n_videos = 480;
    so.n_classes = 4;
    so.size = 64;
    so.min_len_s = 16;
    so.max_len_s = 40;
    so.min_action_s = 2;
    so.max_action_s = 10;
    so.max_instances = 3;
    so.seed = 2023;
    for (int i = 1; i < argc; i++) {
        int dev_ok;
        if (tal_device_option_parse("demo", argc, argv, &i, &dev_ok)) {
            if (dev_ok) continue;
            free(sets);
            return 2;
        }
        if (tal_is_help(argv[i])) {
            usage(stdout);
            free(sets);
            return 0;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[++i];
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--videos") && i + 1 < argc) {
            so.n_videos = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--classes") && i + 1 < argc) {
            so.n_classes = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            sets[n_sets++] = argv[++i];
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else {
            fprintf(stderr, "re2tal demo: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            free(sets);
            return 2;
        }
    }
    double t0 = tal_now_s();
    tal_err err = {0};
    int code = 1;
    char data_dir[1024], path[1200];
    mkdir(out, 0755);
    snprintf(data_dir, sizeof data_dir, "%s/data", out);
    tal_run_config rc;
    if (tal_run_config_read(&rc, config, sets, n_sets, &err) != TAL_OK) goto fail;
    snprintf(rc.annotations, sizeof rc.annotations, "%s/annotations.json", data_dir);
    snprintf(rc.videos, sizeof rc.videos, "%s/videos", data_dir);
    snprintf(rc.out_dir, sizeof rc.out_dir, "%s/run", out);
    /* 1. data (kept between runs: the same options give the same bytes) */
    char signature[512];
    synth_signature(&so, signature, sizeof signature);
    snprintf(path, sizeof path, "%s/synth_options.txt", data_dir);
    if (!synth_matches(path, rc.annotations, signature)) {
        if (!quiet && access(rc.annotations, R_OK) == 0)
            fprintf(stderr, "1/4 %s was rendered with other options: rendering it again\n",
                    data_dir);
        tal_progress bar;
        tal_progress_start(&bar, stderr, "1/4 render synthetic videos", "videos", so.n_videos, quiet);
        if (tal_synth_generate(&so, data_dir, on_synth, &bar, &err) != TAL_OK) goto fail;
        tal_progress_finish(&bar, NULL);
        if (tal_write_file_atomic(path, signature, &err) != TAL_OK) goto fail;
    } else if (!quiet) {
        fprintf(stderr, "1/4 synthetic videos: reusing %s (same options)\n", data_dir);
    }
    /* 2. train */
    if (!quiet) fprintf(stderr, "2/4 train end to end (config %s)\n", config);
    tal_train_opts to = {.config_path = config, .quiet = quiet};
    tal_train_result tr;
    if (tal_train_run(&rc, &to, &tr, &err) != TAL_OK) goto fail;
    if (tr.interrupted) {
        code = 130;
        goto out;
    }
    /* 3. detect on the held-out videos with the best weights */
    if (!quiet) fprintf(stderr, "3/4 detect actions in the validation videos\n");
    {
        tal_run_data d;
        if (tal_run_data_load(&d, &rc, &err) != TAL_OK) goto fail;
        tal_model m;
        tal_status st = tal_model_create(&m, &rc, d.ds->n_classes, 0, &err);
        if (!st) {
            int unused = 0;
            snprintf(path, sizeof path, "%s/best/model.safetensors", rc.out_dir);
            st = tal_params_load(m.params, path, NULL, NULL, 0, &unused, &err);
        }
        char results[1100], srt[1100];
        snprintf(results, sizeof results, "%s/results.json", out);
        snprintf(srt, sizeof srt, "%s/srt", out);
        int skipped = 0;
        if (!st) st = tal_infer_videos(&m, &rc, &d, d.val, d.n_val, results, srt, quiet, &skipped, &err);
        tal_model_destroy(&m);
        tal_run_data_free(&d);
        if (st) goto fail;
        /* 4. evaluate */
        if (!quiet) fprintf(stderr, "4/4 evaluate\n");
        char report[1100];
        snprintf(report, sizeof report, "%s/eval.json", out);
        double avg = -1, at05 = -1;
        if (tal_evaluate_results(&rc, results, report, stdout, &avg, &at05, &err) != TAL_OK) goto fail;
        snprintf(report, sizeof report, "%s/report.html", out);
        if (tal_evaluate_report(&rc, results, report, &err) != TAL_OK) goto fail;
        double minutes = (tal_now_s() - t0) / 60;
        printf("\ndemo: mAP@0.5 %.3f (goal >= 0.70), average mAP %.3f, in %.1f minutes "
               "(goal <= 15)\n", at05, avg, minutes);
        printf("results: %s/results.json, subtitles: %s/srt/, table: %s/eval.json, report: %s, "
               "run: %s\n", out, out, out, report, rc.out_dir);
    }
    code = 0;
    goto out;
fail:
    fprintf(stderr, "re2tal demo: %s\n", err.msg);
out:
    free(sets);
    return code;
}
TAL_COMMAND("demo", 10, "the whole pipeline on built-in synthetic videos (make demo)", cmd_demo)
