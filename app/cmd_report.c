/* app/cmd_report.c: `re2tal report`: the evaluation of a prediction file (the options of
 * `re2tal eval`) and optionally a run's training curves as one self-contained HTML page. */
#include <stdio.h>
#include <string.h>

#include "app/commands.h"
#include "app/eval_args.h"
#include "app/progress.h"
#include "app/report.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal report --gt GT --pred PRED [--run RUN_DIR] --out report.html [options]\n"
            "One self-contained HTML page (inline CSS, SVG and a little JavaScript; no network,\n"
            "no other file; open it from disk): the mAP table and per-class AP (sortable), PR\n"
            "curves, false positives by cause, mAP by GT length, the diagnosis of the input,\n"
            "and a timeline per video (GT lane, detections in lanes by class coloured by score,\n"
            "a score threshold, tIoU to the best GT on hover), videos sorted by the mAP lost in\n"
            "them, worst first, with a filter box; with --run, the training curves of\n"
            "RUN_DIR/log.jsonl.\n\n"
            "  --out FILE          the page to write (required)\n"
            "  --run RUN_DIR       a training run folder: losses, learning rate, validation mAP\n");
    tal_eval_args_usage(out);
    fprintf(out,
            "\nThe numbers are those of `re2tal eval` with the same options. The mAP lost in a\n"
            "video is its share of 100 - average mAP: each missed GT costs its class's recall\n"
            "step, and each true positive's shortfall from precision 1 is charged in equal parts\n"
            "to the false positives ranked above it (averaged over classes and thresholds).\n"
            "Exit status: 0 ok, 1 bad input, 2 usage error.\n");
}

static int cmd_report(int argc, char **argv) {
    const char *out = NULL, *run_dir = NULL;
    tal_eval_args ea;
    tal_eval_args_init(&ea);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc, shared;
        if (tal_is_help(a)) {
            usage(stdout);
            return 0;
        } else if ((shared = tal_eval_args_parse(&ea, "report", argc, argv, &i)) != 0) {
            if (shared < 0) return 2;
        } else if (!strcmp(a, "--out") && has) {
            out = argv[++i];
        } else if (!strcmp(a, "--run") && has) {
            run_dir = argv[++i];
        } else {
            fprintf(stderr, "re2tal report: unknown option or missing value: '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!ea.gt_path || !ea.pred_path || !out) {
        fprintf(stderr, "re2tal report: --gt, --pred and --out are required\n");
        usage(stderr);
        return 2;
    }
    double t0 = tal_now_s();
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_result *r = NULL;
    tal_report_opts ro = {.gt_path = ea.gt_path, .pred_path = ea.pred_path, .run_dir = run_dir,
                          .proposals = ea.proposals};
    int rc = 1;
    if (tal_eval_args_load(&ea, &gt, &d, &err) ||
        tal_report_write(out, gt, d, &ea.opts, &ro, &r, &err)) {
        fprintf(stderr, "re2tal report: %s\n", err.msg);
    } else {
        printf("%s: %d videos, average mAP %.2f%%, written in %.2f s\n", out,
               tal_eval_gt_n_videos(gt), 100 * r->average_map, tal_now_s() - t0);
        rc = 0;
    }
    tal_eval_result_destroy(r);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
    return rc;
}

TAL_COMMAND("report", 45, "one self-contained HTML page: mAP, PR curves, errors, a timeline per "
                          "video, training curves", cmd_report)
