/* eval/report_html.c: tal_eval_write_html: one self-contained page. The evaluation result, the
 * GT and the detections of every video are written once as compact JSON inside the page; the
 * page's own script (report_page.js, with report_page.css, built into the library) draws the
 * tables and plots, and each video's timeline when it scrolls into view. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/internal.h"
#include "eval/jsonbuf.h"
#include "eval/report_assets.h" /* generated from report_page.js/.css (eval/CMakeLists.txt) */

/* The detections and GT of each video the page shows, and what it lost. */
typedef struct page_video {
    int gt_video;      /* id in gt->videos, or -1 (a video of the detections only) */
    int det_video;     /* id in d->videos, or -1 */
    double loss, loss_missed;
    long first_det, n_det; /* into det_order */
    int first_gt, n_gt;    /* into gt_order */
} page_video;

typedef struct page {
    page_video *videos;
    int n_videos;
    long *det_order; /* scored detections grouped by page video, file order inside */
    int *gt_order;   /* GT instances grouped by video, file order inside */
    int *gt_local;   /* per GT instance: its position in its video's list */
    int *det_class;  /* per detection label id: GT class id or -1 */
} page;

static void page_free(page *p) {
    free(p->videos), free(p->det_order), free(p->gt_order), free(p->gt_local), free(p->det_class);
}

static int cmp_loss_desc(const void *a, const void *b) {
    const page_video *x = a, *y = b;
    if (x->loss != y->loss) return x->loss > y->loss ? -1 : 1;
    /* ties: GT videos first, in file order */
    long kx = x->gt_video >= 0 ? x->gt_video : 1000000000L + x->det_video;
    long ky = y->gt_video >= 0 ? y->gt_video : 1000000000L + y->det_video;
    return (kx > ky) - (kx < ky);
}

/* Groups GT and scored detections by video (counting sorts) and sums each video's loss. */
static tal_status page_build(page *p, const tal_eval_gt *gt, const tal_eval_dets *d,
                             const tal_eval_result *r, tal_err *err) {
    int nv_gt = gt->videos.n, nv_det = d->videos.n;
    int *page_of_det_video = malloc(sizeof(int) * (size_t)(nv_det + 1));
    long *det_count = calloc((size_t)(nv_gt + nv_det) + 2, sizeof *det_count);
    int *gt_count = calloc((size_t)nv_gt + 2, sizeof *gt_count);
    p->videos = calloc((size_t)(nv_gt + nv_det) + 1, sizeof *p->videos);
    p->det_order = malloc(sizeof *p->det_order * (size_t)(d->n + 1));
    p->gt_order = malloc(sizeof *p->gt_order * (size_t)(gt->n + 1));
    p->gt_local = malloc(sizeof *p->gt_local * (size_t)(gt->n + 1));
    p->det_class = malloc(sizeof *p->det_class * (size_t)(d->labels.n + 1));
    tal_status st = TAL_OK;
    if (!page_of_det_video || !det_count || !gt_count || !p->videos || !p->det_order ||
        !p->gt_order || !p->gt_local || !p->det_class) {
        st = tal_err_set(err, TAL_ENOMEM, "report: out of memory (%ld detections)", d->n);
        goto done;
    }
    for (int l = 0; l < d->labels.n; l++)
        p->det_class[l] = strtab_find(&gt->classes, d->labels.names[l]);
    /* page videos: the GT subset's in file order, then detection-only videos */
    for (int v = 0; v < nv_gt; v++) p->videos[v] = (page_video){.gt_video = v, .det_video = -1};
    p->n_videos = nv_gt;
    for (int v = 0; v < nv_det; v++) {
        int g = strtab_find(&gt->videos, d->videos.names[v]);
        page_of_det_video[v] = g;
        if (g >= 0) p->videos[g].det_video = v;
    }
    for (long i = 0; i < d->n; i++) { /* only videos with a scored detection get a page */
        int v = d->dets[i].video;
        if (p->det_class[d->dets[i].label] < 0 || page_of_det_video[v] >= 0) continue;
        page_of_det_video[v] = p->n_videos;
        p->videos[p->n_videos++] = (page_video){.gt_video = -1, .det_video = v};
    }
    for (long i = 0; i < d->n; i++)
        if (p->det_class[d->dets[i].label] >= 0)
            det_count[page_of_det_video[d->dets[i].video] + 1]++;
    for (int v = 0; v < p->n_videos; v++) det_count[v + 1] += det_count[v];
    for (int v = 0; v < p->n_videos; v++) {
        p->videos[v].first_det = det_count[v];
        p->videos[v].n_det = det_count[v + 1] - det_count[v];
    }
    for (long i = 0; i < d->n; i++) {
        if (p->det_class[d->dets[i].label] < 0) continue;
        int v = page_of_det_video[d->dets[i].video];
        p->det_order[det_count[v]++] = i;
        p->videos[v].loss += r->det_loss[i];
    }
    for (int i = 0; i < gt->n; i++) gt_count[gt->inst[i].video + 1]++;
    for (int v = 0; v < nv_gt; v++) gt_count[v + 1] += gt_count[v];
    for (int v = 0; v < nv_gt; v++) {
        p->videos[v].first_gt = gt_count[v];
        p->videos[v].n_gt = gt_count[v + 1] - gt_count[v];
    }
    for (int i = 0; i < gt->n; i++) {
        page_video *pv = &p->videos[gt->inst[i].video];
        p->gt_local[i] = gt_count[gt->inst[i].video] - pv->first_gt;
        p->gt_order[gt_count[gt->inst[i].video]++] = i;
        pv->loss_missed += r->gt_loss[i];
        pv->loss += r->gt_loss[i];
    }
    qsort(p->videos, (size_t)p->n_videos, sizeof *p->videos, cmp_loss_desc);
done:
    free(page_of_det_video), free(det_count), free(gt_count);
    return st;
}

