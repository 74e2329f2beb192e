/* tests/test_eval_report.c: what the HTML report adds to the evaluation: per detection and GT,
 * TP / matched bits, the best tIoU and the share of the mAP lost (hand-worked cases, and on
 * every fixture and protocol: the shares add up to 1 - average mAP, the bits agree with the PR
 * curves, the mAP does not move); the page's escaping of hostile names and its number
 * formatting (eval/jsonbuf.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "eval/jsonbuf.h"
#include "testlib.h"

#define write_tmp test_write_tmp

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

typedef struct input {
    tal_eval_gt *gt;
    tal_eval_dets *d;
} input;

static input load(const char *gt_path, const char *pred_path, const char *classlist) {
    input in = {0};
    tal_err err = {0};
    cr_assert_eq(tal_eval_gt_load(&in.gt, gt_path, NULL, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_dets_create(&in.d, &err), TAL_OK);
    cr_assert_eq(tal_eval_dets_load(in.d, pred_path, classlist, &err), TAL_OK, "%s", err.msg);
    return in;
}

static void input_free(input *in) {
    tal_eval_dets_destroy(in->d);
    tal_eval_gt_destroy(in->gt);
}

static tal_eval_result *run(const input *in, tal_eval_protocol p, const char *tiou, int keep) {
    tal_err err = {0};
    tal_eval_opts o = {.protocol = p, .keep_pr = keep, .keep_matches = keep,
                       .ignore_unknown_labels = 1, .n_bucket_edges = 2, .bucket_edges = {5, 20}};
    if (tiou) cr_assert_eq(tal_eval_parse_tiou(tiou, o.tiou, &o.n_tiou, &err), TAL_OK);
    tal_eval_result *r = NULL;
    cr_assert_eq(tal_eval_run(&r, in->gt, in->d, &o, &err), TAL_OK, "%s", err.msg);
    return r;
}

/* Two videos, one class, one threshold: v2's detection (0.9) misses, v1's (0.8) hits; v2's GT
 * is missed. Ranked: FP, TP: precision 0, 1/2; recall 0, 1/2. */
#define HAND_GT                                                                                \
    "{\"database\": {\"v1\": {\"subset\": \"validation\", \"duration\": 40, \"annotations\": "  \
    "[{\"segment\": [0, 10], \"label\": \"A\"}]}, \"v2\": {\"subset\": \"validation\", "        \
    "\"annotations\": [{\"segment\": [0, 10], \"label\": \"A\"}, {\"segment\": [30, 35], "      \
    "\"label\": \"B\"}]}}}"
#define HAND_PRED                                                                              \
    "{\"results\": {\"v2\": [{\"label\": \"A\", \"score\": 0.9, \"segment\": [20, 30]}, "      \
    "{\"label\": \"B\", \"score\": 0.7, \"segment\": [30, 35]}], "                             \
    "\"v1\": [{\"label\": \"A\", \"score\": 0.8, \"segment\": [0, 8]}]}}"

Test(eval_report, hand_worked_losses_all_points) {
    input in = load(write_tmp("rep_hand_gt.json", HAND_GT),
                    write_tmp("rep_hand_pred.json", HAND_PRED), NULL);
    tal_eval_result *r = run(&in, TAL_EVAL_ACTIVITYNET, "0.5", 1);
    /* class A: AP = (1/2) x 1/2 = 1/4; class B: 1. mAP 5/8, lost 3/8 = (3/4) / 2 classes */
    cr_assert_float_eq(r->map[0], 0.625, 1e-15);
    /* the missed GT of v2 costs 1/2 of class A, the FP above the TP its shortfall 1/2 x 1/2 */
    cr_expect_float_eq(r->gt_loss[1], 0.5 / 2, 1e-15, "v2's missed GT: %g", r->gt_loss[1]);
    cr_expect_float_eq(r->det_loss[0], 0.25 / 2, 1e-15, "v2's FP: %g", r->det_loss[0]);
    cr_expect_eq(r->det_loss[1], 0.0, "B's TP at rank 1 costs nothing: %g", r->det_loss[1]);
    cr_expect_eq(r->det_loss[2], 0.0, "A's TP: %g", r->det_loss[2]);
    cr_expect_eq(r->gt_loss[0], 0.0);
    cr_expect_eq(r->gt_loss[2], 0.0);
    cr_expect_eq(r->det_tp_mask[0], 0u);
    cr_expect_eq(r->det_tp_mask[1], 1u);
    cr_expect_eq(r->det_tp_mask[2], 1u);
    cr_expect_eq(r->gt_tp_mask[0], 1u);
    cr_expect_eq(r->gt_tp_mask[1], 0u);
    /* best tIoU with a GT of its class in its video: [0, 8] vs [0, 10]; [20, 30] vs [0, 10] */
    cr_expect_float_eq(r->det_best_tiou[2], 0.8, 1e-15);
    cr_expect_eq(r->det_best_gt[2], 0);
    cr_expect_eq(r->det_best_tiou[0], 0.0);
    cr_expect_eq(r->det_best_gt[0], 1);
    cr_expect_eq(r->det_best_gt[1], 2);
    tal_eval_result_destroy(r);
    input_free(&in);
}

