/* heads/post.c: from head outputs to detections: decoding with threshold and top-k over all
 * levels (OpenTAD) or per level (ActionFormer), Gaussian Soft-NMS (per class or
 * class-agnostic), score voting, seconds, and the video-level classifier fusion
 * (spec-actionformer.md §8). */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

tal_status tal_dets_push(tal_dets *d, tal_detection x, tal_err *err) {
    if (d->n == d->capacity) {
        int cap = d->capacity ? 2 * d->capacity : 64;
        tal_detection *p = realloc(d->items, (size_t)cap * sizeof *p);
        if (!p) return tal_err_set(err, TAL_ENOMEM, "detections: out of memory (%d items)", cap);
        d->items = p;
        d->capacity = cap;
    }
    d->items[d->n++] = x;
    return TAL_OK;
}

void tal_dets_free(tal_dets *d) {
    free(d->items);
    memset(d, 0, sizeof *d);
}

typedef struct cand {
    float score;
    int idx; /* original order: ties keep it */
} cand;

static int by_score_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->idx - y->idx;
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Item b of t [B, ...] on the host: its own memory on the CPU, else downloaded to *stage
 * (advanced past it). */
static const float *item_on_host(tal_tensor t, int b, float **stage) {
    tal_tensor item = tal_tensor_slice0(t, b, 1);
    if (t.device == TAL_DEV_CPU) return item.data;
    float *dst = *stage;
    tal_copy(tal_tensor_of(dst, item.ndim, item.shape), item);
    *stage += tal_tensor_numel(item);
    return dst;
}

/* One item's outputs on the host. */
typedef struct host_outputs {
    const float *cls[TAL_HEAD_MAX_LEVELS], *reg[TAL_HEAD_MAX_LEVELS], *mask0;
} host_outputs;

/* Candidates (point, class) of levels [l0, l1), level l0 first, in cs from cs[0]; with
 * `thresh`, only scores above cfg.pre_nms_thresh. Returns how many. */
static int gather(const tal_head *h, const host_outputs *o, int l0, int l1, int thresh,
                  cand *cs) {
    int K = h->cfg.n_classes, n = 0;
    int64_t pt = 0;
    for (int l = 0; l < l0; l++) pt += h->mask[l].shape[1];
    for (int l = l0; l < l1; l++) {
        int64_t Tl = h->mask[l].shape[1];
        const float *x = o->cls[l];
        for (int64_t i = 0; i < Tl; i++, pt++) {
            if (o->mask0[i << l] <= 0) continue; /* level l's mask: every 2^l-th of level 0's */
            for (int k = 0; k < K; k++) {
                float s = sigmoidf(x[k * Tl + i]);
                if (isnan(s) || (thresh && !(s > h->cfg.pre_nms_thresh))) continue; /* NaN */
                cs[n].score = s;
                cs[n].idx = (int)(pt * K + k);
                n++;
            }
        }
    }
    return n;
}

/* Appends the segments of candidates cs[0..n) (score order) to out. */
static tal_status emit(const tal_head *h, const host_outputs *o, const cand *cs, int n,
                       double valid_len, tal_dets *out, tal_err *err) {
    const tal_head_config *c = &h->cfg;
    int K = c->n_classes;
    tal_status rc = TAL_OK;
    for (int j = 0; j < n && rc == TAL_OK; j++) {
        int64_t p_idx = cs[j].idx / K, rem = p_idx;
        int k = cs[j].idx % K, l = 0;
        while (rem >= h->mask[l].shape[1]) rem -= h->mask[l].shape[1], l++;
        int64_t Tl = h->mask[l].shape[1];
        double s = (double)(1 << l), p = (double)rem * s;
        const float *r = o->reg[l];
        double st = p - r[rem] * s, en = p + r[Tl + rem] * s;
        if (c->clip_to_window) { /* OpenTAD clips only in seconds, to the video */
            st = st < 0 ? 0 : st > valid_len ? valid_len : st;
            en = en < 0 ? 0 : en > valid_len ? valid_len : en;
        }
        /* ActionFormer's seg_areas > test_duration_thresh: a zero-length segment overlaps
         * nothing, so no NMS could ever suppress it */
        if (!isfinite(st) || !isfinite(en)) continue;
        if (c->duration_thresh > 0 && !(en - st > c->duration_thresh)) continue;
        tal_detection d = {st, en, cs[j].score, k};
        rc = tal_dets_push(out, d, err);
    }
    return rc;
}