/* ---------------------------------------------------------------- the data -------------- */
static void key(jsonbuf *b, const char *name) {
    jb_char(b, ',');
    jb_json_string(b, name);
    jb_char(b, ':');
}

static void exact_array(jsonbuf *b, const double *x, int n) {
    jb_char(b, '[');
    for (int i = 0; i < n; i++) {
        if (i) jb_char(b, ',');
        jb_exact(b, x[i]);
    }
    jb_char(b, ']');
}

static void long_array(jsonbuf *b, const long *x, int n) {
    jb_char(b, '[');
    for (int i = 0; i < n; i++) {
        if (i) jb_char(b, ',');
        jb_long(b, x[i]);
    }
    jb_char(b, ']');
}

/* The interpolated envelope of each class's PR curve (what the AP integrates), at most one
 * point per 1/500 of recall, as [recall, precision, ...] per class, per threshold. */
static void pr_curves(jsonbuf *b, const tal_eval_result *r) {
    jb_char(b, '[');
    for (int t = 0; t < r->n_tiou; t++) {
        jb_str(b, t ? ",[" : "[");
        for (int c = 0; c < r->n_classes; c++) {
            jb_str(b, c ? ",[" : "[");
            long n = r->pr_len[(long)c * r->n_tiou + t];
            const double *re = r->pr_recall + (long)t * r->pr_stride + r->pr_offset[c];
            const double *pr = r->pr_precision + (long)t * r->pr_stride + r->pr_offset[c];
            double env = 0, last = 2;
            int first = 1;
            for (long i = n - 1; i >= 0; i--) { /* from the right: running max of precision */
                if (pr[i] > env) env = pr[i];
                if (i > 0 && last - re[i] < 0.002) continue;
                if (!first) jb_char(b, ',');
                first = 0;
                jb_fixed(b, re[i], 4);
                jb_char(b, ',');
                jb_fixed(b, env, 4);
                last = re[i];
            }
            jb_char(b, ']');
        }
        jb_char(b, ']');
    }
    jb_char(b, ']');
}

