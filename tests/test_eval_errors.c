/* tests/test_eval_errors.c: every bad-input path of the readers and of tal_eval_run, fed on
 * purpose; each error must name the file and the item. */
#include <math.h>
#include <stdio.h>
#include <string.h>

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

static void expect_gt_error(const char *name, const char *text, tal_status code, const char *w1,
                            const char *w2) {
    tal_err err = {0};
    tal_eval_gt *gt = (tal_eval_gt *)1;
    const char *path = write_tmp(name, text);
    cr_expect_eq(tal_eval_gt_load(&gt, path, NULL, &err), code, "%s: %s", name, err.msg);
    cr_expect_null(gt);
    cr_expect(strstr(err.msg, name), "message names the file: %s", err.msg);
    cr_expect(strstr(err.msg, w1), "message has '%s': %s", w1, err.msg);
    if (w2) cr_expect(strstr(err.msg, w2), "message has '%s': %s", w2, err.msg);
}

static void expect_pred_error(const char *name, const char *text, const char *classlist,
                              tal_status code, const char *w1, const char *w2) {
    tal_err err = {0};
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    const char *path = write_tmp(name, text);
    cr_expect_eq(tal_eval_dets_load(d, path, classlist, &err), code, "%s: %s", name, err.msg);
    cr_expect(strstr(err.msg, name), "message names the file: %s", err.msg);
    cr_expect(strstr(err.msg, w1), "message has '%s': %s", w1, err.msg);
    if (w2) cr_expect(strstr(err.msg, w2), "message has '%s': %s", w2, err.msg);
    tal_eval_dets_destroy(d);
}

#define GT_OK "{\"database\": {\"v1\": {\"subset\": \"validation\", \"annotations\": " \
              "[{\"segment\": [0, 10], \"label\": \"A\"}]}}}"

Test(eval_errors, gt_files) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    cr_expect_eq(tal_eval_gt_load(&gt, test_tmp_path("absent.json"), NULL, &err), TAL_EIO);
    cr_expect(strstr(err.msg, "absent.json"), "%s", err.msg);
    expect_gt_error("gt_malformed.json", "{\n  \"database\": {\n    \"v1\": [,]\n", TAL_EFORMAT,
                    "line 3", "column");
    expect_gt_error("gt_empty.json", "", TAL_EFORMAT, "empty", NULL);
    expect_gt_error("gt_nan.json", "{\"database\": {\"v1\": {\"subset\": \"validation\", "
                    "\"annotations\": [{\"segment\": [NaN, 10], \"label\": \"A\"}]}}}",
                    TAL_EFORMAT, "line 1", "column 75"); /* the N of NaN */
    expect_gt_error("gt_nodb.json", "{\"version\": \"1.3\", \"taxonomy\": []}", TAL_EFORMAT,
                    "\"database\"", NULL);
    expect_gt_error("gt_array.json", "[1, 2]", TAL_EFORMAT, "not a JSON object", NULL);
    expect_gt_error("gt_dup.json", "{\"database\": {\"v1\": {\"subset\": \"validation\", "
                    "\"annotations\": []}, \"v1\": {\"subset\": \"validation\", \"annotations\": []}}}",
                    TAL_EFORMAT, "\"v1\"", "twice");
    expect_gt_error("gt_nosubset.json", "{\"database\": {\"v1\": {\"annotations\": []}}}",
                    TAL_EFORMAT, "v1", "subset");
    expect_gt_error("gt_anns.json", "{\"database\": {\"v1\": {\"subset\": \"validation\", "
                    "\"annotations\": 5}}}", TAL_EFORMAT, "v1.annotations", "array");
    expect_gt_error("gt_label.json", "{\"database\": {\"v1\": {\"subset\": \"validation\", "
                    "\"annotations\": [{\"segment\": [0, 1], \"label\": 3}]}}}", TAL_EFORMAT,
                    "annotations[0].label", NULL);
    expect_gt_error("gt_seg.json", "{\"database\": {\"v1\": {\"subset\": \"validation\", "
                    "\"annotations\": [{\"segment\": [0, \"x\"], \"label\": \"A\"}]}}}",
                    TAL_EFORMAT, "annotations[0].segment", NULL);
    expect_gt_error("gt_seg3.json", "{\"database\": {\"v1\": {\"subset\": \"validation\", "
                    "\"annotations\": [{\"segment\": [0, 1, 2], \"label\": \"A\"}]}}}",
                    TAL_EFORMAT, "segment", NULL);
    expect_gt_error("gt_segnan.json", "{\"database\": {\"v1\": {\"subset\": \"validation\", "
                    "\"annotations\": [{\"segment\": [\"nan\", \"1\"], \"label\": \"A\"}]}}}",
                    TAL_EFORMAT, "segment", "finite");
    expect_gt_error("gt_nosubsetmatch.json", "{\"database\": {\"v1\": {\"subset\": \"training\", "
                    "\"annotations\": [{\"segment\": [0, 1], \"label\": \"A\"}]}}}", TAL_EFORMAT,
                    "no ground-truth instances", "validation");
}

