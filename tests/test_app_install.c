/* `make install` as a user gets it: cmake --install into a temporary prefix, then the installed
 * binary runs from another folder, shows its help, finds the shipped configs by name (no path)
 * and has its man page (made from the --help texts) beside it. */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[1024];

#define sh(...) test_sh_in(g_dir, __VA_ARGS__)
#define slurp(name) test_slurp_in(g_dir, name)

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "%s/install_%d", TEST_TMP, (int)getpid());
    mkdir(g_dir, 0755);
    test_require_binary();
}

static void teardown(void) { sh("cd .. && rm -rf '%s'", g_dir); }

TestSuite(app_install, .init = setup, .fini = teardown, .timeout = 300);

Test(app_install, installed_binary_finds_its_configs) {
    cr_assert_eq(sh("cmake --install '%s' --prefix \"$PWD/prefix\" > install.log 2>&1",
                    RE2TAL_BUILD_DIR), 0, "cmake --install failed (see %s/install.log)", g_dir);
    cr_assert_eq(sh("test -x prefix/bin/re2tal && test -s prefix/share/man/man1/re2tal.1 && "
                    "test -s prefix/share/re2tal/configs/demo.json && "
                    "test -s prefix/share/re2tal/configs/thumos14_i3d_features.json && "
                    "test -x prefix/share/re2tal/tools/convert_checkpoint.py"), 0,
                 "installed files missing");
    /* from a folder without configs/: help, and configs found by name */
    cr_assert_eq(sh("mkdir -p elsewhere && cd elsewhere && ../prefix/bin/re2tal demo --help "
                    "> help.txt && grep -q 'usage: re2tal demo' help.txt"), 0);
    cr_expect_eq(sh("cd elsewhere && ../prefix/bin/re2tal plan demo.json > plan.txt && "
                    "grep -q 'clips \\[1, 3, 64, 40, 40\\]' plan.txt"), 0,
                 "the shipped demo.json must be found by name");
    cr_expect_eq(sh("cd elsewhere && ../prefix/bin/re2tal train anet13_features "
                    "--set data.annotations=nowhere.json 2> e; grep -q nowhere.json e"), 0,
                 "train finds a shipped config without path or extension");
    cr_expect_neq(sh("cd elsewhere && ../prefix/bin/re2tal plan no_such_config.json 2> /dev/null"),
                  0);
    /* the man page holds every command's --help */
    cr_expect_eq(sh("grep -q '^.SS import' prefix/share/man/man1/re2tal.1 && "
                    "grep -q 'extract --backbone' prefix/share/man/man1/re2tal.1"), 0);
}