Test(eval_report, hand_worked_losses_11_points) {
    input in = load(write_tmp("rep_hand11_gt.json", HAND_GT),
                    write_tmp("rep_hand11_pred.json", HAND_PRED), NULL);
    tal_eval_result *r = run(&in, TAL_EVAL_THUMOS14, "0.5", 1);
    /* class A: levels 0 .. 0.5 reached at precision 1/2 (6 x 1/22 to the FP above), levels
     * 0.6 .. 1 not reached (5/11 to the missed GT); AP = 3/11; class B: 1 */
    cr_assert_float_eq(r->map[0], (3.0 / 11 + 1) / 2, 1e-15);
    cr_expect_float_eq(r->det_loss[0], 3.0 / 11 / 2, 1e-15, "v2's FP: %g", r->det_loss[0]);
    cr_expect_float_eq(r->gt_loss[1], 5.0 / 11 / 2, 1e-15, "v2's missed GT: %g", r->gt_loss[1]);
    cr_expect_eq(r->det_loss[2], 0.0);
    cr_expect_eq(r->det_tp_mask[2], 1u);
    cr_expect_eq(r->gt_tp_mask[1], 0u);
    cr_expect_float_eq(r->det_best_tiou[2], 0.8, 1e-15);
    tal_eval_result_destroy(r);
    input_free(&in);
}

/* Everything the matches must satisfy on one input and protocol. */
static void check_matches(const input *in, tal_eval_protocol p, const char *tiou,
                          const char *what) {
    tal_eval_result *plain = run(in, p, tiou, 0), *r = run(in, p, tiou, 1);
    for (int t = 0; t < r->n_tiou; t++)
        cr_expect_eq(plain->map[t], r->map[t], "%s: keeping matches moved mAP@%g", what,
                     r->tiou[t]);
    long n_det = tal_eval_dets_count(in->d);
    int n_gt = tal_eval_gt_n_instances(in->gt);
    double sum = r->loss_unattributed;
    for (long i = 0; i < n_det; i++) {
        cr_expect(r->det_loss[i] >= 0, "%s: detection %ld loss %g", what, i, r->det_loss[i]);
        sum += r->det_loss[i];
    }
    for (int i = 0; i < n_gt; i++) {
        cr_expect(r->gt_loss[i] >= 0, "%s: GT %d loss %g", what, i, r->gt_loss[i]);
        sum += r->gt_loss[i];
    }
    cr_expect(fabs(sum - (1 - r->average_map)) < 1e-12, "%s: shares add up to %.17g, 1 - mAP = "
              "%.17g", what, sum, 1 - r->average_map);
    for (int t = 0; t < r->n_tiou; t++) {
        /* TPs per threshold = matched GT = the end of each class's recall curve x n_gt */
        long tps = 0, matched = 0, from_pr = 0;
        for (long i = 0; i < n_det; i++) tps += (r->det_tp_mask[i] >> t) & 1u;
        for (int i = 0; i < n_gt; i++) matched += (r->gt_tp_mask[i] >> t) & 1u;
        for (int c = 0; c < r->n_classes; c++) {
            long n = r->pr_len[(long)c * r->n_tiou + t];
            const double *recall = r->pr_recall + (long)t * r->pr_stride + r->pr_offset[c];
            if (n) from_pr += lround(recall[n - 1] * (double)r->n_gt_class[c]);
        }
        cr_expect_eq(tps, matched, "%s, tIoU %g: %ld TPs, %ld matched GT", what, r->tiou[t], tps,
                     matched);
        cr_expect_eq(tps, from_pr, "%s, tIoU %g: %ld TPs, PR curves say %ld", what, r->tiou[t],
                     tps, from_pr);
    }
    for (long i = 0; i < n_det; i++) /* a TP at t has its best tIoU at or above t (>, thumos) */
        for (int t = 0; t < r->n_tiou; t++)
            if ((r->det_tp_mask[i] >> t) & 1u && !isnan(r->det_best_tiou[i]))
                cr_expect(r->det_best_tiou[i] >= r->tiou[t], "%s (%s): detection %ld TP at %g with "
                          "best tIoU %g", what, tal_eval_protocol_name(p), i, r->tiou[t],
                          r->det_best_tiou[i]);
    tal_eval_result_destroy(plain);
    tal_eval_result_destroy(r);
}

