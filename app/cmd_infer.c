/* app/cmd_infer.c: `re2tal infer --model DIR VIDEO... [--out results.json] [--srt DIR]`: raw
 * videos in, ActivityNet-format results out; corrupt videos are skipped and reported. Under
 * mpirun the videos are shared among the ranks (tal_infer_videos). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/commands.h"
#include "app/device.h"
#include "app/dist.h"
#include "app/model_dir.h"
#include "app/trainer.h"
#include "app/video_list.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal infer --model RUN_DIR VIDEO_OR_FOLDER... [--list FILE]\n"
            "                    [--out results.json] [--srt DIR]\n"
            "                    [--classifier FILE [--classifier-topk K]] [--device D]\n"
            "                    [--quiet] [--allow-nonfinite]\n\n"
            "Finds action segments in raw videos with a trained model (a run folder of re2tal\n"
            "train: best/ weights, else last/), any length: test windows are decoded one after\n"
            "another, so memory stays bounded. Writes ActivityNet results JSON (default\n"
            "results.json) and, with --srt, one subtitle file per video showing the top segments\n"
            "in any player. Unreadable videos are reported and skipped (exit 1 if any).\n\n"
            "A class-agnostic model (data.class_agnostic 1, the ActivityNet recipe) finds\n"
            "\"action\" segments; --classifier FILE (video-level class scores, the CUHK JSON\n"
            "format {\"class\": [...], \"results\": {id: [scores]}}) turns each into the video's\n"
            "top K classes (default 2), score x class score. Default: the run's\n"
            "eval.classifier.\n\n"
            "Videos: files, folders (their video files in name order) and --list FILE (one path\n"
            "per line). Under `mpirun -np N` each rank takes a share balanced by duration and\n"
            "writes its videos' subtitles; rank 0 writes the results file, the same bytes as one\n"
            "process writes.\n"
            "Weights holding NaN or Inf (a diverged run) are refused unless --allow-nonfinite.\n");
}

static int cmd_infer(int argc, char **argv) {
    const char *model = NULL, *out = "results.json", *srt = NULL, *classifier = NULL;
    int quiet = 0, topk = 0, rank = tal_dist_shard().rank;
    tal_video_list list = {0};
    tal_err err = {0};
    for (int i = 1; i < argc; i++) {
        int dev_ok;
        if (tal_device_option_parse("infer", argc, argv, &i, &dev_ok)) {
            if (dev_ok) continue;
            tal_video_list_free(&list);
            return 2;
        }
        if (tal_is_help(argv[i])) {
            usage(stdout);
            tal_video_list_free(&list);
            return 0;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(argv[i], "--list") && i + 1 < argc) {
            if (tal_video_list_add_file(&list, argv[++i], &err) != TAL_OK) break;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--srt") && i + 1 < argc) {
            srt = argv[++i];
        } else if (!strcmp(argv[i], "--classifier") && i + 1 < argc) {
            classifier = argv[++i];
        } else if (!strcmp(argv[i], "--classifier-topk") && i + 1 < argc) {
            topk = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "re2tal infer: unknown option '%s'\n", argv[i]);
            usage(stderr);
            tal_video_list_free(&list);
            return 2;
        } else if (tal_video_list_add(&list, argv[i], &err) != TAL_OK) {
            break;
        }
    }
    if (err.code) {
        fprintf(stderr, "re2tal infer: %s\n", err.msg);
        tal_video_list_free(&list);
        return 1;
    }
    int n_paths = list.n;
    char **paths = list.paths;
    if (!model || !n_paths) {
        usage(stderr);
        tal_video_list_free(&list);
        return 2;
    }
    tal_loaded_model lm;
    int failed = tal_model_open_dir(&lm, model, &err) != TAL_OK;
    if (tal_dist_count(failed) > 0) { /* every rank stops, or none */
        if (failed) fprintf(stderr, "re2tal infer: %s\n", err.msg);
        tal_model_close_dir(&lm);
        tal_video_list_free(&list);
        return 1;
    }
    if (classifier) snprintf(lm.rc.classifier, sizeof lm.rc.classifier, "%s", classifier);
    if (topk) lm.rc.classifier_topk = topk;
    tal_run_data d = {0};
    d.ds = calloc(1, sizeof *d.ds);
    d.ds->videos = calloc((size_t)n_paths, sizeof *d.ds->videos);
    d.ds->class_names = calloc((size_t)lm.n_classes, sizeof(char *));
    for (int c = 0; c < lm.n_classes; c++) d.ds->class_names[c] = strdup(lm.class_names[c]);
    d.ds->n_classes = lm.n_classes;
    d.paths = calloc((size_t)n_paths, sizeof *d.paths);
    d.val = calloc((size_t)n_paths, sizeof *d.val);
    int n_bad = 0;
    for (int i = 0; i < n_paths; i++) {
        tal_video_anno *v = &d.ds->videos[d.ds->n_videos];
        tal_err e = {0};
        if (tal_video_anno_probe(v, paths[i], &e) != TAL_OK) { /* every rank probes all */
            if (rank == 0) fprintf(stderr, "warning: skipped video: %s\n", e.msg);
            free(v->id);
            memset(v, 0, sizeof *v);
            n_bad++;
            continue;
        }
        d.paths[d.ds->n_videos] = strdup(paths[i]);
        d.val[d.n_val++] = d.ds->n_videos++;
    }
    int skipped = 0, code = 0;
    if (tal_infer_videos(&lm.m, &lm.rc, &d, d.val, d.n_val, out, srt, quiet, &skipped, &err) != TAL_OK) {
        fprintf(stderr, "re2tal infer: %s\n", err.msg);
        code = 1;
    } else {
        n_bad += skipped;
        if (!quiet && rank == 0)
            fprintf(stderr, "%d video(s) done, %d skipped: results in %s%s%s\n", d.n_val - skipped,
                    n_bad, out, srt ? ", subtitles in " : "", srt ? srt : "");
        if (n_bad) code = 1;
    }
    tal_run_data_free(&d);
    tal_model_close_dir(&lm);
    tal_video_list_free(&list);
    return code;
}
TAL_COMMAND("infer", 60, "find action segments in raw videos with a trained model", cmd_infer)
