/* tests/test_eval_cases.c: the worked example of eval-reference.md 1.6 to the last digit and
 * hand-made cases for every corner of each protocol (expected values worked out by hand from
 * the spec's rules). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/eval.h"
#include "testlib.h"

static const char *write_tmp(const char *name, const char *text) {
    const char *path = test_tmp_path(name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

static tal_eval_gt *gt_from(const char *name, const char *json) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, write_tmp(name, json), NULL, &err), TAL_OK, "%s", err.msg);
    return gt;
}

typedef struct det {
    const char *video, *label;
    double t0, t1, score;
} det;

static tal_eval_result *score(const tal_eval_gt *gt, const det *dets, int n,
                              tal_eval_protocol proto, const char *tiou) {
    tal_err err = {0};
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    for (int i = 0; i < n; i++)
        cr_assert_eq(tal_eval_dets_add(d, dets[i].video, dets[i].label, dets[i].t0, dets[i].t1,
                                       dets[i].score, &err), TAL_OK, "%s", err.msg);
    tal_eval_opts o = {.protocol = proto};
    if (tiou) cr_assert_eq(tal_eval_parse_tiou(tiou, o.tiou, &o.n_tiou, &err), TAL_OK);
    tal_eval_result *r = NULL;
    cr_assert_eq(tal_eval_run(&r, gt, d, &o, &err), TAL_OK, "%s", err.msg);
    tal_eval_dets_destroy(d);
    return r;
}

/* GT and detections read from files, and the result of the last run_ok (all owned: freed by
 * loaded_free). */
typedef struct loaded {
    tal_eval_gt *gt;
    tal_eval_dets *d;
    tal_eval_result *r;
    tal_err err;
} loaded;

/* Reads GT and detections from files; fails the test on any error. */
static loaded load_files(const char *gt_path, const char *subset, const char *pred,
                         const char *classlist) {
    loaded l = {0};
    cr_assert_eq(tal_eval_gt_load(&l.gt, gt_path, subset, &l.err), TAL_OK, "%s", l.err.msg);
    cr_assert_eq(tal_eval_dets_create(&l.d, &l.err), TAL_OK, "%s", l.err.msg);
    cr_assert_eq(tal_eval_dets_load(l.d, pred, classlist, &l.err), TAL_OK, "%s", l.err.msg);
    return l;
}

/* Scores with `o`, replacing the previous result; fails the test on an error. */
static tal_eval_result *run_ok(loaded *l, const tal_eval_opts *o) {
    tal_eval_result_destroy(l->r);
    l->r = NULL;
    cr_assert_eq(tal_eval_run(&l->r, l->gt, l->d, o, &l->err), TAL_OK, "%s", l->err.msg);
    return l->r;
}

static void loaded_free(loaded *l) {
    tal_eval_result_destroy(l->r);
    tal_eval_dets_destroy(l->d);
    tal_eval_gt_destroy(l->gt);
}

#define WORKED FIXTURES "/eval_worked_gt.json", NULL, FIXTURES "/eval_worked_pred.json", NULL

#define ONE_A "{\"database\": {\"v1\": {\"subset\": \"validation\", \"annotations\": ["

/* The numbers themselves: tests/test_eval_reference.c (worked_example_files). */
Test(eval_cases, worked_example_json_carries_the_same_bits) {
    loaded w = load_files(WORKED);
    tal_err err = {0};
    tal_eval_opts o = {0};
    cr_assert_eq(tal_eval_parse_tiou("0.1,0.5,0.8,0.81,0.9", o.tiou, &o.n_tiou, &err), TAL_OK);
    tal_eval_result *r = run_ok(&w, &o);
    char *json = tal_eval_result_json(r);
    cJSON *root = cJSON_Parse(json);
    cr_assert(root);
    cJSON *a = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "per_class"), "A"), "AP");
    cr_expect(cJSON_GetArrayItem(a, 0)->valuedouble == 0.44999999999999996);
    cr_expect(cJSON_GetObjectItem(root, "average_mAP")->valuedouble == 0.64);
    cJSON_Delete(root);
    free(json);
    /* and the file written atomically */
    const char *out = test_tmp_path("worked.json");
    cr_assert_eq(tal_eval_write_json(r, out, &err), TAL_OK, "%s", err.msg);
    FILE *f = fopen(out, "r");
    cr_assert(f);
    fclose(f);
    loaded_free(&w);
}

