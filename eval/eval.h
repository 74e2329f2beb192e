/* eval/eval.h: temporal action localization mAP, exactly as the reference evaluators compute
 * it (see shared/spec/eval-reference.md): the official ActivityNet `ANETdetection`, OpenTAD's
 * variant of it, and the THUMOS-14 MATLAB evalkit. Ground truth and detections are read from
 * files or built in memory; results come back as plain data, printed or written as JSON only
 * when the caller asks. */
#ifndef TAL_EVAL_H
#define TAL_EVAL_H

#include <stdio.h>

#include "nn/nn.h"

typedef enum {
    TAL_EVAL_ACTIVITYNET = 0, /* official ANETdetection: inclusive tIoU >= t, NaN tIoU matches */
    TAL_EVAL_OPENTAD,         /* GT de-duplicated, union clipped at 1e-8, unknown labels ignored */
    TAL_EVAL_THUMOS14,        /* MATLAB kit: GT-centric, ov > t, Ambiguous dropped, 11-point AP */
} tal_eval_protocol;

#define TAL_EVAL_MAX_TIOU 32
#define TAL_EVAL_MAX_BUCKETS 8

/* ---------------------------------------------------------------- ground truth ---------- */
typedef struct tal_eval_gt tal_eval_gt; /* opaque: videos, classes, instances, Ambiguous */

/* Reads ground truth for one subset. `path` is either
 *  - a JSON file: {"database": {id: {"subset", "annotations": [{"segment": [s, e], "label"}]}}}
 *    (ActivityNet; segments may be strings as in G-TAD's file) or the same dict without the
 *    "database" wrapper (ActionFormer-style), or
 *  - a folder of THUMOS-14 per-class files <Class>_<subset>.txt (+ Ambiguous_<subset>.txt),
 *    classes from detclasslist.txt in that folder (`video  t0 t1` per line).
 * `subset` NULL picks the default: "test" for THUMOS (video ids "video_...", or a folder),
 * "validation" otherwise (folder: "test"; the txt files use "val" for "validation").
 * Only videos whose subset matches exactly are kept; classes are the labels present in the
 * kept GT, numbered in order of first appearance (folder: detclasslist order). */
tal_status tal_eval_gt_load(tal_eval_gt **out, const char *path, const char *subset,
                            tal_err *err);
void tal_eval_gt_destroy(tal_eval_gt *gt); /* NULL is fine */
int tal_eval_gt_n_classes(const tal_eval_gt *gt);
const char *tal_eval_gt_class_name(const tal_eval_gt *gt, int c); /* borrowed */
int tal_eval_gt_n_videos(const tal_eval_gt *gt);
int tal_eval_gt_n_instances(const tal_eval_gt *gt);
int tal_eval_gt_is_thumos(const tal_eval_gt *gt);
const char *tal_eval_gt_subset(const tal_eval_gt *gt);

/* ---------------------------------------------------------------- detections ------------ */
typedef struct tal_eval_dets tal_eval_dets; /* opaque: detections in file / insertion order */

tal_status tal_eval_dets_create(tal_eval_dets **out, tal_err *err);
void tal_eval_dets_destroy(tal_eval_dets *d); /* NULL is fine */
/* Appends one detection. Non-finite t0, t1 or score are refused (TAL_EINVAL). */
tal_status tal_eval_dets_add(tal_eval_dets *d, const char *video, const char *label, double t0_s,
                             double t1_s, double score, tal_err *err);
/* Appends every detection of a file: an ActivityNet results JSON ({"results": {id: [{"label",
 * "score", "segment"}]}}) or THUMOS text (`video t0 t1 class_id score`, a trailing ".mpeg" or
 * ".mp4" is stripped from the name) whose class ids map to names through `classlist`
 * (`id Name` lines, e.g. detclasslist.txt; required for text input). */
tal_status tal_eval_dets_load(tal_eval_dets *d, const char *path, const char *classlist,
                              tal_err *err);
long tal_eval_dets_count(const tal_eval_dets *d);

/* ---------------------------------------------------------------- scoring --------------- */
typedef struct tal_eval_opts {
    tal_eval_protocol protocol;
    int n_tiou; /* 0: default (ANet linspace(0.5, 0.95, 10), THUMOS linspace(0.3, 0.7, 5)) */
    double tiou[TAL_EVAL_MAX_TIOU];
    int ignore_unknown_labels; /* count labels absent from the GT instead of failing */
    int threads;               /* 0: OpenMP's default */
    int keep_pr;               /* keep the precision-recall curves in the result (memory:
                                  16 bytes x thresholds x detections) */
    /* GT-length breakdown (activitynet / opentad): bucket edges in seconds, ascending, giving
     * buckets [0, e0), [e0, e1), ..., [e_last, inf); 0 edges: none. */
    int n_bucket_edges;
    double bucket_edges[TAL_EVAL_MAX_BUCKETS - 1];
} tal_eval_opts;

