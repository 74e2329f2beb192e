/* tests/test_app_eval.c: `re2tal eval` from the command line: the table, the JSON, exit codes
 * (0 ok, 1 bad input, 2 usage) and messages that name the file and the item. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "testlib.h"

#define D TEST_DATA
#define CL D "/thumos14_annotations/detclasslist.txt"

static char out_text[1 << 16];

/* Runs the command with stdout+stderr captured into out_text; returns the exit code. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
    test_require_binary(); /* else every exit code below would be the shell's 127 */
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    size_t n = fread(out_text, 1, sizeof out_text - 1, p);
    out_text[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double json_number(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s not written", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    cJSON *root = cJSON_Parse(buf);
    cr_assert(root, "%s is not JSON", path);
    double v = cJSON_GetObjectItem(root, key)->valuedouble;
    cJSON_Delete(root);
    return v;
}

Test(app_eval, help_and_usage_errors) {
    cr_assert_eq(run("%s eval --help", RE2TAL_BIN), 0);
    cr_expect(strstr(out_text, "--protocol") && strstr(out_text, "--ignore-unknown-labels"));
    cr_expect_eq(run("%s eval --gt x.json", RE2TAL_BIN), 2, "%s", out_text);
    cr_expect(strstr(out_text, "--pred"), "%s", out_text);
    cr_expect_eq(run("%s eval --gt a --pred b --protocol coco", RE2TAL_BIN), 2);
    cr_expect(strstr(out_text, "coco"), "%s", out_text);
    cr_expect_eq(run("%s eval --gt a --pred b --tiou 0.5:0:1", RE2TAL_BIN), 2);
    cr_expect_eq(run("%s eval --gt a --pred b --buckets 2,x", RE2TAL_BIN), 2);
    cr_expect_eq(run("%s eval --gt a --pred b --bogus", RE2TAL_BIN), 2);
    cr_expect(strstr(out_text, "--bogus"), "%s", out_text);
}

Test(app_eval, anet_sample_table_and_json) {
    const char *json = test_tmp_path("app_eval_anet.json");
    cr_assert_eq(run("%s eval --gt %s/anet13_val_gt.json --pred %s/anet13_sample_detection_prediction.json "
                     "--json %s", RE2TAL_BIN, D, D, json), 0, "%s", out_text);
    cr_expect(strstr(out_text, "100.00") && strstr(out_text, "0.95"), "%s", out_text);
    cr_expect(strstr(out_text, "GT exact duplicates"), "diagnosis shown: %s", out_text);
    cr_expect(json_number(json, "average_mAP") == 1.0);
    cr_expect(strstr(out_text, "AR@100 99.96"), "proposal metrics: %s", out_text); /* 1 - 3/7654 */
    cr_assert_eq(run("%s eval --gt %s/anet13_val_gt.json --pred %s/anet13_sample_detection_prediction.json "
                     "--no-proposals", RE2TAL_BIN, D, D), 0, "%s", out_text);
    cr_expect(!strstr(out_text, "AR@100"), "%s", out_text);
}

Test(app_eval, thumos_text_routes_and_protocols) {
    const char *json = test_tmp_path("app_eval_th.json");
    cr_assert_eq(run("%s eval --gt %s/thumos14_val_gt.json --subset validation --pred "
                     "%s/thumos14_evalkit_Run-2-det.txt --classlist %s --per-class --json %s",
                     RE2TAL_BIN, D, D, CL, json), 0, "%s", out_text);
    cr_expect(json_number(json, "average_mAP") == 0.02942603887557945);
    cr_expect(strstr(out_text, "HammerThrow"), "per-class table: %s", out_text);
    cr_expect(strstr(out_text, "by GT length") && strstr(out_text, "2-5 s (1096 gt)"), "%s", out_text);
    cr_expect(strstr(out_text, "false positives by cause"), "%s", out_text);
    /* the folder finds its own detclasslist.txt */
    cr_assert_eq(run("%s eval --gt %s/thumos14_annotations --subset validation --pred "
                     "%s/thumos14_evalkit_Run-2-det.txt --protocol thumos14 --tiou 0.1:0.1:0.5 "
                     "--json %s", RE2TAL_BIN, D, D, json), 0, "%s", out_text);
    cr_expect(json_number(json, "average_mAP") == 0.19578735469740496);
    cr_expect(strstr(out_text, "Ambiguous"), "%s", out_text);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("app_eval_plots"));
    cr_assert_eq(run("rm -rf %s && %s eval --gt %s/thumos14_annotations --subset validation --pred "
                     "%s/thumos14_evalkit_Run-2-det.txt --plots %s --no-proposals", dir, RE2TAL_BIN,
                     D, D, dir), 0, "%s", out_text);
    char path[700];
    snprintf(path, sizeof path, "%s/pr_tiou0.70.svg", dir);
    cr_expect_eq(access(path, R_OK), 0, "%s", path);
    snprintf(path, sizeof path, "%s/pr_tiou0.30.csv", dir);
    cr_expect_eq(access(path, R_OK), 0, "%s", path);
}