Test(eval_cases, nan_tiou_matches_only_in_activitynet) {
    /* reversed [50, 40]: |length| 10 == GT length -> union 0 -> tIoU NaN -> TP (official) */
    tal_eval_gt *gt = gt_from("nan.json", ONE_A "{\"segment\": [10, 20], \"label\": \"A\"}]}}}");
    det d[1] = {{"v1", "A", 50, 40, 0.9}};
    tal_eval_result *r = score(gt, d, 1, TAL_EVAL_ACTIVITYNET, NULL);
    for (int t = 0; t < 10; t++) cr_expect(r->ap[t] == 1.0);
    cr_expect_eq(r->diag.n_nan_pairs, 1);
    cr_expect_eq(r->diag.n_reversed, 1);
    tal_eval_result_destroy(r);
    r = score(gt, d, 1, TAL_EVAL_OPENTAD, NULL); /* clipped union: never NaN */
    for (int t = 0; t < 10; t++) cr_expect(r->ap[t] == 0.0);
    tal_eval_result_destroy(r);
    r = score(gt, d, 1, TAL_EVAL_THUMOS14, NULL); /* normalised to [40, 50]: no overlap */
    for (int t = 0; t < 10; t++) cr_expect(r->ap[t] == 0.0);
    tal_eval_result_destroy(r);
    tal_eval_gt_destroy(gt);
}

Test(eval_cases, zero_length_detection_meets_zero_length_gt) {
    tal_eval_gt *gt = gt_from("zero.json", ONE_A "{\"segment\": [5, 5], \"label\": \"A\"},"
                                            "{\"segment\": [0, 10], \"label\": \"B\"}]}}}");
    det d[2] = {{"v1", "A", 70, 70, 0.9}, {"v1", "B", 3, 3, 0.8}};
    tal_eval_result *r = score(gt, d, 2, TAL_EVAL_ACTIVITYNET, "0.5");
    cr_expect(r->ap[0] == 1.0, "A: zero/zero -> NaN -> TP anywhere in the video");
    cr_expect(r->ap[1] == 0.0, "B: zero-length det vs normal GT -> tIoU 0");
    cr_expect_eq(r->diag.n_zero_length, 2);
    cr_expect_eq(r->diag.n_gt_zero_length, 1);
    tal_eval_result_destroy(r);
    tal_eval_gt_destroy(gt);
}

Test(eval_cases, threshold_inclusive_vs_strict) {
    tal_eval_gt *gt = gt_from("incl.json", ONE_A "{\"segment\": [0, 10], \"label\": \"A\"}]}}}");
    det d[1] = {{"v1", "A", 0, 8, 1.0}}; /* tIoU 8/10 == 0.8 exactly */
    tal_eval_result *r = score(gt, d, 1, TAL_EVAL_ACTIVITYNET, "0.8");
    cr_expect(r->ap[0] == 1.0, ">= 0.8 matches");
    tal_eval_result_destroy(r);
    r = score(gt, d, 1, TAL_EVAL_THUMOS14, "0.8");
    cr_expect(r->ap[0] == 0.0, "the MATLAB kit needs > 0.8");
    tal_eval_result_destroy(r);
    tal_eval_gt_destroy(gt);
}

Test(eval_cases, taken_gt_walks_to_the_next_best) {
    tal_eval_gt *gt = gt_from("walk.json", ONE_A "{\"segment\": [0, 10], \"label\": \"A\"},"
                                            "{\"segment\": [1, 11], \"label\": \"A\"}]}}}");
    det d[2] = {{"v1", "A", 0, 10, 0.9}, {"v1", "A", 0, 10, 0.8}};
    tal_eval_result *r = score(gt, d, 2, TAL_EVAL_ACTIVITYNET, "0.5,0.85");
    cr_expect(r->ap[0] == 1.0, "second det takes GT [1, 11] (tIoU 9/11)");
    cr_expect(r->ap[1] == 0.5, "9/11 < 0.85: FP; %.17g", r->ap[1]);
    tal_eval_result_destroy(r);
    tal_eval_gt_destroy(gt);
}

