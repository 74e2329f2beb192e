/* heads/config.c: the head's configuration: Re2TAL presets (spec-actionformer.md §11), checks,
 * and overrides from JSON keys named as the struct fields. */
#include "heads.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

static void common(tal_head_config *c) {
    memset(c, 0, sizeof *c);
    c->in_channels = 768;
    c->arch[0] = 2;
    c->arch[1] = 2;
    c->arch[2] = 5;
    c->n_head = 4;
    c->mha_win = -1;
    c->path_pdrop = 0.1f;
    c->n_head_convs = 2;
    static const float rr[6][2] = {{0, 4}, {4, 8}, {8, 16}, {16, 32}, {32, 64}, {64, 10000}};
    memcpy(c->regression_range, rr, sizeof rr);
    c->center_radius = 1.5f;
    c->loss_norm_momentum = 0.9f;
    c->focal_alpha = 0.25f;
    c->focal_gamma = 2.0f;
    c->pre_nms_thresh = 0.001f;
    c->pre_nms_topk = 2000;
    c->nms_sigma = 0.7f;
    c->nms_min_score = 0.001f;
    c->clip_to_window = 0; /* OpenTAD's: measured equal or better (README "post-processing") */
    c->duration_thresh = 0.05f;
    c->remove_duplicates = 1;
    c->clip_segments = 1;
    c->round_results = 1;
}

void tal_head_config_thumos(tal_head_config *c) {
    common(c);
    c->channels = 512;
    c->n_classes = 20;
    c->max_seq_len = 512;
    c->init_loss_norm = 100;
    c->reg_loss_weight = 1.0f;
    c->nms_multiclass = 1;
    c->voting_thresh = 0.7f; /* inactive: multiclass */
    c->max_seg_num = 2000;
}

void tal_head_config_anet(tal_head_config *c) {
    common(c);
    c->channels = 256;
    c->n_classes = 1;
    c->max_seq_len = 192;
    c->use_abs_pe = 1;
    c->init_loss_norm = 200;
    c->label_smoothing = 0.1f;
    c->reg_loss_weight = 2.0f;
    c->nms_multiclass = 0;
    c->voting_thresh = 0.9f;
    c->max_seg_num = 100;
}

int tal_head_levels(const tal_head_config *c) { return 1 + c->arch[2]; }