/* What the input holds that makes evaluators disagree; counted before scoring. */
typedef struct tal_eval_diag {
    long n_dets;              /* detections given */
    long n_dets_scored;       /* detections that took part (known label) */
    long n_unknown_label;     /* detections whose label is not a GT class (ignored) */
    long n_outside_gt;        /* detections on videos that are not in the GT subset */
    long n_reversed;          /* end < start */
    long n_zero_length;       /* end == start */
    long n_nan_pairs;         /* (detection, same-class GT in its video) pairs with tIoU 0/0 */
    long n_tied_scores;       /* detections sharing their score with another of their class */
    long n_gt;                /* GT instances in the subset (Ambiguous excluded) */
    long n_gt_videos;         /* GT videos in the subset */
    long n_gt_videos_no_det;  /* GT videos with at least one instance and no detection */
    long n_gt_duplicates;     /* GT instances identical (video, label, segment) to an earlier one */
    long n_gt_zero_length;    /* GT instances with end <= start */
    long n_gt_removed;        /* opentad: GT removed by its de-duplication */
    long n_ambiguous;         /* Ambiguous GT segments (THUMOS folder) */
    long n_ambiguous_dropped; /* thumos14: FPs dropped for touching Ambiguous (first tIoU) */
} tal_eval_diag;

/* False positives by cause (activitynet / opentad protocols), in the spirit of DETAD, at each
 * threshold t, judged by the best tIoU of the detection with GT of its own video:
 * duplicate: a same-class GT has tIoU >= t (or NaN) but is already matched;
 * localization: best same-class tIoU in [0.1, t); wrong label: no same-class GT >= 0.1 but
 * another class's GT has tIoU >= t; confusion: another class's GT in [0.1, t);
 * background: everything else (incl. videos outside the GT). */
enum {
    TAL_EVAL_FP_DUPLICATE = 0,
    TAL_EVAL_FP_LOCALIZATION,
    TAL_EVAL_FP_WRONG_LABEL,
    TAL_EVAL_FP_CONFUSION,
    TAL_EVAL_FP_BACKGROUND,
    TAL_EVAL_N_FP
};

typedef struct tal_eval_result {
    tal_eval_protocol protocol;
    char subset[64];
    int n_tiou;
    double tiou[TAL_EVAL_MAX_TIOU];
    double map[TAL_EVAL_MAX_TIOU]; /* mean AP over classes at each threshold */
    double average_map;            /* mean of map[] */
    int n_classes;
    char **class_names; /* owned, [n_classes] */
    double *ap;         /* owned, [n_classes * n_tiou]: ap[c * n_tiou + t] */
    long *n_gt_class;   /* owned, [n_classes]: npos as the protocol counts it */
    long *n_det_class;  /* owned, [n_classes] */
    tal_eval_diag diag;
    long fp[TAL_EVAL_MAX_TIOU][TAL_EVAL_N_FP]; /* false positives by cause at each threshold */
    /* GT-length breakdown: mAP with only the bucket's GT, detections that found GT of other
     * buckets left out, over the classes with GT in the bucket (DETAD-style). */
    int n_buckets; /* opts.n_bucket_edges + 1, or 0 */
    double bucket_map[TAL_EVAL_MAX_BUCKETS][TAL_EVAL_MAX_TIOU];
    double bucket_average_map[TAL_EVAL_MAX_BUCKETS];
    long bucket_n_gt[TAL_EVAL_MAX_BUCKETS];
    int bucket_n_classes[TAL_EVAL_MAX_BUCKETS];
    double bucket_edges[TAL_EVAL_MAX_BUCKETS - 1];
    /* With opts.keep_pr: curve of class c at threshold t = points i < pr_len[c * n_tiou + t] of
     * pr_recall / pr_precision [t * pr_stride + pr_offset[c] + i] (ranked detections;
     * thumos14: the pooled TP/FP list). All NULL otherwise; owned. */
    long pr_stride;
    long *pr_offset, *pr_len;
    double *pr_recall, *pr_precision;
} tal_eval_result;

