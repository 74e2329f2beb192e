/* tests/test_heads_post.c: post-processing on hand-made cases: Soft-NMS (same-class overlap,
 * other classes, class-agnostic, identical scores, zero-length, empty, min score, cap), voting,
 * classifier fusion, decoding of crafted head outputs, seconds, result writers, .npy features
 * and their bad-input errors. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heads/heads.h"
#include "testlib.h"

static tal_dets make(const tal_detection *d, int n) {
    tal_dets out = {0};
    tal_err err = {0};
    for (int i = 0; i < n; i++) cr_assert_eq(tal_dets_push(&out, d[i], &err), TAL_OK);
    return out;
}

static tal_nms_opts opts(int multiclass, float vote, int max_seg) {
    tal_nms_opts o = {0.7f, 0.001f, multiclass, vote, max_seg, 0, 0, 0};
    return o;
}

#define NEAR(a, b)                                                                            \
    cr_assert(fabs((double)(a) - (double)(b)) < 1e-5, "%s = %.7g, expected %.7g", #a,         \
              (double)(a), (double)(b))

Test(heads_nms, overlapping_same_class_is_decayed) {
    tal_detection in[] = {{0, 9, 0.8f, 0}, {0, 10, 0.9f, 0}, {20, 30, 0.5f, 0}};
    tal_dets d = make(in, 3);
    tal_nms_opts o = opts(1, 0, 0);
    tal_err err = {0};
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    cr_assert_eq(d.n, 3);
    NEAR(d.items[0].score, 0.9f);
    NEAR(d.items[1].score, 0.5f); /* disjoint: untouched */
    double iou = 9.0 / (19 + 2e-6 - 9);
    NEAR(d.items[2].score, 0.8 * exp(-iou * iou / 0.7));
    NEAR(d.items[2].start, 0);
    tal_dets_free(&d);
}

Test(heads_nms, classes_apart_unless_class_agnostic) {
    tal_detection in[] = {{0, 10, 0.9f, 0}, {0, 10, 0.8f, 1}};
    tal_err err = {0};
    tal_dets d = make(in, 2);
    tal_nms_opts o = opts(1, 0, 0);
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    NEAR(d.items[1].score, 0.8f);
    tal_dets_free(&d);
    d = make(in, 2);
    o = opts(0, 0, 0);
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    cr_assert(d.items[1].score < 0.2f);
    tal_dets_free(&d);
}

Test(heads_nms, identical_scores_keep_the_earlier_first) {
    tal_detection in[] = {{5, 15, 0.5f, 0}, {0, 10, 0.5f, 0}};
    tal_err err = {0};
    tal_dets d = make(in, 2);
    tal_nms_opts o = opts(1, 0, 0);
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    NEAR(d.items[0].start, 5);
    NEAR(d.items[0].score, 0.5f);
    double iou = 5.0 / (20 + 2e-6 - 5);
    NEAR(d.items[1].score, 0.5 * exp(-iou * iou / 0.7));
    tal_dets_free(&d);
}

Test(heads_nms, zero_length_segments_suppress_nothing) {
    tal_detection in[] = {{3, 3, 0.9f, 0}, {0, 10, 0.8f, 0}, {4, 4, 0.7f, 0}};
    tal_err err = {0};
    tal_dets d = make(in, 3);
    tal_nms_opts o = opts(1, 0, 0);
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    cr_assert_eq(d.n, 3);
    NEAR(d.items[1].score, 0.8f);
    NEAR(d.items[2].score, 0.7f);
    tal_dets_free(&d);
    /* drop_empty (duration_thresh > 0): none of them survives */
    d = make(in, 3);
    o.drop_empty = 1;
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    cr_assert_eq(d.n, 1);
    NEAR(d.items[0].end, 10);
    tal_dets_free(&d);
}

/* Gaussian decay never removes a copy (IoU 1 leaves exp(-1 / 0.7) = 0.24 of the score; IoU 0
 * of a zero-length pair leaves all of it): exact copies are removed after NMS, the higher score
 * kept, before the cap; same segment with another label is no copy. */
Test(heads_nms, exact_duplicates_are_removed_keeping_the_higher_score) {
    tal_detection in[] = {{3, 3, 0.5f, 0}, {1, 2, 0.6f, 0}, {1, 2, 0.6f, 1}, {3, 3, 0.7f, 0},
                          {1, 2, 0.9f, 0}, {1, 2, 0.6f, 0}, {8, 9, 0.1f, 0}};
    tal_err err = {0};
    tal_dets d = make(in, 7);
    tal_nms_opts o = opts(1, 0, 3);
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    cr_assert_eq(d.n, 3, "[1, 2] label 0 once, label 1, [3, 3] once (cap 3 after removal)");
    NEAR(d.items[0].score, 0.9f);
    cr_assert_eq(d.items[0].label, 0);
    NEAR(d.items[1].score, 0.7f);
    NEAR(d.items[1].start, 3);
    NEAR(d.items[2].score, 0.6f);
    cr_assert_eq(d.items[2].label, 1);
    for (int i = 0; i < d.n; i++)
        for (int j = 0; j < i; j++)
            cr_assert(d.items[i].label != d.items[j].label ||
                      d.items[i].start != d.items[j].start || d.items[i].end != d.items[j].end,
                      "items %d and %d are copies", j, i);
    tal_dets_free(&d);
}

