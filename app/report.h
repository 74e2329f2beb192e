/* app/report.h: the HTML report (`re2tal report`, `re2tal demo`): an evaluation made with
 * everything the page draws, a run's training curves from its log.jsonl, and the page itself
 * (eval/eval.h, tal_eval_write_html). */
#ifndef TAL_APP_REPORT_H
#define TAL_APP_REPORT_H

#include "app/run_config.h"
#include "eval/eval.h"

typedef struct tal_report_opts {
    const char *gt_path, *pred_path; /* shown on the page */
    const char *run_dir;             /* NULL: no training curves; else RUN_DIR/log.jsonl */
    int proposals;                   /* also the proposal metrics (AR@AN) */
} tal_report_opts;

/* Evaluates d against gt with eval_opts (plus the PR curves and matches the page needs) and
 * writes the page to html_path. *result (may be NULL) receives the evaluation (caller frees
 * it with tal_eval_result_destroy). Fails naming the file and item (a bad log line: its
 * line number). */
tal_status tal_report_write(const char *html_path, const tal_eval_gt *gt, const tal_eval_dets *d,
                            const tal_eval_opts *eval_opts, const tal_report_opts *ro,
                            tal_eval_result **result, tal_err *err);

/* The training curves of RUN_DIR/log.jsonl as the page's JSON (tal_eval_html_opts
 * .training_json; caller frees). Update lines give losses and the learning rate (scaled by
 * RUN_DIR/config.json's optim.lr_head / lr_backbone when present), validation lines the mAP.
 * A resumed run's repeated steps replace the earlier ones; an unfinished last line is left out;
 * at most 2000 points (means over equal runs of steps). */
tal_status tal_report_training_json(const char *run_dir, char **json, tal_err *err);

/* The demo's and training's evaluation (tal_evaluate_results: the run's annotations, validation
 * subset, thresholds and options) as a page, with the run's training curves. */
tal_status tal_evaluate_report(const tal_run_config *rc, const char *results_path,
                               const char *html_path, tal_err *err);

#endif
