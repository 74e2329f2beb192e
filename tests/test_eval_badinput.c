/* tests/test_eval_badinput.c: every bad input the readers and the scorer meet is refused with a
 * message that names the file and the place (line/column, video, label, field), never a crash or
 * a silent number. Files are written to the test's tmp folder. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "eval/eval.h"
#include "testlib.h"

#define GT_OK "{\"version\":\"x\",\"taxonomy\":[],\"database\":{\"v1\":{\"subset\":\"validation\"," \
              "\"annotations\":[{\"segment\":[0,10],\"label\":\"A\"}]}}}"

/* Returns a path valid for the next 7 calls (test_tmp_path reuses one buffer). */
static const char *write_tmp(const char *name, const char *text) {
    static char paths[8][1024];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof paths[0], "%s", test_tmp_path(name));
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

static void expect_msg(const tal_err *err, const char *part) {
    cr_expect(strstr(err->msg, part) != NULL, "message '%s' should mention '%s'", err->msg, part);
}

/* Loads GT_OK, then `pred` as a file; returns the status of dets_load (and of run if it loaded). */
static tal_status load_pred(const char *name, const char *pred, const char *classlist, tal_err *err,
                            int run, tal_eval_opts *opts, tal_eval_result **res) {
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, write_tmp("bad_gt_ok.json", GT_OK), NULL, err), TAL_OK, "%s",
                 err->msg);
    cr_assert_eq(tal_eval_dets_create(&d, err), TAL_OK);
    tal_status st = tal_eval_dets_load(d, write_tmp(name, pred), classlist, err);
    if (!st && run) {
        tal_eval_opts o;
        memset(&o, 0, sizeof o);
        st = tal_eval_run(res, gt, d, opts ? opts : &o, err);
    }
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
    return st;
}

static tal_status load_gt(const char *name, const char *text, const char *subset, tal_err *err) {
    tal_eval_gt *gt = NULL;
    tal_status st = tal_eval_gt_load(&gt, write_tmp(name, text), subset, err);
    tal_eval_gt_destroy(gt);
    return st;
}

Test(eval_badinput, malformed_json_line_and_column) {
    tal_err err = {0};
    tal_status st = load_gt("bad_malformed.json",
                            "{\"database\": {\n  \"v1\": {\"subset\": \"validation\",\n"
                            "    \"annotations\": [ {\"segment\": [0, 10], \"label\": \"A\",, } ]}}}\n",
                            NULL, &err);
    cr_assert_eq(st, TAL_EFORMAT, "%s", err.msg);
    expect_msg(&err, "bad_malformed.json");
    expect_msg(&err, "line 3");
    expect_msg(&err, "column");
    st = load_pred("bad_malformed_pred.json", "{\"results\": {\"v1\": [ {\"label\": \"A\"\n", NULL,
                   &err, 0, NULL, NULL);
    cr_assert_eq(st, TAL_EFORMAT, "%s", err.msg);
    expect_msg(&err, "line");
}

Test(eval_badinput, missing_database_or_results) {
    tal_err err = {0};
    cr_assert_neq(load_gt("bad_nodb.json", "{\"version\": \"x\", \"taxonomy\": []}", NULL, &err),
                  TAL_OK);
    expect_msg(&err, "database");
    cr_assert_neq(load_gt("bad_dbarray.json", "{\"database\": [1, 2]}", NULL, &err), TAL_OK);
    expect_msg(&err, "database");
    cr_assert_neq(load_pred("bad_nores.json", "{\"version\": \"x\", \"external_data\": {}}", NULL,
                            &err, 0, NULL, NULL), TAL_OK);
    expect_msg(&err, "results");
    cr_assert_neq(load_pred("bad_resarray.json", "{\"results\": []}", NULL, &err, 0, NULL, NULL),
                  TAL_OK);
    expect_msg(&err, "results");
}

Test(eval_badinput, non_numeric_or_non_finite_scores) {
    tal_err err = {0};
    const char *bad[] = {
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":\"abc\",\"segment\":[0,10]}]}}",
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":\"nan\",\"segment\":[0,10]}]}}",
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":null,\"segment\":[0,10]}]}}",
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":1e999,\"segment\":[0,10]}]}}",
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"segment\":[0,10]}]}}",
    };
    for (int i = 0; i < 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "bad_score_%d.json", i);
        cr_expect_neq(load_pred(name, bad[i], NULL, &err, 0, NULL, NULL), TAL_OK, "case %d loaded", i);
        expect_msg(&err, "score");
        expect_msg(&err, "v1");
    }
    /* NaN is not JSON at all */
    cr_expect_eq(load_pred("bad_score_NaN.json",
                           "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":NaN,\"segment\":[0,10]}]}}",
                           NULL, &err, 0, NULL, NULL), TAL_EFORMAT, "%s", err.msg);
}