Test(app_eval, bad_input_exit_1_naming_the_problem) {
    cr_expect_eq(run("%s eval --gt %s/missing.json --pred %s/anet13_sample_detection_prediction.json",
                     RE2TAL_BIN, D, D), 1);
    cr_expect(strstr(out_text, "missing.json"), "%s", out_text);
    /* unknown labels: the worked example with a class only in the training subset */
    const char *pred = test_tmp_path("app_eval_unknown.json");
    FILE *f = fopen(pred, "w");
    cr_assert(f);
    fputs("{\"results\": {\"v1\": [{\"label\": \"A\", \"score\": 0.9, \"segment\": [0, 10]}],"
          "\"v5\": [{\"label\": \"C\", \"score\": 0.8, \"segment\": [0, 10]}]}}", f);
    fclose(f);
    cr_expect_eq(run("%s eval --gt %s/eval_worked_gt.json --pred %s", RE2TAL_BIN, FIXTURES, pred), 1);
    cr_expect(strstr(out_text, "\"C\"") && strstr(out_text, "\"v5\""), "%s", out_text);
    cr_expect_eq(run("%s eval --gt %s/eval_worked_gt.json --pred %s --ignore-unknown-labels",
                     RE2TAL_BIN, FIXTURES, pred), 0, "%s", out_text);
    cr_expect(strstr(out_text, "unknown to the GT"), "%s", out_text);
    /* THUMOS text without a class list */
    cr_expect_eq(run("%s eval --gt %s/thumos14_test_gt.json --pred %s/thumos14_evalkit_Run-1-det.txt",
                     RE2TAL_BIN, D, D), 1);
    cr_expect(strstr(out_text, "class list"), "%s", out_text);
    /* unwritable JSON */
    cr_expect_eq(run("%s eval --gt %s/eval_worked_gt.json --pred %s/eval_worked_pred.json "
                     "--json /nonexistent/dir/x.json", RE2TAL_BIN, FIXTURES, FIXTURES), 1);
    cr_expect(strstr(out_text, "/nonexistent/dir/x.json"), "%s", out_text);
}

/* Inputs that are not files, and GT durations check-data rejects: exit 1 and one line naming the
 * path (`--pred /dev/zero` once read until memory ran out). */
Test(app_eval, devices_folders_and_bad_durations_are_one_line_errors) {
    cr_expect_eq(run("%s eval --gt %s/eval_worked_gt.json --pred /dev/zero", RE2TAL_BIN, FIXTURES),
                 1);
    cr_expect_str_eq(out_text, "re2tal eval: /dev/zero: is a character device, not a file\n");
    cr_expect_eq(run("%s eval --gt %s/eval_worked_gt.json --pred %s", RE2TAL_BIN, FIXTURES,
                     FIXTURES), 1);
    cr_expect(strstr(out_text, FIXTURES ": is a folder, not a file\n"), "%s", out_text);
    cr_expect_eq(run("RE2TAL_MAX_INPUT_BYTES=100 %s eval --gt %s/eval_worked_gt.json --pred "
                     "%s/eval_worked_pred.json", RE2TAL_BIN, FIXTURES, FIXTURES), 1);
    cr_expect(strstr(out_text, "limit for this input"), "%s", out_text);
    const char *durations[] = {"0", "-5", "\"abc\""};
    for (int i = 0; i < 3; i++) {
        const char *gt = test_tmp_path("app_eval_duration.json");
        FILE *f = fopen(gt, "w");
        cr_assert(f);
        fprintf(f, "{\"database\": {\"v1\": {\"subset\": \"validation\", \"duration\": %s, "
                   "\"annotations\": [{\"segment\": [1, 2], \"label\": \"A\"}]}}}", durations[i]);
        fclose(f);
        cr_expect_eq(run("%s eval --gt %s --pred %s/eval_worked_pred.json", RE2TAL_BIN, gt,
                         FIXTURES), 1, "duration %s: %s", durations[i], out_text);
        cr_expect(strstr(out_text, "app_eval_duration.json: database.v1.duration: "),
                  "duration %s: %s", durations[i], out_text);
        /* check-data says the same of the same file: one rule */
        char eval_msg[512];
        snprintf(eval_msg, sizeof eval_msg, "%s", strstr(out_text, "app_eval_duration.json"));
        run("%s check-data %s", RE2TAL_BIN, gt);
        cr_expect(strstr(out_text, eval_msg), "check-data: %s\neval: %s", out_text, eval_msg);
    }
}
