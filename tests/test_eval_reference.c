/* tests/test_eval_reference.c: eval/ on the worked example and the real files of tests/data
 * against numbers computed independently by bench/eval_numpy_ref.py (a numpy port of the
 * reference evaluators written from shared/spec/eval-reference.md; run under Debian's numpy
 * 1.24.2) and bench/eval_official.py (a pandas port with the official data flow; numpy 1.24.2,
 * pandas 1.5.3), which agree on every number here. The expectations are committed as exact
 * float64 values, so the test needs no Python:
 *   /usr/bin/python3 bench/eval_numpy_ref.py --gt GT --pred PRED [...] --hex
 *   /usr/bin/python3 bench/eval_official.py GT PRED [--subset S] [--protocol P] [--classlist F]
 * Bit-exact for the activitynet and opentad protocols (the claim of eval.h: identical to the
 * official code when no two detections of a class share a score; none of these files has ties). */
#include <math.h>
#include <string.h>

#include "eval/eval.h"
#include "testlib.h"

#define TH_DIR TEST_DATA "/thumos14_annotations"
#define TH_CLASSES TH_DIR "/detclasslist.txt"

static tal_eval_result *evaluate(const char *gt_path, const char *subset, const char *pred,
                                 const char *classlist, tal_eval_protocol p, int n_tiou,
                                 const double *tiou) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_result *r = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, gt_path, subset, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_dets_load(d, pred, classlist, &err), TAL_OK, "%s", err.msg);
    tal_eval_opts o;
    memset(&o, 0, sizeof o);
    o.protocol = p;
    o.n_tiou = n_tiou;
    for (int i = 0; i < n_tiou; i++) o.tiou[i] = tiou[i];
    cr_assert_eq(tal_eval_run(&r, gt, d, &o, &err), TAL_OK, "%s", err.msg);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
    return r;
}

static double class_ap(const tal_eval_result *r, const char *name, int t) {
    for (int c = 0; c < r->n_classes; c++)
        if (!strcmp(r->class_names[c], name)) return r->ap[c * r->n_tiou + t];
    cr_assert_fail("no class %s", name);
    return NAN;
}

static void expect_exact(const char *what, double got, double want) {
    cr_expect(got == want, "%s: got %.17g (%a), want %.17g (%a)", what, got, got, want, want);
}

static void expect_maps(const tal_eval_result *r, const double *want, double want_avg, int exact) {
    for (int t = 0; t < r->n_tiou; t++) {
        char what[64];
        snprintf(what, sizeof what, "mAP@%.17g", r->tiou[t]);
        if (exact) expect_exact(what, r->map[t], want[t]);
        else cr_expect(fabs(r->map[t] - want[t]) <= 1e-15 * fabs(want[t]) + 1e-300,
                       "%s: got %.17g, want %.17g", what, r->map[t], want[t]);
    }
    if (exact) expect_exact("average mAP", r->average_map, want_avg);
    else cr_expect(fabs(r->average_map - want_avg) <= 1e-15 * want_avg, "average: got %.17g, want %.17g",
                   r->average_map, want_avg);
}

/* Spec 1.6, to the last digit (Python prints class A at t=0.5 as 0.44999999999999996). */
Test(eval_reference, worked_example_files) {
    const double thr[5] = {0.1, 0.5, 0.8, 0.81, 0.9};
    tal_eval_result *r = evaluate(FIXTURES "/eval_worked_gt.json", NULL,
                                  FIXTURES "/eval_worked_pred.json", NULL,
                                  TAL_EVAL_ACTIVITYNET, 5, thr);
    cr_assert_eq(r->n_classes, 2, "class C (training subset only) must not exist");
    cr_assert_str_eq(r->class_names[0], "A");
    cr_assert_str_eq(r->class_names[1], "B");
    const double want[5] = {0x1.7333333333333p-1, 0x1.7333333333333p-1, 0.625, 0.5625, 0.5625};
    expect_maps(r, want, 0x1.47ae147ae147bp-1, 1);
    expect_exact("average == 0.64", r->average_map, 0.64);
    const double ap_a[5] = {0.44999999999999996, 0.44999999999999996, 0.25, 0.125, 0.125};
    for (int t = 0; t < 5; t++) {
        expect_exact("AP(A)", r->ap[0 * 5 + t], ap_a[t]);
        expect_exact("AP(B)", r->ap[1 * 5 + t], 1.0);
    }
    cr_expect_eq(r->n_gt_class[0], 4);
    cr_expect_eq(r->n_gt_class[1], 1);
    cr_expect_eq(r->diag.n_outside_gt, 1, "v3 is not a GT video");
    tal_eval_result_destroy(r);
}