Test(eval_cases, gt_duplicates_kept_or_removed) {
    tal_eval_gt *gt = gt_from("dup.json", ONE_A "{\"segment\": [0, 10], \"label\": \"A\"},"
                                           "{\"segment\": [0, 10], \"label\": \"A\"},"
                                           "{\"segment\": [20.0004, 30], \"label\": \"A\"},"
                                           "{\"segment\": [20, 30.0009], \"label\": \"A\"}]}}}");
    det d[2] = {{"v1", "A", 0, 10, 0.9}, {"v1", "A", 20, 30, 0.8}};
    tal_eval_result *r = score(gt, d, 2, TAL_EVAL_ACTIVITYNET, "0.5");
    cr_expect(r->ap[0] == 0.5, "official: 4 positives, 2 found");
    cr_expect_eq(r->diag.n_gt_duplicates, 1);
    cr_expect_eq(r->n_gt_class[0], 4);
    tal_eval_result_destroy(r);
    r = score(gt, d, 2, TAL_EVAL_OPENTAD, "0.5");
    cr_expect(r->ap[0] == 1.0, "OpenTAD: exact and 1e-3 duplicates removed");
    cr_expect_eq(r->diag.n_gt_removed, 2);
    cr_expect_eq(r->n_gt_class[0], 2);
    tal_eval_result_destroy(r);
    tal_eval_gt_destroy(gt);
}

Test(eval_cases, gt_video_without_detections_loses_recall) {
    tal_eval_gt *gt = gt_from("miss.json", "{\"database\": {"
                              "\"v1\": {\"subset\": \"validation\", \"annotations\": [{\"segment\": [0, 10], \"label\": \"A\"}]},"
                              "\"v2\": {\"subset\": \"validation\", \"annotations\": [{\"segment\": [0, 10], \"label\": \"A\"}]},"
                              "\"v3\": {\"subset\": \"validation\", \"annotations\": []}}}");
    det d[1] = {{"v1", "A", 0, 10, 0.9}};
    tal_eval_result *r = score(gt, d, 1, TAL_EVAL_ACTIVITYNET, "0.5");
    cr_expect(r->ap[0] == 0.5);
    cr_expect_eq(r->diag.n_gt_videos_no_det, 1, "v3 has no instances: not counted");
    cr_expect_eq(r->diag.n_gt_videos, 3);
    tal_eval_result_destroy(r);
    tal_eval_gt_destroy(gt);
}

Test(eval_cases, ties_keep_insertion_order) {
    tal_eval_gt *gt = gt_from("ties.json", ONE_A "{\"segment\": [0, 10], \"label\": \"A\"}]}}}");
    det fp_first[2] = {{"v1", "A", 50, 60, 0.5}, {"v1", "A", 0, 10, 0.5}};
    det tp_first[2] = {{"v1", "A", 0, 10, 0.5}, {"v1", "A", 50, 60, 0.5}};
    tal_eval_result *r = score(gt, fp_first, 2, TAL_EVAL_ACTIVITYNET, "0.5");
    cr_expect(r->ap[0] == 0.5);
    cr_expect_eq(r->diag.n_tied_scores, 2);
    tal_eval_result_destroy(r);
    r = score(gt, tp_first, 2, TAL_EVAL_ACTIVITYNET, "0.5");
    cr_expect(r->ap[0] == 1.0);
    tal_eval_result_destroy(r);
    tal_eval_gt_destroy(gt);
}

