/* eval/map_thumos.c: AP per class and threshold under the thumos14 protocol, as the 2014
 * MATLAB evalkit computes it (TH14eventdetpr: GT-centric matching, overlap > t, detections
 * touching Ambiguous dropped, 11-point interpolated AP; spec section 3). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/scoring.h"

/* intervalsingleoverlapvalseconds: both intervals normalised to [min, max]; IoU over the hull
 * when the intersection is > 0, else 0. */
static double th14_overlap(double a0, double a1, double b0, double b1) {
    if (a0 > a1) { double x = a0; a0 = a1; a1 = x; }
    if (b0 > b1) { double x = b0; b0 = b1; b1 = x; }
    double ua = (a1 > b1 ? a1 : b1) - (a0 < b0 ? a0 : b0);
    double iw = (a1 < b1 ? a1 : b1) - (a0 > b0 ? a0 : b0);
    return iw > 0 ? iw / ua : 0;
}

typedef struct conf_flag {
    double conf;
    int tp;
    long order;
    long det; /* index into d->dets */
} conf_flag;

static int cmp_conf(const void *a, const void *b) {
    const conf_flag *x = a, *y = b;
    if (x->conf > y->conf) return -1;
    if (x->conf < y->conf) return 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* keep_matches: each detection's best overlap with a GT of its class in its video. */
static void keep_best_overlaps(const scoring *s, const class_job *cj) {
    for (long i = 0; i < cj->n_det; i++) {
        long det = cj->det[i];
        const det_inst *p = &s->d->dets[det];
        int v = s->det_video[p->video], lo = 0, hi = 0, at = -1;
        if (v >= 0) gt_range(cj, v, &lo, &hi);
        double best = NAN;
        for (int k = lo; k < hi; k++) {
            const gt_inst *g = &s->g[cj->gt[k]];
            double ov = th14_overlap(g->t0, g->t1, p->t0, p->t1);
            if (at < 0 || ov > best) best = ov, at = k;
        }
        s->r->det_best_tiou[det] = best;
        s->r->det_best_gt[det] = at >= 0 ? s->g_src[cj->gt[at]] : -1;
    }
}

/* TH14eventdetpr for one class at every threshold. Detections are already sorted by
 * descending score (stable), which is the order MATLAB's sort gives inside each video. */
int score_class_th14(const scoring *s, const class_job *cj, const long *amb_start,
                            const int *amb_order, double *ap, long *n_amb_dropped) {
    int T = s->n_tiou;
    for (int t = 0; t < T; t++) ap[t] = 0;
    long P = cj->n_det;
    if (P == 0) return 0;
    /* group this class's detections by GT video (keeping score order); others are FPs */
    conf_flag *cf = malloc(sizeof *cf * (size_t)P);
    long *byv = malloc(sizeof *byv * (size_t)P);
    unsigned char *fr = malloc((size_t)P), *amb = malloc((size_t)P);
    double *prec = malloc(sizeof *prec * (size_t)P), *rec = malloc(sizeof *rec * (size_t)P);
    uint32_t *det_tp = s->r->det_tp_mask, *gt_tp = s->r->gt_tp_mask; /* keep_matches */
    long *rank = det_tp ? malloc(sizeof *rank * (size_t)P) : NULL;
    if (!cf || !byv || !fr || !amb || !prec || !rec || (det_tp && !rank)) {
        free(cf), free(byv), free(fr), free(amb), free(prec), free(rec), free(rank);
        return -1;
    }
    if (det_tp) keep_best_overlaps(s, cj);
    for (long i = 0; i < P; i++) byv[i] = i;
    /* stable sort of positions by video: insertion into buckets via a counting pass */
    const det_inst *D = s->d->dets;
    for (long i = 0; i < P; i++) {
        const det_inst *p = &D[cj->det[i]];
        int v = s->det_video[p->video];
        amb[i] = 0;
        if (v >= 0 && amb_start)
            for (long a = amb_start[v]; a < amb_start[v + 1]; a++) {
                const amb_inst *q = &s->gt->amb[amb_order[a]];
                if (th14_overlap(q->t0, q->t1, p->t0, p->t1) > 0) amb[i] = 1;
            }
    }
    /* order positions by (GT video, score order) */
    long n_v = s->gt->videos.n;
    long *cnt = calloc((size_t)n_v + 2, sizeof *cnt);
    if (!cnt) {
        free(cf), free(byv), free(fr), free(amb), free(prec), free(rec), free(rank);
        return -1;
    }
    for (long i = 0; i < P; i++) cnt[s->det_video[D[cj->det[i]].video] + 2]++;
    for (long v = 1; v < n_v + 2; v++) cnt[v] += cnt[v - 1];
    for (long i = 0; i < P; i++) byv[cnt[s->det_video[D[cj->det[i]].video] + 1]++] = i;
    /* now byv lists det positions: first video -1 (no GT), then GT videos in id order */
    int failed = 0;
    for (int t = 0; t < T; t++) {
        memset(fr, 1, (size_t)P);
        long a = 0;
        while (a < P) {
            int v = s->det_video[D[cj->det[byv[a]]].video];
            long b = a;
            while (b < P && s->det_video[D[cj->det[byv[b]]].video] == v) b++;
            int lo = 0, hi = 0;
            if (v >= 0) gt_range(cj, v, &lo, &hi);
            for (int k = lo; k < hi; k++) { /* GT-centric: each GT takes its best free det */
                const gt_inst *g = &s->g[cj->gt[k]];
                double vm = -1;
                long im = -1;
                for (long m = a; m < b; m++) {
                    long i = byv[m];
                    if (!fr[i]) continue;
                    const det_inst *p = &D[cj->det[i]];
                    double ov = th14_overlap(g->t0, g->t1, p->t0, p->t1);
                    if (ov > vm) {
                        vm = ov;
                        im = i;
                    }
                }
                if (im >= 0 && vm > s->tiou[t]) {
                    fr[im] = 0;
                    if (gt_tp) gt_tp[s->g_src[cj->gt[k]]] |= 1u << t;
                }
            }
            a = b;
        }
        long n = 0, n_tp = 0;
        for (long i = 0; i < P; i++) { /* tpconf then fpconf, each in video order */
            long pi = byv[i];
            if (!fr[pi])
                cf[n] = (conf_flag){D[cj->det[pi]].score, 1, n, cj->det[pi]}, n++, n_tp++;
            if (!fr[pi] && det_tp) det_tp[cj->det[pi]] |= 1u << t;
        }
        for (long i = 0; i < P; i++) {
            long pi = byv[i];
            if (fr[pi] && !amb[pi])
                cf[n] = (conf_flag){D[cj->det[pi]].score, 0, n, cj->det[pi]}, n++;
            else if (fr[pi] && t == 0) (*n_amb_dropped)++;
        }
        if (n_tp == 0) {
            ap[t] = 0;
            if (det_tp) charge_loss_missed(s, cj, s->loss_weight);
            continue;
        }
        qsort(cf, (size_t)n, sizeof *cf, cmp_conf);
        double tpc = 0, fpc = 0;
        for (long i = 0; i < n; i++) {
            if (cf[i].tp) tpc += 1;
            else fpc += 1;
            rec[i] = tpc / (double)cj->n_gt;
            prec[i] = tpc / (fpc + tpc);
        }
        keep_curve(s, cj, t, prec, rec, n);
        double sum = 0;
        for (int r = 0; r <= 10; r++) {
            double thr = r == 10 ? 1.0 : r * 0.1, p = 0;
            int any = 0;
            for (long i = 0; i < n; i++)
                if (rec[i] >= thr && (!any || prec[i] > p)) p = prec[i], any = 1;
            sum = sum + p / 11.0;
        }
        ap[t] = sum;
        if (det_tp) {
            for (long i = 0; i < n; i++) rank[i] = cf[i].det;
            if (charge_loss(s, cj, t, rank, n)) failed = 1;
        }
    }
    free(cnt), free(cf), free(byv), free(fr), free(amb), free(prec), free(rec), free(rank);
    return failed ? -1 : 0;
}
