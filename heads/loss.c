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
        double xi = x[i], ti = t[i];
        double p = 1.0 / (1.0 + exp(-xi));
        /* stable BCE with logits: max(x, 0) - x t + log(1 + exp(-|x|)) */
        double ce = (xi > 0 ? xi : 0) - xi * ti + log1p(exp(-fabs(xi)));
        double q = p + ti - 2 * p * ti; /* 1 - p_t */
        double at = alpha * ti + (1 - alpha) * (1 - ti);
        double qg = pow(q, gamma);
        sum += at * qg * ce;
        if (dx) {
            double dq = (1 - 2 * ti) * p * (1 - p);
            double dqg = gamma == 0 ? 0 : gamma * pow(q, gamma - 1) * dq;
            dx[i] = (float)(gscale * at * (dqg * ce + qg * (p - ti)));
        }
    }
    return sum;
}

double tal_diou_loss(float *dpred, const float *pred, const float *target, int64_t n,
                     float gscale) {
    const double eps = 1e-7;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double ps = pred[2 * i], pe = pred[2 * i + 1], gs = target[2 * i], ge = target[2 * i + 1];
        double lo = ps > gs ? ps : gs, hi = pe < ge ? pe : ge;
        double inter = hi - lo > 0 ? hi - lo : 0;
        double uni = (pe - ps) + (ge - gs) - inter;
        double U = uni > eps ? uni : eps;
        double iou = inter / U;
        double cl = ps < gs ? ps : gs, cr = pe > ge ? pe : ge;
        double c2 = (cr - cl) * (cr - cl);
        double C2 = c2 > eps ? c2 : eps;
        double rho = 0.5 * (ps + pe) - 0.5 * (gs + ge);
        sum += 1 - iou + rho * rho / C2;
        if (!dpred) continue;
        /* d/d(ps), d/d(pe) through inter, union, enclosing length and centre distance */
        double dI_ps = inter > 0 && ps > gs ? -1 : 0, dI_pe = inter > 0 && pe < ge ? 1 : 0;
        double dU_ps = uni > eps ? -1 - dI_ps : 0, dU_pe = uni > eps ? 1 - dI_pe : 0;
        double diou_ps = (dI_ps * U - inter * dU_ps) / (U * U);
        double diou_pe = (dI_pe * U - inter * dU_pe) / (U * U);
        double dc_ps = ps < gs ? -1 : 0, dc_pe = pe > ge ? 1 : 0;
        double dC2_ps = c2 > eps ? 2 * (cr - cl) * dc_ps : 0;
        double dC2_pe = c2 > eps ? 2 * (cr - cl) * dc_pe : 0;
        double dr_ps = (rho / C2) - rho * rho * dC2_ps / (C2 * C2);
        double dr_pe = (rho / C2) - rho * rho * dC2_pe / (C2 * C2);
        dpred[2 * i] = (float)(gscale * (-diou_ps + dr_ps));
        dpred[2 * i + 1] = (float)(gscale * (-diou_pe + dr_pe));
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

tal_status tal_head_loss(tal_head *h, const tal_head_gt *gt, int train, tal_head_losses *out,
                         tal_err *err) {
    const tal_head_config *c = &h->cfg;
    TAL_ASSERT_MSG(h->fwd_done, "loss without forward");
    int K = c->n_classes;
    int64_t B = h->B, P = tal_head_n_points(h);
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
    int num_pos = 0;
    for (int64_t b = 0; b < B; b++) {
        float *ct = h->cls_target + b * P * K, *rt = h->reg_target + b * P * 2;
        tal_head_targets(h, &gt[b], ct, rt);
        int64_t pt = 0;
        for (int l = 0; l < h->n_levels; l++)
            for (int64_t i = 0; i < h->mask[l].shape[1]; i++, pt++) {
                if (h->mask[l].data[b * h->mask[l].shape[1] + i] <= 0) continue;
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
    double cls = 0, reg = 0;
    float eps = c->label_smoothing, w = c->reg_loss_weight;
    for (int64_t b = 0; b < B; b++) {
        const float *ct = h->cls_target + b * P * K, *rt = h->reg_target + b * P * 2;
        int64_t pt = 0;
        for (int l = 0; l < h->n_levels; l++) {
            int64_t Tl = h->mask[l].shape[1];
            double s = (double)(1 << l);
            const float *x = h->cls_out[l].data + b * K * Tl, *r = h->reg_out[l].data + b * 2 * Tl;
            float *dx = h->d_cls[l].data + b * K * Tl, *dr = h->d_reg[l].data + b * 2 * Tl;
            memset(dx, 0, (size_t)(K * Tl) * sizeof(float));
            memset(dr, 0, (size_t)(2 * Tl) * sizeof(float));
            for (int64_t i = 0; i < Tl; i++, pt++) {
                if (h->mask[l].data[b * Tl + i] <= 0) continue;
                int pos = 0;
                for (int k = 0; k < K; k++) {
                    float t = ct[pt * K + k], xv = x[k * Tl + i], d;
                    pos |= t > 0;
                    t = t * (1 - eps) + eps / (K + 1);
                    cls += tal_focal_loss(&d, &xv, &t, 1, c->focal_alpha, c->focal_gamma,
                                          1.0f / norm);
                    dx[k * Tl + i] = d;
                }
                if (!pos) continue;
                double p = (double)i * s;
                float pred[2] = {(float)(p - r[i] * s), (float)(p + r[Tl + i] * s)};
                float tgt[2] = {(float)(p - rt[pt * 2] * s), (float)(p + rt[pt * 2 + 1] * s)};
                float dp[2];
                reg += tal_diou_loss(dp, pred, tgt, 1, 1.0f / norm);
                dr[i] = (float)(-dp[0] * s);
                dr[Tl + i] = (float)(dp[1] * s);
            }
        }
    }
    out->cls = (float)(cls / norm);
    out->reg = (float)(reg / norm);
    /* w <= 0: automatic balancing, w = cls (no gradient) / max(reg, 0.01) */
    float weff = w > 0 ? w : out->cls / (out->reg > 0.01f ? out->reg : 0.01f);
    for (int l = 0; l < h->n_levels; l++) tal_scale(h->d_reg[l], h->d_reg[l], weff);
    out->num_pos = num_pos;
    out->normalizer = norm;
    out->reg_weight = weff;
    out->total = out->cls + weff * out->reg;
    return TAL_OK;
}
