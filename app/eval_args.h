/* app/eval_args.h: the options `re2tal eval` and `re2tal report` share (ground truth,
 * detections, protocol, thresholds, buckets, ...), parsed and loaded the same way for both. */
#ifndef TAL_APP_EVAL_ARGS_H
#define TAL_APP_EVAL_ARGS_H

#include <stdio.h>

#include "eval/eval.h"

typedef struct tal_eval_args {
    const char *gt_path, *pred_path, *subset, *classlist; /* borrowed from argv */
    int proposals;      /* 0 with --no-proposals */
    tal_eval_opts opts; /* protocol, thresholds, buckets (default 2,5,20,60), ... */
} tal_eval_args;

void tal_eval_args_init(tal_eval_args *a);
/* If argv[*i] is a shared option, takes it (and its value, advancing *i) and returns 1;
 * returns 0 if it is not one, and -1 after printing "re2tal CMD: ..." for a bad value. */
int tal_eval_args_parse(tal_eval_args *a, const char *cmd, int argc, char **argv, int *i);
/* The shared options' lines for --help. */
void tal_eval_args_usage(FILE *out);
/* Loads the ground truth and the detections (a THUMOS GT folder supplies its own class list).
 * Fails with the reader's message (naming the file and item); *gt and *d are then NULL. */
tal_status tal_eval_args_load(const tal_eval_args *a, tal_eval_gt **gt, tal_eval_dets **d,
                              tal_err *err);

#endif
