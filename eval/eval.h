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
    int keep_matches;          /* keep what each detection and GT instance did (TP / matched
                                  per threshold, best tIoU, share of the mAP lost; 28 bytes per
                                  detection): what `re2tal report` draws */
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
    /* With opts.keep_matches, per detection (tal_eval_dets order) and per GT instance
     * (tal_eval_gt order); all NULL otherwise; owned. Detections with a label that is not a GT
     * class keep 0 / NaN / -1.
     * The mAP lost (1 - average mAP) is shared out exactly: for class c at threshold t, with
     * n_gt GT and AP = sum over TPs of their interpolated precision p / n_gt (all points;
     * 11-point under thumos14, see below), each missed GT is charged 1 / n_gt, and each TP's
     * shortfall (1 - p) / n_gt = FP(m) / (m n_gt), where rank m holds the precision p, is
     * charged in equal parts of 1 / (m n_gt) to the FPs ranked at or above m. Each charge is
     * weighted 1 / (classes x thresholds), so det_loss + gt_loss over everything +
     * loss_unattributed = 1 - average mAP. thumos14: each of the 11 recall levels weighs 1/11;
     * a level reached at precision p charges its 1 - p to the FPs at or above its rank as
     * above, a level not reached is charged to the missed GT in equal parts; a class without
     * any TP charges all to its missed GT. */
    uint32_t *det_tp_mask;  /* bit t: a TP at threshold t */
    uint32_t *gt_tp_mask;   /* bit t: matched at threshold t */
    double *det_best_tiou;  /* the protocol's tIoU with the best same-class GT of its video
                               (NaN: none; activitynet: a 0/0 pair, which matches first) */
    int *det_best_gt;       /* that GT instance, -1 if none */
    double *det_loss;       /* share of 1 - average mAP charged to the detection (>= 0) */
    double *gt_loss;        /* share charged to the GT instance for being missed (>= 0) */
    unsigned char *gt_ignored; /* 1: not scored (opentad: removed by de-duplication) */
    double loss_unattributed;  /* classes left without GT (opentad de-duplication) */
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
/* Parses "2,5,20,60" (ascending positive seconds, at most TAL_EVAL_MAX_BUCKETS - 1) or "none"
 * (no breakdown) into opts->bucket_edges / n_bucket_edges. */
#define TAL_EVAL_DEFAULT_BUCKETS "2,5,20,60" /* re2tal eval's and the report's default */
tal_status tal_eval_parse_buckets(const char *spec, tal_eval_opts *opts, tal_err *err);
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

/* ---------------------------------------------------------------- HTML report ----------- */
typedef struct tal_eval_html_opts {
    const char *title;     /* NULL: "re2tal report" */
    const char *gt_path;   /* shown in the header (NULL: not shown) */
    const char *pred_path;
    const tal_eval_ar_result *proposals; /* NULL: no proposal numbers */
    /* NULL, or a JSON object embedded as the page's training curves: {"steps": [s...],
     * "series": {name: [y per step]}, "lr": {name: [y per step]}, "val_epochs": [e...],
     * "val": {name: [y per validation]}, "source": "path"} (numbers may be null). */
    const char *training_json;
} tal_eval_html_opts;

/* Writes one self-contained HTML page (inline CSS, SVG and JS; no network, no other file) to
 * `path` (atomically): the mAP table and the per-class APs (sortable), PR curves, false
 * positives by cause, mAP by GT length, and a timeline per video (GT lane, one lane of
 * detections per class coloured by score, a score threshold, tIoU to the best GT on hover),
 * videos sorted by the mAP lost in them, worst first, drawn lazily as they scroll into view.
 * `r` must come from `gt` and `d` with opts.keep_pr and opts.keep_matches (else TAL_EINVAL).
 * Strings from the input files are escaped for HTML and for the embedded JSON. */
tal_status tal_eval_write_html(const char *path, const tal_eval_gt *gt, const tal_eval_dets *d,
                               const tal_eval_result *r, const tal_eval_html_opts *opts,
                               tal_err *err);

#endif