/* ActionFormer keeps exact copies: Gaussian decay (IoU 1) leaves exp(-1 / 0.7) of the score */
Test(heads_nms, exact_duplicates_kept_as_actionformer) {
    tal_detection in[] = {{1, 2, 0.9f, 0}, {1, 2, 0.6f, 0}};
    tal_err err = {0};
    tal_dets d = make(in, 2);
    tal_nms_opts o = opts(1, 0, 0);
    o.keep_duplicates = 1;
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    cr_assert_eq(d.n, 2);
    double iou = 1.0 / (1 + 2e-6);
    NEAR(d.items[1].score, 0.6 * exp(-iou * iou / 0.7));
    tal_dets_free(&d);
}

Test(heads_nms, empty_min_score_and_cap) {
    tal_err err = {0};
    tal_dets d = {0};
    tal_nms_opts o = opts(1, 0, 0);
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    cr_assert_eq(d.n, 0);
    tal_detection in[] = {
        {0, 10, 0.9f, 0}, {0, 10, 0.002f, 0}, {20, 21, 0.3f, 0}, {40, 41, 0.2f, 0}};
    d = make(in, 4);
    o = opts(1, 0, 2);
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    cr_assert_eq(d.n, 2); /* 0.002 decays below 0.001 and is dropped; then the cap of 2 */
    NEAR(d.items[1].score, 0.3f);
    o.sigma = 0;
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_EINVAL);
    tal_dets_free(&d);
}

Test(heads_nms, voting_averages_overlapping_pre_nms_segments) {
    tal_detection in[] = {{0, 10, 0.9f, 0}, {1, 11, 0.6f, 0}, {50, 60, 0.4f, 0}};
    tal_err err = {0};
    tal_dets d = make(in, 3);
    tal_nms_opts o = opts(0, 0.5f, 0);
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    cr_assert_eq(d.n, 2, "the decayed [1, 11] votes to the same [0.4, 10.4]: a copy, removed");
    NEAR(d.items[0].start, 0.4);
    NEAR(d.items[0].end, 10.4);
    NEAR(d.items[0].score, 0.9f);
    NEAR(d.items[1].start, 50); /* alone: unchanged */
    tal_dets_free(&d);
    /* multiclass: voting never runs */
    d = make(in, 3);
    o = opts(1, 0.5f, 0);
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    NEAR(d.items[0].start, 0);
    tal_dets_free(&d);
}

/* ActionFormer's seg_voting: weights score x IoU over the pre-NMS segments with IoU >= thresh */
Test(heads_nms, voting_weighted_by_iou_as_actionformer) {
    tal_detection in[] = {{0, 10, 0.9f, 0}, {1, 11, 0.6f, 0}, {50, 60, 0.4f, 0}};
    tal_err err = {0};
    tal_dets d = make(in, 3);
    tal_nms_opts o = opts(0, 0.5f, 0);
    o.voting_iou_weight = 1;
    cr_assert_eq(tal_soft_nms(&d, &o, &err), TAL_OK);
    cr_assert_eq(d.n, 3);
    double iou = 9.0 / 11.0, w = 0.6 * iou;
    NEAR(d.items[0].start, w / (0.9 + w));
    NEAR(d.items[0].end, 10 + w / (0.9 + w));
    NEAR(d.items[1].start, 50);
    w = 0.9 * iou; /* the kept [1, 11]: itself at weight 0.6, [0, 10] at 0.9 x IoU */
    NEAR(d.items[2].start, 0.6 / (0.6 + w));
    tal_dets_free(&d);
}

Test(heads_post, classifier_fusion_top2) {
    tal_detection in[] = {{1, 2, 0.5f, 0}};
    tal_dets a = make(in, 1), out = {0};
    float cls[4] = {0.1f, 0.7f, 0.2f, 0.7f};
    tal_err err = {0};
    cr_assert_eq(tal_dets_fuse_classifier(&out, &a, cls, 4, 2, &err), TAL_OK);
    cr_assert_eq(out.n, 2);
    cr_assert_eq(out.items[0].label, 1); /* ties to the lower class */
    cr_assert_eq(out.items[1].label, 3);
    NEAR(out.items[0].score, 0.35f);
    cr_assert_eq(tal_dets_fuse_classifier(&out, &a, cls, 0, 2, &err), TAL_EINVAL);
    tal_dets_free(&a);
    tal_dets_free(&out);
}