tal_status tal_head_decode(const tal_head *h, int b, tal_dets *out, tal_err *err) {
    const tal_head_config *c = &h->cfg;
    TAL_ASSERT(h->fwd_done && b >= 0 && b < h->B);
    int K = c->n_classes, per_level = c->pre_nms_per_level;
    int all = !per_level && (K == 1 || c->pre_nms_topk <= 0);
    int64_t n_all = (int64_t)tal_head_n_points(h) * K;
    cand *cs = malloc((size_t)(n_all > 0 ? n_all : 1) * sizeof *cs);
    /* a device head's outputs come to the host for decoding: classes, offsets, mask */
    float *stage = h->dev == TAL_DEV_CPU ? NULL
                   : malloc((size_t)(tal_head_n_points(h) * (K + 2) + h->T) * sizeof(float));
    if (!cs || (h->dev != TAL_DEV_CPU && !stage)) {
        free(cs);
        free(stage);
        return tal_err_set(err, TAL_ENOMEM, "decode: out of memory");
    }
    float *next = stage;
    host_outputs o;
    for (int l = 0; l < h->n_levels; l++) {
        o.cls[l] = item_on_host(h->cls_out[l], b, &next);
        o.reg[l] = item_on_host(h->reg_out[l], b, &next);
    }
    o.mask0 = item_on_host(h->mask[0], b, &next);
    double valid_len = 0;
    for (int64_t t = 0; t < h->T; t++) valid_len += o.mask0[t] > 0;
    tal_status rc = TAL_OK;
    /* OpenTAD: one pool over all levels; ActionFormer: each level on its own, in level order */
    int n_pools = per_level ? h->n_levels : 1;
    for (int g = 0; g < n_pools && rc == TAL_OK; g++) {
        int n = per_level ? gather(h, &o, g, g + 1, 1, cs)
                          : gather(h, &o, 0, h->n_levels, !all, cs);
        qsort(cs, (size_t)n, sizeof *cs, by_score_desc);
        if (!all && c->pre_nms_topk > 0 && n > c->pre_nms_topk) n = c->pre_nms_topk;
        rc = emit(h, &o, cs, n, valid_len, out, err);
    }
    free(cs);
    free(stage);
    return rc;
}

static void to_seconds(tal_dets *d, int from, const tal_time_map *map, int round, int clip) {
    for (int i = from; i < d->n; i++) {
        tal_detection *x = &d->items[i];
        x->start = clip ? tal_time_feat_to_s(map, x->start)
                        : tal_time_feat_to_s_unclipped(map, x->start);
        x->end = clip ? tal_time_feat_to_s(map, x->end) : tal_time_feat_to_s_unclipped(map, x->end);
        if (round) {
            x->start = floor(x->start * 100 + 0.5) / 100;
            x->end = floor(x->end * 100 + 0.5) / 100;
            x->score = (float)(floor(x->score * 1e4 + 0.5) / 1e4);
        }
    }
}

tal_status tal_head_decode_window(const tal_head *h, int b, const tal_time_map *map, int round,
                                  tal_dets *out, tal_err *err) {
    int from = out->n;
    tal_status rc = tal_head_decode(h, b, out, err);
    if (rc == TAL_OK) to_seconds(out, from, map, round, h->cfg.clip_segments);
    return rc;
}

tal_nms_opts tal_head_nms_opts(const tal_head_config *c) {
    tal_nms_opts o = {c->nms_sigma, c->nms_min_score, c->nms_multiclass, c->voting_thresh,
                      c->max_seg_num, c->duration_thresh > 0, c->voting_iou_weight,
                      !c->remove_duplicates};
    return o;
}

/* IoU with lengths + 1e-6, as ActionFormer's soft-NMS kernel: a zero-length segment overlaps
 * nothing. */
static double iou_nms(const tal_detection *a, const tal_detection *b) {
    double inter = fmin(a->end, b->end) - fmax(a->start, b->start);
    if (inter < 0) inter = 0;
    double la = a->end - a->start + 1e-6, lb = b->end - b->start + 1e-6;
    return inter / (la + lb - inter);
}

/* IoU without the epsilon, as ActionFormer's seg_voting (0 / 0 for two empty segments at one
 * point: NaN, which no threshold keeps). */
