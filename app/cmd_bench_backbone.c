/* app/cmd_bench_backbone.c: `re2tal bench backbone` (dispatched by app/cmd_bench.c): training
 * steps of one Swin stage (patch embedding, N blocks, final norm, spatial mean) or a whole
 * preset in vanilla or reversible mode; prints one JSON line with the step time and the peak
 * memory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/commands.h"
#include "app/progress.h"
#include "backbone/backbone.h"

int tal_cmd_bench_backbone(int argc, char **argv);

/* CPU seconds this process has used, all threads together. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal bench backbone [--mode vanilla|reversible|rewired_stored] [--blocks N]"
            "\n         [--frames T] [--dim C] [--heads H] [--size S] [--window T,H,W] "
            "[--steps K]\n         [--drop-path P] [--preset NAME]\n\n"
            "Times training steps (forward + backward) of one Swin stage on a random clip\n"
            "[1, 3, T, S, S] (patch 2x4x4) and prints one JSON line: mode, blocks, frames,\n"
            "step_ms (mean of K steps after one warm-up), best_step_ms, fwd_ms, bwd_ms,\n"
            "blocks_fwd_ms, blocks_bwd_ms, best_blocks_ms (the part of the step inside the\n"
            "residual blocks, without patch embedding, merging, final norm and pooling),\n"
            "step_cpu_ms (process CPU time per step, all threads: at --threads 1 it does not\n"
            "count time other processes take on a loaded machine) and best_step_cpu_ms,\n"
            "peak_activation_bytes (arena high-water marks) and peak_rss_bytes (VmHWM).\n"
            "Defaults: Swin-T stage 1: reversible, 2 blocks, 16 frames, dim 96, 3 heads,\n"
            "size 224, window 8,7,7, 3 steps, drop-path rate 0.1 (0: no drop-path, as in\n"
            "a plain PyTorch block). --preset swin_t (etc.) times the whole model\n"
            "instead (all stages in --mode; --blocks, --dim, --heads, --window ignored).\n");
}

static int parse_pos(const char *opt, const char *v, int *out) {
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || n < 1 || n > 100000) {
        fprintf(stderr, "re2tal bench backbone: %s wants a positive whole number\n", opt);
        return 0;
    }
    *out = (int)n;
    return 1;
}

int tal_cmd_bench_backbone(int argc, char **argv) {
    int mode = TAL_STAGE_REVERSIBLE, blocks = 2, frames = 16, dim = 96, heads = 3, size = 224;
    int steps = 3, win[3] = {8, 7, 7};
    float drop_path = 0.1f;
    const char *preset = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (tal_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--mode")) {
            mode = v ? tal_stage_mode_parse(v) : -1;
            if (mode < 0) {
                fprintf(stderr, "re2tal bench backbone: --mode wants vanilla, reversible or "
                                "rewired_stored\n");
                return 2;
            }
        } else if (!strcmp(a, "--blocks")) ok = parse_pos(a, v, &blocks);
        else if (!strcmp(a, "--frames")) ok = parse_pos(a, v, &frames);
        else if (!strcmp(a, "--dim")) ok = parse_pos(a, v, &dim);
        else if (!strcmp(a, "--heads")) ok = parse_pos(a, v, &heads);
        else if (!strcmp(a, "--size")) ok = parse_pos(a, v, &size);
        else if (!strcmp(a, "--steps")) ok = parse_pos(a, v, &steps);
        else if (!strcmp(a, "--preset")) {
            preset = v;
            ok = v != NULL;
        } else if (!strcmp(a, "--drop-path")) {
            char *end = NULL;
            drop_path = v ? strtof(v, &end) : -1.0f;
            ok = v && !*end && drop_path >= 0.0f && drop_path < 1.0f;
            if (!ok) fprintf(stderr, "re2tal bench backbone: --drop-path wants a rate in [0, 1)\n");
        } else if (!strcmp(a, "--window")) {
            ok = v && sscanf(v, "%d,%d,%d", &win[0], &win[1], &win[2]) == 3;
            if (!ok) fprintf(stderr, "re2tal bench backbone: --window wants T,H,W\n");
        } else {
            fprintf(stderr, "re2tal bench backbone: unexpected '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) return 2;
        i++;
    }
    tal_backbone_config cfg;
    tal_err err = {0};
    if (preset) {
        if (tal_backbone_config_preset(&cfg, preset, &err)) {
            fprintf(stderr, "re2tal bench backbone: %s\n", err.msg);
            return 2;
        }
        for (int s = 0; s < TAL_BACKBONE_MAX_STAGES; s++) cfg.mode[s] = (tal_stage_mode)mode;
        blocks = 0;
        for (int s = 0; s < cfg.n_stages; s++) blocks += cfg.depths[s];
        dim = cfg.embed_dim;
        heads = cfg.heads[0];
    } else {
        tal_backbone_config_preset(&cfg, "swin_t", NULL);
        cfg.n_stages = 1;
        cfg.embed_dim = dim;
        cfg.depths[0] = blocks;
        cfg.heads[0] = heads;
        memcpy(cfg.window, win, sizeof win);
        cfg.mode[0] = (tal_stage_mode)mode;
    }
    cfg.drop_path_rate = drop_path;
    tal_params *p = tal_params_create();
    tal_params_add_group(p, "backbone", 1.0f, 0.0f);
    tal_backbone *bb = NULL;
    float *v = NULL, *f = NULL;
    int rc = 1;
    if (tal_backbone_create(&bb, &cfg, p, 0, 0, &err) ||
        tal_params_allocate(p, TAL_DEV_CPU, &err) ||
        tal_backbone_prepare(bb, 1, frames, size, size, &err)) {
        fprintf(stderr, "re2tal bench backbone: %s\n", err.msg);
        goto done;
    }
    tal_backbone_init(bb, 1);
    int64_t C = tal_backbone_out_channels(&cfg), To = tal_backbone_out_frames(&cfg, frames);
    v = malloc(sizeof(float) * (size_t)3 * frames * size * size);
    f = malloc(sizeof(float) * (size_t)(C * To));
    if (!v || !f) {
        fprintf(stderr, "re2tal bench backbone: out of memory for the clip\n");
        goto done;
    }
    tal_rng_key key = {1, 0, 0};
    for (int64_t i = 0; i < (int64_t)3 * frames * size * size; i++)
        v[i] = 2.0f * tal_rng_uniform(key, (uint64_t)i) - 1.0f;
    tal_tensor video = tal_t5(v, 1, 3, frames, size, size), feats = tal_t3(f, 1, C, To);
    double fwd = 0, bwd = 0, best = INFINITY, cpu = 0, bfwd = 0, bbwd = 0, bbest = INFINITY;
    double best_cpu = INFINITY;
    for (int s = 0; s <= steps; s++) { /* step 0 warms up */
        tal_backbone_set_step(bb, (uint64_t)s);
        double c0 = cpu_s(), t0 = tal_now_s();
        tal_backbone_forward_train(bb, feats, video);
        double t1 = tal_now_s();
        for (int64_t i = 0; i < C * To; i++) f[i] = 1.0f / (float)(C * To);
        tal_backbone_backward(bb, feats, NULL);
        double t2 = tal_now_s(), c2 = cpu_s();
        if (s) fwd += t1 - t0, bwd += t2 - t1, cpu += c2 - c0;
        if (s && c2 - c0 < best_cpu) best_cpu = c2 - c0;
        if (s && t2 - t0 < best) best = t2 - t0;
        double bf, bb_;
        tal_backbone_block_seconds(bb, &bf, &bb_);
        if (s) bfwd += bf, bbwd += bb_;
        if (s && bf + bb_ < bbest) bbest = bf + bb_;
    }
    size_t keep = 0, scratch = 0;
    tal_backbone_high_water(bb, &keep, &scratch);
    tal_backbone_plan plan;
    tal_backbone_plan_memory(&plan, &cfg, 1, frames, size, size, &err);
    printf("{\"model\": \"%s\", \"mode\": \"%s\", \"blocks\": %d, \"frames\": %d, "
           "\"dim\": %d, \"heads\": %d, "
           "\"size\": %d, \"threads\": %d, \"step_ms\": %.1f, \"best_step_ms\": %.1f, "
           "\"step_cpu_ms\": %.1f, \"best_step_cpu_ms\": %.1f, \"fwd_ms\": %.1f, "
           "\"bwd_ms\": %.1f, \"blocks_fwd_ms\": %.1f, \"blocks_bwd_ms\": %.1f, "
           "\"best_blocks_ms\": %.1f, \"peak_activation_bytes\": %zu, "
           "\"planned_activation_bytes\": %zu, "
           "\"params_bytes\": %zu, \"peak_rss_bytes\": %lld}\n",
           preset ? preset : "stage", tal_stage_mode_name((tal_stage_mode)mode), blocks, frames,
           dim, heads, size,
           tal_threads_get(), 1000.0 * (fwd + bwd) / steps, 1000.0 * best, 1000.0 * cpu / steps,
           1000.0 * best_cpu, 1000.0 * fwd / steps,
           1000.0 * bwd / steps, 1000.0 * bfwd / steps, 1000.0 * bbwd / steps, 1000.0 * bbest,
           plan.consts_bytes + keep + scratch,
           plan.consts_bytes + plan.keep_bytes + plan.scratch_bytes, plan.params_bytes,
           (long long)tal_peak_rss_bytes());
    rc = 0;
done:
    free(v);
    free(f);
    tal_backbone_destroy(bb);
    tal_params_destroy(p);
    return rc;
}
