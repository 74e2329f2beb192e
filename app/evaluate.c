/* app/evaluate.c: validation mAP of a results file for training and the demo, through eval/
 * (the official ActivityNet protocol on the run's annotations and thresholds). */
#include <math.h>
#include <string.h>

#include "app/trainer.h"
#include "eval/eval.h"

tal_status tal_evaluate_results(const tal_run_config *rc, const char *results_path,
                                const char *json_path, FILE *table, double *avg_map,
                                double *map_at_05, tal_err *err) {
    *avg_map = *map_at_05 = -1;
    if (rc->n_tiou < 0 || rc->n_tiou > TAL_EVAL_MAX_TIOU)
        return tal_err_set(err, TAL_EINVAL, "run config: %d tIoU thresholds (at most %d)",
                           rc->n_tiou, TAL_EVAL_MAX_TIOU);
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_result *r = NULL;
    tal_status st = tal_eval_gt_load(&gt, rc->annotations, rc->val_subset[0] ? rc->val_subset : NULL,
                                     err);
    if (!st) st = tal_eval_dets_create(&d, err);
    if (!st) st = tal_eval_dets_load(d, results_path, NULL, err);
    if (!st) {
        tal_eval_opts o;
        memset(&o, 0, sizeof o);
        o.protocol = TAL_EVAL_ACTIVITYNET;
        o.n_tiou = rc->n_tiou; /* 0: the dataset's default */
        for (int i = 0; i < rc->n_tiou; i++) o.tiou[i] = rc->tiou[i];
        /* a model may know classes that the validation subset has no GT for: the official
         * evaluator would stop with KeyError; a training run counts them and goes on */
        o.ignore_unknown_labels = 1;
        st = tal_eval_run(&r, gt, d, &o, err);
    }
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
