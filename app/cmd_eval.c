/* app/cmd_eval.c: `re2tal eval`: detection mAP of a prediction file against ground truth, with
 * the official ActivityNet, OpenTAD or THUMOS-14 MATLAB rules (eval/eval.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/commands.h"
#include "eval/eval.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal eval --gt GT --pred PRED [options]\n"
            "Temporal action detection mAP, exactly as the reference evaluators compute it.\n\n"
            "  --gt GT             ground truth: ActivityNet-style JSON ({\"database\": ...}, segments\n"
            "                      may be strings as in G-TAD's file) or a folder of THUMOS-14\n"
            "                      per-class files <Class>_<subset>.txt + Ambiguous + detclasslist.txt\n"
            "  --pred PRED         detections: ActivityNet results JSON ({\"results\": ...}) or THUMOS\n"
            "                      text 'video t0 t1 class_id score' (needs a class list)\n"
            "  --classlist FILE    'id Name' lines for THUMOS text detections (default: GT folder's\n"
            "                      detclasslist.txt)\n"
            "  --subset S          GT subset (default: test for THUMOS ids, else validation)\n"
            "  --tiou SPEC         thresholds: start:step:stop (as numpy.linspace) or a list\n"
            "                      0.5,0.75,0.95 (default ANet 0.5:0.05:0.95, THUMOS 0.3:0.1:0.7)\n"
            "  --protocol P        activitynet (default: official ANETdetection), opentad (GT\n"
            "                      de-dup, clipped union, unknown labels ignored) or thumos14\n"
            "                      (2014 MATLAB kit: GT-centric, ov > t, Ambiguous, 11-point AP)\n"
            "  --json OUT          write everything as JSON (mAP, per-class AP, length buckets,\n"
            "                      false positives by cause, diagnosis, proposals)\n"
            "  --per-class         print the AP of every class\n"
            "  --plots DIR         precision-recall curves per threshold: DIR/pr_tiou<t>.csv\n"
            "                      (class,rank,recall,precision) and .svg (DIR is created)\n"
            "  --buckets E1,E2,..  mAP by GT length in buckets [0,E1), [E1,E2), ... seconds\n"
            "                      (default 2,5,20,60; 'none' to skip; activitynet/opentad)\n"
            "  --no-proposals      skip the proposal metrics (AR@AN for AN = 1, 5, 10, 50, 100 and\n"
            "                      the AUC, labels ignored, as the ActivityNet proposal kit)\n"
            "  --ignore-unknown-labels  count detections whose label is not a GT class instead\n"
            "                      of failing (the official code raises KeyError)\n"
            "  --threads N         threads over classes (default: all)\n\n"
            "Ties in score are ranked in file order (the official numpy order for ties depends\n"
            "on the numpy build). Exit status: 0 ok, 1 bad input, 2 usage error.\n");
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
    const char *gt_path = NULL, *pred = NULL, *subset = NULL, *json = NULL, *classlist = NULL;
    const char *plots = NULL;
    int per_class = 0, proposals = 1;
    tal_eval_opts o = {.n_bucket_edges = 4, .bucket_edges = {2, 5, 20, 60}};
    tal_err err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (tal_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--gt") && has) {
            gt_path = argv[++i];
        } else if (!strcmp(a, "--pred") && has) {
            pred = argv[++i];
        } else if (!strcmp(a, "--subset") && has) {
            subset = argv[++i];
        } else if (!strcmp(a, "--json") && has) {
            json = argv[++i];
        } else if (!strcmp(a, "--classlist") && has) {
            classlist = argv[++i];
        } else if (!strcmp(a, "--threads") && has) {
            o.threads = atoi(argv[++i]);
        } else if (!strcmp(a, "--plots") && has) {
            plots = argv[++i];
            o.keep_pr = 1;
        } else if (!strcmp(a, "--buckets") && has) {
            const char *spec = argv[++i];
            o.n_bucket_edges = 0;
            if (strcmp(spec, "none")) {
                double edges[TAL_EVAL_MAX_TIOU];
                int n = 0;
                /* the threshold list parser accepts (0, 1] only: parse the list here */
                for (const char *q = spec; *q;) {
                    char *end;
                    double x = strtod(q, &end);
                    if (end == q || n == TAL_EVAL_MAX_BUCKETS - 1 || (*end && *end != ',')) {
                        fprintf(stderr, "re2tal eval: --buckets '%s': expected up to %d "
                                        "ascending seconds, e.g. 2,5,20,60\n", spec,
                                TAL_EVAL_MAX_BUCKETS - 1);
                        return 2;
                    }
                    edges[n++] = x;
                    q = *end ? end + 1 : end;
                }
                o.n_bucket_edges = n;
                memcpy(o.bucket_edges, edges, sizeof(double) * (size_t)n);
            }
        } else if (!strcmp(a, "--no-proposals")) {
            proposals = 0;
        } else if (!strcmp(a, "--per-class")) {
            per_class = 1;
        } else if (!strcmp(a, "--ignore-unknown-labels")) {
            o.ignore_unknown_labels = 1;
        } else if (!strcmp(a, "--tiou") && has) {
            if (tal_eval_parse_tiou(argv[++i], o.tiou, &o.n_tiou, &err)) {
                fprintf(stderr, "re2tal eval: %s\n", err.msg);
                return 2;
            }
        } else if (!strcmp(a, "--protocol") && has) {
            if (tal_eval_protocol_parse(argv[++i], &o.protocol, &err)) {
                fprintf(stderr, "re2tal eval: %s\n", err.msg);
                return 2;
            }
        } else {
            fprintf(stderr, "re2tal eval: unknown option or missing value: '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!gt_path || !pred) {
        fprintf(stderr, "re2tal eval: --gt and --pred are required\n");
        usage(stderr);
        return 2;
    }
    char default_list[1100];
    struct stat sb;
    if (!classlist && stat(gt_path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(default_list, sizeof default_list, "%s/detclasslist.txt", gt_path);
        classlist = default_list;
    }
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_result *r = NULL;
    int rc = 1;
    if (tal_eval_gt_load(&gt, gt_path, subset, &err) || tal_eval_dets_create(&d, &err) ||
        tal_eval_dets_load(d, pred, classlist, &err) || tal_eval_run(&r, gt, d, &o, &err)) {
        fprintf(stderr, "re2tal eval: %s\n", err.msg);
        goto done;
    }
    tal_eval_print_table(stdout, r, per_class);
    tal_eval_ar_result ar;
    int have_ar = 0;
    if (proposals) {
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