static void summary(jsonbuf *b, const tal_eval_gt *gt, const tal_eval_result *r,
                    const tal_eval_html_opts *o) {
    jb_str(b, "{\"title\":");
    jb_json_string(b, o->title ? o->title : "re2tal report");
    key(b, "gt_path"), jb_json_string(b, o->gt_path ? o->gt_path : "");
    key(b, "pred_path"), jb_json_string(b, o->pred_path ? o->pred_path : "");
    key(b, "protocol"), jb_json_string(b, tal_eval_protocol_name(r->protocol));
    key(b, "subset"), jb_json_string(b, r->subset);
    key(b, "n_gt_videos"), jb_long(b, gt->videos.n);
    key(b, "tiou"), exact_array(b, r->tiou, r->n_tiou);
    key(b, "mAP"), exact_array(b, r->map, r->n_tiou);
    key(b, "average_mAP"), jb_exact(b, r->average_map);
    key(b, "classes"), jb_char(b, '[');
    for (int c = 0; c < r->n_classes; c++) {
        if (c) jb_char(b, ',');
        jb_json_string(b, r->class_names[c]);
    }
    jb_char(b, ']');
    key(b, "AP"), jb_char(b, '[');
    for (int c = 0; c < r->n_classes; c++) {
        if (c) jb_char(b, ',');
        exact_array(b, r->ap + (long)c * r->n_tiou, r->n_tiou);
    }
    jb_char(b, ']');
    key(b, "n_gt"), long_array(b, r->n_gt_class, r->n_classes);
    key(b, "n_det"), long_array(b, r->n_det_class, r->n_classes);
    if (r->protocol != TAL_EVAL_THUMOS14) {
        key(b, "false_positives"), jb_char(b, '[');
        for (int t = 0; t < r->n_tiou; t++) {
            if (t) jb_char(b, ',');
            long_array(b, r->fp[t], TAL_EVAL_N_FP);
        }
        jb_char(b, ']');
    }
    key(b, "by_gt_length"), jb_char(b, '[');
    for (int k = 0; k < r->n_buckets; k++) {
        jb_str(b, k ? ",{\"from_s\":" : "{\"from_s\":");
        jb_exact(b, k ? r->bucket_edges[k - 1] : 0);
        key(b, "to_s"), jb_exact(b, k < r->n_buckets - 1 ? r->bucket_edges[k] : INFINITY);
        key(b, "n_gt"), jb_long(b, r->bucket_n_gt[k]);
        key(b, "n_classes"), jb_long(b, r->bucket_n_classes[k]);
        key(b, "mAP"), exact_array(b, r->bucket_map[k], r->n_tiou);
        key(b, "average_mAP"), jb_exact(b, r->bucket_average_map[k]);
        jb_char(b, '}');
    }
    jb_char(b, ']');
    key(b, "diagnosis"), jb_char(b, '[');
    for (int i = 0; i < N_DIAG; i++) {
        jb_str(b, i ? ",[" : "[");
        jb_json_string(b, diag_text[i]);
        jb_char(b, ',');
        jb_long(b, diag_value(&r->diag, i));
        jb_char(b, ']');
    }
    jb_char(b, ']');
    if (o->proposals) {
        key(b, "proposals"), jb_str(b, "{\"AR_at\":");
        exact_array(b, o->proposals->ar_at, 5);
        key(b, "AUC"), jb_exact(b, o->proposals->auc);
        jb_char(b, '}');
    }
    key(b, "loss_unattributed"), jb_exact(b, r->loss_unattributed);
    key(b, "pr"), pr_curves(b, r);
}

/* One video: [id, duration|null, loss, loss_missed, in_gt, gt[], dets[]] with
 * gt = [class, t0, t1, matched_mask, loss, ignored]... and dets = [class, t0, t1, score,
 * best_tiou|null, best_gt (position in gt) | -1, tp_mask, loss]...; losses in mAP points. */
