/* tests/test_eval_badinput.c: every bad-input path of the readers and of tal_eval_run, fed on
 * purpose: each is refused with the expected code and a message that names the file and the
 * place (line/column, video, label, field), never a crash or a silent number. Files are written
 * to the test's tmp folder. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "eval/eval.h"
#include "testlib.h"

#define GT_OK "{\"version\":\"x\",\"taxonomy\":[],\"database\":{\"v1\":{\"subset\":\"validation\"," \
              "\"annotations\":[{\"segment\":[0,10],\"label\":\"A\"}]}}}"
#define TH_CLASSES FIXTURES "/eval_th14/detclasslist.txt"

#define write_tmp test_write_tmp /* a path valid for the next 7 calls */

static void expect_msg(const char *what, const tal_err *err, const char *part) {
    if (part)
        cr_expect(strstr(err->msg, part) != NULL, "%s: message '%s' should mention '%s'", what,
                  err->msg, part);
}

/* One bad input: its file name, text, the code expected and up to two parts of the message
 * (besides the file name, which every message must carry). */
typedef struct bad_case {
    const char *name, *text;
    tal_status code;
    const char *w1, *w2;
} bad_case;

static void expect_gt_error(const bad_case *c, const char *subset) {
    tal_err err = {0};
    tal_eval_gt *gt = (tal_eval_gt *)1;
    cr_expect_eq(tal_eval_gt_load(&gt, write_tmp(c->name, c->text), subset, &err), c->code,
                 "%s: %s", c->name, err.msg);
    cr_expect_null(gt, "%s: *out must be NULL on failure", c->name);
    expect_msg(c->name, &err, c->name);
    expect_msg(c->name, &err, c->w1);
    expect_msg(c->name, &err, c->w2);
}

static void expect_pred_error(const bad_case *c, const char *classlist) {
    tal_err err = {0};
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    cr_expect_eq(tal_eval_dets_load(d, write_tmp(c->name, c->text), classlist, &err), c->code,
                 "%s: %s", c->name, err.msg);
    expect_msg(c->name, &err, c->name);
    expect_msg(c->name, &err, c->w1);
    expect_msg(c->name, &err, c->w2);
    tal_eval_dets_destroy(d);
}

#define N_CASES(a) ((int)(sizeof(a) / sizeof *(a)))

/* Loads GT_OK, then `pred` as a file and scores it; returns the status of the first failure. */
static tal_status score_pred(const char *name, const char *pred, const tal_eval_opts *opts,
                             tal_eval_result **res, tal_err *err) {
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, write_tmp("bad_gt_ok.json", GT_OK), NULL, err), TAL_OK,
                 "%s", err->msg);
    cr_assert_eq(tal_eval_dets_create(&d, err), TAL_OK);
    tal_status st = tal_eval_dets_load(d, write_tmp(name, pred), NULL, err);
    if (st == TAL_OK) st = tal_eval_run(res, gt, d, opts, err);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
    return st;
}

#define DB "{\"database\": {\"v1\": {\"subset\": \"validation\", \"annotations\": "