Test(eval_cases, thumos14_kit_ambiguous_11_point_and_normalised) {
    loaded kit = load_files(FIXTURES "/eval_th14", NULL, FIXTURES "/eval_th14_det.txt",
                          FIXTURES "/eval_th14/detclasslist.txt");
    cr_expect_str_eq(tal_eval_gt_subset(kit.gt), "test");
    tal_eval_opts o = {.protocol = TAL_EVAL_THUMOS14, .n_tiou = 1, .tiou = {0.5}};
    tal_eval_result *r = run_ok(&kit, &o);
    /* Alpha: TP .9, (41-49 dropped: Ambiguous), FP .7, TP .6: prec 1, .5, 2/3; rec .5, .5, 1 */
    double want = 0;
    for (int k = 0; k <= 10; k++) want = want + (k <= 5 ? 1.0 : 2.0 / 3.0) / 11;
    cr_expect(r->ap[0] == want, "Alpha 11-point AP %.17g, want %.17g", r->ap[0], want);
    double one = 0; /* MATLAB adds p/11 eleven times: not exactly 1 */
    for (int k = 0; k <= 10; k++) one = one + 1.0 / 11;
    cr_expect(r->ap[1] == one, "Beta: reversed [11, 2] normalised to [2, 11]: ov 8/11 > 0.5");
    cr_expect_eq(r->diag.n_ambiguous_dropped, 1);
    cr_expect_eq(r->diag.n_ambiguous, 1);
    o.protocol = TAL_EVAL_ACTIVITYNET; /* no Ambiguous, all-points, reversed never overlaps */
    r = run_ok(&kit, &o);
    cr_expect(r->ap[0] == 0.75, "%.17g", r->ap[0]);
    cr_expect(r->ap[1] == 0.0);
    loaded_free(&kit);
}

Test(eval_cases, threads_do_not_change_numbers) {
    loaded kit = load_files(TEST_DATA "/thumos14_val_gt.json", "validation",
                          TEST_DATA "/thumos14_evalkit_Run-2-det.txt",
                          TEST_DATA "/thumos14_annotations/detclasslist.txt");
    tal_eval_result *r4 = NULL;
    tal_eval_opts o = {.threads = 4};
    cr_assert_eq(tal_eval_run(&r4, kit.gt, kit.d, &o, &kit.err), TAL_OK, "%s", kit.err.msg);
    o.threads = 1;
    tal_eval_result *r1 = run_ok(&kit, &o);
    cr_expect_eq(memcmp(r1->ap, r4->ap, sizeof(double) * r1->n_classes * r1->n_tiou), 0);
    cr_expect(r1->average_map == r4->average_map);
    tal_eval_result_destroy(r4);
    loaded_free(&kit);
}

Test(eval_cases, pr_curves_of_the_worked_example) {
    loaded w = load_files(WORKED);
    tal_err err = {0};
    tal_eval_opts o = {.n_tiou = 1, .tiou = {0.5}};
    tal_eval_result *r = run_ok(&w, &o);
    cr_expect_null(r->pr_recall, "curves only when asked");
    cr_expect_eq(tal_eval_write_pr(r, test_tmp_path(""), &err), TAL_EINVAL);
    o.keep_pr = 1;
    r = run_ok(&w, &o);
    /* spec 1.6, class A at 0.5: FP TP FP TP TP after the 0.95 FP on v3 */
    const double prec[5] = {0, 0.5, 1.0 / 3, 0.5, 0.6}, rec[5] = {0, 0.25, 0.25, 0.5, 0.75};
    cr_assert_eq(r->pr_len[0], 5);
    for (int i = 0; i < 5; i++) {
        cr_expect(r->pr_precision[r->pr_offset[0] + i] == prec[i], "prec[%d]", i);
        cr_expect(r->pr_recall[r->pr_offset[0] + i] == rec[i], "rec[%d]", i);
    }
    char dir[512];
    snprintf(dir, sizeof dir, "%s", test_tmp_path(""));
    cr_assert_eq(tal_eval_write_pr(r, dir, &err), TAL_OK, "%s", err.msg);
    char path[700];
    snprintf(path, sizeof path, "%s/pr_tiou0.50.csv", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s", path);
    char line[128];
    cr_assert(fgets(line, sizeof line, f) && fgets(line, sizeof line, f) && fgets(line, sizeof line, f));
    cr_expect_str_eq(line, "\"A\",2,0.25,0.5\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/pr_tiou0.50.svg", dir);
    cr_expect_eq(access(path, R_OK), 0);
    cr_expect_eq(tal_eval_write_pr(r, "/nonexistent/dir", &err), TAL_EIO);
    loaded_free(&w);
}

Test(eval_cases, false_positives_by_cause) {
    /* worked example (spec 1.6) at 0.5 / 0.8 / 0.81: v3 is background; [1, 10] duplicates the
     * taken [0, 10]; [0, 50] (tIoU 0.5) and then [22, 30] (0.8) become localization errors */
    loaded w = load_files(WORKED);
    /* a B detection on A's GT [20, 30] (wrong label) and one half on it (confusion) */
    cr_assert_eq(tal_eval_dets_add(w.d, "v1", "B", 20, 30, 0.1, &w.err), TAL_OK);
    cr_assert_eq(tal_eval_dets_add(w.d, "v1", "B", 25, 35, 0.05, &w.err), TAL_OK);
    tal_eval_opts o = {.n_tiou = 3, .tiou = {0.5, 0.8, 0.81}};
    tal_eval_result *r = run_ok(&w, &o);
    const long want[3][TAL_EVAL_N_FP] = {{1, 0, 1, 1, 1}, {1, 1, 1, 1, 1}, {1, 2, 1, 1, 1}};
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < TAL_EVAL_N_FP; k++)
            cr_expect_eq(r->fp[t][k], want[t][k], "t=%d cause %d: %ld", t, k, r->fp[t][k]);
    loaded_free(&w);
}