static void video_json(jsonbuf *b, const page *p, const page_video *pv, const tal_eval_gt *gt,
                       const tal_eval_dets *d, const tal_eval_result *r) {
    const char *id = pv->gt_video >= 0 ? gt->videos.names[pv->gt_video]
                                       : d->videos.names[pv->det_video];
    jb_char(b, '[');
    jb_json_string(b, id);
    jb_char(b, ',');
    jb_fixed(b, pv->gt_video >= 0 && gt->duration ? gt->duration[pv->gt_video] : NAN, 3);
    jb_char(b, ',');
    jb_sig(b, 100 * pv->loss, 4);
    jb_char(b, ',');
    jb_sig(b, 100 * pv->loss_missed, 4);
    jb_str(b, pv->gt_video >= 0 ? ",1,[" : ",0,[");
    for (int k = 0; k < pv->n_gt; k++) {
        const gt_inst *g = &gt->inst[p->gt_order[pv->first_gt + k]];
        int i = p->gt_order[pv->first_gt + k];
        if (k) jb_char(b, ',');
        jb_long(b, g->cls), jb_char(b, ',');
        jb_fixed(b, g->t0, 3), jb_char(b, ',');
        jb_fixed(b, g->t1, 3), jb_char(b, ',');
        jb_long(b, (long)r->gt_tp_mask[i]), jb_char(b, ',');
        jb_sig(b, 100 * r->gt_loss[i], 3), jb_char(b, ',');
        jb_long(b, r->gt_ignored[i]);
    }
    jb_str(b, "],[");
    for (long k = 0; k < pv->n_det; k++) {
        long i = p->det_order[pv->first_det + k];
        const det_inst *q = &d->dets[i];
        if (k) jb_char(b, ',');
        jb_long(b, p->det_class[q->label]), jb_char(b, ',');
        jb_fixed(b, q->t0, 3), jb_char(b, ',');
        jb_fixed(b, q->t1, 3), jb_char(b, ',');
        jb_sig(b, q->score, 4), jb_char(b, ',');
        jb_fixed(b, r->det_best_tiou[i], 3), jb_char(b, ',');
        jb_long(b, r->det_best_gt[i] >= 0 ? p->gt_local[r->det_best_gt[i]] : -1), jb_char(b, ',');
        jb_long(b, (long)r->det_tp_mask[i]), jb_char(b, ',');
        jb_sig(b, 100 * r->det_loss[i], 3);
    }
    jb_str(b, "]]");
}

/* ---------------------------------------------------------------- the page -------------- */
static tal_status write_atomic(const char *path, const jsonbuf *b, tal_err *err) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    int bad = fwrite(b->data, 1, b->len, f) != b->len;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", path, strerror(e));
    }
    return TAL_OK;
}

tal_status tal_eval_write_html(const char *path, const tal_eval_gt *gt, const tal_eval_dets *d,
                               const tal_eval_result *r, const tal_eval_html_opts *opts,
                               tal_err *err) {
    if (!r->pr_recall || !r->det_tp_mask)
        return tal_err_set(err, TAL_EINVAL, "%s: the report needs a result made with "
                           "keep_pr and keep_matches", path);
    if (r->n_classes != gt->classes.n || r->diag.n_dets != d->n)
        return tal_err_set(err, TAL_EINVAL, "%s: the result does not come from these GT and "
                           "detections", path);
    tal_eval_html_opts o = opts ? *opts : (tal_eval_html_opts){0};
    page p = {0};
    tal_status st = page_build(&p, gt, d, r, err);
    if (st) {
        page_free(&p);
        return st;
    }
    jsonbuf b = {0};
    jb_str(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    jb_html(&b, o.title ? o.title : "re2tal report");
    jb_str(&b, "</title>\n<style>\n");
    jb_str(&b, report_page_css);
    jb_str(&b, "</style>\n</head>\n<body>\n<noscript><p>This report draws its tables, plots and "
               "timelines with JavaScript: allow scripts for this file to read it.</p></noscript>\n"
               "<div id=\"app\"></div>\n<script type=\"application/json\" id=\"report-data\">");
    summary(&b, gt, r, &o);
    key(&b, "videos"), jb_char(&b, '[');
    for (int v = 0; v < p.n_videos; v++) {
        if (v) jb_str(&b, ",\n");
        video_json(&b, &p, &p.videos[v], gt, d, r);
    }
    jb_char(&b, ']');
    if (o.training_json) key(&b, "training"), jb_json_safe(&b, o.training_json);
    jb_str(&b, "}</script>\n<script>\n");
    jb_str(&b, report_page_js);
    jb_str(&b, "</script>\n</body>\n</html>\n");
    page_free(&p);
    if (b.failed) st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    else st = write_atomic(path, &b, err);
    jb_free(&b);
    return st;
}