Test(eval_report, shares_add_up_on_every_fixture_and_protocol) {
    const char *cases[] = {"worked", "diff_small_a", "diff_small_b", "diff_dense_a",
                           "diff_dense_b", "diff_ties"};
    for (int k = 0; k < 6; k++) {
        char gt[600], pred[600];
        snprintf(gt, sizeof gt, FIXTURES "/eval_%s_gt.json", cases[k]);
        snprintf(pred, sizeof pred, FIXTURES "/eval_%s_pred.json", cases[k]);
        input in = load(gt, pred, NULL);
        check_matches(&in, TAL_EVAL_ACTIVITYNET, NULL, cases[k]);
        check_matches(&in, TAL_EVAL_OPENTAD, "0.3:0.1:0.7", cases[k]);
        check_matches(&in, TAL_EVAL_THUMOS14, "0.1:0.2:0.9", cases[k]);
        input_free(&in);
    }
    input kit = load(FIXTURES "/eval_th14", FIXTURES "/eval_th14_det.txt",
                     FIXTURES "/eval_th14/detclasslist.txt");
    check_matches(&kit, TAL_EVAL_THUMOS14, NULL, "THUMOS folder with Ambiguous");
    input_free(&kit);
}

/* ---------------------------------------------------------------- the page -------------- */
#define HOSTILE_CLASS "</script><script>alert(1)</script><!--"
#define HOSTILE_VIDEO "<img src=x onerror=alert(2)>&\"'\\\x01"

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