Test(eval_badinput, non_numeric_or_non_finite_times) {
    tal_err err = {0};
    const char *bad[] = {
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":0.5,\"segment\":[0,\"x\"]}]}}",
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":0.5,\"segment\":[0]}]}}",
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":0.5,\"segment\":[0,1e999]}]}}",
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":0.5,\"segment\":\"0,10\"}]}}",
        "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":0.5,\"segment\":[\"inf\",10]}]}}",
    };
    for (int i = 0; i < 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "bad_time_%d.json", i);
        cr_expect_neq(load_pred(name, bad[i], NULL, &err, 0, NULL, NULL), TAL_OK, "case %d loaded", i);
        expect_msg(&err, "segment");
    }
    /* the same in the ground truth; string segments that are numbers are fine (G-TAD) */
    cr_expect_neq(load_gt("bad_gt_time.json",
                          "{\"database\":{\"v1\":{\"subset\":\"validation\",\"annotations\":"
                          "[{\"segment\":[\"1.5\",\"abc\"],\"label\":\"A\"}]}}}", NULL, &err), TAL_OK);
    expect_msg(&err, "v1");
    cr_expect_eq(load_gt("ok_gt_strings.json",
                         "{\"database\":{\"v1\":{\"subset\":\"validation\",\"annotations\":"
                         "[{\"segment\":[\"1.5\",\"2.5\"],\"label\":\"A\"}]}}}", NULL, &err), TAL_OK,
                 "%s", err.msg);
    /* and through the in-memory API */
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    cr_expect_eq(tal_eval_dets_add(d, "v1", "A", NAN, 1, 0.5, &err), TAL_EINVAL);
    cr_expect_eq(tal_eval_dets_add(d, "v1", "A", 0, INFINITY, 0.5, &err), TAL_EINVAL);
    cr_expect_eq(tal_eval_dets_add(d, "v1", "A", 0, 1, NAN, &err), TAL_EINVAL);
    cr_expect_eq(tal_eval_dets_count(d), 0);
    tal_eval_dets_destroy(d);
}

Test(eval_badinput, thumos_text_bad_lines) {
    tal_err err = {0};
    char cl[1024];
    snprintf(cl, sizeof cl, "%s", write_tmp("bad_classlist.txt", "7 A\n9 B\n"));
    cr_expect_neq(load_pred("bad_th_time.txt", "v1.mpeg 1.0 2.0 7 0.5\nv1.mpeg 1.0 abc 7 0.5\n", cl,
                            &err, 0, NULL, NULL), TAL_OK);
    expect_msg(&err, ":2");
    cr_expect_neq(load_pred("bad_th_nan.txt", "v1 1.0 2.0 7 nan\n", cl, &err, 0, NULL, NULL), TAL_OK);
    expect_msg(&err, ":1");
    cr_expect_neq(load_pred("bad_th_cls.txt", "v1 1.0 2.0 8 0.5\n", cl, &err, 0, NULL, NULL), TAL_OK);
    expect_msg(&err, "8");
    cr_expect_neq(load_pred("bad_th_short.txt", "v1 1.0 2.0 7\n", cl, &err, 0, NULL, NULL), TAL_OK);
    /* text detections without a class list cannot be read */
    cr_expect_neq(load_pred("bad_th_nocl.txt", "v1 1.0 2.0 7 0.5\n", NULL, &err, 0, NULL, NULL),
                  TAL_OK);
    /* a good file with .mpeg stripped reads */
    cr_expect_eq(load_pred("ok_th.txt", "v1.mpeg 0.0 10.0 7 0.5\n", cl, &err, 0, NULL, NULL), TAL_OK,
                 "%s", err.msg);
}

