/* app/cmd_eval.c: `re2tal eval`: detection mAP of a prediction file against ground truth, with
 * the official ActivityNet, OpenTAD or THUMOS-14 MATLAB rules (eval/eval.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/commands.h"
#include "app/eval_args.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal eval --gt GT --pred PRED [options]\n"
            "Temporal action detection mAP, exactly as the reference evaluators compute it.\n\n");
    tal_eval_args_usage(out);
    fprintf(out,
            "  --json OUT          write everything as JSON (mAP, per-class AP, length buckets,\n"
            "                      false positives by cause, diagnosis, proposals)\n"
            "  --per-class         print the AP of every class\n"
            "  --plots DIR         precision-recall curves per threshold: DIR/pr_tiou<t>.csv\n"
            "                      (class,rank,recall,precision) and .svg (DIR is created)\n\n"
            "Ties in score are ranked in file order (the official numpy order for ties depends\n"
            "on the numpy build). `re2tal report` draws the same evaluation as an HTML page.\n"
            "Exit status: 0 ok, 1 bad input, 2 usage error.\n");
}

/* Appends "%.17g" numbers (exact round trip; cJSON's printer may drop the last bit). */
static void put_numbers(FILE *f, const double *x, int n) {
    for (int i = 0; i < n; i++) fprintf(f, "%s%.17g", i ? ", " : "", x[i]);
}

/* The library's JSON with a "proposals" object spliced in before its closing brace. */
static tal_status write_json_with_ar(const tal_eval_result *r, const tal_eval_ar_result *ar,
                                     const char *path, tal_err *err) {
    char *text = tal_eval_result_json(r);
    char *close = text ? strrchr(text, '}') : NULL;
    if (!close) {
        free(text);
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    }
    *close = 0;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(text);
        return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    }
    fputs(text, f);
    free(text);
    const char *names[5] = {"AR@1", "AR@5", "AR@10", "AR@50", "AR@100"};
    fprintf(f, ",\n\t\"proposals\": {");
    for (int i = 0; i < 5; i++) fprintf(f, "\"%s\": %.17g, ", names[i], ar->ar_at[i]);
    fprintf(f, "\"AUC\": %.17g,\n\t\t\"average_recall\": [", ar->auc);
    put_numbers(f, ar->avg_recall, TAL_EVAL_AR_POINTS);
    fprintf(f, "],\n\t\t\"average_nr_proposals\": [");
    put_numbers(f, ar->an, TAL_EVAL_AR_POINTS);
    int bad = fprintf(f, "]}\n}\n") < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", path, strerror(errno));
    }
    return TAL_OK;
}

static int cmd_eval(int argc, char **argv) {
    const char *json = NULL, *plots = NULL;
    int per_class = 0;
    tal_eval_args ea;
    tal_eval_args_init(&ea);
    tal_eval_opts *o = &ea.opts;
    tal_err err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc, shared;
        if (tal_is_help(a)) {
            usage(stdout);
            return 0;
        } else if ((shared = tal_eval_args_parse(&ea, "eval", argc, argv, &i)) != 0) {
            if (shared < 0) return 2;
        } else if (!strcmp(a, "--json") && has) {
            json = argv[++i];
        } else if (!strcmp(a, "--plots") && has) {
            plots = argv[++i];
            o->keep_pr = 1;
        } else if (!strcmp(a, "--per-class")) {
            per_class = 1;
        } else {
            fprintf(stderr, "re2tal eval: unknown option or missing value: '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!ea.gt_path || !ea.pred_path) {
        fprintf(stderr, "re2tal eval: --gt and --pred are required\n");
        usage(stderr);
        return 2;
    }
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_result *r = NULL;
    int rc = 1;
    if (tal_eval_args_load(&ea, &gt, &d, &err) || tal_eval_run(&r, gt, d, o, &err)) {
        fprintf(stderr, "re2tal eval: %s\n", err.msg);
        goto done;
    }
    tal_eval_print_table(stdout, r, per_class);
    tal_eval_ar_result ar;
    int have_ar = 0;
    if (ea.proposals) {
        tal_err perr = {0};
        if (tal_eval_proposals_ar(&ar, gt, d, 100, r->n_tiou, r->tiou, &perr) == TAL_OK) {
            have_ar = 1;
            printf("\nproposals (labels ignored, <= 100 per video): AR@1 %.2f  AR@5 %.2f  AR@10 %.2f  "
                   "AR@50 %.2f  AR@100 %.2f  AUC %.2f\n", 100 * ar.ar_at[0], 100 * ar.ar_at[1],
                   100 * ar.ar_at[2], 100 * ar.ar_at[3], 100 * ar.ar_at[4], ar.auc);
        } else {
            printf("\nproposals: not computed (%s)\n", perr.msg);
        }
    }
    if (json && !have_ar && tal_eval_write_json(r, json, &err)) {
        fprintf(stderr, "re2tal eval: %s\n", err.msg);
        goto done;
    }
    if (json && have_ar && write_json_with_ar(r, &ar, json, &err)) {
        fprintf(stderr, "re2tal eval: %s\n", err.msg);
        goto done;
    }
    if (plots && mkdir(plots, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "re2tal eval: %s: cannot create: %s\n", plots, strerror(errno));
        goto done;
    }
    if (plots && tal_eval_write_pr(r, plots, &err)) {
        fprintf(stderr, "re2tal eval: %s\n", err.msg);
        goto done;
    }
    rc = 0;
done:
    tal_eval_result_destroy(r);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
    return rc;
}

TAL_COMMAND("eval", 40, "detection mAP of predictions against ground truth (ActivityNet, "
                        "OpenTAD, THUMOS-14 rules)", cmd_eval)
