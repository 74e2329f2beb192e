/* tests/test_eval_real.c: the real files of shared/data against numbers computed by the
 * official logic (bench/eval_official.py, an independent Python/numpy/pandas port of
 * ANETdetection, OpenTAD's mAP and the THUMOS-14 MATLAB kit, run once on numpy 1.24.2 /
 * pandas 1.5.3; the expectations are committed here). Doubles compare with ==: the C code
 * is meant to be bit-identical. */
#include <math.h>
#include <string.h>

#include "eval/eval.h"
#include "testlib.h"

#define CLASSLIST SHARED_DATA "/thumos14_annotations/detclasslist.txt"

static tal_eval_result *run_files(const char *gt_path, const char *subset, const char *pred,
                                  const char *classlist, tal_eval_protocol proto,
                                  const char *tiou) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_result *r = NULL;
    tal_eval_opts o = {.protocol = proto};
    if (tiou) cr_assert_eq(tal_eval_parse_tiou(tiou, o.tiou, &o.n_tiou, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_gt_load(&gt, gt_path, subset, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    cr_assert_eq(tal_eval_dets_load(d, pred, classlist, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_run(&r, gt, d, &o, &err), TAL_OK, "%s", err.msg);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
    return r;
}

static void expect_map(const tal_eval_result *r, const double *want, int n, double want_avg) {
    cr_assert_eq(r->n_tiou, n);
    for (int t = 0; t < n; t++)
        cr_expect(r->map[t] == want[t], "mAP@%g = %.17g, want %.17g", r->tiou[t], r->map[t],
                  want[t]);
    cr_expect(r->average_map == want_avg, "average mAP %.17g, want %.17g", r->average_map,
              want_avg);
}

static double class_ap(const tal_eval_result *r, const char *name, int t) {
    for (int c = 0; c < r->n_classes; c++)
        if (!strcmp(r->class_names[c], name)) return r->ap[c * r->n_tiou + t];
    cr_assert_fail("no class %s", name);
    return NAN;
}

Test(eval_real, anet_sample_is_the_val_gt) {
    tal_eval_result *r = run_files(SHARED_DATA "/anet13_val_gt.json", NULL,
                                   SHARED_DATA "/anet13_sample_detection_prediction.json", NULL,
                                   TAL_EVAL_ACTIVITYNET, NULL);
    double want[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    expect_map(r, want, 10, 1.0);
    cr_expect_eq(r->n_classes, 200);
    cr_expect(r->tiou[8] == 0.8999999999999999, "linspace element 8 is %.17g", r->tiou[8]);
    cr_expect(r->tiou[9] == 0.95);
    /* diagnosis: the spec/provenance counts */
    cr_expect_eq(r->diag.n_dets, 7654);
    cr_expect_eq(r->diag.n_gt, 7654);
    cr_expect_eq(r->diag.n_gt_videos, 4926);
    cr_expect_eq(r->diag.n_gt_duplicates, 19);
    cr_expect_eq(r->diag.n_gt_zero_length, 3);
    cr_expect_eq(r->diag.n_nan_pairs, 3); /* the 3 zero-length GT are "detected" through NaN */
    cr_expect_eq(r->diag.n_tied_scores, 7654);
    tal_eval_result_destroy(r);
}

Test(eval_real, anet_sample_opentad_dedups_24) {
    tal_eval_result *r = run_files(SHARED_DATA "/anet13_val_gt.json", "validation",
                                   SHARED_DATA "/anet13_sample_detection_prediction.json", NULL,
                                   TAL_EVAL_OPENTAD, NULL);
    cr_expect_eq(r->diag.n_gt_removed, 24); /* 3 zero-length + 21 within 1e-3 */
    cr_expect(r->average_map < 1.0 && r->average_map > 0.998, "%.17g", r->average_map);
    tal_eval_result_destroy(r);
}

/* Run-2 (simulated from the validation GT: 1,123 reversed segments, no tied scores) */
static const double run2_anet[5] = {0.07248466114949932, 0.037561933984593246,
                                    0.0213859754102033, 0.010478874648644618,
                                    0.005218749184956796};
static const double run2_anet_avg = 0.02942603887557945;

Test(eval_real, thumos_run2_json_route) {
    tal_eval_result *r = run_files(SHARED_DATA "/thumos14_val_gt.json", "validation",
                                   SHARED_DATA "/thumos14_evalkit_Run-2-det.txt", CLASSLIST,
                                   TAL_EVAL_ACTIVITYNET, NULL);
    expect_map(r, run2_anet, 5, run2_anet_avg);
    cr_expect(r->tiou[1] == 0.39999999999999997, "linspace(0.3, 0.7, 5)[1] = %.17g", r->tiou[1]);
    cr_expect(class_ap(r, "CricketBowling", 1) == 0.0026233985002912397);
    cr_expect(class_ap(r, "HammerThrow", 0) == 0.1729347879497169); /* NaN ties, >16 GT */
    cr_expect(class_ap(r, "PoleVault", 0) == 0.26698029918635346);
    cr_expect(class_ap(r, "SoccerPenalty", 0) == 0.06951400307440352);
    cr_expect_eq(r->diag.n_reversed, 1123);
    cr_expect_eq(r->diag.n_zero_length, 10);
    cr_expect_eq(r->diag.n_nan_pairs, 126);
    cr_expect_eq(r->diag.n_tied_scores, 0);
    tal_eval_result_destroy(r);
}

Test(eval_real, thumos_run2_txt_route_agrees) {
    tal_eval_result *a = run_files(SHARED_DATA "/thumos14_val_gt.json", "validation",
                                   SHARED_DATA "/thumos14_evalkit_Run-2-det.txt", CLASSLIST,
                                   TAL_EVAL_ACTIVITYNET, NULL);
    tal_eval_result *b = run_files(SHARED_DATA "/thumos14_annotations", "validation",
                                   SHARED_DATA "/thumos14_evalkit_Run-2-det.txt", CLASSLIST,
                                   TAL_EVAL_ACTIVITYNET, NULL);
    cr_assert_eq(a->n_classes, b->n_classes);
    for (int c = 0; c < b->n_classes; c++)
        for (int t = 0; t < 5; t++) /* per-class AP: identical */
            cr_expect(class_ap(a, b->class_names[c], t) == b->ap[c * 5 + t], "%s",
                      b->class_names[c]);
    /* the class order differs (first appearance vs detclasslist), so the pairwise mean over
     * classes may differ in the last bit */
    for (int t = 0; t < 5; t++) cr_expect(fabs(a->map[t] - b->map[t]) <= 1e-16);
    cr_expect_eq(b->diag.n_ambiguous, 89);
    tal_eval_result_destroy(a);
    tal_eval_result_destroy(b);
}

Test(eval_real, thumos_run2_opentad) {
    tal_eval_result *r = run_files(SHARED_DATA "/thumos14_val_gt.json", "validation",
                                   SHARED_DATA "/thumos14_evalkit_Run-2-det.txt", CLASSLIST,
                                   TAL_EVAL_OPENTAD, NULL);
    const double want[5] = {0.06581049265830158, 0.032282953634737974, 0.01775274556827599,
                            0.008138677655345806, 0.003556313359846526};
    expect_map(r, want, 5, 0.025508236575301574);
    cr_expect_eq(r->diag.n_gt_removed, 0);
    tal_eval_result_destroy(r);
}

Test(eval_real, thumos_run2_matlab_kit) {
    tal_eval_result *r = run_files(SHARED_DATA "/thumos14_annotations", "validation",
                                   SHARED_DATA "/thumos14_evalkit_Run-2-det.txt", CLASSLIST,
                                   TAL_EVAL_THUMOS14, "0.1:0.1:0.5");
    const double want[5] = {0.43724453578605305, 0.24948741869962907, 0.1487723707938652,
                            0.08762291219589735, 0.0558095360115801};
    expect_map(r, want, 5, 0.19578735469740496);
    cr_expect_eq(r->diag.n_ambiguous_dropped, 61);
    tal_eval_result_destroy(r);
    r = run_files(SHARED_DATA "/thumos14_annotations", "validation",
                  SHARED_DATA "/thumos14_evalkit_Run-2-det.txt", CLASSLIST, TAL_EVAL_THUMOS14, NULL);
    const double want2[5] = {0.1487723707938652, 0.08762291219589735, 0.0558095360115801,
                             0.029906466102134256, 0.018111087542738977};
    expect_map(r, want2, 5, 0.06804447452924318);
    tal_eval_result_destroy(r);
}

Test(eval_real, thumos_run1_random_is_zero_every_route) {
    const char *gts[3] = {SHARED_DATA "/thumos14_test_gt.json", SHARED_DATA "/thumos14_annotations",
                          SHARED_DATA "/thumos14_gtad_thumos_gt.json"};
    for (int i = 0; i < 3; i++)
        for (int p = 0; p < 3; p++) {
            tal_eval_result *r = run_files(gts[i], NULL, SHARED_DATA "/thumos14_evalkit_Run-1-det.txt",
                                           CLASSLIST, (tal_eval_protocol)p, NULL);
            for (int t = 0; t < 5; t++) cr_expect(r->map[t] == 0, "%s protocol %d", gts[i], p);
            cr_expect_eq(r->diag.n_dets, 1636);
            cr_expect_eq(r->diag.n_zero_length, 137);
            cr_expect_eq(r->n_classes, 20);
            tal_eval_result_destroy(r);
        }
}

Test(eval_real, gtad_string_segments_and_subsets) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, SHARED_DATA "/thumos14_gtad_thumos_gt.json", NULL, &err),
                 TAL_OK, "%s", err.msg);
    cr_expect_str_eq(tal_eval_gt_subset(gt), "test");
    cr_expect_eq(tal_eval_gt_n_videos(gt), 210);
    cr_expect(tal_eval_gt_is_thumos(gt));
    tal_eval_gt_destroy(gt);
    cr_assert_eq(tal_eval_gt_load(&gt, SHARED_DATA "/thumos14_test_gt.json", NULL, &err), TAL_OK);
    cr_expect_eq(tal_eval_gt_n_videos(gt), 212);
    cr_expect_eq(tal_eval_gt_n_instances(gt), 3358);
    tal_eval_gt_destroy(gt);
    cr_assert_eq(tal_eval_gt_load(&gt, SHARED_DATA "/thumos14_annotations", NULL, &err), TAL_OK,
                 "%s", err.msg);
    cr_expect_eq(tal_eval_gt_n_videos(gt), 213); /* + 0001292, which has only Ambiguous */
    cr_expect_eq(tal_eval_gt_n_instances(gt), 3358);
    cr_expect_eq(tal_eval_gt_n_classes(gt), 20);
    tal_eval_gt_destroy(gt);
    /* ActionFormer-style file without the "database" wrapper */
    cr_assert_eq(tal_eval_gt_load(&gt, SHARED_DATA "/thumos14_lzszq_thumos14.json", "test", &err),
                 TAL_OK, "%s", err.msg);
    cr_expect_eq(tal_eval_gt_n_instances(gt), 3358);
    tal_eval_gt_destroy(gt);
}