Test(eval_badinput, unknown_label_fails_naming_label_and_video) {
    tal_err err = {0};
    const char *pred = "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":0.9,\"segment\":[0,10]}],"
                       "\"v7\":[{\"label\":\"Zebra crossing\",\"score\":0.5,\"segment\":[0,10]}]}}";
    tal_eval_result *r = NULL;
    cr_assert_eq(load_pred("bad_unknown.json", pred, NULL, &err, 1, NULL, &r), TAL_EINVAL, "%s",
                 err.msg);
    expect_msg(&err, "Zebra crossing");
    expect_msg(&err, "v7");
    /* counted with ignore_unknown_labels; the known detection still scores */
    tal_eval_opts o;
    memset(&o, 0, sizeof o);
    o.ignore_unknown_labels = 1;
    r = NULL;
    cr_assert_eq(load_pred("bad_unknown.json", pred, NULL, &err, 1, &o, &r), TAL_OK, "%s", err.msg);
    cr_expect_eq(r->diag.n_unknown_label, 1);
    cr_expect_eq(r->diag.n_dets, 2);
    cr_expect(r->average_map == 1.0, "average %g", r->average_map);
    tal_eval_result_destroy(r);
    /* OpenTAD ignores them without being asked */
    o.ignore_unknown_labels = 0;
    o.protocol = TAL_EVAL_OPENTAD;
    r = NULL;
    cr_assert_eq(load_pred("bad_unknown.json", pred, NULL, &err, 1, &o, &r), TAL_OK, "%s", err.msg);
    cr_expect_eq(r->diag.n_unknown_label, 1);
    tal_eval_result_destroy(r);
}

Test(eval_badinput, empty_prediction_file) {
    tal_err err = {0};
    cr_expect_neq(load_pred("bad_empty.json", "", NULL, &err, 0, NULL, NULL), TAL_OK);
    expect_msg(&err, "empty");
    cr_expect_neq(load_pred("bad_blank.json", "  \n\n", NULL, &err, 0, NULL, NULL), TAL_OK);
    char cl[1024];
    snprintf(cl, sizeof cl, "%s", write_tmp("bad_classlist2.txt", "7 A\n"));
    cr_expect_neq(load_pred("bad_empty.txt", "", cl, &err, 0, NULL, NULL), TAL_OK);
    expect_msg(&err, "empty");
    cr_expect_neq(load_gt("bad_empty_gt.json", "", NULL, &err), TAL_OK);
    expect_msg(&err, "empty");
}

Test(eval_badinput, duplicate_video_ids) {
    tal_err err = {0};
    cr_expect_neq(load_gt("bad_dup_gt.json",
                          "{\"database\":{\"v1\":{\"subset\":\"validation\",\"annotations\":[]},"
                          "\"v1\":{\"subset\":\"validation\",\"annotations\":"
                          "[{\"segment\":[0,10],\"label\":\"A\"}]}}}", NULL, &err), TAL_OK);
    expect_msg(&err, "v1");
    cr_expect_neq(load_pred("bad_dup_pred.json",
                            "{\"results\":{\"v1\":[{\"label\":\"A\",\"score\":0.9,\"segment\":[0,10]}],"
                            "\"v1\":[{\"label\":\"A\",\"score\":0.8,\"segment\":[0,10]}]}}", NULL,
                            &err, 0, NULL, NULL), TAL_OK);
    expect_msg(&err, "v1");
}

Test(eval_badinput, missing_files_and_empty_subset) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    cr_expect_eq(tal_eval_gt_load(&gt, test_tmp_path("no_such_gt.json"), NULL, &err), TAL_EIO);
    expect_msg(&err, "no_such_gt.json");
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    cr_expect_eq(tal_eval_dets_load(d, test_tmp_path("no_such_pred.json"), NULL, &err), TAL_EIO);
    tal_eval_dets_destroy(d);
    /* a subset with no GT at all: nothing to score */
    cr_expect_neq(load_gt("bad_subset.json", GT_OK, "testing", &err), TAL_OK);
    expect_msg(&err, "testing");
}

Test(eval_badinput, bad_thresholds_and_protocol) {
    double t[TAL_EVAL_MAX_TIOU];
    int n = 0;
    tal_err err = {0};
    const char *bad[] = {"", "abc", "0.5:0:0.9", "0.9:0.1:0.5", "1.5", "0.5,,0.7", "0.5:0.1",
                         "-0.1,0.5", "0:0.001:1", "nan"};
    for (int i = 0; i < 10; i++)
        cr_expect_eq(tal_eval_parse_tiou(bad[i], t, &n, &err), TAL_EINVAL, "'%s' accepted", bad[i]);
    tal_eval_protocol p;
    cr_expect_eq(tal_eval_protocol_parse("anet", &p, &err), TAL_EINVAL);
    cr_expect_eq(tal_eval_protocol_parse("opentad", &p, &err), TAL_OK);
    cr_expect_eq(p, TAL_EVAL_OPENTAD);
    /* more thresholds than the result can hold */
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_result *r = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, write_tmp("bad_gt_ok2.json", GT_OK), NULL, &err), TAL_OK);
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    tal_eval_opts o;
    memset(&o, 0, sizeof o);
    o.n_tiou = TAL_EVAL_MAX_TIOU + 1;
    cr_expect_eq(tal_eval_run(&r, gt, d, &o, &err), TAL_EINVAL);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
}
