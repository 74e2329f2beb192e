/* `re2tal plan --device` and `re2tal bench backbone --device`: the device plan is the one
 * tal_backbone_plan_memory_on computes (no GPU needed to plan), bad options are usage errors,
 * a missing GPU is a clear error; with a GPU the measured arenas equal the device plan and the
 * bench line carries the device peaks (those tests skip without one). */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backbone/backbone.h"

#define BIN RE2TAL_BIN " --threads 1"

static char g_dir[1024];
#define sh(...) test_sh_in(g_dir, __VA_ARGS__)

static void setup(void) {
    test_require_binary();
    tal_threads_set(1); /* the CPU plan's scratch has row blocks per thread: as the binary's */
    snprintf(g_dir, sizeof g_dir, "%s", TEST_TMP);
    mkdir(g_dir, 0755);
}

TestSuite(app_cuda_bench, .init = setup, .fini = test_free_all);

/* The value of "key": N in a JSON line (the first occurrence after `from`); -1 if absent. */
static long long json_num(const char *line, const char *key) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = line ? strstr(line, pat) : NULL;
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* The line of `text` holding "mode": "<mode>" (static copy), or NULL. */
static const char *mode_line(const char *text, const char *mode) {
    static char buf[4096];
    char pat[64];
    snprintf(pat, sizeof pat, "\"mode\": \"%s\"", mode);
    const char *p = text ? strstr(text, pat) : NULL;
    if (!p) return NULL;
    while (p > text && p[-1] != '\n') p--;
    size_t n = strcspn(p, "\n");
    snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf - 1 ? n : sizeof buf - 1), p);
    return buf;
}

static char *run_out(const char *cmd, int *rc) {
    *rc = sh("%s > out.txt 2> err.txt", cmd);
    char *out = test_slurp_in(g_dir, "out.txt"), *err = test_slurp_in(g_dir, "err.txt");
    size_t n = strlen(out ? out : "") + strlen(err ? err : "") + 2;
    char *both = calloc(1, n);
    snprintf(both, n, "%s\n%s", out ? out : "", err ? err : "");
    free(out);
    free(err);
    return both;
}

/* The plan printed for --device cuda is the device plan, for --device cpu the CPU's: at a
 * shape where the attention backward's scratch differs. */
Test(app_cuda_bench, plan_device_is_the_device_plan) {
    tal_backbone_config c;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_preset(&c, "swin_t", &err), TAL_OK);
    for (int s = 0; s < TAL_BACKBONE_MAX_STAGES; s++) c.mode[s] = TAL_STAGE_REVERSIBLE;
    tal_backbone_plan on_gpu, on_cpu;
    cr_assert_eq(tal_backbone_plan_memory_on(&on_gpu, &c, TAL_DEV_CUDA, 1, 64, 224, 224, &err),
                 TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_backbone_plan_memory_on(&on_cpu, &c, TAL_DEV_CPU, 1, 64, 224, 224, &err),
                 TAL_OK, "%s", err.msg);
    cr_assert_neq(on_gpu.scratch_bytes, on_cpu.scratch_bytes, "the shape does not tell them apart");
    int rc;
    char *gpu = run_out(BIN " plan swin_t --frames 64 --json --device cuda", &rc);
    cr_assert_eq(rc, 0, "%s", gpu);
    const char *line = mode_line(gpu, "reversible");
    cr_assert(line && strstr(line, "\"device\": \"cuda\""), "%s", gpu);
    cr_expect_eq(json_num(line, "scratch_bytes"), (long long)on_gpu.scratch_bytes, "%s", line);
    cr_expect_eq(json_num(line, "keep_bytes"), (long long)on_gpu.keep_bytes, "%s", line);
    cr_expect_eq(json_num(line, "params_bytes"), (long long)on_gpu.params_bytes, "%s", line);
    char *cpu = run_out(BIN " plan swin_t --frames 64 --json", &rc);
    cr_assert_eq(rc, 0, "%s", cpu);
    line = mode_line(cpu, "reversible");
    cr_assert(line && strstr(line, "\"device\": \"cpu\""), "%s", cpu);
    cr_expect_eq(json_num(line, "scratch_bytes"), (long long)on_cpu.scratch_bytes, "%s", line);
    free(gpu);
    free(cpu);
}

Test(app_cuda_bench, plan_table_names_the_device) {
    int rc;
    char *out = run_out(BIN " plan swin_small_test --frames 8 --size 32 --device cuda:1", &rc);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "clips [1, 3, 8, 32, 32], on cuda:1"), "%s", out);
    free(out);
}