static double iou_plain(const tal_detection *a, const tal_detection *b) {
    double inter = fmin(a->end, b->end) - fmax(a->start, b->start);
    if (inter < 0) inter = 0;
    return inter / ((a->end - a->start) + (b->end - b->start) - inter);
}

/* Gaussian Soft-NMS over items[0..n) (in place); returns how many were kept, in emission
 * order at the front. */
static int soft_nms_group(tal_detection *it, int n, float sigma, float min_score) {
    int kept = 0;
    while (kept < n) {
        int best = kept;
        for (int j = kept + 1; j < n; j++)
            if (it[j].score > it[best].score) best = j;
        /* move best to position kept, keeping the order of the others (ties: earlier first) */
        tal_detection b = it[best];
        memmove(it + kept + 1, it + kept, (size_t)(best - kept) * sizeof *it);
        it[kept++] = b;
        int w = kept;
        for (int j = kept; j < n; j++) {
            double o = iou_nms(&b, &it[j]);
            it[j].score *= (float)exp(-o * o / sigma);
            if (it[j].score >= min_score) it[w++] = it[j];
        }
        n = w;
    }
    return kept;
}

/* qsort is not stable: sort (score, original index) pairs instead. */
static tal_status stable_sort(tal_detection *it, int n, int by_label, tal_err *err) {
    cand *cs = malloc((size_t)(n > 0 ? n : 1) * sizeof *cs);
    tal_detection *tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof *tmp);
    if (!cs || !tmp) {
        free(cs);
        free(tmp);
        return tal_err_set(err, TAL_ENOMEM, "soft-nms: out of memory");
    }
    for (int i = 0; i < n; i++) {
        cs[i].score = by_label ? -(float)it[i].label : it[i].score;
        cs[i].idx = i;
    }
    qsort(cs, (size_t)n, sizeof *cs, by_score_desc);
    for (int i = 0; i < n; i++) tmp[i] = it[cs[i].idx];
    memcpy(it, tmp, (size_t)n * sizeof *it);
    free(cs);
    free(tmp);
    return TAL_OK;
}

typedef struct seg_key {
    int label, idx;
    double start, end;
} seg_key;

static int by_segment(const void *a, const void *b) {
    const seg_key *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

/* Keeps the first of each run of exact duplicates (same label, start, end) in it[0..n) (with
 * copies) and, with drop_empty, no segment with end <= start; the order of the rest stays.
 * Returns the new count, or -1 out of memory. */
static int drop_duplicates(tal_detection *it, int n, int drop_empty, int copies) {
    seg_key *keys = malloc((size_t)(n > 0 ? n : 1) * sizeof *keys);
    char *drop = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!keys || !drop) {
        free(keys);
        free(drop);
        return -1;
    }
    for (int i = 0; i < n; i++) keys[i] = (seg_key){it[i].label, i, it[i].start, it[i].end};
    qsort(keys, (size_t)n, sizeof *keys, by_segment);
    for (int i = 1; i < n; i++) {
        const seg_key *a = &keys[i - 1], *b = &keys[i];
        if (copies && a->label == b->label && a->start == b->start && a->end == b->end)
            drop[b->idx] = 1;
    }
    int w = 0;
    for (int i = 0; i < n; i++)
        if (!drop[i] && !(drop_empty && !(it[i].end > it[i].start))) it[w++] = it[i];
    free(keys);
    free(drop);
    return w;
}