/* Scores `d` against `gt`. Fails (TAL_EINVAL, naming the label and video) on a label that is
 * not a GT class under the activitynet and thumos14 protocols unless ignore_unknown_labels.
 * Ties in score are broken by insertion order (stable descending sort); the official code's
 * order for ties depends on the numpy build (spec 1.4). *out is freed with
 * tal_eval_result_destroy. */
tal_status tal_eval_run(tal_eval_result **out, const tal_eval_gt *gt, const tal_eval_dets *d,
                        const tal_eval_opts *opts, tal_err *err);
void tal_eval_result_destroy(tal_eval_result *r); /* NULL is fine */

/* Thresholds as numpy.linspace(start, stop, n) computes them (last element exactly stop). */
void tal_eval_linspace(double *out, double start, double stop, int n);
/* Parses "0.3:0.1:0.7" (start:step:stop, expanded with linspace) or "0.5,0.75,0.95"
 * (literal values) into tiou[TAL_EVAL_MAX_TIOU]. */
tal_status tal_eval_parse_tiou(const char *spec, double *tiou, int *n_tiou, tal_err *err);
const char *tal_eval_protocol_name(tal_eval_protocol p);
/* "activitynet" | "opentad" | "thumos14" -> 0; anything else TAL_EINVAL. */
tal_status tal_eval_protocol_parse(const char *name, tal_eval_protocol *p, tal_err *err);

/* ---------------------------------------------------------------- proposals ------------- */
/* Proposal metrics of the official ActivityNet proposal kit
 * (ANETproposal.average_recall_vs_avg_nr_proposals and evaluate): average recall against the
 * average number of proposals per video (AR@AN) and the area under that curve, with numpy's
 * arithmetic. */
#define TAL_EVAL_AR_POINTS 100

typedef struct tal_eval_ar_result {
    int n_tiou;
    double tiou[TAL_EVAL_MAX_TIOU];
    double recall[TAL_EVAL_MAX_TIOU][TAL_EVAL_AR_POINTS]; /* [threshold][point] */
    double avg_recall[TAL_EVAL_AR_POINTS];                /* mean over thresholds */
    double an[TAL_EVAL_AR_POINTS]; /* average number of proposals per video at each point */
    double auc;                    /* percent: 100 * trapz(avg_recall, an) / an[99] */
    double ar_at[5];               /* AR@1, @5, @10, @50, @100: avg_recall[AN - 1], as BMN and
                                      ActionFormer read it (max_avg = 100 puts point k at AN k+1) */
    double max_avg;                /* max_avg_nr_proposals used */
    long n_proposals;              /* proposals given (every video, as the kit counts them) */
    long n_used;                   /* proposals kept on GT videos after the per-video cut */
    int n_videos;                  /* GT videos with at least one instance */
    long n_gt;
} tal_eval_ar_result;

/* AR vs AN of `d` (labels ignored; scores rank the proposals of each video) against `gt`.
 * max_avg: max_avg_nr_proposals (100 in BMN / ActionFormer / the challenge; <= 0: the kit's
 * default, proposals / GT videos). n_tiou 0: the dataset's default thresholds (ANet
 * linspace(0.5, 0.95, 10), THUMOS linspace(0.3, 0.7, 5)). Ties in score follow numpy 1.24's
 * argsort (the kit's order). Proposals on videos outside the GT still count in the kit's ratio.
 * Fails on no GT or no proposals (the kit divides by zero). */
tal_status tal_eval_proposals_ar(tal_eval_ar_result *out, const tal_eval_gt *gt,
                                 const tal_eval_dets *d, double max_avg, int n_tiou,
                                 const double *tiou, tal_err *err);

/* ---------------------------------------------------------------- output ---------------- */
/* The mAP table (and per-class APs when per_class) and the diagnosis, into `out`. */
void tal_eval_print_table(FILE *out, const tal_eval_result *r, int per_class);
/* Everything as one JSON document (written atomically: temp file + rename). */
tal_status tal_eval_write_json(const tal_eval_result *r, const char *path, tal_err *err);
/* Writes DIR/pr_tiou<k>.csv (class,rank,recall,precision) and DIR/pr_tiou<k>.svg (one curve
 * per class, the interpolated envelope used by the AP) for each threshold k; DIR must exist.
 * Needs a result made with opts.keep_pr (else TAL_EINVAL). */
tal_status tal_eval_write_pr(const tal_eval_result *r, const char *dir, tal_err *err);
/* The JSON text itself (caller frees with free()); NULL when out of memory. */
char *tal_eval_result_json(const tal_eval_result *r);

#endif