Test(eval_report, page_escapes_hostile_names) {
    cJSON *gt_json = cJSON_CreateObject(), *db = cJSON_AddObjectToObject(gt_json, "database");
    cJSON *video = cJSON_AddObjectToObject(db, HOSTILE_VIDEO);
    cJSON_AddStringToObject(video, "subset", "validation");
    cJSON *anno = cJSON_CreateObject();
    cJSON_AddItemToObject(anno, "segment", cJSON_CreateDoubleArray((double[]){1, 5}, 2));
    cJSON_AddStringToObject(anno, "label", HOSTILE_CLASS);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(video, "annotations"), anno);
    char *text = cJSON_Print(gt_json);
    cJSON_Delete(gt_json);
    input in = {0};
    tal_err err = {0};
    cr_assert_eq(tal_eval_gt_load(&in.gt, write_tmp("rep_hostile_gt.json", text), NULL, &err),
                 TAL_OK, "%s", err.msg);
    free(text);
    cr_assert_eq(tal_eval_dets_create(&in.d, &err), TAL_OK);
    cr_assert_eq(tal_eval_dets_add(in.d, HOSTILE_VIDEO, HOSTILE_CLASS, 1, 4, 0.9, &err), TAL_OK);
    tal_eval_result *r = run(&in, TAL_EVAL_ACTIVITYNET, NULL, 1);
    const char *path = test_tmp_path("rep_hostile.html");
    tal_eval_html_opts o = {.title = "<b>&amp;</title>", .gt_path = "<gt>", .pred_path = "\"p\""};
    cr_assert_eq(tal_eval_write_html(path, in.gt, in.d, r, &o, &err), TAL_OK, "%s", err.msg);
    char *page = slurp(path);
    /* the data's and the code's own elements only: no input closes or opens one */
    cr_expect_eq(count(page, "</script"), 2, "</script> occurs %d times", count(page, "</script"));
    cr_expect_eq(count(page, "<script"), 2);
    cr_expect_eq(count(page, "<!--"), 0);
    cr_expect_eq(count(page, "<img"), 0);
    cr_expect(strstr(page, "<title>&lt;b&gt;&amp;amp;&lt;/title&gt;</title>"), "title escaped");
    /* and the data reads back as the very same strings */
    const char *start = strstr(page, "id=\"report-data\">");
    cr_assert(start);
    start += strlen("id=\"report-data\">");
    char *end = strstr(start, "</script>");
    cr_assert(end);
    *end = 0;
    cJSON *data = cJSON_Parse(start);
    cr_assert(data, "the embedded data is not JSON");
    cr_expect_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(data, "classes"), 0)->valuestring,
                     HOSTILE_CLASS);
    cJSON *v0 = cJSON_GetArrayItem(cJSON_GetObjectItem(data, "videos"), 0);
    cr_expect_str_eq(cJSON_GetArrayItem(v0, 0)->valuestring, HOSTILE_VIDEO);
    cr_expect_str_eq(cJSON_GetObjectItem(data, "gt_path")->valuestring, "<gt>");
    cJSON_Delete(data);
    free(page);
    tal_eval_result_destroy(r);
    input_free(&in);
}

Test(eval_report, page_data_per_video) {
    input in = load(write_tmp("rep_page_gt.json", HAND_GT),
                    write_tmp("rep_page_pred.json", HAND_PRED), NULL);
    tal_eval_dets_add(in.d, "v7", "A", 1, 2, 0.95, &(tal_err){0}); /* a video outside the GT */
    tal_eval_dets_add(in.d, "v1", "Z", 1, 2, 0.95, &(tal_err){0}); /* a label outside the GT */
    tal_eval_result *r = run(&in, TAL_EVAL_ACTIVITYNET, "0.5", 1);
    const char *path = test_tmp_path("rep_page.html");
    tal_err err = {0};
    cr_assert_eq(tal_eval_write_html(path, in.gt, in.d, r, NULL, &err), TAL_OK, "%s", err.msg);
    char *page = slurp(path);
    char *start = strstr(page, "id=\"report-data\">") + strlen("id=\"report-data\">");
    *strstr(start, "</script>") = 0;
    cJSON *data = cJSON_Parse(start);
    cr_assert(data);
    cJSON *videos = cJSON_GetObjectItem(data, "videos");
    cr_assert_eq(cJSON_GetArraySize(videos), 3, "v1, v2 and v7 (outside the GT)");
    /* worst first: v2 (missed GT + FP: 3/8 of 1 - ... in points), then v7's FP, then v1 */
    const char *order[3] = {"v2", "v7", "v1"};
    double loss_sum = 0;
    for (int i = 0; i < 3; i++) {
        cJSON *v = cJSON_GetArrayItem(videos, i);
        cr_expect_str_eq(cJSON_GetArrayItem(v, 0)->valuestring, order[i]);
        loss_sum += cJSON_GetArrayItem(v, 2)->valuedouble;
    }
    cr_expect(fabs(loss_sum - 100 * (1 - r->average_map)) < 1e-2, "%g points lost, mAP %g",
              loss_sum, r->average_map);
    cJSON *v1 = cJSON_GetArrayItem(videos, 2);
    cr_expect_eq(cJSON_GetArrayItem(v1, 1)->valuedouble, 40, "v1's duration");
    cr_expect(cJSON_IsNull(cJSON_GetArrayItem(cJSON_GetArrayItem(videos, 0), 1)), "v2: none");
    cr_expect_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(videos, 1), 4)->valueint, 0, "v7 not in GT");
    cJSON *dets = cJSON_GetArrayItem(v1, 6); /* the "Z" detection is not shown */
    cr_assert_eq(cJSON_GetArraySize(dets), 8);
    double want[8] = {0, 0, 8, 0.8, 0.8, 0, 1, 0};
    for (int k = 0; k < 8; k++)
        cr_expect_eq(cJSON_GetArrayItem(dets, k)->valuedouble, want[k], "v1 detection field %d", k);
    cJSON_Delete(data);
    free(page);
    tal_eval_result_destroy(r);
    input_free(&in);
}