tal_status tal_soft_nms(tal_dets *d, const tal_nms_opts *o, tal_err *err) {
    if (!(o->sigma > 0)) return tal_err_set(err, TAL_EINVAL, "soft-nms: sigma %g <= 0", o->sigma);
    int n = d->n;
    if (n == 0) return TAL_OK;
    int vote = !o->multiclass && o->voting_thresh > 0;
    tal_detection *pre = NULL;
    if (vote) {
        pre = malloc((size_t)n * sizeof *pre);
        if (!pre) return tal_err_set(err, TAL_ENOMEM, "soft-nms: out of memory");
        memcpy(pre, d->items, (size_t)n * sizeof *pre);
    }
    int total = 0;
    tal_status rc = TAL_OK;
    if (o->multiclass) {
        /* group by label (stable), run each group, pack the kept ones together */
        rc = stable_sort(d->items, n, 1, err);
        for (int s = 0; s < n && rc == TAL_OK;) {
            int e = s;
            while (e < n && d->items[e].label == d->items[s].label) e++;
            int k = soft_nms_group(d->items + s, e - s, o->sigma, o->min_score);
            memmove(d->items + total, d->items + s, (size_t)k * sizeof *d->items);
            total += k;
            s = e;
        }
    } else {
        total = soft_nms_group(d->items, n, o->sigma, o->min_score);
    }
    if (vote && rc == TAL_OK)
        for (int i = 0; i < total; i++) {
            double ws = 0, st = 0, en = 0;
            for (int j = 0; j < n; j++) {
                double iou = o->voting_iou_weight ? iou_plain(&d->items[i], &pre[j])
                                                  : iou_nms(&d->items[i], &pre[j]);
                if (!(iou >= o->voting_thresh)) continue;
                double w = o->voting_iou_weight ? pre[j].score * iou : pre[j].score;
                ws += w;
                st += w * pre[j].start;
                en += w * pre[j].end;
            }
            if (ws > 0) {
                d->items[i].start = st / ws;
                d->items[i].end = en / ws;
            }
        }
    free(pre);
    d->n = total;
    if (rc == TAL_OK) rc = stable_sort(d->items, total, 0, err);
    if (rc == TAL_OK && (!o->keep_duplicates || o->drop_empty)) {
        /* in score order now: the first of a set of duplicates scores highest */
        int kept = drop_duplicates(d->items, d->n, o->drop_empty, !o->keep_duplicates);
        if (kept < 0) rc = tal_err_set(err, TAL_ENOMEM, "soft-nms: out of memory");
        else d->n = kept;
    }
    if (o->max_seg_num > 0 && d->n > o->max_seg_num) d->n = o->max_seg_num;
    /* a video's pooled candidates (thousands per window) shrink to what is kept: inference over
     * many videos holds every video's detections until the results file is written */
    if (d->capacity > 2 * d->n + 16) {
        tal_detection *p = realloc(d->items, (size_t)(d->n > 0 ? d->n : 1) * sizeof *p);
        if (p) {
            d->items = p;
            d->capacity = d->n > 0 ? d->n : 1;
        }
    }
    return rc;
}

void tal_dets_to_seconds(tal_dets *d, int from, const tal_time_map *map, int round) {
    to_seconds(d, from, map, round, 1);
}

tal_status tal_head_nms_video(const tal_head_config *c, tal_dets *d, double duration_s,
                              tal_err *err) {
    tal_nms_opts o = tal_head_nms_opts(c);
    tal_status rc = tal_soft_nms(d, &o, err);
    if (rc == TAL_OK && !c->clip_segments)
        for (int i = 0; i < d->n; i++) {
            tal_detection *x = &d->items[i];
            x->start = x->start < 0 ? 0 : duration_s > 0 && x->start > duration_s ? duration_s
                                                                                  : x->start;
            x->end = x->end < 0 ? 0 : duration_s > 0 && x->end > duration_s ? duration_s : x->end;
        }
    return rc;
}

tal_status tal_dets_fuse_classifier(tal_dets *out, const tal_dets *agnostic,
                                    const float *class_scores, int n_classes, int top_k,
                                    tal_err *err) {
    if (n_classes < 1 || top_k < 1)
        return tal_err_set(err, TAL_EINVAL, "classifier fusion: %d classes, top %d", n_classes,
                           top_k);
    if (top_k > n_classes) top_k = n_classes;
    int best[16];
    if (top_k > 16) top_k = 16;
    for (int j = 0; j < top_k; j++) { /* top_k largest, ties to the lower class index */
        int arg = -1;
        for (int k = 0; k < n_classes; k++) {
            int used = 0;
            for (int u = 0; u < j; u++) used |= best[u] == k;
            if (!used && (arg < 0 || class_scores[k] > class_scores[arg])) arg = k;
        }
        best[j] = arg;
    }
    for (int i = 0; i < agnostic->n; i++)
        for (int j = 0; j < top_k; j++) {
            tal_detection x = agnostic->items[i];
            x.label = best[j];
            x.score = x.score * class_scores[best[j]];
            tal_status rc = tal_dets_push(out, x, err);
            if (rc != TAL_OK) return rc;
        }
    return TAL_OK;
}