Test(heads_post, seconds_in_resize_and_window_modes) {
    tal_detection in[] = {{48, 96, 0.123456f, 0}, {-5, 300, 0.5f, 0}};
    tal_dets d = make(in, 2);
    tal_time_map m = {0};
    m.resize_len = 192;
    m.duration_s = 100;
    tal_dets_to_seconds(&d, 0, &m, 1);
    NEAR(d.items[0].start, 25);
    NEAR(d.items[0].end, 50);
    NEAR(d.items[0].score, 0.1235f);
    NEAR(d.items[1].start, 0);
    NEAR(d.items[1].end, 100);
    tal_dets_free(&d);
    d = make(in, 1);
    tal_time_map w = {.fps = 30, .snippet_stride = 4, .window_start_frame = 300, .duration_s = 200};
    tal_dets_to_seconds(&d, 0, &w, 0);
    NEAR(d.items[0].start, (48 * 4 + 300) / 30.0);
    tal_dets_free(&d);
}

/* ---------------------------------------------------------------- decoding -------------- */
static tal_head_config small_config(int K) {
    tal_head_config c;
    tal_head_config_thumos(&c);
    c.clip_to_window = 1; /* the decoding tests below read segments clipped to the window */
    c.in_channels = 4;
    c.channels = 8;
    c.n_classes = K;
    c.max_seq_len = 32;
    c.arch[1] = 1;
    c.arch[2] = 2;
    c.n_head = 2;
    return c;
}