Test(eval_cases, map_by_gt_length) {
    /* worked example at 0.5 with buckets [0, 10.5), [10.5, 60), [60, inf):
     * bucket 0: A (3 GT): FP TP FP TP (v2's TP found the 100 s GT: left out) -> AP 2/3 * 0.5;
     * B: 1.0. Bucket 2: A (1 GT): FP FP TP -> 1/3. Bucket 1 has no GT. */
    loaded w = load_files(WORKED);
    tal_eval_opts o = {.n_tiou = 1, .tiou = {0.5}, .n_bucket_edges = 2, .bucket_edges = {10.5, 60}};
    tal_eval_result *r = run_ok(&w, &o);
    cr_assert_eq(r->n_buckets, 3);
    cr_expect_eq(r->bucket_n_gt[0], 4);
    cr_expect_eq(r->bucket_n_gt[1], 0);
    cr_expect_eq(r->bucket_n_gt[2], 1);
    cr_expect_eq(r->bucket_n_classes[0], 2);
    cr_expect(fabs(r->bucket_map[0][0] - (1.0 / 3 + 1.0) / 2) < 1e-15, "%.17g", r->bucket_map[0][0]);
    cr_expect(fabs(r->bucket_map[2][0] - 1.0 / 3) < 1e-15, "%.17g", r->bucket_map[2][0]);
    cr_expect(r->map[0] == 0.725, "the overall numbers do not move");
    o.n_bucket_edges = 2;
    o.bucket_edges[1] = 5; /* not ascending */
    tal_eval_result *bad = NULL;
    cr_expect_eq(tal_eval_run(&bad, w.gt, w.d, &o, &w.err), TAL_EINVAL);
    cr_expect_null(bad);
    o.protocol = TAL_EVAL_THUMOS14; /* no breakdown for the MATLAB kit */
    o.bucket_edges[1] = 60;
    r = run_ok(&w, &o);
    cr_expect_eq(r->n_buckets, 0);
    loaded_free(&w);
}

/* A class with GT in a bucket but no detection at all counts there with AP 0, as it does in the
 * overall mAP (it used to be left out of the bucket, which then showed the mAP of the rest). */
Test(eval_cases, map_by_gt_length_counts_classes_without_detections) {
    char gt[1024], pred[1024];
    snprintf(gt, sizeof gt, "%s", test_write_tmp("bucket_nodet_gt.json", ONE_A
             "{\"segment\": [0, 10], \"label\": \"A\"}, {\"segment\": [0, 10], \"label\": \"D\"}]}}}"));
    snprintf(pred, sizeof pred, "%s", test_write_tmp("bucket_nodet_pred.json",
             "{\"results\": {\"v1\": [{\"segment\": [0, 10], \"label\": \"A\", \"score\": 0.9}]}}"));
    loaded w = load_files(gt, NULL, pred, NULL);
    tal_eval_opts o = {.n_tiou = 1, .tiou = {0.5}, .n_bucket_edges = 2, .bucket_edges = {5, 60}};
    tal_eval_result *r = run_ok(&w, &o);
    cr_expect(r->map[0] == 0.5, "%.17g", r->map[0]);
    cr_expect_eq(r->bucket_n_gt[1], 2);
    cr_expect_eq(r->bucket_n_classes[1], 2);
    cr_expect(r->bucket_map[1][0] == 0.5, "%.17g", r->bucket_map[1][0]);
    loaded_free(&w);
}

