/* eval/loss.c: shares 1 - AP of a class at a threshold out to the detections and GT that cost
 * it (eval.h, tal_eval_result.det_loss): a missed GT costs its recall, a TP's shortfall from
 * precision 1 is charged to the FPs ranked above the point whose precision it takes. O(n). */
#include <stdlib.h>

#include "eval/scoring.h"

static int is_tp(const scoring *s, long det, int t) {
    return (s->r->det_tp_mask[det] >> t) & 1u;
}

void charge_loss_missed(const scoring *s, const class_job *cj, double weight) {
    for (int j = 0; j < cj->n_gt; j++)
        s->r->gt_loss[s->g_src[cj->gt[j]]] += weight / cj->n_gt;
}

/* Charges `weight` to each missed GT of the class at threshold t. */
static void charge_missed_at(const scoring *s, const class_job *cj, int t, double weight) {
    for (int j = 0; j < cj->n_gt; j++) {
        int i = s->g_src[cj->gt[j]];
        if (!((s->r->gt_tp_mask[i] >> t) & 1u)) s->r->gt_loss[i] += weight;
    }
}

/* The ranked list's precision and, for each rank, the rank at or below it (in list order)
 * where the highest precision from there on is first reached: the point an interpolated
 * precision comes from. */
static void precision_and_argmax(const scoring *s, const long *rank_det, long n, int t,
                                 double *prec, long *arg) {
    long tpc = 0;
    for (long i = 0; i < n; i++) {
        tpc += is_tp(s, rank_det[i], t);
        prec[i] = (double)tpc / (double)(i + 1);
    }
    for (long i = n - 1; i >= 0; i--)
        arg[i] = i + 1 < n && prec[arg[i + 1]] > prec[i] ? arg[i + 1] : i;
}

/* add[m] holds what each FP at rank <= m is charged for rank m; sums it from the end. */
static void charge_fps(const scoring *s, const long *rank_det, long n, int t, const double *add) {
    double acc = 0;
    for (long i = n - 1; i >= 0; i--) {
        acc += add[i];
        if (!is_tp(s, rank_det[i], t)) s->r->det_loss[rank_det[i]] += acc;
    }
}

/* All points (activitynet / opentad): the TP at rank k adds 1 / n_gt of recall at precision
 * prec[m], m = arg[k]; its shortfall 1 - prec[m] = FP(m) / (m + 1) is 1 / (m + 1) per FP at
 * ranks 0..m. Missed GT are charged their 1 / n_gt. */
static void charge_all_points(const scoring *s, const class_job *cj, int t, const long *rank_det,
                              long n, const long *arg, double *add) {
    double w = s->loss_weight / cj->n_gt;
    for (long k = 0; k < n; k++)
        if (is_tp(s, rank_det[k], t)) add[arg[k]] += w / (double)(arg[k] + 1);
    charge_missed_at(s, cj, t, w);
}

/* 11 points (thumos14): a recall level reached first at rank `first` takes the precision of
 * rank m = arg[first], whose shortfall goes to the FPs at ranks 0..m; a level not reached is
 * charged to the missed GT. */
static void charge_11_points(const scoring *s, const class_job *cj, int t, const long *rank_det,
                             long n, const long *arg, double *add) {
    double w = s->loss_weight / 11.0;
    long tpc = 0, first = 0;
    int n_missed = 0;
    for (int j = 0; j < cj->n_gt; j++)
        n_missed += !((s->r->gt_tp_mask[s->g_src[cj->gt[j]]] >> t) & 1u);
    for (int level = 0; level <= 10; level++) {
        /* the kit's recall levels and comparison: rec = tp / n_gt >= thr */
        double thr = level == 10 ? 1.0 : level * 0.1;
        while (first < n && !((double)(tpc + is_tp(s, rank_det[first], t)) / cj->n_gt >= thr))
            tpc += is_tp(s, rank_det[first++], t);
        if (first < n) {
            long m = arg[first];
            add[m] += w / (double)(m + 1);
        } else if (n_missed > 0) {
            charge_missed_at(s, cj, t, w / n_missed);
        }
    }
}

int charge_loss(const scoring *s, const class_job *cj, int t, const long *rank_det, long n) {
    double *prec = malloc(sizeof *prec * (size_t)(n + 1));
    double *add = calloc((size_t)n + 1, sizeof *add);
    long *arg = malloc(sizeof *arg * (size_t)(n + 1));
    if (!prec || !add || !arg) {
        free(prec), free(add), free(arg);
        return -1;
    }
    precision_and_argmax(s, rank_det, n, t, prec, arg);
    if (s->o->protocol == TAL_EVAL_THUMOS14) charge_11_points(s, cj, t, rank_det, n, arg, add);
    else charge_all_points(s, cj, t, rank_det, n, arg, add);
    charge_fps(s, rank_det, n, t, add);
    free(prec), free(add), free(arg);
    return 0;
}
