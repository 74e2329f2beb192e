/* tests/test_app_hostile.c: paths that are not files, given to the commands that read configs,
 * weights and video lists: exit 1 and one line naming the path. `re2tal train DIR` once said
 * "out of memory", `rewire DIR OUT` "9223372036854775807 bytes: too short", and `--list
 * /dev/zero` read empty lines forever. (`eval`'s own cases are in test_app_eval.c.) */
#include "app_cli.h"

#include <string.h>

static void setup(void) {
    test_require_binary();
    snprintf(g_dir, sizeof g_dir, "%s/app_hostile_%d", TEST_TMP, (int)getpid());
    mkdir(g_dir, 0755);
    mkdir(test_tmp_path("app_hostile_folder"), 0755);
}

static void teardown(void) {
    app_remove_dir();
    test_free_all();
}

TestSuite(app_hostile, .init = setup, .fini = teardown);

/* Runs `re2tal <args>` in the test folder: exit 1 and stderr exactly "re2tal <cmd>: <what>\n". */
static void expect_one_line(const char *args, const char *cmd, const char *what) {
    cr_expect_eq(sh(BIN " %s > out 2> err", args), 1, "%s", args);
    char *out = slurp("out"), *err = slurp("err");
    char want[2048];
    snprintf(want, sizeof want, "re2tal %s: %s\n", cmd, what);
    cr_expect(out && !out[0], "%s: stdout %s", args, out);
    cr_expect(err && !strcmp(err, want), "%s:\n  got  %s  want %s", args, err, want);
    free(out);
    free(err);
}

Test(app_hostile, folders_and_devices_are_named) {
    const char *dir = test_tmp_path("app_hostile_folder");
    char args[1500], what[1500];
    snprintf(args, sizeof args, "train %s", dir);
    snprintf(what, sizeof what, "%s: is a folder, not a file", dir);
    expect_one_line(args, "train", what);
    snprintf(args, sizeof args, "demo --config %s", dir);
    expect_one_line(args, "demo", what);
    snprintf(args, sizeof args, "rewire %s out.safetensors", dir);
    expect_one_line(args, "rewire", what);
    expect_one_line("train /dev/zero", "train", "/dev/zero: is a character device, not a file");
    expect_one_line("infer --model nowhere --list /dev/zero", "infer",
                    "the video list: /dev/zero: is a character device, not a file");
    snprintf(args, sizeof args, "extract --model nowhere --list %s --out f", dir);
    snprintf(what, sizeof what, "the video list: %s: is a folder, not a file", dir);
    expect_one_line(args, "extract", what);
}

Test(app_hostile, size_limit_applies_to_configs) {
    app_write_file("big.json", TINY);
    cr_expect_eq(sh("RE2TAL_MAX_INPUT_BYTES=64 " BIN " train big.json > /dev/null 2> err"), 1);
    char *err = slurp("err");
    cr_expect(err && strstr(err, "big.json: ") && strstr(err, "more than the 64 bytes limit") &&
                  strstr(err, "RE2TAL_MAX_INPUT_BYTES"),
              "%s", err);
    free(err);
}
