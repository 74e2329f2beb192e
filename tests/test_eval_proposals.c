/* tests/test_eval_proposals.c: AR@AN and its AUC against the numpy port of the official
 * ActivityNet proposal kit (bench/eval_numpy_ref.py --proposals MAX_AVG --hex, written from
 * ANETproposal.average_recall_vs_avg_nr_proposals), bit for bit: the official sample on ANet-1.3
 * val (every GT recalled except the 3 zero-length ones, whose tIoU is NaN), and generated files
 * with 60-GT videos, tied scores (numpy's argsort order) and the kit's default budget. */
#include <math.h>
#include <string.h>

#include "eval/eval.h"
#include "testlib.h"

static void load(tal_eval_gt **gt, tal_eval_dets **d, const char *gt_path, const char *pred) {
    tal_err err = {0};
    cr_assert_eq(tal_eval_gt_load(gt, gt_path, NULL, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_dets_create(d, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_dets_load(*d, pred, NULL, &err), TAL_OK, "%s", err.msg);
}

static void expect_ar(const char *gt_path, const char *pred, double max_avg, const double want[5],
                      double want_auc) {
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    load(&gt, &d, gt_path, pred);
    static tal_eval_ar_result r;
    tal_err err = {0};
    cr_assert_eq(tal_eval_proposals_ar(&r, gt, d, max_avg, 0, NULL, &err), TAL_OK, "%s", err.msg);
    const int an[5] = {1, 5, 10, 50, 100};
    for (int a = 0; a < 5; a++)
        cr_expect(r.ar_at[a] == want[a], "%s: AR at point %d: got %a, numpy %a", pred, an[a],
                  r.ar_at[a], want[a]);
    cr_expect(r.auc == want_auc, "%s: AUC: got %a, numpy %a", pred, r.auc, want_auc);
    for (int j = 1; j < TAL_EVAL_AR_POINTS; j++)
        cr_expect_geq(r.avg_recall[j], r.avg_recall[j - 1], "AR must not fall with more proposals");
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
}

Test(eval_proposals, anet_sample_official) {
    const double want[5] = {0x1.08824119b3497p-2, 0x1.ffcca046a39eep-1, 0x1.ffcca046a39eep-1,
                            0x1.ffcca046a39eep-1, 0x1.ffcca046a39eep-1};
    expect_ar(TEST_DATA "/anet13_val_gt.json", TEST_DATA "/anet13_sample_detection_prediction.json",
              100, want, 0x1.8a5cb876e8c31p+6);
    /* AR@100 misses exactly the 3 zero-length GT of 7654 */
    cr_expect(fabs(want[4] - (1.0 - 3.0 / 7654.0)) < 1e-15);
}

Test(eval_proposals, generated_dense_videos) {
    const double want[5] = {0x1.e9131abf0b766p-7, 0x1.2e9d6bbfcf17ap-3, 0x1.1c464df23ea9bp-2,
                            0x1.75aeff3c5ec22p-1, 0x1.75aeff3c5ec22p-1};
    expect_ar(FIXTURES "/eval_diff_dense_b_gt.json", FIXTURES "/eval_diff_dense_b_pred.json", 100,
              want, 0x1.dc16ece540f49p+5);
}

Test(eval_proposals, generated_ties_small_budget) {
    const double want[5] = {0, 0, 0x1.4c6dd1fe8414dp-4, 0x1.e6c56134af1e6p-2, 0x1.4c6dd1fe8414dp-1};
    expect_ar(FIXTURES "/eval_diff_ties_gt.json", FIXTURES "/eval_diff_ties_pred.json", 10, want,
              0x1.4e1642c8590b2p+5);
}

Test(eval_proposals, generated_default_budget) {
    const double want[5] = {0, 0x1.4141414141414p-7, 0x1.b1b1b1b1b1b1bp-4, 0x1.3232323232323p-1,
                            0x1.8f8f8f8f8f8f8p-1};
    expect_ar(FIXTURES "/eval_diff_small_a_gt.json", FIXTURES "/eval_diff_small_a_pred.json", 0,
              want, 0x1.a0a4a4a4a4a4bp+5);
}

Test(eval_proposals, bad_input) {
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    load(&gt, &d, FIXTURES "/eval_diff_dense_b_gt.json", FIXTURES "/eval_diff_dense_b_pred.json");
    static tal_eval_ar_result r;
    tal_err err = {0};
    /* a budget so small that no video keeps a proposal: the kit divides 0 by 0 */
    cr_expect_eq(tal_eval_proposals_ar(&r, gt, d, 1, 0, NULL, &err), TAL_EINVAL);
    cr_expect(strstr(err.msg, "max_avg") != NULL, "%s", err.msg);
    cr_expect_eq(tal_eval_proposals_ar(&r, gt, d, NAN, 0, NULL, &err), TAL_EINVAL);
    const double bad_t[1] = {NAN};
    cr_expect_eq(tal_eval_proposals_ar(&r, gt, d, 100, 1, bad_t, &err), TAL_EINVAL);
    cr_expect_eq(tal_eval_proposals_ar(&r, gt, d, 100, TAL_EVAL_MAX_TIOU + 1, bad_t, &err), TAL_EINVAL);
    tal_eval_dets *empty = NULL;
    cr_assert_eq(tal_eval_dets_create(&empty, &err), TAL_OK);
    cr_expect_eq(tal_eval_proposals_ar(&r, gt, empty, 100, 0, NULL, &err), TAL_EINVAL);
    cr_expect(strstr(err.msg, "no proposals") != NULL, "%s", err.msg);
    tal_eval_dets_destroy(empty);
    /* custom thresholds */
    const double t2[2] = {0.5, 0.7};
    cr_expect_eq(tal_eval_proposals_ar(&r, gt, d, 100, 2, t2, &err), TAL_OK, "%s", err.msg);
    cr_expect_eq(r.n_tiou, 2);
    cr_expect_geq(r.recall[0][99], r.recall[1][99]);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
}
