/* eval/run.c: tal_eval_run: maps labels and videos, groups detections and GT by class, scores
 * the classes in parallel (OpenMP) and averages them as the reference code does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/scoring.h"

const char *tal_eval_protocol_name(tal_eval_protocol p) {
    switch (p) {
    case TAL_EVAL_OPENTAD: return "opentad";
    case TAL_EVAL_THUMOS14: return "thumos14";
    default: return "activitynet";
    }
}

tal_status tal_eval_protocol_parse(const char *name, tal_eval_protocol *p, tal_err *err) {
    if (!strcmp(name, "activitynet")) *p = TAL_EVAL_ACTIVITYNET;
    else if (!strcmp(name, "opentad")) *p = TAL_EVAL_OPENTAD;
    else if (!strcmp(name, "thumos14")) *p = TAL_EVAL_THUMOS14;
    else
        return tal_err_set(err, TAL_EINVAL, "unknown protocol '%s' (expected activitynet, opentad "
                           "or thumos14)", name);
    return TAL_OK;
}

static int parse_double(const char *s, size_t len, double *out) {
    char buf[64], *end;
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    *out = strtod(buf, &end);
    return !*end && isfinite(*out);
}

tal_status tal_eval_parse_tiou(const char *spec, double *tiou, int *n_tiou, tal_err *err) {
    *n_tiou = 0;
    const char *c1 = strchr(spec, ':');
    if (c1) {
        const char *c2 = strchr(c1 + 1, ':');
        double a, step, b;
        if (!c2 || !parse_double(spec, (size_t)(c1 - spec), &a) ||
            !parse_double(c1 + 1, (size_t)(c2 - c1 - 1), &step) ||
            !parse_double(c2 + 1, strlen(c2 + 1), &b) || step <= 0 || b < a)
            return tal_err_set(err, TAL_EINVAL, "--tiou '%s': expected start:step:stop with "
                               "step > 0 and stop >= start", spec);
        double nf = floor((b - a) / step + 0.5) + 1;
        if (fabs(a + (nf - 1) * step - b) > 1e-9 * (1 + fabs(b)))
            return tal_err_set(err, TAL_EINVAL, "--tiou '%s': (stop - start) is not a multiple of "
                               "step", spec);
        if (nf > TAL_EVAL_MAX_TIOU)
            return tal_err_set(err, TAL_EINVAL, "--tiou '%s': more than %d thresholds", spec,
                               TAL_EVAL_MAX_TIOU);
        *n_tiou = (int)nf;
        tal_eval_linspace(tiou, a, b, *n_tiou);
    } else {
        const char *p = spec;
        for (;;) {
            const char *q = strchr(p, ',');
            size_t len = q ? (size_t)(q - p) : strlen(p);
            if (*n_tiou == TAL_EVAL_MAX_TIOU)
                return tal_err_set(err, TAL_EINVAL, "--tiou '%s': more than %d thresholds", spec,
                                   TAL_EVAL_MAX_TIOU);
            if (!parse_double(p, len, &tiou[*n_tiou]))
                return tal_err_set(err, TAL_EINVAL, "--tiou '%s': '%.*s' is not a number", spec,
                                   (int)len, p);
            (*n_tiou)++;
            if (!q) break;
            p = q + 1;
        }
    }
    for (int i = 0; i < *n_tiou; i++)
        if (!(tiou[i] > 0 && tiou[i] <= 1))
            return tal_err_set(err, TAL_EINVAL, "--tiou '%s': threshold %g outside (0, 1]", spec,
                               tiou[i]);
    return TAL_OK;
}

tal_status tal_eval_parse_buckets(const char *spec, tal_eval_opts *opts, tal_err *err) {
    opts->n_bucket_edges = 0;
    if (!strcmp(spec, "none")) return TAL_OK;
    int n = 0;
    for (const char *q = spec;;) {
        const char *comma = strchr(q, ',');
        size_t len = comma ? (size_t)(comma - q) : strlen(q);
        double x;
        if (n == TAL_EVAL_MAX_BUCKETS - 1 || !parse_double(q, len, &x) || !(x > 0) ||
            (n > 0 && !(x > opts->bucket_edges[n - 1])))
            return tal_err_set(err, TAL_EINVAL, "--buckets '%s': expected 'none' or up to %d "
                               "ascending positive seconds, e.g. 2,5,20,60", spec,
                               TAL_EVAL_MAX_BUCKETS - 1);
        opts->bucket_edges[n++] = x;
        if (!comma) break;
        q = comma + 1;
    }
    opts->n_bucket_edges = n;
    return TAL_OK;
}

void tal_eval_result_destroy(tal_eval_result *r) {
    if (!r) return;
    if (r->class_names)
        for (int c = 0; c < r->n_classes; c++) free(r->class_names[c]);
    free(r->class_names);
    free(r->ap);
    free(r->n_gt_class);
    free(r->n_det_class);
    free(r->pr_offset);
    free(r->pr_len);
    free(r->pr_recall);
    free(r->pr_precision);
    free(r->det_tp_mask);
    free(r->gt_tp_mask);
    free(r->det_best_tiou);
    free(r->det_best_gt);
    free(r->det_loss);
    free(r->gt_loss);
    free(r->gt_ignored);
    free(r);
}

/* keep_matches: the per-detection and per-GT arrays, zeroed (best tIoU NaN, best GT -1). */
static int alloc_matches(tal_eval_result *r, long n_dets, int n_gt) {
    size_t nd = (size_t)n_dets + 1, ng = (size_t)n_gt + 1;
    r->det_tp_mask = calloc(nd, sizeof *r->det_tp_mask);
    r->gt_tp_mask = calloc(ng, sizeof *r->gt_tp_mask);
    r->det_best_tiou = malloc(nd * sizeof *r->det_best_tiou);
    r->det_best_gt = malloc(nd * sizeof *r->det_best_gt);
    r->det_loss = calloc(nd, sizeof *r->det_loss);
    r->gt_loss = calloc(ng, sizeof *r->gt_loss);
    r->gt_ignored = calloc(ng, 1);
    if (!r->det_tp_mask || !r->gt_tp_mask || !r->det_best_tiou || !r->det_best_gt ||
        !r->det_loss || !r->gt_loss || !r->gt_ignored)
        return -1;
    for (long i = 0; i < n_dets; i++) r->det_best_tiou[i] = NAN, r->det_best_gt[i] = -1;
    return 0;
}