static tal_head *small_head_of(tal_params **pp, tal_head_config c) {
    tal_err err = {0};
    tal_head *h = NULL;
    *pp = tal_params_create();
    int g = tal_params_add_group(*pp, "all", 1, 0);
    cr_assert_eq(tal_head_create(&h, &c, *pp, "head.", g, g, 1, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_params_allocate(*pp, TAL_DEV_CPU, &err), TAL_OK);
    cr_assert_eq(tal_head_init(h, 1, &err), TAL_OK, "%s", err.msg);
    cr_assert_not_null(tal_params_find(*pp, "head.rpn_head.cls_head.bias"));
    return h;
}

static tal_head *small_head_thresh(tal_params **pp, int K, float duration_thresh) {
    tal_head_config c = small_config(K);
    c.duration_thresh = duration_thresh;
    return small_head_of(pp, c);
}

static tal_head *small_head_clip(tal_params **pp, int K, int clip_to_window) {
    tal_head_config c = small_config(K);
    c.clip_to_window = clip_to_window;
    return small_head_of(pp, c);
}

static tal_head *small_head(tal_params **pp, int K) { return small_head_thresh(pp, K, 0.05f); }

/* A forward on a window of 32 positions, 24 valid, after which every class score is -20: the
 * tests then craft the few outputs they decode. */
static void silent_window(tal_head *h) {
    tal_tensor x = test_tensor(3, (int64_t[]){1, 4, 32}), m = test_tensor(2, (int64_t[]){1, 32});
    test_fill_uniform(x, 3);
    for (int t = 0; t < 24; t++) m.data[t] = 1;
    tal_head_forward(h, x, m);
    for (int l = 0; l < 3; l++) tal_fill(tal_head_cls(h, l), -20.0f);
}

Test(heads_post, decode_crafted_outputs) {
    tal_params *pp;
    tal_head *h = small_head(&pp, 3);
    silent_window(h);
    tal_tensor c1 = tal_head_cls(h, 1), r1 = tal_head_reg(h, 1);
    c1.data[2 * 16 + 3] = 2.0f;  /* level 1 (stride 2), point 3 (p = 6), class 2 */
    r1.data[3] = 1.5f;
    r1.data[16 + 3] = 2.5f;
    c1.data[0 * 16 + 11] = 1.0f; /* level 1, point 11 (p = 22), class 0: runs past 24 */
    r1.data[11] = 0.5f;
    r1.data[16 + 11] = 4.0f;
    c1.data[1 * 16 + 13] = 5.0f; /* point 13 is padding (p = 26 >= 24): ignored */
    tal_dets d = {0};
    tal_err err = {0};
    cr_assert_eq(tal_head_decode(h, 0, &d, &err), TAL_OK);
    cr_assert_eq(d.n, 2);
    NEAR(d.items[0].start, 3);
    NEAR(d.items[0].end, 11);
    NEAR(d.items[0].score, 1 / (1 + exp(-2.0)));
    cr_assert_eq(d.items[0].label, 2);
    NEAR(d.items[1].start, 21);
    NEAR(d.items[1].end, 24); /* clipped to the valid length */
    tal_dets_free(&d);
    tal_head_destroy(h);
    tal_params_destroy(pp);
}

/* OpenTAD's clipping (the default): a segment that runs past the window's valid span keeps its
 * end in feature units and is clipped only to the video's duration in seconds; one that starts
 * before the window (a later window) keeps its start. */
Test(heads_post, opentad_clipping_keeps_segments_past_the_window) {
    tal_params *pp;
    tal_head *h = small_head_clip(&pp, 3, 0);
    tal_head_config def;
    tal_head_config_thumos(&def);
    cr_assert_eq(def.clip_to_window, 0, "OpenTAD's clipping is the default");
    silent_window(h);
    tal_tensor c1 = tal_head_cls(h, 1), r1 = tal_head_reg(h, 1);
    c1.data[0 * 16 + 11] = 1.0f; /* level 1, point 11 (p = 22): [21, 30], past 24 */
    r1.data[11] = 0.5f;
    r1.data[16 + 11] = 4.0f;
    c1.data[1 * 16 + 1] = 2.0f; /* point 1 (p = 2): [-4, 4], before the window */
    r1.data[1] = 3.0f;
    r1.data[16 + 1] = 1.0f;
    tal_dets d = {0};
    tal_err err = {0};
    cr_assert_eq(tal_head_decode(h, 0, &d, &err), TAL_OK);
    cr_assert_eq(d.n, 2);
    NEAR(d.items[0].start, -4);
    NEAR(d.items[0].end, 4);
    NEAR(d.items[1].start, 21);
    NEAR(d.items[1].end, 30);
    /* in seconds (window from frame 8, 4 frames a position, 8 fps): clipped to [0, 12] s */
    tal_time_map w = {.fps = 8, .snippet_stride = 4, .window_start_frame = 8, .duration_s = 12};
    tal_dets_to_seconds(&d, 0, &w, 0);
    NEAR(d.items[0].start, 0);
    NEAR(d.items[0].end, (4 * 4 + 8) / 8.0);
    NEAR(d.items[1].end, 12);
    tal_dets_free(&d);
    tal_head_destroy(h);
    tal_params_destroy(pp);
}

/* ActionFormer's decoding: threshold + top-k within each level, level by level; segments not
 * clipped to the valid length; segments not longer than duration_thresh dropped after the
 * top-k. */
Test(heads_post, decode_per_level_as_actionformer) {
    tal_head_config c = small_config(3);
    c.pre_nms_per_level = 1;
    c.pre_nms_topk = 2;
    c.duration_thresh = 0.5f;
    c.clip_segments = 0;
    c.clip_to_window = 0;
    tal_params *pp;
    tal_head *h = small_head_of(&pp, c);
    tal_tensor x = test_tensor(3, (int64_t[]){1, 4, 32}), m = test_tensor(2, (int64_t[]){1, 32});
    test_fill_uniform(x, 3);
    for (int t = 0; t < 24; t++) m.data[t] = 1;
    tal_head_forward(h, x, m);
    for (int l = 0; l < 3; l++) tal_fill(tal_head_cls(h, l), -20.0f);
    tal_tensor c0 = tal_head_cls(h, 0), r0 = tal_head_reg(h, 0);
    tal_tensor c1 = tal_head_cls(h, 1), r1 = tal_head_reg(h, 1);
    c0.data[1 * 32 + 5] = 1.0f; /* A: level 0, p 5, class 1: [4, 6] */
    r0.data[5] = 1;
    r0.data[32 + 5] = 1;
    c0.data[2 * 32 + 9] = 0.8f; /* B: p 9, class 2: [8, 11] */
    r0.data[9] = 1;
    r0.data[32 + 9] = 2;
    c0.data[0 * 32 + 7] = 0.5f; /* C: third on level 0: over the per-level top-2 */
    c1.data[2 * 16 + 3] = 3.0f; /* D: best overall, [5.8, 6.2]: 0.4 long, dropped */
    r1.data[3] = 0.1f;
    r1.data[16 + 3] = 0.1f;
    c1.data[0 * 16 + 11] = -1.0f; /* E: level 1, p 22: [21, 30], past the valid 24 */
    r1.data[11] = 0.5f;
    r1.data[16 + 11] = 4.0f;
    tal_dets d = {0};
    tal_err err = {0};
    cr_assert_eq(tal_head_decode(h, 0, &d, &err), TAL_OK);
    cr_assert_eq(d.n, 3, "A, B from level 0, then E (D too short, C over level 0's top-k)");
    NEAR(d.items[0].start, 4);
    NEAR(d.items[0].score, 1 / (1 + exp(-1.0)));
    cr_assert_eq(d.items[0].label, 1);
    NEAR(d.items[1].end, 11);
    NEAR(d.items[2].start, 21);
    NEAR(d.items[2].end, 30); /* not clipped */
    cr_assert_eq(d.items[2].label, 0);
    tal_dets_free(&d);
    /* the app's way: seconds (x * 4 + 0.5 * 16) / 30, unclipped until after the NMS */
    tal_time_map map = {.fps = 30, .snippet_stride = 4, .offset_frames = 8, .duration_s = 3.5};
    cr_assert_eq(tal_head_decode_window(h, 0, &map, 0, &d, &err), TAL_OK);
    NEAR(d.items[2].end, (30 * 4 + 8) / 30.0);
    cr_assert_eq(tal_head_nms_video(&c, &d, 3.5, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(d.n, 3);
    NEAR(d.items[0].start, (4 * 4 + 8) / 30.0);
    NEAR(d.items[2].start, (21 * 4 + 8) / 30.0);
    NEAR(d.items[2].end, 3.5);
    tal_dets_free(&d);
    tal_head_destroy(h);
    tal_params_destroy(pp);
}

/* Decodes three crafted segments of level 0 with the given threshold: [5, 5] (length 0, class
 * 0), [6, 6.05] (0.05 exactly, class 1), [6.97, 7.03] (0.06, class 2); returns how many stay
 * and the label of the last one in *last_label. */
static int decode_three(float duration_thresh, int *last_label) {
    tal_params *pp;
    tal_head *h = small_head_thresh(&pp, 3, duration_thresh);
    tal_tensor x = test_tensor(3, (int64_t[]){1, 4, 32}), m = test_tensor(2, (int64_t[]){1, 32});
    for (int t = 0; t < 24; t++) m.data[t] = 1;
    tal_head_forward(h, x, m);
    for (int l = 0; l < 3; l++) {
        tal_fill(tal_head_cls(h, l), -20.0f);
        tal_fill(tal_head_reg(h, l), 0.0f);
    }
    tal_tensor c0 = tal_head_cls(h, 0), r0 = tal_head_reg(h, 0);
    c0.data[0 * 32 + 5] = 3.0f;
    c0.data[1 * 32 + 6] = 2.0f;
    r0.data[32 + 6] = 0.05f;
    c0.data[2 * 32 + 7] = 1.0f;
    r0.data[7] = 0.03f;
    r0.data[32 + 7] = 0.03f;
    tal_dets d = {0};
    tal_err err = {0};
    cr_assert_eq(tal_head_decode(h, 0, &d, &err), TAL_OK);
    int n = d.n;
    *last_label = n ? d.items[n - 1].label : -1;
    tal_dets_free(&d);
    tal_head_destroy(h);
    tal_params_destroy(pp);
    return n;
}

/* ActionFormer's test_duration_thresh: segments not longer than 0.05 feature steps are dropped
 * in decoding, zero-length ones made by clipping included; 0 keeps them all (OpenTAD). */
Test(heads_post, decode_drops_segments_not_longer_than_the_threshold) {
    int label;
    cr_assert_eq(decode_three(0.05f, &label), 1);
    cr_assert_eq(label, 2);
    cr_assert_eq(decode_three(0.0f, &label), 3);
    tal_head_config c;
    tal_head_config_thumos(&c);
    cr_assert_eq(c.duration_thresh, 0.05f, "ActionFormer's default");
    tal_err err = {0};
    cr_assert_eq(tal_head_config_from_json(&c, "cfg", "{\"duration_thresh\": 0}", &err), TAL_OK,
                 "%s", err.msg);
    cr_assert_eq(c.duration_thresh, 0.0f);
    cr_assert_eq(tal_head_config_from_json(&c, "cfg", "{\"duration_thresh\": -1}", &err),
                 TAL_EINVAL);
    cr_assert(strstr(err.msg, "duration_thresh"), "%s", err.msg);
}

/* Numbers a float-to-int cast cannot hold are refused before the cast (undefined behaviour). */
Test(heads_post, config_numbers_out_of_range_are_errors) {
    const char *bad[] = {"{\"seed\": -1}", "{\"seed\": 1e30}", "{\"seed\": 0.5}",
                         "{\"arch\": [1e22, 1, 2]}", "{\"arch\": [2, 1.5, 2]}"};
    for (int i = 0; i < 5; i++) {
        tal_head_config c;
        tal_head_config_thumos(&c);
        tal_err err = {0};
        cr_expect_eq(tal_head_config_from_json(&c, "cfg", bad[i], &err), TAL_EINVAL, "%s", bad[i]);
        cr_expect(strstr(err.msg, "cfg"), "%s: %s", bad[i], err.msg);
    }
}

Test(heads_post, decode_empty_video_gives_nothing) {
    tal_params *pp;
    tal_head *h = small_head(&pp, 3);
    tal_tensor x = test_tensor(3, (int64_t[]){1, 4, 32}), m = test_tensor(2, (int64_t[]){1, 32});
    tal_head_forward(h, x, m); /* all padding */
    tal_dets d = {0};
    tal_err err = {0};
    cr_assert_eq(tal_head_decode(h, 0, &d, &err), TAL_OK);
    cr_assert_eq(d.n, 0);
    for (int l = 0; l < 3; l++) {
        tal_tensor c = tal_head_cls(h, l);
        for (int64_t i = 0; i < tal_tensor_numel(c); i++) cr_assert(isfinite(c.data[i]));
    }
    tal_head_gt gt = {0};
    tal_head_losses L;
    cr_assert_eq(tal_head_loss(h, &gt, 1, &L, &err), TAL_OK);
    cr_assert_eq(L.num_pos, 0);
    cr_assert_float_eq(L.reg, 0, 0);
    cr_assert(isfinite(L.cls));
    float seg[2] = {5, 3};
    int lab = 0;
    tal_head_gt bad = {seg, &lab, 1};
    cr_assert_eq(tal_head_loss(h, &bad, 1, &L, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "segment 0"), "%s", err.msg);
    seg[1] = 7;
    lab = 3;
    cr_assert_eq(tal_head_loss(h, &bad, 1, &L, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "label 3"), "%s", err.msg);
    tal_head_destroy(h);
    tal_params_destroy(pp);
}

/* ---------------------------------------------------------------- writers --------------- */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc(1, (size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

Test(heads_post, results_json_and_srt) {
    tal_detection in[] = {{1.5, 4.25, 0.75f, 1}, {10, 70.5, 0.5f, 0}, {3661.2, 3662, 0.9f, 1}};
    tal_dets d = make(in, 3), empty = {0};
    char *names[] = {"Diving", "High Jump"};
    tal_video_dets v[2] = {{"video_a", &d}, {"video_b", &empty}};
    tal_err err = {0};
    const char *path = test_tmp_path("heads_results.json");
    cr_assert_eq(tal_results_write_json(path, v, 2, names, 2, &err), TAL_OK, "%s", err.msg);
    char *text = slurp(path);
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root);
    cr_assert_str_eq(cJSON_GetObjectItem(root, "version")->valuestring, "VERSION 1.3");
    cJSON *a = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "results"), "video_a");
    cr_assert_eq(cJSON_GetArraySize(a), 3);
    cJSON *first = cJSON_GetArrayItem(a, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(first, "label")->valuestring, "High Jump");
    NEAR(cJSON_GetArrayItem(cJSON_GetObjectItem(first, "segment"), 1)->valuedouble, 4.25);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "results"),
                                                         "video_b")), 0);
    cr_assert_not_null(cJSON_GetObjectItem(root, "external_data"));
    cJSON_Delete(root);
    free(text);

    const char *srt = test_tmp_path("heads_top.srt");
    cr_assert_eq(tal_results_write_srt(srt, &d, names, 2, 2, &err), TAL_OK, "%s", err.msg);
    text = slurp(srt);
    /* top 2 by score (0.9, 0.75), shown in time order */
    cr_assert(strstr(text, "1\n00:00:01,500 --> 00:00:04,250\nHigh Jump (0.75)"), "%s", text);
    cr_assert(strstr(text, "2\n01:01:01,200 --> 01:01:02,000\nHigh Jump (0.90)"), "%s", text);
    cr_assert_null(strstr(text, "Diving"));
    free(text);

    d.items[0].label = 5;
    cr_assert_eq(tal_results_write_json(path, v, 2, names, 2, &err), TAL_EINVAL);
    cr_assert_eq(tal_results_write_srt("/nonexistent/dir/x.srt", &empty, names, 2, 5, &err),
                 TAL_EIO);
    cr_assert(strstr(err.msg, "/nonexistent/dir/x.srt"), "%s", err.msg);
    tal_dets_free(&d);
}

