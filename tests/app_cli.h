/* tests/app_cli.h: what the tests that drive the re2tal binary share: one folder per test
 * process (g_dir), shell commands run in it, files read from it, and a tiny synthetic set with a
 * tiny reversible Swin + head config (tiny.json: 4 training videos, 2 validation). */
#ifndef TAL_TESTS_APP_CLI_H
#define TAL_TESTS_APP_CLI_H

#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define BIN RE2TAL_BIN " --threads 1"
#define DATA "--set data.annotations=data/annotations.json --set data.videos=data/videos"

static char g_dir[1024];

/* Shell commands and files in the test folder (testlib's helpers). */
#define sh(...) test_sh_in(g_dir, __VA_ARGS__)
#define slurp(name) test_slurp_in(g_dir, name)

static const char *TINY =
    "{\n"
    "  \"data\": {\"sampler\": \"resize\", \"frames\": 16, \"resize_len\": 8, \"short_side\": 32,"
    " \"crop\": 32, \"rrc_scale_min\": 0, \"flip\": 0.5, \"prefetch\": 2},\n"
    "  \"backbone\": {\"preset\": \"swin_small_test\", \"embed_dim\": 16, \"depths\": [2, 2],"
    " \"heads\": [1, 2], \"window\": [4, 4, 4], \"drop_path_rate\": 0.1,"
    " \"mode\": \"reversible\"},\n"
    "  \"head\": {\"channels\": 32, \"n_head\": 2, \"arch\": [2, 1, 2], \"init_loss_norm\": 4,"
    " \"max_seg_num\": 20},\n"
    "  \"optim\": {\"epochs\": 3, \"batch_size\": 2, \"lr_head\": 0.001, \"lr_backbone\": 0.0005,"
    " \"warmup_epochs\": 1, \"ema_decay\": 0.9},\n"
    "  \"train\": {\"seed\": 3, \"eval_every\": 0, \"checkpoint_every\": 1},\n"
    "  \"eval\": {\"tiou\": [0.3, 0.5, 0.7]}\n"
    "}\n";

/* Writes text to the test folder's file `name`. */
static __attribute__((unused)) void app_write_file(const char *name, const char *text) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* Makes TEST_TMP/<prefix>_<pid> with data/ (6 synthetic videos) and tiny.json. */
static __attribute__((unused)) void app_make_tiny_set(const char *prefix) {
    test_require_binary();
    snprintf(g_dir, sizeof g_dir, "%s/%s_%d", TEST_TMP, prefix, (int)getpid());
    mkdir(g_dir, 0755);
    cr_assert_eq(sh(BIN " synth --out data --videos 6 --classes 2 --size 32 --min-len 8 "
                        "--max-len 12 --min-action 1 --max-action 4 --max-instances 2 "
                        "--val-fraction 0.34 --quiet"), 0);
    app_write_file("tiny.json", TINY);
}

static __attribute__((unused)) void app_remove_dir(void) { sh("cd .. && rm -rf '%s'", g_dir); }

#endif
