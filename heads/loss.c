/* heads/loss.c: label assignment (centre sampling, regression ranges, shortest GT), sigmoid focal
 * loss and 1-D DIoU loss with their gradients, and the EMA loss normaliser
 * (spec-actionformer.md §6-§7, OpenTAD's ActionFormer head). */
#include "model.h"

#include <math.h>
#include <string.h>

double tal_focal_loss(float *dx, const float *x, const float *t, int64_t n, float alpha,
                      float gamma, float gscale) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        float d;
        sum += tal_focal_loss_one(x[i], t[i], alpha, gamma, gscale, &d);
        if (dx) dx[i] = d;
    }
    return sum;
}

double tal_diou_loss(float *dpred, const float *pred, const float *target, int64_t n,
                     float gscale) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        float d0, d1;
        sum += tal_diou_loss_one(pred[2 * i], pred[2 * i + 1], target[2 * i], target[2 * i + 1],
                                 gscale, &d0, &d1);
        if (dpred) dpred[2 * i] = d0, dpred[2 * i + 1] = d1;
    }
    return sum;
}

void tal_head_targets(const tal_head *h, const tal_head_gt *gt, float *cls_target,
                      float *reg_target) {
    const tal_head_config *c = &h->cfg;
    int K = c->n_classes;
    int64_t P = tal_head_n_points(h), pt = 0;
    memset(cls_target, 0, (size_t)(P * K) * sizeof(float));
    memset(reg_target, 0, (size_t)(P * 2) * sizeof(float));
    for (int l = 0; l < h->n_levels; l++) {
        int64_t Tl = h->mask[l].shape[1];
        double s = (double)(1 << l), lo = c->regression_range[l][0], hi = c->regression_range[l][1];
        for (int64_t i = 0; i < Tl; i++, pt++) {
            double p = (double)i * s, best = INFINITY;
            int arg = -1;
            for (int pass = 0; pass < 2; pass++)
                for (int g = 0; g < gt->n; g++) {
                    double st = gt->segments[2 * g], en = gt->segments[2 * g + 1];
                    double left = p - st, right = en - p;
                    double ctr = 0.5 * (st + en), r = c->center_radius * s;
                    double cl = ctr - r > st ? ctr - r : st, cr = ctr + r < en ? ctr + r : en;
                    if (!(p - cl > 0 && cr - p > 0)) continue;
                    double mreg = left > right ? left : right;
                    if (!(mreg >= lo && mreg <= hi)) continue;
                    double glen = en - st;
                    if (pass == 0) {
                        if (glen < best) best = glen, arg = g;
                    } else if (glen <= best + 1e-3) {
                        cls_target[pt * K + gt->labels[g]] = 1.0f;
                    }
                }
            if (arg >= 0) {
                reg_target[pt * 2] = (float)((p - gt->segments[2 * arg]) / s);
                reg_target[pt * 2 + 1] = (float)((gt->segments[2 * arg + 1] - p) / s);
            }
        }
    }
}

/* The level-0 mask of the last forward on the host (downloaded from a device). Level l's mask
 * at point i is the level-0 mask at i 2^l (each level takes every 2nd of the one before). */
static const float *mask_on_host(tal_head *h) {
    if (h->mask[0].device == TAL_DEV_CPU) return h->mask[0].data;
    tal_copy(tal_t2(h->host_mask, h->B, h->T), h->mask[0]);
    return h->host_mask;
}

/* Level l's targets of every item, from the label assignment (point-major, all levels) into
 * h->t_cls[l] (smoothed), t_reg[l] and t_pos[l] (valid and assigned), through host memory. */
