/* eval/map.c: AP per class and threshold under the activitynet and opentad protocols (spec
 * sections 1-2) and the driver of all three (map_thumos.c: thumos14), with numpy's arithmetic
 * (operation order, pairwise sums) so that the numbers are bit-identical to the official code
 * whenever no two detections of a class share a score. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eval/npsort.h"
#include "eval/scoring.h"

#ifdef _OPENMP
#include <omp.h>
static int omp_default_threads(void) { return omp_get_max_threads(); }
#else
static int omp_default_threads(void) { return 1; }
#endif

/* numpy's pairwise_sum for float64 (8-way unrolled blocks of up to 128, then halves). */
double np_pairwise_sum(const double *a, long n) {
    if (n < 8) {
        double res = 0.;
        for (long i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        long i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    long n2 = n / 2;
    n2 -= n2 % 8;
    return np_pairwise_sum(a, n2) + np_pairwise_sum(a + n2, n - n2);
}

void tal_eval_linspace(double *out, double start, double stop, int n) {
    if (n <= 0) return;
    if (n == 1) {
        out[0] = start;
        return;
    }
    double step = (stop - start) / (double)(n - 1);
    for (int i = 0; i < n; i++) out[i] = start + (double)i * step;
    out[n - 1] = stop;
}

static double ap_all_points(const double *prec, const double *rec, long n, double *work);

static int bucket_of(double len, const double *edges, int n_edges) {
    int b = 0;
    while (b < n_edges && len >= edges[b]) b++;
    return b;
}

/* AP of the class restricted to the GT of each length bucket: detections that matched GT of
 * another bucket are left out (neither TP nor FP), the rest keep their status; this is the
 * same as re-running the matching with only the bucket's GT (the greedy matching of the
 * remaining detections does not change). */
/* The class's GT per length bucket (their bucket into gb[n_gt] when given): a class that has GT
 * in a bucket counts in that bucket's mAP, with AP 0 when it has no detection at all. */
static void count_bucket_gt(const scoring *s, const class_job *cj, int *gb) {
    int NB = s->n_buckets, c = (int)(cj - s->jobs);
    for (int j = 0; j < cj->n_gt; j++) {
        const gt_inst *g = &s->g[cj->gt[j]];
        int b = bucket_of(g->t1 - g->t0, s->o->bucket_edges, NB - 1);
        if (gb) gb[j] = b;
        s->bucket_npos[(long)c * NB + b]++;
    }
}

static void bucket_aps(const scoring *s, const class_job *cj, const int *lock,
                       const unsigned char *tp, double *prec, double *rec, double *work) {
    int T = s->n_tiou, NB = s->n_buckets, c = (int)(cj - s->jobs);
    long P = cj->n_det;
    int *gb = malloc(sizeof *gb * (size_t)(cj->n_gt ? cj->n_gt : 1));
    int *db = malloc(sizeof *db * (size_t)(P ? P : 1));
    if (!gb || !db) {
        free(gb), free(db);
        return; /* out of memory: the breakdown of this class stays 0 */
    }
    count_bucket_gt(s, cj, gb);
    for (int t = 0; t < T; t++) {
        for (long i = 0; i < P; i++) db[i] = -1;
        for (int j = 0; j < cj->n_gt; j++) {
            int i = lock[(long)t * cj->n_gt + j];
            if (i >= 0) db[i] = gb[j];
        }
        for (int b = 0; b < NB; b++) {
            long npos = s->bucket_npos[(long)c * NB + b], n = 0;
            if (npos == 0) continue;
            double tpc = 0, fpc = 0;
            for (long i = 0; i < P; i++) {
                if (db[i] >= 0 && db[i] != b) continue; /* found GT of another bucket */
                if (tp[(long)t * P + i]) tpc += 1;
                else fpc += 1;
                rec[n] = tpc / (double)npos;
                prec[n] = tpc / (tpc + fpc);
                n++;
            }
            s->bucket_ap[((long)c * NB + b) * T + t] = ap_all_points(prec, rec, n, work);
        }
    }
    free(gb), free(db);
}

static double anet_tiou(const det_inst *p, const gt_inst *g, int clip) {
    double tt1 = p->t0 > g->t0 ? p->t0 : g->t0; /* np.maximum(target, candidates) */
    double tt2 = p->t1 < g->t1 ? p->t1 : g->t1;
    double inter = tt2 - tt1;
    if (inter < 0) inter = 0; /* .clip(0) */
    double uni = (g->t1 - g->t0) + (p->t1 - p->t0) - inter;
    if (clip && uni < 1e-8) uni = 1e-8;
    return inter / uni;
}

/* DETAD-style category of a false positive at threshold thr (see eval.h). */
static int fp_category(const scoring *s, const det_inst *p, int v, int cls, const double *tv,
                       int k, double thr, int clip) {
    double same = -1;
    for (int j = 0; j < k; j++) {
        if (isnan(tv[j]) || tv[j] >= thr) return TAL_EVAL_FP_DUPLICATE; /* its GT is taken */
        if (tv[j] > same) same = tv[j];
    }
    if (same >= 0.1) return TAL_EVAL_FP_LOCALIZATION;
    double other = -1;
    if (v >= 0)
        for (int a = s->vg_start[v]; a < s->vg_start[v + 1]; a++) {
            const gt_inst *g = &s->g[s->vg_idx[a]];
            if (g->cls == cls) continue;
            double x = anet_tiou(p, g, clip);
            if (!isnan(x) && x > other) other = x;
        }
    if (other >= thr) return TAL_EVAL_FP_WRONG_LABEL;
    if (other >= 0.1) return TAL_EVAL_FP_CONFUSION;
    return TAL_EVAL_FP_BACKGROUND;
}

void keep_curve(const scoring *s, const class_job *cj, int t, const double *prec,
                const double *rec, long n) {
    tal_eval_result *r = s->r;
    if (!r->pr_recall) return;
    long at = (long)t * r->pr_stride + cj->base;
    memcpy(r->pr_recall + at, rec, sizeof *rec * (size_t)n);
    memcpy(r->pr_precision + at, prec, sizeof *prec * (size_t)n);
    r->pr_len[(long)(cj - s->jobs) * s->n_tiou + t] = n;
}

typedef struct scored_det {
    double score;
    long idx;
} scored_det;

/* Descending score; ties keep insertion order (a stable sort, documented in eval.h). */
static int cmp_det_desc(const void *a, const void *b) {
    const scored_det *x = a, *y = b;
    if (x->score > y->score) return -1;
    if (x->score < y->score) return 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

void gt_range(const class_job *cj, int v, int *lo, int *hi) {
    int a = 0, b = cj->n_gt_videos;
    while (a < b) {
        int m = (a + b) / 2;
        if (cj->gt_videos[m] < v) a = m + 1;
        else b = m;
    }
    if (a < cj->n_gt_videos && cj->gt_videos[a] == v) {
        *lo = cj->gt_video_start[a];
        *hi = cj->gt_video_start[a + 1];
    } else {
        *lo = *hi = 0;
    }
}

/* VOC "all points" interpolation, as interpolated_prec_rec (spec 1.2 step 7). work: [2(n+2)] */
static double ap_all_points(const double *prec, const double *rec, long n, double *work) {
    double *mprec = work, *mrec = work + n + 2;
    mprec[0] = 0;
    mrec[0] = 0;
    for (long i = 0; i < n; i++) {
        mprec[i + 1] = prec[i];
        mrec[i + 1] = rec[i];
    }
    mprec[n + 1] = 0;
    mrec[n + 1] = 1;
    for (long i = n; i >= 0; i--)
        if (mprec[i + 1] > mprec[i]) mprec[i] = mprec[i + 1];
    long k = 0;
    for (long i = 1; i < n + 2; i++)
        if (mrec[i] != mrec[i - 1]) work[k++] = (mrec[i] - mrec[i - 1]) * mprec[i];
    /* work[0..k) overwrote mprec only at indices < i, which are no longer read */
    return np_pairwise_sum(work, k);
}

/* keep_matches: the best same-class GT of detection `det` among tv[0..k) (GT lo.. of the class
 * job) in the protocol's own order (js: numpy's argsort, NaN last = matched first). */
static void keep_best_tiou(const scoring *s, const class_job *cj, long det, const double *tv,
                           const long *js, int lo, int k) {
    s->r->det_best_tiou[det] = k > 0 ? tv[js[k - 1]] : NAN;
    s->r->det_best_gt[det] = k > 0 ? s->g_src[cj->gt[lo + js[k - 1]]] : -1;
}

/* keep_matches: TP and matched bits from the greedy matching, then the loss at each
 * threshold shared out over the ranked detections (cj->det) and the missed GT. */
static int keep_matches(const scoring *s, const class_job *cj, const int *lock,
                        const unsigned char *tp) {
    tal_eval_result *r = s->r;
    long P = cj->n_det;
    for (int t = 0; t < s->n_tiou; t++) {
        for (long i = 0; i < P; i++)
            if (tp[(long)t * P + i]) r->det_tp_mask[cj->det[i]] |= 1u << t;
        for (int j = 0; j < cj->n_gt; j++)
            if (lock[(long)t * cj->n_gt + j] >= 0) r->gt_tp_mask[s->g_src[cj->gt[j]]] |= 1u << t;
    }
    for (int t = 0; t < s->n_tiou; t++)
        if (charge_loss(s, cj, t, cj->det, P)) return -1;
    return 0;
}

static int score_class_anet(const scoring *s, const class_job *cj, double *ap, long *n_nan,
                            long *fp_cat) {
    int T = s->n_tiou;
    for (int t = 0; t < T; t++) ap[t] = 0;
    if (cj->n_det == 0) return 0;
    int clip = s->o->protocol == TAL_EVAL_OPENTAD;
    long P = cj->n_det;
    int *lock = malloc(sizeof *lock * (size_t)T * (size_t)(cj->n_gt ? cj->n_gt : 1));
    unsigned char *tp = calloc((size_t)T * (size_t)P, 1);
    double *prec = malloc(sizeof *prec * (size_t)P), *rec = malloc(sizeof *rec * (size_t)P);
    double *work = malloc(sizeof *work * (size_t)(2 * (P + 2)));
    int max_k = 0;
    for (int k = 0; k < cj->n_gt_videos; k++) {
        int c = cj->gt_video_start[k + 1] - cj->gt_video_start[k];
        if (c > max_k) max_k = c;
    }
    double *tv = malloc(sizeof *tv * (size_t)(max_k ? max_k : 1));
    long *js = malloc(sizeof *js * (size_t)(max_k ? max_k : 1));
    if (!lock || !tp || !prec || !rec || !work || !js || !tv) {
        free(lock), free(tp), free(prec), free(rec), free(work), free(js), free(tv);
        return -1;
    }
    for (long i = 0; i < (long)T * cj->n_gt; i++) lock[i] = -1;
    for (long i = 0; i < P; i++) {
        const det_inst *p = &s->d->dets[cj->det[i]];
        int v = s->det_video[p->video], lo = 0, hi = 0;
        if (v >= 0) gt_range(cj, v, &lo, &hi);
        int k = hi - lo;
        for (int j = 0; j < k; j++) {
            double tiou = anet_tiou(p, &s->g[cj->gt[lo + j]], clip);
            if (isnan(tiou)) (*n_nan)++;
            tv[j] = tiou;
        }
        if (k > 0) np_argsort_f64(tv, js, k); /* ascending; walked from the end = argsort()[::-1] */
        if (s->r->det_tp_mask) keep_best_tiou(s, cj, cj->det[i], tv, js, lo, k);
        for (int t = 0; t < T; t++) {
            int *lk = lock + (long)t * cj->n_gt + (k > 0 ? lo : 0);
            for (int m = k - 1; m >= 0; m--) {
                long j = js[m];
                if (tv[j] < s->tiou[t]) break; /* FP; NaN never compares less */
                if (lk[j] >= 0) continue;      /* taken: try the next-best GT */
                tp[(long)t * P + i] = 1;
                lk[j] = (int)i;
                break;
            }
            if (!tp[(long)t * P + i])
                fp_cat[t * TAL_EVAL_N_FP + fp_category(s, p, v, (int)(cj - s->jobs), tv, k,
                                                       s->tiou[t], clip)]++;
        }
    }
    for (int t = 0; t < T; t++) {
        double tpc = 0, fpc = 0;
        for (long i = 0; i < P; i++) {
            if (tp[(long)t * P + i]) tpc += 1;
            else fpc += 1;
            rec[i] = tpc / (double)cj->n_gt;
            prec[i] = tpc / (tpc + fpc);
        }
        keep_curve(s, cj, t, prec, rec, P);
        ap[t] = ap_all_points(prec, rec, P, work);
    }
    if (s->n_buckets) bucket_aps(s, cj, lock, tp, prec, rec, work);
    int rc = s->r->det_tp_mask ? keep_matches(s, cj, lock, tp) : 0;
    free(lock), free(tp), free(prec), free(rec), free(work), free(js), free(tv);
    return rc;
}


/* ---------------------------------------------------------------- driver ---------------- */
typedef struct gt_ref {
    int cls, video, idx;
} gt_ref;

static int cmp_gt_ref(const void *a, const void *b) {
    const gt_ref *x = a, *y = b;
    if (x->cls != y->cls) return x->cls < y->cls ? -1 : 1;
    if (x->video != y->video) return x->video < y->video ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

tal_status tal_eval_score_classes(tal_eval_result *r, const tal_eval_gt *gt,
                                  const tal_eval_dets *d, const tal_eval_opts *o,
                                  const gt_inst *g, const int *g_src, int n_g,
                                  const int *det_video, const int *det_class, tal_err *err) {
    int C = gt->classes.n, T = o->n_tiou;
    tal_status st = TAL_OK;
    class_job *jobs = calloc((size_t)C + 1, sizeof *jobs);
    long *det_start = calloc((size_t)C + 2, sizeof *det_start);
    long *det_all = malloc(sizeof *det_all * (size_t)(d->n + 1));
    scored_det *sd = malloc(sizeof *sd * (size_t)(d->n + 1));
    gt_ref *refs = malloc(sizeof *refs * (size_t)(n_g + 1));
    int *gt_all = malloc(sizeof *gt_all * (size_t)(n_g + 1));
    int *vid_all = malloc(sizeof *vid_all * (size_t)(n_g + 1));
    int *vstart_all = malloc(sizeof *vstart_all * (size_t)(n_g + C + 1));
    long *amb_start = NULL, *fp_cat = NULL, *bucket_npos = NULL;
    double *bucket_ap = NULL;
    int *amb_order = NULL, *vg_start = NULL, *vg_idx = NULL;
    r->n_classes = C;
    r->class_names = calloc((size_t)C + 1, sizeof *r->class_names);
    r->ap = calloc((size_t)C * (size_t)T + 1, sizeof *r->ap);
    r->n_gt_class = calloc((size_t)C + 1, sizeof *r->n_gt_class);
    r->n_det_class = calloc((size_t)C + 1, sizeof *r->n_det_class);
    if (!jobs || !det_start || !det_all || !sd || !refs || !gt_all || !vid_all || !vstart_all ||
        !r->class_names || !r->ap || !r->n_gt_class || !r->n_det_class)
        goto oom;
    for (int c = 0; c < C; c++)
        if (!(r->class_names[c] = strdup(gt->classes.names[c]))) goto oom;

    /* detections: bucket by class in insertion order, then sort each bucket by score */
    for (long i = 0; i < d->n; i++) {
        int c = det_class[d->dets[i].label];
        if (c >= 0) det_start[c + 2]++;
    }
    for (int c = 1; c < C + 2; c++) det_start[c] += det_start[c - 1];
    for (long i = 0; i < d->n; i++) {
        int c = det_class[d->dets[i].label];
        if (c >= 0) sd[det_start[c + 1]++] = (scored_det){d->dets[i].score, i};
    }
    /* GT: sort by (class, video, file order) */
    for (int i = 0; i < n_g; i++) refs[i] = (gt_ref){g[i].cls, g[i].video, i};
    qsort(refs, (size_t)n_g, sizeof *refs, cmp_gt_ref);
    int pos = 0, vpos = 0;
    for (int c = 0; c < C; c++) {
        class_job *cj = &jobs[c];
        cj->det = det_all + det_start[c];
        cj->n_det = det_start[c + 1] - det_start[c];
        cj->gt = gt_all + pos;
        cj->gt_videos = vid_all + vpos;
        cj->gt_video_start = vstart_all + vpos + c;
        int k = 0, nv = 0;
        while (pos + k < n_g && refs[pos + k].cls == c) {
            if (k == 0 || refs[pos + k].video != refs[pos + k - 1].video) {
                cj->gt_videos[nv] = refs[pos + k].video;
                cj->gt_video_start[nv] = k;
                nv++;
            }
            cj->gt[k] = refs[pos + k].idx;
            k++;
        }
        cj->gt_video_start[nv] = k;
        cj->n_gt = k;
        cj->n_gt_videos = nv;
        pos += k;
        vpos += nv;
        r->n_gt_class[c] = k;
        r->n_det_class[c] = cj->n_det;
    }
    /* Ambiguous segments grouped by video (thumos14 only) */
    if (o->protocol == TAL_EVAL_THUMOS14 && gt->n_amb) {
        int nv = gt->videos.n;
        amb_start = calloc((size_t)nv + 2, sizeof *amb_start);
        amb_order = malloc(sizeof *amb_order * (size_t)gt->n_amb);
        if (!amb_start || !amb_order) goto oom;
        for (int a = 0; a < gt->n_amb; a++) amb_start[gt->amb[a].video + 2]++;
        for (int v = 1; v < nv + 2; v++) amb_start[v] += amb_start[v - 1];
        for (int a = 0; a < gt->n_amb; a++) amb_order[amb_start[gt->amb[a].video + 1]++] = a;
    }
    for (int c = 0; c < C; c++) jobs[c].base = det_start[c];
    if (o->keep_pr) {
        r->pr_stride = det_start[C] > 0 ? det_start[C] : 1;
        r->pr_recall = calloc((size_t)(r->pr_stride * T), sizeof *r->pr_recall);
        r->pr_precision = calloc((size_t)(r->pr_stride * T), sizeof *r->pr_precision);
        r->pr_len = calloc((size_t)C * (size_t)T + 1, sizeof *r->pr_len);
        r->pr_offset = calloc((size_t)C + 1, sizeof *r->pr_offset);
        if (!r->pr_recall || !r->pr_precision || !r->pr_len || !r->pr_offset) goto oom;
        for (int c = 0; c < C; c++) r->pr_offset[c] = det_start[c];
    }
    int nvid = gt->videos.n;
    vg_start = calloc((size_t)nvid + 2, sizeof *vg_start);
    vg_idx = malloc(sizeof *vg_idx * (size_t)(n_g + 1));
    fp_cat = calloc((size_t)C * (size_t)T * TAL_EVAL_N_FP + 1, sizeof *fp_cat);
    if (!vg_start || !vg_idx || !fp_cat) goto oom;
    for (int i = 0; i < n_g; i++) vg_start[g[i].video + 2]++;
    for (int v = 1; v < nvid + 2; v++) vg_start[v] += vg_start[v - 1];
    for (int i = 0; i < n_g; i++) vg_idx[vg_start[g[i].video + 1]++] = i;
    int NB = o->n_bucket_edges > 0 && o->protocol != TAL_EVAL_THUMOS14 ? o->n_bucket_edges + 1 : 0;
    if (NB) {
        bucket_ap = calloc((size_t)C * (size_t)NB * (size_t)T + 1, sizeof *bucket_ap);
        bucket_npos = calloc((size_t)C * (size_t)NB + 1, sizeof *bucket_npos);
        if (!bucket_ap || !bucket_npos) goto oom;
    }
    scoring s = {jobs, gt, d, o, T, o->tiou, g, n_g, g_src, (int *)det_video, (int *)det_class,
                 r, vg_start, vg_idx, fp_cat, NB, bucket_ap, bucket_npos,
                 1.0 / ((double)C * (double)T)};
    long n_nan = 0, n_tied = 0, n_amb_dropped = 0;
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : n_nan, n_tied, n_amb_dropped, failed) \
    num_threads(o->threads > 0 ? o->threads : omp_default_threads())
    for (int c = 0; c < C; c++) {
        class_job *cj = &jobs[c];
        scored_det *b = sd + det_start[c];
        if (cj->n_det > 1) qsort(b, (size_t)cj->n_det, sizeof *b, cmp_det_desc);
        for (long i = 0; i < cj->n_det; i++) {
            cj->det[i] = b[i].idx;
            if ((i > 0 && b[i].score == b[i - 1].score) ||
                (i + 1 < cj->n_det && b[i].score == b[i + 1].score))
                n_tied++;
        }
        double *ap = r->ap + (long)c * T;
        int rc;
        if (cj->n_gt == 0) { /* OpenTAD de-dup emptied the class: no positives */
            for (int t = 0; t < T; t++) ap[t] = 0;
            rc = 0;
        } else if (cj->n_det == 0) { /* AP 0: every GT missed */
            for (int t = 0; t < T; t++) ap[t] = 0;
            if (r->det_tp_mask) charge_loss_missed(&s, cj, T * s.loss_weight);
            if (s.n_buckets) count_bucket_gt(&s, cj, NULL);
            rc = 0;
        } else if (o->protocol == TAL_EVAL_THUMOS14) {
            rc = score_class_th14(&s, cj, amb_start, amb_order, ap, &n_amb_dropped);
        } else {
            rc = score_class_anet(&s, cj, ap, &n_nan, s.fp_cat + (long)c * T * TAL_EVAL_N_FP);
        }
        if (rc) failed++;
    }
    if (failed) goto oom;
    for (int c = 0; c < C && r->det_tp_mask; c++)
        if (jobs[c].n_gt == 0) r->loss_unattributed += 1.0 / C; /* AP 0 that nobody missed */
    for (int c = 0; c < C; c++)
        for (int k = 0; k < T * TAL_EVAL_N_FP; k++) r->fp[k / TAL_EVAL_N_FP][k % TAL_EVAL_N_FP] += fp_cat[(long)c * T * TAL_EVAL_N_FP + k];
    r->n_buckets = NB;
    for (int b = 0; b < NB; b++) {
        double col[TAL_EVAL_MAX_TIOU] = {0};
        double *vals = malloc(sizeof *vals * (size_t)(C + 1));
        if (!vals) goto oom;
        int nc = 0;
        for (int c = 0; c < C; c++) {
            r->bucket_n_gt[b] += bucket_npos[(long)c * NB + b];
            if (bucket_npos[(long)c * NB + b]) nc++;
        }
        r->bucket_n_classes[b] = nc;
        for (int t = 0; t < T && nc; t++) {
            int m = 0;
            for (int c = 0; c < C; c++)
                if (bucket_npos[(long)c * NB + b]) vals[m++] = bucket_ap[((long)c * NB + b) * T + t];
            col[t] = np_pairwise_sum(vals, m) / (double)m;
            r->bucket_map[b][t] = col[t];
        }
        r->bucket_average_map[b] = nc ? np_pairwise_sum(col, T) / (double)T : 0;
        free(vals);
    }
    r->diag.n_nan_pairs = n_nan;
    r->diag.n_tied_scores = n_tied;
    r->diag.n_ambiguous_dropped = n_amb_dropped;
    /* means: numpy (pairwise) for the Python protocols, sequential for MATLAB's mean */
    double *col = malloc(sizeof *col * (size_t)(C + 1));
    if (!col) goto oom;
    for (int t = 0; t < T; t++) {
        for (int c = 0; c < C; c++) col[c] = r->ap[(long)c * T + t];
        double sum = 0;
        if (o->protocol == TAL_EVAL_THUMOS14)
            for (int c = 0; c < C; c++) sum += col[c];
        else
            sum = np_pairwise_sum(col, C);
        r->map[t] = sum / (double)C;
    }
    free(col);
    double sum = 0;
    if (o->protocol == TAL_EVAL_THUMOS14)
        for (int t = 0; t < T; t++) sum += r->map[t];
    else
        sum = np_pairwise_sum(r->map, T);
    r->average_map = sum / (double)T;
    goto done;
oom:
    st = tal_err_set(err, TAL_ENOMEM, "out of memory while scoring %ld detections", d->n);
done:
    free(jobs), free(det_start), free(det_all), free(sd), free(refs), free(gt_all), free(vid_all);
    free(vstart_all), free(amb_start), free(amb_order), free(vg_start), free(vg_idx), free(fp_cat);
    free(bucket_ap), free(bucket_npos);
    return st;
}