Test(eval_badinput, gt_files) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    cr_expect_eq(tal_eval_gt_load(&gt, test_tmp_path("absent.json"), NULL, &err), TAL_EIO);
    expect_msg("absent", &err, "absent.json");
    static const bad_case bad[] = {
        {"gt_malformed.json", "{\n  \"database\": {\n    \"v1\": [,]\n", TAL_EFORMAT, "line 3",
         "column"},
        {"gt_malformed2.json", "{\"database\": {\n  \"v1\": {\"subset\": \"validation\",\n"
         "    \"annotations\": [ {\"segment\": [0, 10], \"label\": \"A\",, } ]}}}\n", TAL_EFORMAT,
         "line 3", "column"},
        {"gt_empty.json", "", TAL_EFORMAT, "empty", NULL},
        {"gt_nan.json", DB "[{\"segment\": [NaN, 10], \"label\": \"A\"}]}}}", TAL_EFORMAT,
         "line 1", "column 75"}, /* the N of NaN */
        {"gt_nodb.json", "{\"version\": \"1.3\", \"taxonomy\": []}", TAL_EFORMAT, "\"database\"",
         NULL},
        {"gt_dbarray.json", "{\"database\": [1, 2]}", TAL_EFORMAT, "database", NULL},
        {"gt_array.json", "[1, 2]", TAL_EFORMAT, "not a JSON object", NULL},
        {"gt_dup.json", DB "[]}, \"v1\": {\"subset\": \"validation\", \"annotations\": "
         "[{\"segment\": [0, 10], \"label\": \"A\"}]}}}", TAL_EFORMAT, "\"v1\"", "twice"},
        {"gt_nosubset.json", "{\"database\": {\"v1\": {\"annotations\": []}}}", TAL_EFORMAT, "v1",
         "subset"},
        {"gt_anns.json", DB "5}}}", TAL_EFORMAT, "v1.annotations", "array"},
        {"gt_label.json", DB "[{\"segment\": [0, 1], \"label\": 3}]}}}", TAL_EFORMAT,
         "annotations[0].label", NULL},
        {"gt_seg.json", DB "[{\"segment\": [0, \"x\"], \"label\": \"A\"}]}}}", TAL_EFORMAT,
         "annotations[0].segment", NULL},
        {"gt_segstr.json", DB "[{\"segment\": [\"1.5\", \"abc\"], \"label\": \"A\"}]}}}",
         TAL_EFORMAT, "v1", "segment"},
        {"gt_seg3.json", DB "[{\"segment\": [0, 1, 2], \"label\": \"A\"}]}}}", TAL_EFORMAT,
         "segment", NULL},
        {"gt_segnan.json", DB "[{\"segment\": [\"nan\", \"1\"], \"label\": \"A\"}]}}}",
         TAL_EFORMAT, "segment", "finite"},
        {"gt_nosubsetmatch.json", "{\"database\": {\"v1\": {\"subset\": \"training\", "
         "\"annotations\": [{\"segment\": [0, 1], \"label\": \"A\"}]}}}", TAL_EFORMAT,
         "no ground-truth instances", "validation"},
    };
    for (int i = 0; i < N_CASES(bad); i++) expect_gt_error(&bad[i], NULL);
    /* a subset asked for that has no GT at all: nothing to score */
    const bad_case subset = {"gt_subset.json", GT_OK, TAL_EFORMAT, "testing", NULL};
    expect_gt_error(&subset, "testing");
    /* string segments that are numbers are fine (G-TAD writes them) */
    cr_expect_eq(tal_eval_gt_load(&gt, write_tmp("ok_gt_strings.json",
                                                 DB "[{\"segment\": [\"1.5\", \"2.5\"], "
                                                 "\"label\": \"A\"}]}}}"), NULL, &err),
                 TAL_OK, "%s", err.msg);
    tal_eval_gt_destroy(gt);
}

Test(eval_badinput, gt_folder) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    /* a folder without detclasslist.txt */
    cr_expect_eq(tal_eval_gt_load(&gt, FIXTURES, NULL, &err), TAL_EIO);
    expect_msg("no class list", &err, "detclasslist.txt");
    /* the fixture folder has no "val" files */
    cr_expect_eq(tal_eval_gt_load(&gt, FIXTURES "/eval_th14", "validation", &err), TAL_EIO);
    expect_msg("no val files", &err, "Alpha_val.txt");
}

#define RES(det) "{\"results\": {\"v1\": [" det "]}}"