static void upload_level_targets(tal_head *h, const float *mask0, int l, int64_t level_start) {
    const tal_head_config *c = &h->cfg;
    int K = c->n_classes;
    int64_t B = h->B, T = h->T, P = tal_head_n_points(h), Tl = T >> l;
    float eps = c->label_smoothing;
    float *tc = h->host_stage, *tr = tc + B * K * Tl, *tp = tr + B * 2 * Tl;
    for (int64_t b = 0; b < B; b++) {
        const float *ct = h->cls_target + b * P * K, *rt = h->reg_target + b * P * 2;
        for (int64_t i = 0; i < Tl; i++) {
            int64_t pt = level_start + i;
            int pos = 0;
            for (int k = 0; k < K; k++) {
                float t = ct[pt * K + k];
                pos |= t > 0;
                tc[(b * K + k) * Tl + i] = t * (1 - eps) + eps / (K + 1);
            }
            tr[b * 2 * Tl + i] = rt[pt * 2];
            tr[b * 2 * Tl + Tl + i] = rt[pt * 2 + 1];
            tp[b * Tl + i] = pos && mask0[b * T + (i << l)] > 0 ? 1.0f : 0.0f;
        }
    }
    tal_copy(h->t_cls[l], tal_t3(tc, B, K, Tl));
    tal_copy(h->t_reg[l], tal_t3(tr, B, 2, Tl));
    tal_copy(h->t_pos[l], tal_t2(tp, B, Tl));
}

tal_status tal_head_loss(tal_head *h, const tal_head_gt *gt, int train, tal_head_losses *out,
                         tal_err *err) {
    const tal_head_config *c = &h->cfg;
    TAL_ASSERT_MSG(h->fwd_done, "loss without forward");
    int K = c->n_classes;
    int64_t B = h->B, T = h->T, P = tal_head_n_points(h);
    for (int64_t b = 0; b < B; b++)
        for (int g = 0; g < gt[b].n; g++) {
            float st = gt[b].segments[2 * g], en = gt[b].segments[2 * g + 1];
            if (!isfinite(st) || !isfinite(en) || en < st)
                return tal_err_set(err, TAL_EINVAL, "head loss: item %lld, segment %d: "
                                   "[%g, %g] is not a finite interval", (long long)b, g, st, en);
            if (gt[b].labels[g] < 0 || gt[b].labels[g] >= K)
                return tal_err_set(err, TAL_EINVAL, "head loss: item %lld, segment %d: label %d "
                                   "not in [0, %d)", (long long)b, g, gt[b].labels[g], K);
        }
    /* label assignment and the normaliser on the host */
    const float *mask0 = mask_on_host(h);
    int num_pos = 0;
    for (int64_t b = 0; b < B; b++) {
        float *ct = h->cls_target + b * P * K, *rt = h->reg_target + b * P * 2;
        tal_head_targets(h, &gt[b], ct, rt);
        int64_t pt = 0;
        for (int l = 0; l < h->n_levels; l++)
            for (int64_t i = 0; i < h->mask[l].shape[1]; i++, pt++) {
                if (mask0[b * T + (i << l)] <= 0) continue;
                for (int k = 0; k < K; k++)
                    if (ct[pt * K + k] > 0) {
                        num_pos++;
                        break;
                    }
            }
    }
    float norm;
    if (train) {
        float m = c->loss_norm_momentum;
        h->loss_norm = m * h->loss_norm + (1 - m) * (float)(num_pos > 1 ? num_pos : 1);
        norm = h->loss_norm;
    } else {
        norm = (float)(num_pos > 1 ? num_pos : 1);
    }
    /* the losses and their seeds where the head computes, level by level */
    double cls = 0, reg = 0;
    int64_t level_start = 0;
    for (int l = 0; l < h->n_levels; l++) {
        upload_level_targets(h, mask0, l, level_start);
        cls += tal_focal_loss_masked(h->d_cls[l], h->cls_out[l], h->t_cls[l], h->mask[l],
                                     c->focal_alpha, c->focal_gamma, 1.0f / norm);
        reg += tal_diou_loss_offsets(h->d_reg[l], h->reg_out[l], h->t_reg[l], h->t_pos[l],
                                     (float)(1 << l), 1.0f / norm);
        level_start += h->mask[l].shape[1];
    }
    out->cls = (float)(cls / norm);
    out->reg = (float)(reg / norm);
    /* w <= 0: automatic balancing, w = cls (no gradient) / max(reg, 0.01) */
    float w = c->reg_loss_weight;
    float weff = w > 0 ? w : out->cls / (out->reg > 0.01f ? out->reg : 0.01f);
    for (int l = 0; l < h->n_levels; l++) tal_scale(h->d_reg[l], h->d_reg[l], weff);
    out->num_pos = num_pos;
    out->normalizer = norm;
    out->reg_weight = weff;
    out->total = out->cls + weff * out->reg;
    return TAL_OK;
}
