/* eval/proposal.c: AR@AN and its AUC as ANETproposal computes them (see eval.h), operation
 * for operation: the per-video cut int(n * ratio), the percentage grid
 * arange(1, 101) / 100 * (max_avg * V / total), the column counts int(n_cols * pcn), recall as
 * integer sums, the mean over thresholds in numpy's order for an axis-0 mean, np.trapz. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/internal.h"
#include "eval/npsort.h"

typedef struct video_gt {
    int first, n; /* GT instances of the video: indices into order[] */
} video_gt;

tal_status tal_eval_proposals_ar(tal_eval_ar_result *out, const tal_eval_gt *gt,
                              const tal_eval_dets *d, double max_avg, int n_tiou,
                              const double *tiou, tal_err *err) {
    memset(out, 0, sizeof *out);
    if (n_tiou < 0 || n_tiou > TAL_EVAL_MAX_TIOU)
        return tal_err_set(err, TAL_EINVAL, "proposals: %d thresholds (at most %d)", n_tiou,
                           TAL_EVAL_MAX_TIOU);
    if (n_tiou == 0) {
        out->n_tiou = gt->thumos ? 5 : 10;
        if (gt->thumos) tal_eval_linspace(out->tiou, 0.3, 0.7, 5);
        else tal_eval_linspace(out->tiou, 0.5, 0.95, 10);
    } else {
        out->n_tiou = n_tiou;
        for (int t = 0; t < n_tiou; t++) {
            if (!isfinite(tiou[t]))
                return tal_err_set(err, TAL_EINVAL, "proposals: threshold %d is not finite", t);
            out->tiou[t] = tiou[t];
        }
    }
    if (gt->n == 0) return tal_err_set(err, TAL_EINVAL, "%s: no ground truth to recall", gt->path);
    if (d->n == 0) return tal_err_set(err, TAL_EINVAL, "proposals: no proposals given");
    if (!isfinite(max_avg))
        return tal_err_set(err, TAL_EINVAL, "proposals: max_avg_nr_proposals is not finite");

    tal_status st = TAL_OK;
    int V = 0, nvid_gt = gt->videos.n;
    /* GT videos in order of their first instance (pandas unique()); instances grouped */
    int *vid_rank = malloc(sizeof *vid_rank * (size_t)(nvid_gt ? nvid_gt : 1));
    int *order = malloc(sizeof *order * (size_t)gt->n);
    video_gt *vg = calloc((size_t)(nvid_gt ? nvid_gt : 1), sizeof *vg);
    int *det_vid = malloc(sizeof *det_vid * (size_t)(d->videos.n ? d->videos.n : 1));
    long *pstart = calloc((size_t)(nvid_gt ? nvid_gt : 1) + 1, sizeof *pstart);
    long *plist = malloc(sizeof *plist * (size_t)d->n);
    if (!vid_rank || !order || !vg || !det_vid || !pstart || !plist) {
        st = tal_err_set(err, TAL_ENOMEM, "proposals: out of memory");
        goto done;
    }
    for (int v = 0; v < nvid_gt; v++) vid_rank[v] = -1;
    for (int i = 0; i < gt->n; i++) {
        int v = gt->inst[i].video;
        if (vid_rank[v] < 0) vid_rank[v] = V++;
        vg[vid_rank[v]].n++;
    }
    for (int r = 0, acc = 0; r < V; r++) {
        vg[r].first = acc;
        acc += vg[r].n;
        vg[r].n = 0;
    }
    for (int i = 0; i < gt->n; i++) {
        video_gt *g = &vg[vid_rank[gt->inst[i].video]];
        order[g->first + g->n++] = i; /* file order inside a video */
    }
    /* proposals of each GT video, in file order (groupby keeps it) */
    for (int v = 0; v < d->videos.n; v++) {
        int gv = strtab_find(&gt->videos, d->videos.names[v]);
        det_vid[v] = gv >= 0 ? vid_rank[gv] : -1;
    }
    for (long i = 0; i < d->n; i++) {
        int r = det_vid[d->dets[i].video];
        if (r >= 0) pstart[r + 1]++;
    }
    for (int r = 0; r < V; r++) pstart[r + 1] += pstart[r];
    {
        long *fill = calloc((size_t)V + 1, sizeof *fill);
        if (!fill) {
            st = tal_err_set(err, TAL_ENOMEM, "proposals: out of memory");
            goto done;
        }
        for (long i = 0; i < d->n; i++) {
            int r = det_vid[d->dets[i].video];
            if (r >= 0) plist[pstart[r] + fill[r]++] = i;
        }
        free(fill);
    }
    if (max_avg <= 0) max_avg = (double)d->n / (double)V;
    double ratio = max_avg * (double)V / (double)d->n;

    /* per video: columns kept and, for each GT and threshold, the first column reaching it */
    long total = 0;
    long *ncols = malloc(sizeof *ncols * (size_t)V);
    long *first = malloc(sizeof *first * (size_t)gt->n * (size_t)out->n_tiou);
    if (!ncols || !first) {
        free(ncols);
        free(first);
        st = tal_err_set(err, TAL_ENOMEM, "proposals: out of memory");
        goto done;
    }
    long max_np = 1;
    for (int r = 0; r < V; r++)
        if (pstart[r + 1] - pstart[r] > max_np) max_np = pstart[r + 1] - pstart[r];
    double *sc = malloc(sizeof *sc * (size_t)max_np);
    long *idx = malloc(sizeof *idx * (size_t)max_np);
    if (!sc || !idx) {
        free(sc), free(idx), free(ncols), free(first);
        st = tal_err_set(err, TAL_ENOMEM, "proposals: out of memory");
        goto done;
    }
    for (int r = 0; r < V; r++) {
        long np_ = pstart[r + 1] - pstart[r];
        const long *pl = plist + pstart[r];
        for (int g = 0; g < vg[r].n; g++)
            for (int t = 0; t < out->n_tiou; t++)
                first[(long)order[vg[r].first + g] * out->n_tiou + t] = -1;
        if (np_ == 0) {
            /* the kit scores such a video as one column of zeros */
            ncols[r] = 1;
            for (int g = 0; g < vg[r].n; g++)
                for (int t = 0; t < out->n_tiou; t++)
                    if (0.0 >= out->tiou[t]) first[(long)order[vg[r].first + g] * out->n_tiou + t] = 0;
            continue;
        }
        for (long i = 0; i < np_; i++) sc[i] = d->dets[pl[i]].score;
        np_argsort_f64(sc, idx, np_);
        double kf = (double)np_ * ratio;
        long k = kf >= (double)np_ ? np_ : (long)kf;
        total += k;
        ncols[r] = k;
        for (long c = 0; c < k; c++) {
            const det_inst *p = &d->dets[pl[idx[np_ - 1 - c]]];
            for (int g = 0; g < vg[r].n; g++) {
                int gi = order[vg[r].first + g];
                const gt_inst *q = &gt->inst[gi];
                double tt1 = p->t0 > q->t0 ? p->t0 : q->t0;
                double tt2 = p->t1 < q->t1 ? p->t1 : q->t1;
                double inter = tt2 - tt1;
                if (inter < 0) inter = 0;
                double uni = (q->t1 - q->t0) + (p->t1 - p->t0) - inter;
                double v = inter / uni;
                for (int t = 0; t < out->n_tiou; t++) {
                    long *f = &first[(long)gi * out->n_tiou + t];
                    if (*f < 0 && v >= out->tiou[t]) *f = c; /* NaN never counts */
                }
            }
        }
    }
    free(sc);
    free(idx);
    if (total == 0) {
        free(ncols), free(first);
        st = tal_err_set(err, TAL_EINVAL, "proposals: no proposal on a ground-truth video kept "
                                          "(max_avg_nr_proposals %g too small)", max_avg);
        goto done;
    }
    double c = max_avg * (double)V / (double)total, pcn[TAL_EVAL_AR_POINTS];
    for (int j = 0; j < TAL_EVAL_AR_POINTS; j++) pcn[j] = ((double)(j + 1) / 100.0) * c;
    for (int t = 0; t < out->n_tiou; t++) {
        for (int j = 0; j < TAL_EVAL_AR_POINTS; j++) {
            double matched = 0;
            for (int r = 0; r < V; r++) {
                double kf = (double)ncols[r] * pcn[j];
                long k = kf >= (double)ncols[r] ? ncols[r] : (long)kf;
                long m = 0;
                for (int g = 0; g < vg[r].n; g++) {
                    long f = first[(long)order[vg[r].first + g] * out->n_tiou + t];
                    if (f >= 0 && f < k) m++;
                }
                matched += (double)m;
            }
            out->recall[t][j] = matched / (double)gt->n;
        }
    }
    /* recall.mean(axis=0): numpy adds the rows in order, then divides */
    for (int j = 0; j < TAL_EVAL_AR_POINTS; j++) {
        double s = 0;
        for (int t = 0; t < out->n_tiou; t++) s += out->recall[t][j];
        out->avg_recall[j] = s / (double)out->n_tiou;
        out->an[j] = pcn[j] * ((double)total / (double)V);
    }
    double tr[TAL_EVAL_AR_POINTS - 1];
    for (int j = 0; j < TAL_EVAL_AR_POINTS - 1; j++)
        tr[j] = (out->an[j + 1] - out->an[j]) * (out->avg_recall[j + 1] + out->avg_recall[j]) / 2.0;
    out->auc = 100.0 * np_pairwise_sum(tr, TAL_EVAL_AR_POINTS - 1) / out->an[TAL_EVAL_AR_POINTS - 1];
    const int ans[5] = {1, 5, 10, 50, 100};
    for (int a = 0; a < 5; a++) out->ar_at[a] = out->avg_recall[ans[a] - 1];
    out->max_avg = max_avg;
    out->n_proposals = d->n;
    out->n_used = total;
    out->n_videos = V;
    out->n_gt = gt->n;
    free(ncols);
    free(first);
done:
    free(vid_rank), free(order), free(vg), free(det_vid), free(pstart), free(plist);
    return st;
}