typedef struct gt_key {
    int video, cls;
    double t0, t1;
    int idx;
} gt_key;

static int cmp_gt_key(const void *a, const void *b) {
    const gt_key *x = a, *y = b;
    if (x->video != y->video) return x->video < y->video ? -1 : 1;
    if (x->cls != y->cls) return x->cls < y->cls ? -1 : 1;
    if (x->t0 != y->t0) return x->t0 < y->t0 ? -1 : 1;
    if (x->t1 != y->t1) return x->t1 < y->t1 ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* OpenTAD's remove_duplicate_annotations per video: drop end - start <= 0, and any GT within
 * 1e-3 (both ends) of an earlier kept GT with the same label. src[k]: where out[k] came from. */
static int opentad_dedup(const tal_eval_gt *gt, gt_inst *out, int *src) {
    int n = 0, v_start = 0;
    for (int i = 0; i < gt->n; i++) {
        const gt_inst *a = &gt->inst[i];
        if (i > 0 && a->video != gt->inst[i - 1].video) v_start = n;
        if (a->t1 - a->t0 <= 0) continue;
        int dup = 0;
        for (int k = v_start; k < n && !dup; k++) /* kept GT of this video so far */
            dup = out[k].video == a->video && out[k].cls == a->cls &&
                  fabs(a->t0 - out[k].t0) <= 1e-3 && fabs(a->t1 - out[k].t1) <= 1e-3;
        if (!dup) src[n] = i, out[n++] = *a;
    }
    return n;
}

tal_status tal_eval_run(tal_eval_result **out, const tal_eval_gt *gt, const tal_eval_dets *d,
                        const tal_eval_opts *opts, tal_err *err) {
    *out = NULL;
    tal_eval_opts o = opts ? *opts : (tal_eval_opts){0};
    if (o.n_tiou < 0 || o.n_tiou > TAL_EVAL_MAX_TIOU)
        return tal_err_set(err, TAL_EINVAL, "n_tiou %d outside 0..%d", o.n_tiou, TAL_EVAL_MAX_TIOU);
    if (o.n_tiou == 0) {
        if (gt->thumos) o.n_tiou = 5, tal_eval_linspace(o.tiou, 0.3, 0.7, 5);
        else o.n_tiou = 10, tal_eval_linspace(o.tiou, 0.5, 0.95, 10);
    }
    for (int i = 0; i < o.n_tiou; i++) /* the CLI's parser checks too; API callers may not */
        if (!(o.tiou[i] >= 0 && o.tiou[i] <= 1))
            return tal_err_set(err, TAL_EINVAL, "tIoU threshold %d is %g: expected a number in [0, 1]",
                               i, o.tiou[i]);
    tal_eval_result *r = calloc(1, sizeof *r);
    int *det_video = malloc(sizeof(int) * (size_t)(d->videos.n + 1));
    int *det_class = malloc(sizeof(int) * (size_t)(d->labels.n + 1));
    gt_inst *g = malloc(sizeof *g * (size_t)(gt->n + 1));
    gt_key *keys = malloc(sizeof *keys * (size_t)(gt->n + 1));
    int *g_src = malloc(sizeof *g_src * (size_t)(gt->n + 1));
    unsigned char *video_has_det = calloc((size_t)gt->videos.n + 1, 1);
    unsigned char *video_has_gt = calloc((size_t)gt->videos.n + 1, 1);
    tal_status st = TAL_OK;
    if (!r || !det_video || !det_class || !g || !keys || !g_src || !video_has_det ||
        !video_has_gt || (o.keep_matches && alloc_matches(r, d->n, gt->n))) {
        st = tal_err_set(err, TAL_ENOMEM, "out of memory");
        goto done;
    }
    r->protocol = o.protocol;
    snprintf(r->subset, sizeof r->subset, "%s", gt->subset);
    r->n_tiou = o.n_tiou;
    memcpy(r->tiou, o.tiou, sizeof r->tiou);
    if (o.n_bucket_edges < 0 || o.n_bucket_edges > TAL_EVAL_MAX_BUCKETS - 1) {
        st = tal_err_set(err, TAL_EINVAL, "%d bucket edges (at most %d)", o.n_bucket_edges,
                         TAL_EVAL_MAX_BUCKETS - 1);
        goto done;
    }
    for (int b = 0; b < o.n_bucket_edges; b++)
        if (!(o.bucket_edges[b] > 0) || (b > 0 && !(o.bucket_edges[b] > o.bucket_edges[b - 1]))) {
            st = tal_err_set(err, TAL_EINVAL, "bucket edges must be positive and ascending");
            goto done;
        }
    memcpy(r->bucket_edges, o.bucket_edges, sizeof r->bucket_edges);
    tal_eval_diag *dg = &r->diag;
    dg->n_dets = d->n;
    dg->n_gt = gt->n;
    dg->n_gt_videos = gt->videos.n;
    dg->n_ambiguous = gt->n_amb;

    /* GT diagnosis: exact duplicates and zero/negative length */
    for (int i = 0; i < gt->n; i++) {
        keys[i] = (gt_key){gt->inst[i].video, gt->inst[i].cls, gt->inst[i].t0, gt->inst[i].t1, i};
        if (gt->inst[i].t1 <= gt->inst[i].t0) dg->n_gt_zero_length++;
        video_has_gt[gt->inst[i].video] = 1;
    }
    qsort(keys, (size_t)gt->n, sizeof *keys, cmp_gt_key);
    for (int i = 1; i < gt->n; i++)
        if (keys[i].video == keys[i - 1].video && keys[i].cls == keys[i - 1].cls &&
            keys[i].t0 == keys[i - 1].t0 && keys[i].t1 == keys[i - 1].t1)
            dg->n_gt_duplicates++;

    int n_g;
    if (o.protocol == TAL_EVAL_OPENTAD) {
        n_g = opentad_dedup(gt, g, g_src);
        dg->n_gt_removed = gt->n - n_g;
        if (r->gt_ignored) {
            memset(r->gt_ignored, 1, (size_t)gt->n);
            for (int i = 0; i < n_g; i++) r->gt_ignored[g_src[i]] = 0;
        }
    } else {
        memcpy(g, gt->inst, sizeof *g * (size_t)gt->n);
        n_g = gt->n;
        for (int i = 0; i < n_g; i++) g_src[i] = i;
    }

    for (int v = 0; v < d->videos.n; v++) det_video[v] = strtab_find(&gt->videos, d->videos.names[v]);
    for (int l = 0; l < d->labels.n; l++) det_class[l] = strtab_find(&gt->classes, d->labels.names[l]);
    int strict = o.protocol != TAL_EVAL_OPENTAD && !o.ignore_unknown_labels;
    for (long i = 0; i < d->n; i++) {
        const det_inst *p = &d->dets[i];
        if (det_class[p->label] < 0) {
            if (strict) {
                st = tal_err_set(err, TAL_EINVAL, "label \"%s\" of a detection on video \"%s\" is "
                                 "not a class of the ground truth (subset \"%s\"); "
                                 "--ignore-unknown-labels skips such detections",
                                 d->labels.names[p->label], d->videos.names[p->video], gt->subset);
                goto done;
            }
            dg->n_unknown_label++;
            continue;
        }
        dg->n_dets_scored++;
        if (det_video[p->video] < 0) dg->n_outside_gt++;
        else video_has_det[det_video[p->video]] = 1;
        if (p->t1 < p->t0) dg->n_reversed++;
        else if (p->t1 == p->t0) dg->n_zero_length++;
    }
    for (int v = 0; v < gt->videos.n; v++)
        if (video_has_gt[v] && !video_has_det[v]) dg->n_gt_videos_no_det++;

    st = tal_eval_score_classes(r, gt, d, &o, g, g_src, n_g, det_video, det_class, err);
done:
    free(det_video), free(det_class), free(g), free(keys), free(g_src), free(video_has_det);
    free(video_has_gt);
    if (st) tal_eval_result_destroy(r);
    else *out = r;
    return st;
}
