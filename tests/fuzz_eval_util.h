/* tests/fuzz_eval_util.h: what both eval fuzz targets check on whatever loads: mAPs in [0, 1]
 * under all three protocols (PR curves and length buckets kept, the JSON report written) and
 * average recalls in [0, 1] at three proposal budgets. */
#ifndef TAL_FUZZ_EVAL_UTIL_H
#define TAL_FUZZ_EVAL_UTIL_H

#include "eval/eval.h"
#include "fuzz_util.h"

static inline void fuzz_score(const tal_eval_gt *gt, const tal_eval_dets *d) {
    tal_err err = {0};
    for (int p = 0; p < 3; p++) {
        tal_eval_opts o;
        memset(&o, 0, sizeof o);
        o.protocol = (tal_eval_protocol)p;
        o.ignore_unknown_labels = 1;
        o.threads = 1;
        o.keep_pr = 1;
        o.n_bucket_edges = 2;
        o.bucket_edges[0] = 2;
        o.bucket_edges[1] = 20;
        tal_eval_result *r = NULL;
        if (tal_eval_run(&r, gt, d, &o, &err) != TAL_OK) continue;
        for (int t = 0; t < r->n_tiou; t++)
            /* 1 + 2e-16 is the MATLAB kit's own perfect score: eleven p / 11 added up */
            FUZZ_CHECK(r->map[t] >= 0 && r->map[t] <= 1 + 1e-12, "protocol %d mAP %.17g", p,
                       r->map[t]);
        free(tal_eval_result_json(r));
        tal_eval_result_destroy(r);
    }
    static tal_eval_ar_result ar;
    const double budgets[3] = {100, 0, 0.5};
    for (int b = 0; b < 3; b++)
        if (tal_eval_proposals_ar(&ar, gt, d, budgets[b], 0, NULL, &err) == TAL_OK)
            for (int j = 0; j < TAL_EVAL_AR_POINTS; j++)
                FUZZ_CHECK(ar.avg_recall[j] >= 0 && ar.avg_recall[j] <= 1, "AR %g",
                           ar.avg_recall[j]);
}

#endif