Test(eval_report, page_refuses_a_result_without_matches) {
    input in = load(write_tmp("rep_ref_gt.json", HAND_GT),
                    write_tmp("rep_ref_pred.json", HAND_PRED), NULL);
    tal_eval_result *plain = run(&in, TAL_EVAL_ACTIVITYNET, NULL, 0);
    tal_eval_result *r = run(&in, TAL_EVAL_ACTIVITYNET, NULL, 1);
    tal_err err = {0};
    cr_expect_eq(tal_eval_write_html(test_tmp_path("rep_no.html"), in.gt, in.d, plain, NULL, &err),
                 TAL_EINVAL);
    cr_expect(strstr(err.msg, "keep_matches"), "%s", err.msg);
    cr_expect_eq(tal_eval_write_html("/nonexistent-dir/r.html", in.gt, in.d, r, NULL, &err),
                 TAL_EIO);
    cr_expect(strstr(err.msg, "/nonexistent-dir/r.html"), "names the file: %s", err.msg);
    tal_eval_result_destroy(plain);
    tal_eval_result_destroy(r);
    input_free(&in);
}

/* ---------------------------------------------------------------- formatting ------------ */
static void expect_text(void (*fmt)(jsonbuf *), const char *want) {
    jsonbuf b = {0};
    fmt(&b);
    cr_expect_str_eq(b.data, want);
    jb_free(&b);
}

static void f_fixed(jsonbuf *b) {
    jb_fixed(b, 12.5, 3), jb_char(b, ' '), jb_fixed(b, -0.0001, 3), jb_char(b, ' ');
    jb_fixed(b, -2.25, 2), jb_char(b, ' '), jb_fixed(b, 3.0, 3), jb_char(b, ' ');
    jb_fixed(b, 0.1235, 2), jb_char(b, ' '), jb_fixed(b, NAN, 2), jb_char(b, ' ');
    jb_fixed(b, 1e16, 1); /* past exact integers: printf */
}
static void f_sig(jsonbuf *b) {
    jb_sig(b, 0.87349, 4), jb_char(b, ' '), jb_sig(b, 123.44, 4), jb_char(b, ' ');
    jb_sig(b, 1e-7, 3), jb_char(b, ' '), jb_sig(b, 0, 3), jb_char(b, ' '), jb_sig(b, -12345.6, 3);
}
static void f_exact(jsonbuf *b) {
    jb_exact(b, 0.1), jb_char(b, ' '), jb_exact(b, 0.8999999999999999), jb_char(b, ' ');
    jb_exact(b, INFINITY), jb_char(b, ' '), jb_long(b, -42), jb_char(b, ' '), jb_long(b, 0);
}
static void f_string(jsonbuf *b) { jb_json_string(b, "a\"b\\c\n</x>&\x1f"); }
static void f_html(jsonbuf *b) { jb_html(b, "<a href='x'>\"&\"</a>"); }

Test(eval_report, number_and_string_formatting) {
    expect_text(f_fixed, "12.5 0 -2.25 3 0.12 null 10000000000000000.0");
    expect_text(f_sig, "0.8735 123.4 1e-07 0 -12346");
    expect_text(f_exact, "0.1 0.8999999999999999 null -42 0");
    expect_text(f_string, "\"a\\\"b\\\\c\\u000a\\u003c/x\\u003e\\u0026\\u001f\"");
    expect_text(f_html, "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;");
}