tal_status tal_head_config_check(const tal_head_config *c, tal_err *err) {
#define BAD(...) return tal_err_set(err, TAL_EINVAL, "head config: " __VA_ARGS__)
    if (c->in_channels < 1) BAD("in_channels %d < 1", c->in_channels);
    if (c->channels < 1) BAD("channels %d < 1", c->channels);
    if (c->n_classes < 1) BAD("n_classes %d < 1", c->n_classes);
    if (c->arch[0] < 1 || c->arch[0] > 4) BAD("arch[0] (embed convs) %d not in 1..4", c->arch[0]);
    if (c->arch[1] < 0 || c->arch[2] < 0 || c->arch[1] + c->arch[2] > 16)
        BAD("arch (%d, %d, %d): stem + branch blocks must be 0..16", c->arch[0], c->arch[1],
            c->arch[2]);
    if (tal_head_levels(c) > TAL_HEAD_MAX_LEVELS)
        BAD("arch[2] %d gives more than %d levels", c->arch[2], TAL_HEAD_MAX_LEVELS);
    if (c->n_head < 1 || c->channels % c->n_head)
        BAD("channels %d not divisible by n_head %d", c->channels, c->n_head);
    if (c->mha_win == 0 || (c->mha_win > 0 && c->mha_win % 2 == 0) || c->mha_win < -1)
        BAD("mha_win %d: -1 (global) or an odd window", c->mha_win);
    int div = 1 << (tal_head_levels(c) - 1);
    if (c->max_seq_len < div || c->max_seq_len % div)
        BAD("max_seq_len %d not a multiple of %d (2^(levels-1))", c->max_seq_len, div);
    if (!(c->path_pdrop >= 0 && c->path_pdrop < 1))
        BAD("path_pdrop %g not in [0, 1)", c->path_pdrop);
    if (c->n_head_convs < 0 || c->n_head_convs > 4)
        BAD("n_head_convs %d not in 0..4", c->n_head_convs);
    for (int l = 0; l < tal_head_levels(c); l++)
        if (!(c->regression_range[l][0] <= c->regression_range[l][1]))
            BAD("regression_range[%d] = (%g, %g): low above high", l, c->regression_range[l][0],
                c->regression_range[l][1]);
    if (!(c->center_radius >= 0)) BAD("center_radius %g < 0", c->center_radius);
    if (!(c->init_loss_norm > 0)) BAD("init_loss_norm %g <= 0", c->init_loss_norm);
    if (!(c->loss_norm_momentum >= 0 && c->loss_norm_momentum <= 1))
        BAD("loss_norm_momentum %g not in [0, 1]", c->loss_norm_momentum);
    if (!(c->label_smoothing >= 0 && c->label_smoothing < 1))
        BAD("label_smoothing %g not in [0, 1)", c->label_smoothing);
    if (!(c->focal_alpha >= 0 && c->focal_alpha <= 1))
        BAD("focal_alpha %g not in [0, 1]", c->focal_alpha);
    if (!(c->focal_gamma >= 0)) BAD("focal_gamma %g < 0", c->focal_gamma);
    if (!(c->nms_sigma > 0)) BAD("nms_sigma %g <= 0", c->nms_sigma);
    if (!(c->duration_thresh >= 0 && isfinite(c->duration_thresh)))
        BAD("duration_thresh %g: expected >= 0 (feature steps; 0 keeps all)", c->duration_thresh);
    if (!isfinite(c->reg_loss_weight)) BAD("reg_loss_weight is not finite");
    if (c->clip_to_window != 0 && c->clip_to_window != 1)
        BAD("clip_to_window %d: 1 (clip to the window) or 0 (OpenTAD: to the video)",
            c->clip_to_window);
    if (c->variant != TAL_HEAD_OPENTAD && c->variant != TAL_HEAD_ACTIONFORMER)
        BAD("variant %d: 0 (opentad) or 1 (actionformer)", (int)c->variant);
    if (c->pre_nms_per_level != 0 && c->pre_nms_per_level != 1)
        BAD("pre_nms_per_level %d: 0 or 1", c->pre_nms_per_level);
    if (c->clip_segments != 0 && c->clip_segments != 1)
        BAD("clip_segments %d: 0 or 1", c->clip_segments);
    if (c->voting_iou_weight != 0 && c->voting_iou_weight != 1)
        BAD("voting_iou_weight %d: 0 or 1", c->voting_iou_weight);
    if (c->round_results != 0 && c->round_results != 1)
        BAD("round_results %d: 0 or 1", c->round_results);
    if (c->remove_duplicates != 0 && c->remove_duplicates != 1)
        BAD("remove_duplicates %d: 0 or 1", c->remove_duplicates);
    return TAL_OK;
#undef BAD
}

static tal_status num(const cJSON *it, const char *name, double *v, tal_err *err) {
    if (!cJSON_IsNumber(it))
        return tal_err_set(err, TAL_EINVAL, "%s: key \"%s\": expected a number", name, it->string);
    *v = it->valuedouble;
    return TAL_OK;
}