/* ---------------------------------------------------------------- .npy ------------------ */
static const char *write_npy(const char *name, const char *descr, const char *shape, int fortran,
                             const void *data, size_t bytes) {
    const char *path = test_tmp_path(name);
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }",
                     descr, fortran ? "True" : "False", shape);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    unsigned short hl = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hl, 2, 1, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    if (bytes) fwrite(data, 1, bytes, f);
    fclose(f);
    return path;
}

Test(heads_features, layouts_and_dtypes) {
    float tc[3][2] = {{1, 2}, {3, 4}, {5, 6}}; /* [T = 3, C = 2] */
    tal_features f;
    tal_err err = {0};
    const char *p = write_npy("f_tc.npy", "<f4", "(3, 2)", 0, tc, sizeof tc);
    cr_assert_eq(tal_features_load(&f, p, 2, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(f.C, 2);
    cr_assert_eq(f.T, 3);
    float want[6] = {1, 3, 5, 2, 4, 6}; /* [C, T] */
    for (int i = 0; i < 6; i++) cr_assert_float_eq(f.data[i], want[i], 0);
    tal_features_free(&f);
    /* the same bytes read as a [C=3, T=2] file */
    cr_assert_eq(tal_features_load(&f, p, 3, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(f.T, 2);
    cr_assert_float_eq(f.data[2], 3, 0);
    tal_features_free(&f);
    /* Fortran order (2, 3) == C-order (3, 2) bytes: shape [C=2, T=3] */
    p = write_npy("f_fortran.npy", "<f4", "(2, 3)", 1, tc, sizeof tc);
    cr_assert_eq(tal_features_load(&f, p, 2, &err), TAL_OK, "%s", err.msg);
    for (int i = 0; i < 6; i++) cr_assert_float_eq(f.data[i], want[i], 0);
    tal_features_free(&f);
    uint16_t h[6];
    for (int i = 0; i < 6; i++) h[i] = tal_f32_to_f16((float)(i + 1) * 0.5f);
    p = write_npy("f_f16.npy", "<f2", "(2, 3)", 0, h, sizeof h); /* [C=2, T=3] */
    cr_assert_eq(tal_features_load(&f, p, 2, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(f.T, 3);
    cr_assert_float_eq(f.data[4], 2.5f, 0);
    tal_features_free(&f);
    p = write_npy("f_empty.npy", "<f4", "(0, 2)", 0, NULL, 0);
    cr_assert_eq(tal_features_load(&f, p, 2, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(f.T, 0);
    tal_features_free(&f);
}

static void expect_bad(const char *path, int C, tal_status code, const char *needle) {
    tal_features f;
    tal_err err = {0};
    cr_assert_eq(tal_features_load(&f, path, C, &err), code, "%s: %s", path, err.msg);
    cr_assert_null(f.data);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    cr_assert(strstr(err.msg, base), "message must name the file: %s", err.msg);
    cr_assert(strstr(err.msg, needle), "message must say '%s': %s", needle, err.msg);
}

Test(heads_features, bad_files_name_the_file) {
    float v[6] = {1, 2, 3, 4, 5, 6};
    double dv[6] = {0};
    expect_bad(test_tmp_path("missing.npy"), 2, TAL_EIO, "cannot open");
    expect_bad(write_npy("f_f8.npy", "<f8", "(3, 2)", 0, dv, sizeof dv), 2, TAL_EFORMAT, "<f8");
    expect_bad(write_npy("f_3d.npy", "<f4", "(1, 3, 2)", 0, v, sizeof v), 2, TAL_EFORMAT,
               "3 dimensions");
    expect_bad(write_npy("f_shape.npy", "<f4", "(3, 2)", 0, v, sizeof v), 5, TAL_EFORMAT,
               "neither dimension");
    expect_bad(write_npy("f_trunc.npy", "<f4", "(3, 2)", 0, v, 5 * sizeof(float)), 2,
               TAL_EFORMAT, "truncated");
    v[4] = NAN;
    expect_bad(write_npy("f_nan.npy", "<f4", "(3, 2)", 0, v, sizeof v), 2, TAL_EFORMAT,
               "position 2, channel 0");
    const char *p = test_tmp_path("f_magic.npy");
    FILE *f = fopen(p, "wb");
    fputs("not numpy at all", f);
    fclose(f);
    expect_bad(p, 2, TAL_EFORMAT, "not a .npy");
}

/* ---------------------------------------------------------------- videos and checkpoints */
Test(heads_post, windows_of_a_video_pool_into_one_nms) {
    tal_params *pp;
    tal_head *h = small_head(&pp, 3);
    tal_tensor x = test_tensor(3, (int64_t[]){1, 4, 32}), m = test_tensor(2, (int64_t[]){1, 32});
    tal_fill(m, 1.0f);
    tal_head_forward(h, x, m);
    for (int l = 0; l < 3; l++) tal_fill(tal_head_cls(h, l), -20.0f);
    tal_tensor c0 = tal_head_cls(h, 0), r0 = tal_head_reg(h, 0);
    c0.data[1 * 32 + 20] = 3.0f; /* level 0, p = 20, class 1, [18, 22] */
    r0.data[20] = 2.0f;
    r0.data[32 + 20] = 2.0f;
    /* window 0 starts at frame 0, window 1 at frame 64 (16 features later): the same action
     * seen by both windows lands at the same seconds, and Soft-NMS merges the pair */
    tal_time_map w0 = {.fps = 32, .snippet_stride = 4, .duration_s = 100};
    tal_time_map w1 = w0;
    w1.window_start_frame = 64;
    tal_dets video = {0};
    tal_err err = {0};
    cr_assert_eq(tal_head_decode_window(h, 0, &w0, 1, &video, &err), TAL_OK);
    c0.data[1 * 32 + 20] = -20.0f; /* window 1 sees it at p = 4: [2, 6] */
    c0.data[1 * 32 + 4] = 2.0f;
    r0.data[4] = 2.0f;
    r0.data[32 + 4] = 2.0f;
    cr_assert_eq(tal_head_decode_window(h, 0, &w1, 1, &video, &err), TAL_OK);
    cr_assert_eq(video.n, 2);
    NEAR(video.items[0].start, 18 * 4 / 32.0);
    NEAR(video.items[1].start, (2 * 4 + 64) / 32.0);
    NEAR(video.items[1].end, video.items[0].end);
    tal_nms_opts o = tal_head_nms_opts(tal_head_cfg(h));
    tal_dets copy = {0};
    for (int i = 0; i < video.n; i++) tal_dets_push(&copy, video.items[i], &err);
    cr_assert_eq(tal_soft_nms(&video, &o, &err), TAL_OK);
    cr_assert_eq(video.n, 1, "the second window's copy is removed, not only decayed");
    copy.items[1].end += 0.01; /* not quite a copy: decayed and kept */
    cr_assert_eq(tal_soft_nms(&copy, &o, &err), TAL_OK);
    cr_assert_eq(copy.n, 2);
    cr_assert(copy.items[1].score < 0.3f * copy.items[0].score, "the near-copy is decayed");
    tal_dets_free(&copy);
    tal_dets_free(&video);
    tal_head_destroy(h);
    tal_params_destroy(pp);
}

Test(heads_post, opentad_checkpoint_names_load) {
    tal_params *a;
    tal_head *ha = small_head(&a, 3); /* prefix "head." */
    /* write a checkpoint with OpenTAD names: DDP prefix, a backbone tensor, the loss buffer */
    tal_named_tensor items[128];
    char names[128][160];
    int n = 0;
    for (int i = 0; i < tal_params_count(a) && n < 120; i++, n++) {
        tal_param *p = tal_params_at(a, i);
        test_fill_uniform(p->value, 40 + (uint64_t)i);
        snprintf(names[n], sizeof names[n], "module.%s", p->name + 5);
        items[n] = (tal_named_tensor){names[n], p->value, "F32"};
    }
    float extra[2] = {1, 2};
    items[n++] = (tal_named_tensor){"module.backbone.model.backbone.x", tal_t1(extra, 2), "F32"};
    items[n++] = (tal_named_tensor){"module.rpn_head.loss_normalizer", tal_t1(extra, 1), "F32"};
    tal_err err = {0};
    const char *path = test_tmp_path("heads_opentad.safetensors");
    cr_assert_eq(tal_safetensors_write(path, items, n, NULL, &err), TAL_OK, "%s", err.msg);
    tal_params *b;
    tal_head *hb = small_head(&b, 3);
    int unused = -1;
    cr_assert_eq(tal_params_load(b, path, tal_head_checkpoint_name, hb, 0, &unused, &err), TAL_OK,
                 "%s", err.msg);
    cr_assert_eq(unused, 2);
    for (int i = 0; i < tal_params_count(a); i++)
        expect_close(tal_params_at(b, i)->value, tal_params_at(a, i)->value, 0, 0);
    tal_head_destroy(ha);
    tal_head_destroy(hb);
    tal_params_destroy(a);
    tal_params_destroy(b);
}

Test(heads_post, automatic_regression_weight) {
    tal_params *pp;
    tal_head *h = small_head(&pp, 3);
    tal_tensor x = test_tensor(3, (int64_t[]){1, 4, 32}), m = test_tensor(2, (int64_t[]){1, 32});
    test_fill_uniform(x, 9);
    tal_fill(m, 1.0f);
    tal_head_forward(h, x, m);
    float seg[4] = {3, 9, 14, 30};
    int lab[2] = {0, 2};
    tal_head_gt gt = {seg, lab, 2};
    tal_head_losses fixed, aut;
    tal_err err = {0};
    cr_assert_eq(tal_head_loss(h, &gt, 0, &fixed, &err), TAL_OK);
    cr_assert_float_eq(fixed.reg_weight, 1.0f, 0);
    cr_assert(fixed.num_pos > 0 && fixed.reg > 0);
    /* the head's own config object is not const: switch the weight to automatic */
    ((tal_head_config *)tal_head_cfg(h))->reg_loss_weight = 0;
    cr_assert_eq(tal_head_loss(h, &gt, 0, &aut, &err), TAL_OK);
    float want = aut.cls / fmaxf(aut.reg, 0.01f);
    cr_assert_float_eq(aut.reg_weight, want, 1e-6 * want);
    cr_assert_float_eq(aut.total, aut.cls + want * aut.reg, 1e-5);
    tal_head_destroy(h);
    tal_params_destroy(pp);
}
