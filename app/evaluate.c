/* app/evaluate.c: validation mAP of a results file for training and the demo, through eval/
 * (the official ActivityNet protocol on the run's annotations and thresholds; class-agnostic
 * runs without a video-level classifier are scored class-agnostically), as a table and JSON or
 * as the HTML report. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/checkpoint.h"
#include "app/report.h"
#include "app/trainer.h"
#include "eval/eval.h"

/* A class-agnostic model without a video-level classifier is scored class-agnostically: a
 * copy of the annotations with every label "action" (what its results say), next to them. */
static tal_status write_agnostic_gt(const char *annotations, const char *out, tal_err *err) {
    char *text = tal_read_file(annotations, err);
    if (!text) return err->code;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return tal_err_set(err, TAL_EFORMAT, "%s: class-agnostic evaluation needs ActivityNet-style "
                           "JSON annotations", annotations);
    cJSON *db = cJSON_GetObjectItemCaseSensitive(root, "database");
    if (!db) db = root;
    cJSON *video, *a;
    cJSON_ArrayForEach(video, db) {
        cJSON *annos = cJSON_GetObjectItemCaseSensitive(video, "annotations");
        cJSON_ArrayForEach(a, annos) {
            if (cJSON_GetObjectItemCaseSensitive(a, "label"))
                cJSON_ReplaceItemInObjectCaseSensitive(a, "label", cJSON_CreateString("action"));
        }
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    FILE *o = json ? fopen(out, "wb") : NULL;
    int ok = o && fputs(json, o) >= 0;
    if (o && fclose(o) != 0) ok = 0;
    free(json);
    return ok ? TAL_OK : tal_err_set(err, TAL_EIO, "%s: cannot write", out);
}

/* The run's annotations (validation subset; class-agnostic when the run is, see above) and
 * the results file, with the options validation scores them with. */
static tal_status load_run_eval(const tal_run_config *rc, const char *results_path,
                                tal_eval_gt **gt, tal_eval_dets **d, tal_eval_opts *o,
                                tal_err *err) {
    *gt = NULL;
    *d = NULL;
    if (rc->n_tiou < 0 || rc->n_tiou > TAL_EVAL_MAX_TIOU)
        return tal_err_set(err, TAL_EINVAL, "run config: %d tIoU thresholds (at most %d)",
                           rc->n_tiou, TAL_EVAL_MAX_TIOU);
    const char *gt_path = rc->annotations;
    char agnostic[1200];
    tal_status st = TAL_OK;
    if (rc->class_agnostic && !rc->classifier[0]) {
        snprintf(agnostic, sizeof agnostic, "%s.gt.json", results_path);
        if ((st = write_agnostic_gt(rc->annotations, agnostic, err))) return st;
        gt_path = agnostic;
    }
    st = tal_eval_gt_load(gt, gt_path, rc->val_subset[0] ? rc->val_subset : NULL, err);
    if (gt_path != rc->annotations) remove(gt_path);
    if (!st) st = tal_eval_dets_create(d, err);
    if (!st) st = tal_eval_dets_load(*d, results_path, NULL, err);
    memset(o, 0, sizeof *o);
    o->protocol = TAL_EVAL_ACTIVITYNET;
    o->n_tiou = rc->n_tiou; /* 0: the dataset's default */
    for (int i = 0; i < rc->n_tiou; i++) o->tiou[i] = rc->tiou[i];
    /* a model may know classes that the validation subset has no GT for: the official
     * evaluator would stop with KeyError; a training run counts them and goes on */
    o->ignore_unknown_labels = 1;
    return st;
}

tal_status tal_evaluate_results(const tal_run_config *rc, const char *results_path,
                                const char *json_path, FILE *table, double *avg_map,
                                double *map_at_05, tal_err *err) {
    *avg_map = *map_at_05 = -1;
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_result *r = NULL;
    tal_eval_opts o;
    tal_status st = load_run_eval(rc, results_path, &gt, &d, &o, err);
    if (!st) st = tal_eval_run(&r, gt, d, &o, err);
    if (!st) {
        *avg_map = r->average_map;
        for (int t = 0; t < r->n_tiou; t++)
            if (fabs(r->tiou[t] - 0.5) < 1e-9) *map_at_05 = r->map[t];
        if (table) tal_eval_print_table(table, r, 0);
        if (json_path) st = tal_eval_write_json(r, json_path, err);
    }
    tal_eval_result_destroy(r);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
    return st;
}

tal_status tal_evaluate_report(const tal_run_config *rc, const char *results_path,
                               const char *html_path, tal_err *err) {
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_opts o;
    tal_status st = load_run_eval(rc, results_path, &gt, &d, &o, err);
    /* the page also shows what `re2tal eval` adds by default: mAP by GT length, proposals */
    if (!st) st = tal_eval_parse_buckets(TAL_EVAL_DEFAULT_BUCKETS, &o, err);
    tal_report_opts ro = {.gt_path = rc->annotations, .pred_path = results_path,
                          .run_dir = rc->out_dir, .proposals = 1};
    if (!st) st = tal_report_write(html_path, gt, d, &o, &ro, NULL, err);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
    return st;
}