tal_status tal_head_config_from_json(tal_head_config *out, const char *name, const char *json,
                                     tal_err *err) {
    tal_head_config copy = *out, *c = &copy; /* *out changes only on success */
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tal_err_set(err, TAL_EINVAL, "%s: not a JSON object", name);
    }
    tal_status rc = TAL_OK;
    static const struct { const char *key; int is_int; size_t off; } fields[] = {
#define F(k, i) {#k, i, offsetof(tal_head_config, k)}
        F(in_channels, 1), F(channels, 1), F(n_classes, 1), F(max_seq_len, 1), F(n_head, 1),
        F(mha_win, 1), F(use_abs_pe, 1), F(path_pdrop, 0), F(n_head_convs, 1),
        F(center_radius, 0), F(init_loss_norm, 0), F(loss_norm_momentum, 0),
        F(label_smoothing, 0), F(reg_loss_weight, 0), F(focal_alpha, 0), F(focal_gamma, 0),
        F(pre_nms_thresh, 0), F(pre_nms_topk, 1), F(nms_sigma, 0), F(nms_min_score, 0),
        F(nms_multiclass, 1), F(voting_thresh, 0), F(max_seg_num, 1), F(clip_to_window, 1),
        F(duration_thresh, 0), F(pre_nms_per_level, 1), F(clip_segments, 1),
        F(voting_iou_weight, 1), F(round_results, 1), F(remove_duplicates, 1),
#undef F
    };
    for (cJSON *it = root->child; it && rc == TAL_OK; it = it->next) {
        double v = 0;
        size_t i, nf = sizeof fields / sizeof fields[0];
        for (i = 0; i < nf; i++)
            if (!strcmp(it->string, fields[i].key)) break;
        if (i < nf) {
            if ((rc = num(it, name, &v, err)) != TAL_OK) break;
            char *p = (char *)c + fields[i].off;
            if (fields[i].is_int) {
                if (v != floor(v) || fabs(v) > 1e9) {
                    rc = tal_err_set(err, TAL_EINVAL, "%s: key \"%s\": expected an integer, got %g",
                                     name, it->string, v);
                    break;
                }
                *(int *)p = (int)v;
            } else {
                *(float *)p = (float)v;
            }
        } else if (!strcmp(it->string, "variant")) {
            const char *v_s = cJSON_GetStringValue(it);
            if (v_s && !strcmp(v_s, "opentad")) c->variant = TAL_HEAD_OPENTAD;
            else if (v_s && !strcmp(v_s, "actionformer")) c->variant = TAL_HEAD_ACTIONFORMER;
            else
                rc = tal_err_set(err, TAL_EINVAL, "%s: key \"variant\": expected \"opentad\" or "
                                 "\"actionformer\"", name);
        } else if (!strcmp(it->string, "seed")) {
            if ((rc = num(it, name, &v, err)) != TAL_OK) break;
            if (!(v >= 0 && v < 18446744073709551616.0 && v == floor(v))) { /* cast is UB beyond */
                rc = tal_err_set(err, TAL_EINVAL, "%s: key \"seed\": expected a whole number >= 0, "
                                 "got %g", name, v);
                break;
            }
            c->seed = (uint64_t)v;
        } else if (!strcmp(it->string, "arch")) {
            if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 3) {
                rc = tal_err_set(err, TAL_EINVAL, "%s: key \"arch\": expected 3 integers", name);
                break;
            }
            for (int k = 0; k < 3 && rc == TAL_OK; k++) {
                if ((rc = num(cJSON_GetArrayItem(it, k), name, &v, err)) != TAL_OK) break;
                if (v != floor(v) || fabs(v) > 1e9) /* checked before the cast: UB beyond int */
                    rc = tal_err_set(err, TAL_EINVAL, "%s: key \"arch\": expected 3 integers, "
                                     "got %g", name, v);
                else
                    c->arch[k] = (int)v;
            }
        } else if (!strcmp(it->string, "regression_range")) {
            int n = cJSON_GetArraySize(it);
            if (!cJSON_IsArray(it) || n < 1 || n > TAL_HEAD_MAX_LEVELS) {
                rc = tal_err_set(err, TAL_EINVAL, "%s: key \"regression_range\": expected 1..%d "
                                 "[low, high] pairs", name, TAL_HEAD_MAX_LEVELS);
                break;
            }
            for (int k = 0; k < n && rc == TAL_OK; k++) {
                cJSON *pr = cJSON_GetArrayItem(it, k);
                if (!cJSON_IsArray(pr) || cJSON_GetArraySize(pr) != 2 ||
                    !cJSON_IsNumber(pr->child) || !cJSON_IsNumber(pr->child->next)) {
                    rc = tal_err_set(err, TAL_EINVAL, "%s: regression_range[%d]: expected "
                                     "[low, high]", name, k);
                    break;
                }
                c->regression_range[k][0] = (float)pr->child->valuedouble;
                c->regression_range[k][1] = (float)pr->child->next->valuedouble;
            }
        } else {
            rc = tal_err_set(err, TAL_EINVAL, "%s: unknown head key \"%s\"", name, it->string);
        }
    }
    cJSON_Delete(root);
    if (rc == TAL_OK) rc = tal_head_config_check(c, err);
    if (rc != TAL_OK && err && strncmp(err->msg, name, strlen(name)))
        tal_err_prefix(err, "%s", name);
    if (rc == TAL_OK) *out = copy;
    return rc;
}