Test(eval_badinput, prediction_json_files) {
    tal_err err = {0};
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    cr_expect_eq(tal_eval_dets_load(d, test_tmp_path("no_such_pred.json"), NULL, &err), TAL_EIO);
    expect_msg("absent", &err, "no_such_pred.json");
    tal_eval_dets_destroy(d);
    static const bad_case bad[] = {
        {"p_empty.json", "", TAL_EFORMAT, "empty", NULL},
        {"p_blank.json", "  \n\n", TAL_EFORMAT, "empty", NULL},
        {"p_malformed.json", "{\"results\": {\"v1\": [{\"label\": \"A\",\n"
         "\"score\": 0.5,, \"segment\": [0, 1]}]}}", TAL_EFORMAT, "line 2",
         "column 1"}, /* cJSON stops at or just after the second comma (14) */
        {"p_truncated.json", "{\"results\": {\"v1\": [ {\"label\": \"A\"\n", TAL_EFORMAT, "line",
         NULL},
        {"p_nores.json", "{\"version\": \"1.3\", \"external_data\": {}}", TAL_EFORMAT,
         "\"results\"", NULL},
        {"p_resarray.json", "{\"results\": []}", TAL_EFORMAT, "results", NULL},
        {"p_dup.json", "{\"results\": {\"v1\": [{\"label\": \"A\", \"score\": 0.9, \"segment\": "
         "[0, 10]}], \"v1\": []}}", TAL_EFORMAT, "\"v1\"", "twice"},
        {"p_list.json", "{\"results\": {\"v2\": {}}}", TAL_EFORMAT, "results.v2", "array"},
        {"p_label.json", "{\"results\": {\"v2\": [{\"label\": null, \"score\": 1, "
         "\"segment\": [0, 1]}]}}", TAL_EFORMAT, "results.v2[0].label", "null"},
        /* scores */
        {"p_score.json", RES("{\"label\": \"A\", \"score\": \"high\", \"segment\": [0, 1]}"),
         TAL_EFORMAT, "results.v1[0].score", "high"},
        {"p_score_nanstr.json", RES("{\"label\": \"A\", \"score\": \"nan\", \"segment\": [0, 1]}"),
         TAL_EFORMAT, "score", "v1"},
        {"p_score_null.json", RES("{\"label\": \"A\", \"score\": null, \"segment\": [0, 1]}"),
         TAL_EFORMAT, "score", "v1"},
        {"p_score_huge.json", RES("{\"label\": \"A\", \"score\": 1e999, \"segment\": [0, 1]}"),
         TAL_EFORMAT, "score", "v1"},
        {"p_noscore.json", RES("{\"label\": \"A\", \"segment\": [0, 1]}"), TAL_EFORMAT, "score",
         "missing"},
        {"p_score_NaN.json", RES("{\"label\": \"A\", \"score\": NaN, \"segment\": [0, 1]}"),
         TAL_EFORMAT, "results.v1[0].score", "finite"}, /* NaN: not JSON, still named */
        /* segments */
        {"p_seg.json", RES("{\"label\": \"A\", \"score\": 1, \"segment\": [0]}"), TAL_EFORMAT,
         "results.v1[0].segment", NULL},
        {"p_seg_word.json", RES("{\"label\": \"A\", \"score\": 0.5, \"segment\": [0, \"x\"]}"),
         TAL_EFORMAT, "segment", NULL},
        {"p_seg_huge.json", RES("{\"label\": \"A\", \"score\": 0.5, \"segment\": [0, 1e999]}"),
         TAL_EFORMAT, "segment", NULL},
        {"p_seg_string.json", RES("{\"label\": \"A\", \"score\": 0.5, \"segment\": \"0,10\"}"),
         TAL_EFORMAT, "segment", NULL},
        {"p_seg_inf.json", RES("{\"label\": \"A\", \"score\": 0.5, \"segment\": [\"inf\", 10]}"),
         TAL_EFORMAT, "segment", NULL},
    };
    for (int i = 0; i < N_CASES(bad); i++) expect_pred_error(&bad[i], NULL);
}

