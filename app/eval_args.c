/* app/eval_args.c: the options `re2tal eval` and `re2tal report` share (app/eval_args.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/eval_args.h"

void tal_eval_args_init(tal_eval_args *a) {
    memset(a, 0, sizeof *a);
    a->proposals = 1;
    tal_err ignore = {0};
    tal_eval_parse_buckets(TAL_EVAL_DEFAULT_BUCKETS, &a->opts, &ignore);
}

void tal_eval_args_usage(FILE *out) {
    fprintf(out,
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
            "  --buckets E1,E2,..  mAP by GT length in buckets [0,E1), [E1,E2), ... seconds\n"
            "                      (default 2,5,20,60; 'none' to skip; activitynet/opentad)\n"
            "  --no-proposals      skip the proposal metrics (AR@AN for AN = 1, 5, 10, 50, 100 and\n"
            "                      the AUC, labels ignored, as the ActivityNet proposal kit)\n"
            "  --ignore-unknown-labels  count detections whose label is not a GT class instead\n"
            "                      of failing (the official code raises KeyError)\n"
            "  --threads N         threads over classes (default: all)\n");
}

int tal_eval_args_parse(tal_eval_args *a, const char *cmd, int argc, char **argv, int *i) {
    const char *o = argv[*i], *value = *i + 1 < argc ? argv[*i + 1] : NULL;
    tal_err err = {0};
    if (!strcmp(o, "--no-proposals")) {
        a->proposals = 0;
        return 1;
    }
    if (!strcmp(o, "--ignore-unknown-labels")) {
        a->opts.ignore_unknown_labels = 1;
        return 1;
    }
    static const char *with_value[] = {"--gt", "--pred", "--subset", "--classlist", "--threads",
                                       "--tiou", "--protocol", "--buckets"};
    int k = 0, n = (int)(sizeof with_value / sizeof *with_value);
    while (k < n && strcmp(o, with_value[k])) k++;
    if (k == n || !value) return 0; /* not ours, or no value: the caller reports it */
    (*i)++;
    tal_status st = TAL_OK;
    switch (k) {
    case 0: a->gt_path = value; break;
    case 1: a->pred_path = value; break;
    case 2: a->subset = value; break;
    case 3: a->classlist = value; break;
    case 4: a->opts.threads = atoi(value); break;
    case 5: st = tal_eval_parse_tiou(value, a->opts.tiou, &a->opts.n_tiou, &err); break;
    case 6: st = tal_eval_protocol_parse(value, &a->opts.protocol, &err); break;
    default: st = tal_eval_parse_buckets(value, &a->opts, &err); break;
    }
    if (st) {
        fprintf(stderr, "re2tal %s: %s\n", cmd, err.msg);
        return -1;
    }
    return 1;
}

tal_status tal_eval_args_load(const tal_eval_args *a, tal_eval_gt **gt, tal_eval_dets **d,
                              tal_err *err) {
    *gt = NULL;
    *d = NULL;
    char folder_list[1100];
    const char *classlist = a->classlist;
    struct stat sb;
    if (!classlist && stat(a->gt_path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(folder_list, sizeof folder_list, "%s/detclasslist.txt", a->gt_path);
        classlist = folder_list;
    }
    tal_status st = tal_eval_gt_load(gt, a->gt_path, a->subset, err);
    if (!st) st = tal_eval_dets_create(d, err);
    if (!st) st = tal_eval_dets_load(*d, a->pred_path, classlist, err);
    if (st) {
        tal_eval_dets_destroy(*d);
        tal_eval_gt_destroy(*gt);
        *gt = NULL;
        *d = NULL;
    }
    return st;
}
