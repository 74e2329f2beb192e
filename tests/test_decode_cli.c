/* The decode commands of the re2tal binary: `probe` (JSON lines, --count, exit codes),
 * `frames` (one PNG per sample) and `bench decode` (frames/s as the last line). */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decode_check.h"

/* The number after "key": in a JSON line (-1 if absent). */
static double json_num(const char *json, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *at = strstr(json, k);
    return at ? atof(at + strlen(k)) : -1;
}

/* Runs cmd, stdout into out (NUL-terminated); returns the exit code. */
static int run(const char *cmd, char *out, size_t size) {
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(decode_cli, probe_prints_json_lines_and_counts) {
    test_require_binary();
    const char *p = make_video("cli.mkv", "-f lavfi -i testsrc2=s=64x48:r=25:d=2 -c:v libx264 "
                               "-pix_fmt yuv420p");
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd, "%s probe '%s' '%s/missing.mp4' --count 2>/dev/null", RE2TAL_BIN, p,
             TEST_TMP);
    cr_expect_eq(run(cmd, out, sizeof out), 1, "a file that failed makes exit code 1");
    cr_assert(out[0] == '{' && strchr(out, '}'), "one JSON line: %s", out);
    cr_expect_eq(json_num(out, "width"), 64);
    cr_expect_eq(json_num(out, "height"), 48);
    cr_expect_eq(json_num(out, "n_frames"), 50);
    cr_expect(strstr(out, "\"n_frames_exact\":true"), "--count counts: %s", out);
    cr_expect(strstr(out, "\"codec\":\"h264\""), "%s", out);
    snprintf(cmd, sizeof cmd, "%s probe --bogus 2>/dev/null", RE2TAL_BIN);
    cr_expect_eq(run(cmd, out, sizeof out), 2);
}

Test(decode_cli, frames_writes_one_png_per_sample) {
    test_require_binary();
    const char *p = make_video("cli_frames.mp4", "-f lavfi -i testsrc2=s=96x64:r=25:d=2 "
                               "-c:v libx264 -pix_fmt yuv420p");
    char dir[1024], cmd[4096], out[8192];
    snprintf(dir, sizeof dir, "%s/cli_frames_out", TEST_TMP);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && %s frames '%s' --fps 4 --size 32 --crop 24 --out '%s'",
             dir, RE2TAL_BIN, p, dir);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    int lines = 0;
    for (const char *c = out; *c; c++) lines += *c == '\n';
    cr_expect_eq(lines, 8, "2 s at 4 fps: %s", out);
    char png[1100];
    snprintf(png, sizeof png, "%s/000007.png", dir);
    FILE *f = fopen(png, "rb");
    cr_assert_not_null(f, "%s missing", png);
    unsigned char head[24];
    cr_assert_eq(fread(head, 1, 24, f), 24);
    fclose(f);
    cr_expect(!memcmp(head, "\x89PNG", 4), "PNG signature");
    cr_expect_eq(head[19], 24, "width 24"); /* IHDR: big-endian width at byte 16 */
    cr_expect_eq(head[23], 24, "height 24");
    snprintf(cmd, sizeof cmd, "%s frames '%s/none.mp4' --out '%s' 2>&1", RE2TAL_BIN, TEST_TMP, dir);
    cr_expect_eq(run(cmd, out, sizeof out), 1);
    cr_expect(strstr(out, "none.mp4"), "names the file: %s", out);
}

Test(decode_cli, bench_decode_prints_frames_per_second_last) {
    test_require_binary();
    const char *p = make_video("cli_bench.mp4", "-f lavfi -i testsrc2=s=64x48:r=25:d=2 "
                               "-c:v libx264 -pix_fmt yuv420p");
    char cmd[4096], out[8192];
    snprintf(cmd, sizeof cmd, "%s bench decode '%s' --size 32 --threads 1 --clips 3", RE2TAL_BIN, p);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
    char *nl = strchr(out, '\n');
    cr_assert_not_null(nl);
    *nl = 0;
    cr_expect_eq(json_num(out, "frames"), 50, "first line: %s", out);
    double fps = 0;
    cr_expect(sscanf(nl + 1, "%lf frames/s", &fps) == 1 && fps > 0, "last line: %s", nl + 1);
    snprintf(cmd, sizeof cmd, "%s bench nothing 2>/dev/null", RE2TAL_BIN);
    cr_expect_eq(run(cmd, out, sizeof out), 2);
}