Test(eval_badinput, prediction_thumos_text) {
    char cl[1024], badlist[1024]; /* write_tmp's paths are reused after 8 calls */
    snprintf(cl, sizeof cl, "%s", write_tmp("classlist.txt", "7 A\n9 B\n"));
    snprintf(badlist, sizeof badlist, "%s", write_tmp("badlist.txt", "1 Alpha\nBeta 2\n"));
    static const bad_case bad[] = {
        {"p_empty.txt", "", TAL_EFORMAT, "empty", NULL},
        {"p_cols.txt", "v1 0 1 7 0.5\nv1 0 1 7\n", TAL_EFORMAT, ":2:", NULL},
        {"p_short.txt", "v1 1.0 2.0 7\n", TAL_EFORMAT, ":1:", NULL},
        {"p_nan.txt", "v1 0 1 7 0.5\nv1 nan 1 7 0.5\n", TAL_EFORMAT, ":2:", "start 'nan'"},
        {"p_end.txt", "v1.mpeg 1.0 2.0 7 0.5\nv1.mpeg 1.0 abc 7 0.5\n", TAL_EFORMAT, ":2:", NULL},
        {"p_word.txt", "v1 0 1 7 abc\n", TAL_EFORMAT, ":1:", "score 'abc'"},
        {"p_score_nan.txt", "v1 1.0 2.0 7 nan\n", TAL_EFORMAT, ":1:", NULL},
        {"p_cls.txt", "v1 0 1 7 0.5\nvX 0 1 8 0.5\n", TAL_EINVAL, ":2:", "class id 8"},
    };
    for (int i = 0; i < N_CASES(bad); i++) expect_pred_error(&bad[i], cl);
    const bad_case nolist = {"p_nolist.txt", "v1 0 1 7 0.5\n", TAL_EINVAL, "class list", NULL};
    expect_pred_error(&nolist, NULL);
    const bad_case listbad = {"p_badlist.txt", "v1 0 1 1 0.5\n", TAL_EFORMAT, "badlist.txt:2",
                              NULL};
    expect_pred_error(&listbad, badlist);
    /* a good file with .mpeg stripped reads */
    tal_err err = {0};
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    cr_expect_eq(tal_eval_dets_load(d, write_tmp("ok_th.txt", "v1.mpeg 0.0 10.0 7 0.5\n"), cl,
                                    &err), TAL_OK, "%s", err.msg);
    cr_expect_eq(tal_eval_dets_count(d), 1);
    tal_eval_dets_destroy(d);
}

Test(eval_badinput, api_refuses_non_finite) {
    tal_err err = {0};
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    cr_expect_eq(tal_eval_dets_add(d, "v1", "A", NAN, 1, 0.5, &err), TAL_EINVAL);
    cr_expect(strstr(err.msg, "v1") && strstr(err.msg, "\"A\""), "%s", err.msg);
    cr_expect_eq(tal_eval_dets_add(d, "v1", "A", 0, INFINITY, 0.5, &err), TAL_EINVAL);
    cr_expect_eq(tal_eval_dets_add(d, "v1", "A", 0, 1, NAN, &err), TAL_EINVAL);
    cr_expect_eq(tal_eval_dets_count(d), 0);
    tal_eval_gt *gt = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, write_tmp("ok.json", GT_OK), NULL, &err), TAL_OK, "%s",
                 err.msg);
    /* no detections at all is not an error: every AP is 0 */
    tal_eval_result *r = NULL;
    tal_eval_opts o = {0};
    cr_assert_eq(tal_eval_run(&r, gt, d, &o, &err), TAL_OK, "%s", err.msg);
    cr_expect(r->average_map == 0);
    tal_eval_result_destroy(r);
    tal_eval_gt_destroy(gt);
    tal_eval_dets_destroy(d);
}