/* The same example built in memory (the API training uses). */
Test(eval_reference, worked_example_in_memory) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_result *r = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, FIXTURES "/eval_worked_gt.json", "validation", &err),
                 TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    struct { const char *v, *l; double t0, t1, s; } dets[6] = {
        {"v3", "A", 0, 10, 0.95}, {"v1", "A", 0, 10, 0.9}, {"v1", "A", 1, 10, 0.8},
        {"v1", "A", 22, 30, 0.7}, {"v2", "A", 0, 50, 0.6}, {"v1", "B", 5, 15, 0.5}};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(tal_eval_dets_add(d, dets[i].v, dets[i].l, dets[i].t0, dets[i].t1, dets[i].s,
                                       &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_dets_count(d), 6);
    tal_eval_opts o;
    memset(&o, 0, sizeof o);
    o.n_tiou = 5;
    const double thr[5] = {0.1, 0.5, 0.8, 0.81, 0.9};
    memcpy(o.tiou, thr, sizeof thr);
    cr_assert_eq(tal_eval_run(&r, gt, d, &o, &err), TAL_OK, "%s", err.msg);
    const double want[5] = {0.725, 0.725, 0.625, 0.5625, 0.5625};
    expect_maps(r, want, 0.64, 1);
    /* t = 0.8: tIoU 8/10 of [1,10] vs [0,10]... equals the threshold and counts (inclusive) */
    expect_exact("AP(A)@0.8", r->ap[0 * 5 + 2], 0.25);
    tal_eval_result_destroy(r);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
}