/* Usage errors exit 2 naming the option, before anything touches a device. */
Test(app_cuda_bench, bad_device_options_are_usage_errors) {
    static const struct {
        const char *args, *says;
    } cases[] = {
        {"bench backbone --device gpu", "device 'gpu' is not one of cpu|cuda|cuda:N"},
        {"bench backbone --device cuda:x", "expected cuda:N"},
        {"bench backbone --device", "--device needs a value"},
        {"bench backbone --precision bf16", "--precision bf16 needs --device cuda"},
        {"bench backbone --device cuda --precision fp16", "--precision wants fp32, tf32 or bf16"},
        {"plan swin_t --device cuda:64", "from 0 to 63"},
        {"plan swin_t --precision tf32", "--precision tf32 needs --device cuda"},
        {"plan swin_t --device cuda --precision half", "--precision wants fp32, tf32 or bf16"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, BIN " %s", cases[k].args);
        int rc;
        char *out = run_out(cmd, &rc);
        cr_expect_eq(rc, 2, "%s: exit %d\n%s", cases[k].args, rc, out);
        cr_expect(strstr(out, cases[k].says), "%s: wanted '%s' in\n%s", cases[k].args,
                  cases[k].says, out);
        free(out);
    }
}

/* Without a GPU (or a build without CUDA) a device run is a clear error, exit 1. */
Test(app_cuda_bench, no_gpu_is_a_clear_error) {
    if (tal_cuda_device_count() > 0) cr_skip_test("a CUDA device is present");
    static const char *cmds[] = {
        "bench backbone --device cuda --frames 8 --size 32 --blocks 1 --steps 1",
        "plan swin_small_test --frames 8 --size 32 --device cuda --measure",
    };
    for (int k = 0; k < 2; k++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, BIN " %s", cmds[k]);
        int rc;
        char *out = run_out(cmd, &rc);
        cr_expect_eq(rc, 1, "%s: exit %d\n%s", cmds[k], rc, out);
        cr_expect(strstr(out, "CUDA device 0"), "%s:\n%s", cmds[k], out);
        free(out);
    }
}

/* The CPU line keeps its fields and says where it ran; the arenas are the plan's. */
Test(app_cuda_bench, cpu_bench_line) {
    int rc;
    char *out = run_out(BIN " bench backbone --frames 8 --size 32 --blocks 1 --steps 1 "
                            "--device cpu",
                        &rc);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "\"device\": \"cpu\", \"precision\": \"fp32\"}"), "%s", out);
    cr_expect_gt(json_num(out, "step_ms"), -1, "%s", out);
    cr_expect_eq(json_num(out, "peak_activation_bytes"), json_num(out, "planned_activation_bytes"),
                 "%s", out);
    free(out);
}

/* ---------------------------------------------------------------- with a GPU ------------ */
#define GPU_ONLY()                                                                            \
    do {                                                                                      \
        if (tal_cuda_device_count() == 0) cr_skip_test("no CUDA device");                    \
    } while (0)

/* A small Swin on the device, fp32 and bf16: the line carries the device peaks, the arenas
 * reach exactly the device plan, and the device memory in use grew by at least that. */
Test(app_cuda_bench, gpu_bench_line_has_device_peaks) {
    GPU_ONLY();
    static const char *precs[] = {"fp32", "bf16"};
    for (int k = 0; k < 2; k++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd,
                 BIN " bench backbone --device cuda --precision %s --preset swin_small_test "
                     "--frames 16 --size 64 --steps 2",
                 precs[k]);
        int rc;
        char *out = run_out(cmd, &rc);
        cr_assert_eq(rc, 0, "%s", out);
        cr_expect(strstr(out, "\"device\": \"cuda:0\""), "%s", out);
        long long act = json_num(out, "peak_activation_bytes");
        cr_expect_eq(act, json_num(out, "planned_activation_bytes"), "%s", out);
        long long peak = json_num(out, "device_peak_bytes"), ws = json_num(out, "workspace_bytes");
        cr_expect_geq(ws, 32ll << 20, "cuBLAS' fixed workspace at least: %s", out);
        cr_expect_gt(peak, act + ws, "%s", out);
        long long took = json_num(out, "device_used_bytes") -
                         json_num(out, "device_used_before_bytes");
        cr_expect_geq(took, act, "cudaMemGetInfo saw less than the arenas: %s", out);
        free(out);
    }
}

/* plan --measure on the device: the arenas' high-water marks are the device plan's, in both
 * modes. */
Test(app_cuda_bench, gpu_plan_measure_equals_plan) {
    GPU_ONLY();
    int rc;
    char *out = run_out(BIN " plan swin_small_test --frames 16 --size 64 --device cuda "
                            "--precision bf16 --measure --json",
                        &rc);
    cr_assert_eq(rc, 0, "%s", out);
    static const char *modes[] = {"vanilla", "reversible"};
    for (int m = 0; m < 2; m++) {
        const char *line = mode_line(out, modes[m]);
        cr_assert(line, "%s", out);
        cr_expect_eq(json_num(line, "measured_keep_bytes"), json_num(line, "keep_bytes"), "%s",
                     line);
        cr_expect_eq(json_num(line, "measured_scratch_bytes"), json_num(line, "scratch_bytes"),
                     "%s", line);
        cr_expect_geq(json_num(line, "measured_workspace_bytes"), 32ll << 20, "%s", line);
        cr_expect_gt(json_num(line, "device_used_bytes"),
                     json_num(line, "device_used_before_bytes"), "%s", line);
    }
    free(out);
}
