/* The device options through the re2tal binary: the run config's `device` key, the `--device`
 * option (global and per command) that overrides it, `train.precision` and `train.tf32`: each
 * bad value is refused before any data is read, naming the key, the value and the choices; a
 * CUDA device that is absent is a clear error, never a run on the CPU in its place. */
#include "app_cli.h"

#include <stdarg.h>
#include <string.h>

#include "nn/nn.h"

static void setup(void) { app_make_tiny_set("device"); }

static void teardown(void) { app_remove_dir(); }

TestSuite(app_device, .init = setup, .fini = teardown, .timeout = 300);

/* Runs cmd (stderr into the file e), expects exit code `code` and each of the NULL-terminated
 * strings in the message. */
static void expect_refused(int code, const char *cmd, ...) {
    cr_expect_eq(sh("%s 2> e", cmd), code, "exit code of: %s", cmd);
    char *e = slurp("e");
    cr_assert_not_null(e);
    va_list ap;
    va_start(ap, cmd);
    for (const char *want; (want = va_arg(ap, const char *));)
        cr_expect(strstr(e, want), "%s: the message lacks '%s': %s", cmd, want, e);
    va_end(ap);
    /* refused before any data is read */
    cr_expect(!strstr(e, "missing.json"), "%s: %s", cmd, e);
    free(e);
}

#define NO_DATA " --set data.annotations=missing.json"

Test(app_device, bad_device_values_are_refused_with_the_choices) {
    expect_refused(2, BIN " train tiny.json" NO_DATA " --set device=gpu", "device", "gpu",
                   "cpu|cuda|cuda:N", NULL);
    expect_refused(2, BIN " train tiny.json" NO_DATA " --set device=cuda:x", "cuda:x", NULL);
    expect_refused(2, BIN " train tiny.json" NO_DATA " --set device=cuda:123", "cuda:123", NULL);
    /* the option: global and per command, each refusing a bad value as a usage error */
    expect_refused(2, BIN " --device cuda:64 train tiny.json" NO_DATA, "--device", "cuda:64",
                   "0 to 63", NULL);
    expect_refused(2, BIN " train tiny.json" NO_DATA " --device tpu", "re2tal train",
                   "--device", "tpu", NULL);
    expect_refused(2, BIN " infer --device", "--device needs a value", NULL);
    /* from a file, the file is named */
    cr_assert_eq(sh("printf '{\"device\": \"cuda:-1\"}' > d.json"), 0);
    expect_refused(1, BIN " train d.json", "d.json", "device", NULL);
}

Test(app_device, precision_keys_are_checked) {
    expect_refused(2, BIN " train tiny.json" NO_DATA " --set train.precision=fp16",
                   "train.precision", "fp32|bf16", NULL);
    expect_refused(2, BIN " train tiny.json" NO_DATA " --set train.tf32=2", "train.tf32",
                   "[0, 1]", NULL);
    /* bf16 is CUDA only: refused on the CPU with the way out */
    expect_refused(1, BIN " train tiny.json" NO_DATA " --set train.precision=bf16",
                   "train.precision bf16", "--device cuda", NULL);
    /* --device overrides the file's and --set's device key, so bf16 is refused after it too */
    expect_refused(1, BIN " --device cpu train tiny.json" NO_DATA " --set device=cuda "
                   "--set train.precision=bf16", "train.precision bf16", NULL);
    cr_assert_eq(sh(BIN " train --help-config > help.txt"), 0);
    char *help = slurp("help.txt");
    cr_expect(help && strstr(help, "device") && strstr(help, "cpu|cuda|cuda:N") &&
              strstr(help, "train.precision") && strstr(help, "train.tf32"), "%s", help);
    free(help);
    cr_assert_eq(sh(BIN " --help > h.txt && " BIN " train --help >> h.txt && " BIN
                    " infer --help >> h.txt && " BIN " extract --help >> h.txt && " BIN
                    " demo --help >> h.txt"), 0);
    char *h = slurp("h.txt");
    int n = 0;
    for (char *p = h; (p = strstr(p, "--device")); p++) n++;
    cr_expect(n >= 5, "--device in every --help (%d times): %s", n, h);
    free(h);
}

/* The data exists here: the device is the first thing that fails. An absent GPU is refused
 * naming the device and the way back to the CPU, before any checkpoint is written. */
Test(app_device, cuda_without_a_device_is_a_clear_error) {
    const char *cmds[] = {BIN " --device cuda:7 train tiny.json " DATA " --set train.out_dir=r",
                          BIN " train tiny.json " DATA " --set train.out_dir=r --device cuda:7"};
    for (int i = 0; i < 2; i++) {
        if (tal_cuda_device_count() > 7) cr_skip_test("this machine has 8 or more GPUs");
        expect_refused(1, cmds[i], "cuda:7", "--device cpu", NULL);
        cr_expect_neq(sh("test -f r/last/model.safetensors"), 0, "no checkpoint on a refusal");
    }
}