Test(eval_badinput, unknown_label_fails_naming_label_and_video) {
    /* a label no GT video has, and one only the training subset has: both unknown */
    const char *pred[2] = {
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":0.9,\"segment\":[0,10]}],"
        "\"v7\":[{\"label\":\"Zebra crossing\",\"score\":0.5,\"segment\":[0,10]}]}}",
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":0.9,\"segment\":[0,10]}],"
        "\"v7\":[{\"label\":\"C\",\"score\":0.5,\"segment\":[0,10]}]}}"};
    const char *label[2] = {"\"Zebra crossing\"", "\"C\""};
    for (int i = 0; i < 2; i++) {
        tal_err err = {0};
        tal_eval_opts o = {0};
        tal_eval_result *r = (tal_eval_result *)1;
        cr_assert_eq(score_pred("bad_unknown.json", pred[i], &o, &r, &err), TAL_EINVAL, "%s",
                     err.msg);
        cr_expect_null(r);
        expect_msg("unknown label", &err, label[i]);
        expect_msg("unknown label", &err, "\"v7\"");
        /* counted with ignore_unknown_labels; the known detection still scores */
        o.ignore_unknown_labels = 1;
        cr_assert_eq(score_pred("bad_unknown.json", pred[i], &o, &r, &err), TAL_OK, "%s", err.msg);
        cr_expect_eq(r->diag.n_unknown_label, 1);
        cr_expect_eq(r->diag.n_dets, 2);
        cr_expect(r->average_map == 1.0, "average %g", r->average_map);
        tal_eval_result_destroy(r);
        /* OpenTAD ignores them without being asked */
        o = (tal_eval_opts){.protocol = TAL_EVAL_OPENTAD};
        cr_assert_eq(score_pred("bad_unknown.json", pred[i], &o, &r, &err), TAL_OK, "%s",
                     err.msg);
        cr_expect_eq(r->diag.n_unknown_label, 1);
        tal_eval_result_destroy(r);
    }
}

Test(eval_badinput, bad_thresholds_and_protocol) {
    double t[TAL_EVAL_MAX_TIOU];
    int n = 0;
    tal_err err = {0};
    const char *bad[] = {"",        "abc",          "a,b",      "0.5:0:0.9", "0.5:0:1",
                         "0.9:0.1:0.5", "1.5",      "0.5,,0.7", "0.5:0.1",   "0.3:0.1",
                         "0.3:0.25:0.7", "-0.1,0.5", "0,0.5",   "0:0.001:1", "nan"};
    for (int i = 0; i < N_CASES(bad); i++)
        cr_expect_eq(tal_eval_parse_tiou(bad[i], t, &n, &err), TAL_EINVAL, "'%s' accepted", bad[i]);
    tal_eval_protocol p;
    cr_expect_eq(tal_eval_protocol_parse("anet", &p, &err), TAL_EINVAL);
    cr_expect_eq(tal_eval_protocol_parse("coco", &p, &err), TAL_EINVAL);
    cr_expect_eq(tal_eval_protocol_parse("opentad", &p, &err), TAL_OK);
    cr_expect_eq(p, TAL_EVAL_OPENTAD);
    cr_expect_eq(tal_eval_protocol_parse("thumos14", &p, &err), TAL_OK);
    cr_expect_eq(p, TAL_EVAL_THUMOS14);
    /* through the API: NaN, > 1 and negative thresholds, and more than the result can hold */
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_result *r = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, write_tmp("bad_gt_ok2.json", GT_OK), NULL, &err), TAL_OK);
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    cr_assert_eq(tal_eval_dets_add(d, "v1", "A", 0, 10, 0.9, &err), TAL_OK);
    const double bad_t[] = {NAN, 2.0, 1.5, -0.5};
    for (int i = 0; i < N_CASES(bad_t); i++) {
        tal_eval_opts o = {.n_tiou = 2, .tiou = {0.5, bad_t[i]}};
        cr_expect_eq(tal_eval_run(&r, gt, d, &o, &err), TAL_EINVAL, "threshold %g accepted",
                     bad_t[i]);
        expect_msg("bad threshold", &err, "threshold 1");
    }
    tal_eval_opts o = {.n_tiou = TAL_EVAL_MAX_TIOU + 1};
    cr_expect_eq(tal_eval_run(&r, gt, d, &o, &err), TAL_EINVAL);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
}
