/* The whole pipeline on the GPU through the re2tal binary, against the same runs on the CPU, on
 * the tiny synthetic set of tests/app_cli.h: 20 fp32 training updates whose logged losses follow
 * the CPU run's to 1e-3; inference of a CPU-trained model on the device gives the CPU's
 * detections (scores to 1e-4); extract gives the CPU's features. Skipped without a GPU. Runs
 * the binary (RE2TAL_BIN). */
#include "app_cli.h"

#include <math.h>
#include <string.h>

#include "nn/nn.h"

static void setup(void) {
    if (tal_cuda_device_count() == 0) return; /* each test skips */
    app_make_tiny_set("cuda_train");
}

static void teardown(void) {
    if (g_dir[0]) app_remove_dir();
}

TestSuite(cuda_train, .init = setup, .fini = teardown, .timeout = 900);

#define CUDA_ONLY()                                                                           \
    do {                                                                                      \
        if (tal_cuda_device_count() == 0) cr_skip_test("no CUDA device");                    \
    } while (0)

/* The numbers after each `"key": ` in the file, in order (at most max). */
static int numbers_after(const char *name, const char *key, double *out, int max) {
    char *text = slurp(name), pat[64];
    cr_assert_not_null(text, "no %s", name);
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    int n = 0;
    for (char *p = text; n < max && (p = strstr(p, pat)); p += strlen(pat))
        out[n++] = strtod(p + strlen(pat), NULL);
    free(text);
    return n;
}

/* The same detections in both results files, in order, scores to 1e-4. */
static void expect_same_detections(const char *gpu, const char *cpu) {
    static double a[4096], b[4096];
    int na = numbers_after(cpu, "score", a, 4096), nb = numbers_after(gpu, "score", b, 4096);
    cr_assert(na > 0, "no detections on the CPU");
    cr_assert_eq(nb, na, "%d detections on the GPU, %d on the CPU", nb, na);
    for (int i = 0; i < na; i++)
        cr_expect(fabs(a[i] - b[i]) <= 1e-4, "detection %d: score %.6g vs %.6g on the CPU", i,
                  b[i], a[i]);
}

/* 10 epochs of 2 updates (4 training videos, batch 2): 20 updates, no validation. */
#define RUN " train tiny.json " DATA " --set optim.epochs=10 --set train.eval_every=0"

Test(cuda_train, twenty_fp32_updates_follow_the_cpu_run) {
    CUDA_ONLY();
    cr_assert_eq(sh(BIN RUN " --set train.out_dir=cpu --device cpu --quiet"), 0);
    cr_assert_eq(sh(BIN RUN " --set train.out_dir=gpu --device cuda 2> gpu.err"), 0,
                 "the GPU run failed: see %s/gpu.err", g_dir);
    double a[64], b[64];
    int na = numbers_after("cpu/log.jsonl", "loss", a, 64);
    int nb = numbers_after("gpu/log.jsonl", "loss", b, 64);
    cr_assert_eq(na, 20, "the CPU run logged %d updates", na);
    cr_assert_eq(nb, na, "the GPU run logged %d updates, the CPU run %d", nb, na);
    for (int i = 0; i < na; i++)
        cr_expect(isfinite(b[i]) && fabs(b[i] - a[i]) <= 1e-3 * (1 + fabs(a[i])),
                  "update %d: loss %.6g on the GPU, %.6g on the CPU", i + 1, b[i], a[i]);
    /* the reversible backbone rebuilt its inputs on the device too */
    na = numbers_after("gpu/log.jsonl", "recon_err", a, 64);
    for (int i = 0; i < na; i++) cr_expect(a[i] >= 0 && a[i] < 1e-3, "recon_err %g", a[i]);
    /* the trainer says what crosses the bus */
    char *e = slurp("gpu.err");
    cr_expect(e && strstr(e, "bytes to the device"), "%s", e);
    free(e);
}

Test(cuda_train, infer_and_extract_on_the_device_match_the_cpu) {
    CUDA_ONLY();
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=r --quiet --device cpu"),
                 0);
    const char *videos = " data/videos/synth_00000.mp4 data/videos/synth_00001.mp4";
    cr_assert_eq(sh(BIN " infer --model r%s --out cpu.json --quiet --device cpu", videos), 0);
    cr_assert_eq(sh(BIN " infer --model r%s --out gpu.json --quiet --device cuda", videos), 0);
    expect_same_detections("gpu.json", "cpu.json");
    cr_assert_eq(sh(BIN " extract --model r%s --out fc --quiet --device cpu", videos), 0);
    cr_assert_eq(sh(BIN " extract --model r%s --out fg --quiet --device cuda", videos), 0);
    /* the same header and shape; values compared by the npy bytes after the header would be
     * too strict (fp32 sums in another order): compare as floats */
    for (int v = 0; v < 2; v++) {
        char pc[1200], pg[1200];
        snprintf(pc, sizeof pc, "%s/fc/synth_0000%d.npy", g_dir, v);
        snprintf(pg, sizeof pg, "%s/fg/synth_0000%d.npy", g_dir, v);
        FILE *fc = fopen(pc, "rb"), *fg = fopen(pg, "rb");
        cr_assert(fc && fg, "%s, %s", pc, pg);
        static unsigned char bc[1 << 20], bg[1 << 20];
        size_t nc = fread(bc, 1, sizeof bc, fc), ng = fread(bg, 1, sizeof bg, fg);
        fclose(fc);
        fclose(fg);
        cr_assert_eq(ng, nc);
        size_t header = 10 + (size_t)(bc[8] | bc[9] << 8);
        cr_assert(memcmp(bc, bg, header) == 0, "npy headers differ");
        for (size_t i = header; i + 4 <= nc; i += 4) {
            float x, y;
            memcpy(&x, bc + i, 4);
            memcpy(&y, bg + i, 4);
            if (!(fabsf(x - y) <= 1e-4f * (1 + fabsf(x))))
                cr_assert_fail("video %d, feature float %zu: %g on the GPU, %g on the CPU", v,
                               (i - header) / 4, y, x);
        }
    }
}

/* Truncated windows (several per video): on the device the next window is decoded while the
 * current one computes; the detections are still the CPU's. */
Test(cuda_train, windowed_infer_on_the_device_matches_the_cpu) {
    CUDA_ONLY();
    const char *trunc = " --set data.sampler=truncate --set data.trunc_len=16";
    cr_assert_eq(sh(BIN " train tiny.json " DATA "%s --set optim.epochs=1 --set train.out_dir=w "
                        "--quiet --device cpu", trunc), 0);
    cr_assert_eq(sh(BIN " infer --model w data/videos/synth_00000.mp4 --out cpu.json --quiet "
                        "--device cpu"), 0);
    cr_assert_eq(sh(BIN " infer --model w data/videos/synth_00000.mp4 --out gpu.json --quiet "
                        "--device cuda"), 0);
    expect_same_detections("gpu.json", "cpu.json");
}
