/* eval/scoring.h: private to eval/: one class's detections and GT as the scorers see them
 * (map.c: activitynet / opentad and the driver; map_thumos.c: thumos14), and the sharing out
 * of the mAP lost per detection and GT instance (loss.c). */
#ifndef TAL_EVAL_SCORING_H
#define TAL_EVAL_SCORING_H

#include "eval/internal.h"

/* One class's data: detections sorted by descending score (ties: insertion order), and its GT
 * grouped by video (file order inside a video). */
typedef struct class_job {
    long *det;  /* indices into d->dets, sorted */
    long n_det;
    int *gt;    /* indices into the protocol's GT list, grouped by video */
    int n_gt;
    int *gt_video_start; /* per GT video of this class: [start, end) into gt, sorted by video */
    int *gt_videos;
    int n_gt_videos;
    long base; /* offset of this class in the PR curve arrays */
} class_job;

typedef struct scoring {
    const class_job *jobs;
    const tal_eval_gt *gt;
    const tal_eval_dets *d;
    const tal_eval_opts *o;
    int n_tiou;
    const double *tiou;
    const gt_inst *g; /* GT instances used (OpenTAD: de-duplicated) */
    int n_g;
    const int *g_src; /* g[i] is gt->inst[g_src[i]] */
    int *det_video; /* per det video id: GT video id or -1 */
    int *det_class; /* per det label id: GT class id or -1 */
    tal_eval_result *r; /* PR curves go to r->pr_* when r->pr_recall is set, matches to
                           r->det_* / r->gt_* when r->det_tp_mask is set */
    const int *vg_start, *vg_idx; /* all GT (every class) of GT video v: vg_idx[vg_start[v]..] */
    long *fp_cat;                 /* [C][T][TAL_EVAL_N_FP] false-positive categories */
    int n_buckets;                /* GT-length buckets (0: no breakdown) */
    double *bucket_ap;            /* [C][n_buckets][T] */
    long *bucket_npos;            /* [C][n_buckets] */
    double loss_weight;           /* 1 / (classes x thresholds) */
} scoring;

/* map.c: scores every class of `d` against the protocol's GT list g[0..n_g) into r. */
tal_status tal_eval_score_classes(tal_eval_result *r, const tal_eval_gt *gt,
                                  const tal_eval_dets *d, const tal_eval_opts *o,
                                  const gt_inst *g, const int *g_src, int n_g,
                                  const int *det_video, const int *det_class, tal_err *err);
/* Range [lo, hi) of GT of class job `cj` in GT video v (binary search), or 0 items. */
void gt_range(const class_job *cj, int v, int *lo, int *hi);
/* Keeps the precision/recall curve of class cj at threshold t (n points). */
void keep_curve(const scoring *s, const class_job *cj, int t, const double *prec,
                const double *rec, long n);

/* map_thumos.c: TH14eventdetpr for one class at every threshold (0, or -1 out of memory). */
int score_class_th14(const scoring *s, const class_job *cj, const long *amb_start,
                     const int *amb_order, double *ap, long *n_amb_dropped);

/* loss.c (with keep_matches; see eval.h): charges class cj's loss at threshold t to its FPs and
 * missed GT, by the protocol's AP rule (all points, or 11 points under thumos14). The ranked
 * list is rank_det[0..n) (indices into d->dets); TP flags and matched GT are read from bit t of
 * r->det_tp_mask / r->gt_tp_mask. Returns 0, or -1 out of memory. */
int charge_loss(const scoring *s, const class_job *cj, int t, const long *rank_det, long n);
/* Charges `weight` to the class's GT in equal parts (a class without any TP). */
void charge_loss_missed(const scoring *s, const class_job *cj, double weight);

#endif
