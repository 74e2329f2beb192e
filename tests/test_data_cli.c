/* tests/test_data_cli.c: `re2tal synth` and `re2tal check-data` from the command line: exit
 * codes (0 ok, 1 bad input, 2 usage), the files synth writes, and check-data's JSON report on
 * them, including a video removed on purpose. The binary is a build dependency: no skip. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "data/data.h"
#include "testlib.h"

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define SMALL "--videos 8 --classes 2 --seed 5 --size 64 --min-len 3 --max-len 4 " \
              "--max-action 1.5 --quiet"

Test(data_cli, synth_then_check_data) {
    test_require_binary();
    char dir[600];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("cli_synth"));
    cr_assert_eq(run("rm -rf '%s' && %s synth --out '%s' " SMALL, dir, RE2TAL_BIN, dir), 0);
    char path[700];
    snprintf(path, sizeof path, "%s/videos/synth_00002.mp4", dir);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0, "missing %s", path);
    cr_assert_gt(sb.st_size, 1000);

    /* A clean dataset: no problems, --strict exits 0 (every frame decoded with --deep). */
    char report[700];
    snprintf(report, sizeof report, "%s/report.json", dir);
    cr_assert_eq(run("%s check-data '%s/annotations.json' --videos '%s/videos' --classes "
                     "'%s/classes.txt' --json '%s' --strict --deep > /dev/null",
                     RE2TAL_BIN, dir, dir, dir, report),
                 0);
    /* Remove one video and cut another short: both reported, and --strict exits 1. */
    remove(path);
    char cut[700];
    snprintf(cut, sizeof cut, "%s/videos/synth_00001.mp4", dir);
    cr_assert_eq(truncate(cut, 2000), 0);
    cr_assert_eq(run("%s check-data '%s/annotations.json' --videos '%s/videos' --json '%s' "
                     "--strict > /dev/null",
                     RE2TAL_BIN, dir, dir, report),
                 1);
    FILE *f = fopen(report, "rb");
    cr_assert(f);
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    cJSON *root = cJSON_Parse(buf);
    cr_assert(root, "report is JSON");
    cJSON *counts = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "summary"), "counts");
    cr_assert_eq(cJSON_GetObjectItem(counts, "missing_video")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(counts, "undecodable")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(counts, "duration_mismatch")->valueint, 0,
                 "synth durations match the files");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "summary"), "videos")->valueint, 8);
    cJSON_Delete(root);
}

Test(data_cli, usage_and_input_errors) {
    test_require_binary();
    cr_assert_eq(run("%s synth > /dev/null 2>&1", RE2TAL_BIN), 2, "--out is required");
    cr_assert_eq(run("%s synth --out /tmp/x --classes 1 > /dev/null 2>&1", RE2TAL_BIN), 2);
    cr_assert_eq(run("%s synth --out /tmp/x --videos many > /dev/null 2>&1", RE2TAL_BIN), 2);
    cr_assert_eq(run("%s synth --out /tmp/x --bogus 1 > /dev/null 2>&1", RE2TAL_BIN), 2);
    cr_assert_eq(run("%s synth --out /proc/no/such --videos 1 --quiet > /dev/null 2>&1",
                     RE2TAL_BIN),
                 1, "an unwritable folder is bad input");
    cr_assert_eq(run("%s synth --help > /dev/null", RE2TAL_BIN), 0);
    cr_assert_eq(run("%s check-data > /dev/null 2>&1", RE2TAL_BIN), 2);
    cr_assert_eq(run("%s check-data %s/nope.json > /dev/null 2>&1", RE2TAL_BIN, TEST_TMP), 1);
    cr_assert_eq(run("%s check-data %s/anet13_val_gt.json --subset bogus > /dev/null 2>&1",
                     RE2TAL_BIN, TEST_DATA),
                 2);
    cr_assert_eq(run("%s check-data %s/anet13_val_gt.json --max-lines 1 > /dev/null",
                     RE2TAL_BIN, TEST_DATA),
                 0, "problems are reported, not fatal, without --strict");
    cr_assert_eq(run("%s check-data %s/thumos14_annotations --split val --classes "
                     "%s/thumos14_annotations/detclasslist.txt > /dev/null",
                     RE2TAL_BIN, TEST_DATA, TEST_DATA),
                 0);
}