Test(eval_errors, gt_folder) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    /* a folder without detclasslist.txt */
    cr_expect_eq(tal_eval_gt_load(&gt, FIXTURES, NULL, &err), TAL_EIO);
    cr_expect(strstr(err.msg, "detclasslist.txt"), "%s", err.msg);
    /* the fixture folder has no "val" files */
    cr_expect_eq(tal_eval_gt_load(&gt, FIXTURES "/eval_th14", "validation", &err), TAL_EIO);
    cr_expect(strstr(err.msg, "Alpha_val.txt"), "%s", err.msg);
}

Test(eval_errors, prediction_files) {
    const char *cl = FIXTURES "/eval_th14/detclasslist.txt";
    expect_pred_error("p_empty.json", "  \n", NULL, TAL_EFORMAT, "empty", NULL);
    expect_pred_error("p_malformed.json", "{\"results\": {\"v1\": [{\"label\": \"A\",\n"
                      "\"score\": 0.5,, \"segment\": [0, 1]}]}}", NULL, TAL_EFORMAT, "line 2",
                      "column 1"); /* cJSON stops at or just after the second comma (14) */
    expect_pred_error("p_nores.json", "{\"version\": \"1.3\"}", NULL, TAL_EFORMAT, "\"results\"", NULL);
    expect_pred_error("p_dup.json", "{\"results\": {\"v1\": [], \"v1\": []}}", NULL, TAL_EFORMAT,
                      "\"v1\"", "twice");
    expect_pred_error("p_score.json", "{\"results\": {\"v1\": [{\"label\": \"A\", \"score\": \"high\", "
                      "\"segment\": [0, 1]}]}}", NULL, TAL_EFORMAT, "results.v1[0].score", "high");
    expect_pred_error("p_noscore.json", "{\"results\": {\"v1\": [{\"label\": \"A\", "
                      "\"segment\": [0, 1]}]}}", NULL, TAL_EFORMAT, "score", "missing");
    expect_pred_error("p_seg.json", "{\"results\": {\"v1\": [{\"label\": \"A\", \"score\": 1, "
                      "\"segment\": [0]}]}}", NULL, TAL_EFORMAT, "results.v1[0].segment", NULL);
    expect_pred_error("p_label.json", "{\"results\": {\"v2\": [{\"label\": null, \"score\": 1, "
                      "\"segment\": [0, 1]}]}}", NULL, TAL_EFORMAT, "results.v2[0].label", "null");
    expect_pred_error("p_list.json", "{\"results\": {\"v2\": {}}}", NULL, TAL_EFORMAT,
                      "results.v2", "array");
    expect_pred_error("p_huge.json", "{\"results\": {\"v2\": [{\"label\": \"A\", \"score\": 1e999, "
                      "\"segment\": [0, 1]}]}}", NULL, TAL_EFORMAT, "score", NULL);
    /* THUMOS text */
    expect_pred_error("p_nolist.txt", "v1 0 1 1 0.5\n", NULL, TAL_EINVAL, "class list", NULL);
    expect_pred_error("p_cols.txt", "v1 0 1 1 0.5\nv1 0 1 1\n", cl, TAL_EFORMAT, ":2:", NULL);
    expect_pred_error("p_nan.txt", "v1 0 1 1 0.5\nv1 nan 1 1 0.5\n", cl, TAL_EFORMAT, ":2:",
                      "start 'nan'");
    expect_pred_error("p_word.txt", "v1 0 1 1 abc\n", cl, TAL_EFORMAT, ":1:", "score 'abc'");
    expect_pred_error("p_cls.txt", "v1 0 1 1 0.5\nvX 0 1 9 0.5\n", cl, TAL_EINVAL, ":2:",
                      "class id 9");
    char badlist[512]; /* test_tmp_path reuses its buffer */
    snprintf(badlist, sizeof badlist, "%s", write_tmp("badlist.txt", "1 Alpha\nBeta 2\n"));
    expect_pred_error("p_badlist.txt", "v1 0 1 1 0.5\n", badlist, TAL_EFORMAT, "badlist.txt:2", NULL);
}

Test(eval_errors, api_refuses_non_finite) {
    tal_err err = {0};
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    cr_expect_eq(tal_eval_dets_add(d, "v1", "A", NAN, 1, 0.5, &err), TAL_EINVAL);
    cr_expect(strstr(err.msg, "v1") && strstr(err.msg, "\"A\""), "%s", err.msg);
    cr_expect_eq(tal_eval_dets_add(d, "v1", "A", 0, INFINITY, 0.5, &err), TAL_EINVAL);
    cr_expect_eq(tal_eval_dets_add(d, "v1", "A", 0, 1, NAN, &err), TAL_EINVAL);
    cr_expect_eq(tal_eval_dets_count(d), 0);
    tal_eval_gt *gt = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, write_tmp("ok.json", GT_OK), NULL, &err), TAL_OK, "%s", err.msg);
    tal_eval_result *r = NULL;
    tal_eval_opts o = {.n_tiou = 99};
    cr_expect_eq(tal_eval_run(&r, gt, d, &o, &err), TAL_EINVAL);
    /* no detections at all is not an error: every AP is 0 */
    o.n_tiou = 0;
    cr_assert_eq(tal_eval_run(&r, gt, d, &o, &err), TAL_OK, "%s", err.msg);
    cr_expect(r->average_map == 0);
    tal_eval_result_destroy(r);
    tal_eval_gt_destroy(gt);
    tal_eval_dets_destroy(d);
}