/* Thresholds exactly as np.linspace: element 8 of linspace(0.5, 0.95, 10) is 0.8999999999999999. */
Test(eval_reference, linspace_like_numpy) {
    double t[10];
    tal_eval_linspace(t, 0.5, 0.95, 10);
    expect_exact("linspace[8]", t[8], 0.8999999999999999);
    expect_exact("linspace[9]", t[9], 0.95);
    double u[5];
    tal_eval_linspace(u, 0.3, 0.7, 5);
    expect_exact("linspace(0.3,0.7,5)[1]", u[1], 0.39999999999999997);
    int n = 0;
    tal_err err = {0};
    double p[TAL_EVAL_MAX_TIOU];
    cr_assert_eq(tal_eval_parse_tiou("0.5:0.05:0.95", p, &n, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(n, 10);
    for (int i = 0; i < 10; i++) expect_exact("parsed == linspace", p[i], t[i]);
    cr_assert_eq(tal_eval_parse_tiou("0.5,0.75,0.95", p, &n, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    expect_exact("literal[0]", p[0], 0.5);
    expect_exact("literal[1]", p[1], 0.75);
    expect_exact("literal[2]", p[2], 0.95);
}

/* The official sample "prediction" (the val GT itself, every score 1.0) against ANet-1.3 val:
 * 1.0 at every threshold with the official protocol (zero-length GT found only through NaN
 * tIoU, duplicate GT matched by duplicate detections); OpenTAD de-duplicates the GT so the
 * duplicate detections become FPs. */
Test(eval_reference, anet_sample_official) {
    tal_eval_result *r = evaluate(TEST_DATA "/anet13_val_gt.json", NULL,
                                  TEST_DATA "/anet13_sample_detection_prediction.json", NULL,
                                  TAL_EVAL_ACTIVITYNET, 0, NULL);
    cr_assert_eq(r->n_tiou, 10);
    cr_assert_eq(r->n_classes, 200);
    expect_exact("tiou[8]", r->tiou[8], 0.8999999999999999);
    const double want[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    expect_maps(r, want, 1.0, 1);
    long npos = 0;
    for (int c = 0; c < r->n_classes; c++) npos += r->n_gt_class[c];
    cr_expect_eq(npos, 7654, "GT duplicates are kept: npos %ld", npos);
    expect_exact("tiou[9]", r->tiou[9], 0.95);
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

Test(eval_reference, anet_sample_opentad) {
    tal_eval_result *r = evaluate(TEST_DATA "/anet13_val_gt.json", NULL,
                                  TEST_DATA "/anet13_sample_detection_prediction.json", NULL,
                                  TAL_EVAL_OPENTAD, 0, NULL);
    double want[10];
    for (int t = 0; t < 10; t++) want[t] = 0x1.ff67edbf43c28p-1;
    expect_maps(r, want, 0x1.ff67edbf43c26p-1, 1);
    long npos = 0;
    for (int c = 0; c < r->n_classes; c++) npos += r->n_gt_class[c];
    cr_expect_eq(npos, 7654 - 24, "OpenTAD removes 24 GT: npos %ld", npos);
    cr_expect_eq(r->diag.n_gt_removed, 24); /* 3 zero-length + 21 within 1e-3 */
    tal_eval_result_destroy(r);
}

/* Run-1 (test videos) never overlaps a same-class GT: 0 at tIoU 0.1; at tIoU 0 the official
 * inclusive rule (0 >= 0) turns every same-class detection in a GT video into a TP. */
Test(eval_reference, thumos_run1_activitynet) {
    const double thr[2] = {0.0, 0.1};
    tal_eval_result *r = evaluate(TEST_DATA "/thumos14_test_gt.json", NULL,
                                  TEST_DATA "/thumos14_evalkit_Run-1-det.txt", TH_CLASSES,
                                  TAL_EVAL_ACTIVITYNET, 2, thr);
    const double want[2] = {0x1.88a01b6829957p-13, 0.0};
    expect_maps(r, want, 0x1.88a01b6829957p-14, 1);
    tal_eval_result_destroy(r);
}

Test(eval_reference, thumos_run1_random_is_zero_every_route) {
    const char *gts[3] = {TEST_DATA "/thumos14_test_gt.json", TH_DIR,
                          TEST_DATA "/thumos14_gtad_thumos_gt.json"};
    for (int i = 0; i < 3; i++)
        for (int p = 0; p < 3; p++) {
            tal_eval_result *r = evaluate(gts[i], NULL, TEST_DATA "/thumos14_evalkit_Run-1-det.txt",
                                          TH_CLASSES, (tal_eval_protocol)p, 0, NULL);
            for (int t = 0; t < 5; t++) cr_expect(r->map[t] == 0, "%s protocol %d", gts[i], p);
            cr_expect_eq(r->diag.n_dets, 1636);
            cr_expect_eq(r->diag.n_zero_length, 137);
            cr_expect_eq(r->n_classes, 20);
            tal_eval_result_destroy(r);
        }
}

/* Evalkit Run-2 (validation videos) against `gt_path` (validation subset) with the default
 * thresholds linspace(0.3, 0.7, 5) under `p`: the mAPs bit for bit. Returns the result (the
 * caller destroys it). */
#define RUN2 TEST_DATA "/thumos14_evalkit_Run-2-det.txt"
static tal_eval_result *expect_run2(const char *gt_path, tal_eval_protocol p, const double *want,
                                    double want_avg) {
    tal_eval_result *r = evaluate(gt_path, "validation", RUN2, TH_CLASSES, p, 0, NULL);
    cr_assert_eq(r->n_tiou, 5);
    expect_exact("tiou[1]", r->tiou[1], 0.39999999999999997);
    expect_maps(r, want, want_avg, 1);
    return r;
}

/* The JSON GT and the txt folder under the two ANETdetection variants. The folder route gives
 * the same numbers; only the class order (detclasslist vs first appearance) changes numpy's
 * summation order, so its mAPs agree to 1 ulp, not bit for bit (each is checked bit for bit
 * against the port's own run on that route). */
Test(eval_reference, thumos_run2_activitynet_and_opentad) {
    static const struct {
        const char *gt;
        tal_eval_protocol p;
        double want[5], avg;
    } runs[3] = {
        {TEST_DATA "/thumos14_val_gt.json", TAL_EVAL_ACTIVITYNET,
         {0x1.28e5ad119471dp-4, 0x1.33b515c13a12ap-5, 0x1.5e63483eb668bp-6, 0x1.575f2bf518905p-7,
          0x1.560415134e782p-8}, 0x1.e21dc0a7c5a56p-6},
        {TH_DIR, TAL_EVAL_ACTIVITYNET,
         {0x1.28e5ad119471ep-4, 0x1.33b515c13a129p-5, 0x1.5e63483eb668bp-6, 0x1.575f2bf518904p-7,
          0x1.560415134e782p-8}, 0x1.e21dc0a7c5a56p-6},
        {TEST_DATA "/thumos14_val_gt.json", TAL_EVAL_OPENTAD,
         {0x1.0d8f4d9b3783cp-4, 0x1.087642c28b21ep-5, 0x1.22dc6968512bep-6, 0x1.0ab02d2e62ffap-7,
          0x1.d222132655310p-9}, 0x1.a1ed4c77a6ba8p-6},
    };
    tal_eval_result *r[3];
    for (int i = 0; i < 3; i++) r[i] = expect_run2(runs[i].gt, runs[i].p, runs[i].want, runs[i].avg);
    /* JSON route: 1,123 reversed segments, no tied scores; classes with NaN ties and > 16 GT */
    expect_exact("AP(CricketBowling)@0.4", class_ap(r[0], "CricketBowling", 1), 0.0026233985002912397);
    expect_exact("AP(HammerThrow)@0.3", class_ap(r[0], "HammerThrow", 0), 0.1729347879497169);
    expect_exact("AP(PoleVault)@0.3", class_ap(r[0], "PoleVault", 0), 0.26698029918635346);
    expect_exact("AP(SoccerPenalty)@0.3", class_ap(r[0], "SoccerPenalty", 0), 0.06951400307440352);
    cr_expect_eq(r[0]->diag.n_reversed, 1123);
    cr_expect_eq(r[0]->diag.n_zero_length, 10);
    cr_expect_eq(r[0]->diag.n_nan_pairs, 126);
    cr_expect_eq(r[0]->diag.n_tied_scores, 0);
    /* folder route: per-class APs identical to the JSON route's */
    cr_assert_eq(r[0]->n_classes, r[1]->n_classes);
    for (int c = 0; c < r[1]->n_classes; c++)
        for (int t = 0; t < 5; t++)
            expect_exact(r[1]->class_names[c], class_ap(r[0], r[1]->class_names[c], t),
                         r[1]->ap[c * 5 + t]);
    cr_expect_eq(r[1]->diag.n_ambiguous, 89);
    cr_expect_eq(r[2]->diag.n_gt_removed, 0);
    for (int i = 0; i < 3; i++) tal_eval_result_destroy(r[i]);
}

/* THUMOS-14 MATLAB-kit protocol, against the numpy port of TH14evaldet.m / TH14eventdetpr.m
 * (spec section 3; prap adds p/11 per recall point 0:0.1:1 as Octave builds it, mean over classes
 * a sequential sum): bit for bit. Not run against Octave here (none installed). With the folder,
 * Ambiguous segments drop unmatched detections; the JSON has no Ambiguous. */
Test(eval_reference, thumos_run2_th14_folder_and_json) {
    const double want[5] = {0x1.30af9198dd425p-3, 0x1.66e748642fc10p-4, 0x1.c931147f3080dp-5,
                            0x1.e9fccf763f10dp-6, 0x1.28bb682c3a46cp-6};
    tal_eval_result *r = expect_run2(TH_DIR, TAL_EVAL_THUMOS14, want, 0x1.16b5cd8c6cf8dp-4);
    cr_expect_gt(r->diag.n_ambiguous, 0);
    tal_eval_result_destroy(r);
    /* thresholds 0.1:0.1:0.5 (the kit's own sweep starts at 0.1) */
    double low[TAL_EVAL_MAX_TIOU];
    int n_low = 0;
    tal_err err = {0};
    cr_assert_eq(tal_eval_parse_tiou("0.1:0.1:0.5", low, &n_low, &err), TAL_OK, "%s", err.msg);
    r = evaluate(TH_DIR, "validation", RUN2, TH_CLASSES, TAL_EVAL_THUMOS14, n_low, low);
    const double want_low[5] = {0.43724453578605305, 0.24948741869962907, 0.1487723707938652,
                                0.08762291219589735, 0.0558095360115801};
    expect_maps(r, want_low, 0.19578735469740496, 1);
    cr_expect_eq(r->diag.n_ambiguous_dropped, 61);
    tal_eval_result_destroy(r);
    const double want_json[5] = {0x1.29b8b902a2afbp-3, 0x1.6286e4beef926p-4, 0x1.c49a99cc42420p-5,
                                 0x1.e4e0186f22c88p-6, 0x1.2301ec1827edap-6};
    tal_eval_result_destroy(expect_run2(TEST_DATA "/thumos14_val_gt.json", TAL_EVAL_THUMOS14,
                                        want_json, 0x1.120c6dc26e8cep-4));
}

Test(eval_reference, gtad_string_segments_and_subsets) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, TEST_DATA "/thumos14_gtad_thumos_gt.json", NULL, &err),
                 TAL_OK, "%s", err.msg);
    cr_expect_str_eq(tal_eval_gt_subset(gt), "test");
    cr_expect_eq(tal_eval_gt_n_videos(gt), 210);
    cr_expect(tal_eval_gt_is_thumos(gt));
    tal_eval_gt_destroy(gt);
    cr_assert_eq(tal_eval_gt_load(&gt, TEST_DATA "/thumos14_test_gt.json", NULL, &err), TAL_OK);
    cr_expect_eq(tal_eval_gt_n_videos(gt), 212);
    cr_expect_eq(tal_eval_gt_n_instances(gt), 3358);
    tal_eval_gt_destroy(gt);
    cr_assert_eq(tal_eval_gt_load(&gt, TH_DIR, NULL, &err), TAL_OK, "%s", err.msg);
    cr_expect_eq(tal_eval_gt_n_videos(gt), 213); /* + 0001292, which has only Ambiguous */
    cr_expect_eq(tal_eval_gt_n_instances(gt), 3358);
    cr_expect_eq(tal_eval_gt_n_classes(gt), 20);
    tal_eval_gt_destroy(gt);
    /* ActionFormer-style file without the "database" wrapper */
    cr_assert_eq(tal_eval_gt_load(&gt, TEST_DATA "/thumos14_lzszq_thumos14.json", "test", &err),
                 TAL_OK, "%s", err.msg);
    cr_expect_eq(tal_eval_gt_n_instances(gt), 3358);
    tal_eval_gt_destroy(gt);
}
