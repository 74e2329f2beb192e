/* app/cmd_plan.c: `re2tal plan CONFIG`: the memory a backbone needs for a clip shape, in vanilla
 * and reversible mode, computed before anything is allocated (the model's own allocation
 * sequence run on counting arenas); --measure runs one training step and prints the real
 * high-water marks beside the plan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "app/checkpoint.h"
#include "app/commands.h"
#include "app/progress.h"
#include "app/run_config.h"
#include "backbone/backbone.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal plan CONFIG [--batch B] [--frames T] [--size S | --height H --width W]"
            "\n                   [--measure] [--json]\n\n"
            "Prints the bytes for parameters, gradients, AdamW state and peak activations of a\n"
            "backbone in vanilla and reversible mode, without allocating them. CONFIG is a\n"
            "preset (" TAL_BACKBONE_PRESETS ")\n"
            "or a JSON file\n"
            "(the backbone keys, or a run config with a \"backbone\" section: then the clip\n"
            "shape is the one training uses, data.frames or data.trunc_len by data.crop). With\n"
            "chunk_frames set, activations are those of one chunk.\n\n"
            "options:\n"
            "  --batch B     clips per step (1)\n"
            "  --frames T    frames per clip (32, or the run config's)\n"
            "  --size S      frame height = width (224, or the run config's data.crop)\n"
            "  --measure     also run one training step per mode and print the measured arena\n"
            "                high-water marks (allocates; use small shapes)\n"
            "  --json        one JSON object per mode instead of the table\n");
}

/* A run config (with a "backbone" section) also gives the clip shape training uses. */
static tal_status load_config(tal_backbone_config *cfg, const char *arg, int *frames, int *crop,
                              tal_err *err) {
    if (tal_backbone_config_preset(cfg, arg, NULL) == TAL_OK) return TAL_OK;
    char *text = tal_read_file(arg, err);
    if (!text) /* say both: a mistyped preset reads as a missing file */
        return tal_err_prefix(err, "not a preset (" TAL_BACKBONE_PRESETS "), nor a config file");
    tal_status rc;
    cJSON *root = cJSON_Parse(text);
    cJSON *sub = root ? cJSON_GetObjectItemCaseSensitive(root, "backbone") : NULL;
    if (sub && cJSON_IsObject(sub)) {
        char *s = cJSON_PrintUnformatted(sub);
        rc = tal_backbone_config_from_json(cfg, s, err);
        free(s);
        tal_run_config run;
        if (!rc && !(rc = tal_run_config_read(&run, arg, NULL, 0, err))) {
            *frames = strcmp(run.sampler, "truncate") ? run.frames : run.trunc_len;
            *crop = run.crop;
        }
    } else {
        rc = tal_backbone_config_from_json(cfg, text, err);
    }
    cJSON_Delete(root);
    free(text);
    if (rc) tal_err_prefix(err, "%s", arg);
    return rc;
}

/* One training step with random weights: the arenas' high-water marks. */
static tal_status measure(const tal_backbone_config *cfg, int B, int T, int H, int W,
                          size_t *keep, size_t *scratch, tal_err *err) {
    tal_params *p = tal_params_create();
    tal_params_add_group(p, "backbone", 1.0f, 0.0f);
    tal_backbone *bb = NULL;
    tal_status rc = tal_backbone_create(&bb, cfg, p, 0, 0, err);
    if (!rc) rc = tal_params_allocate(p, TAL_DEV_CPU, err);
    if (!rc) rc = tal_backbone_prepare(bb, B, T, H, W, err);
    if (!rc) {
        tal_backbone_init(bb, 1);
        int Tc = cfg->chunk_frames > 0 && cfg->chunk_frames < T ? cfg->chunk_frames : T;
        int64_t C = tal_backbone_out_channels(cfg), To = tal_backbone_out_frames(cfg, Tc);
        float *v = calloc((size_t)B * 3 * Tc * H * W, sizeof(float));
        float *f = calloc((size_t)(B * C * To), sizeof(float));
        if (!v || !f) {
            rc = tal_err_set(err, TAL_ENOMEM, "plan --measure: out of memory");
        } else {
            tal_tensor video = tal_t5(v, B, 3, Tc, H, W), feats = tal_t3(f, B, C, To);
            tal_backbone_forward(bb, feats, video); /* scratch serves inference too */
            tal_backbone_forward_train(bb, feats, video);
            tal_backbone_backward(bb, feats, NULL);
            tal_backbone_high_water(bb, keep, scratch);
        }
        free(v);
        free(f);
    }
    tal_backbone_destroy(bb);
    tal_params_destroy(p);
    return rc;
}

static double mib(size_t b) { return (double)b / 1048576.0; }

static int cmd_plan(int argc, char **argv) {
    const char *config = NULL;
    int B = 1, T = 0, H = 0, W = 0, do_measure = 0, json = 0; /* 0: from the config */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *dst = !strcmp(a, "--batch")    ? &B
                   : !strcmp(a, "--frames") ? &T
                   : !strcmp(a, "--height") ? &H
                   : !strcmp(a, "--width")  ? &W
                   : !strcmp(a, "--size")   ? &H
                                            : NULL;
        if (tal_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (dst) {
            char *end;
            long n = v ? strtol(v, &end, 10) : 0;
            if (!v || *end || n < 1 || n > 1000000) {
                fprintf(stderr, "re2tal plan: %s wants a positive whole number\n", a);
                return 2;
            }
            *dst = (int)n;
            if (!strcmp(a, "--size")) W = (int)n;
            i++;
        } else if (!strcmp(a, "--measure")) {
            do_measure = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (a[0] == '-' || config) {
            fprintf(stderr, "re2tal plan: unexpected '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            config = a;
        }
    }
    if (!config) {
        usage(stderr);
        return 2;
    }
    tal_backbone_config cfg;
    tal_err err = {0};
    int cfg_frames = 32, cfg_crop = 224;
    if (load_config(&cfg, config, &cfg_frames, &cfg_crop, &err)) {
        fprintf(stderr, "re2tal plan: %s\n", err.msg);
        return 1;
    }
    if (!T) T = cfg_frames;
    if (!H) H = cfg_crop;
    if (!W) W = cfg_crop;
    if (!json)
        printf("backbone %s, clips [%d, 3, %d, %d, %d]%s\n", config, B, T, H, W,
               cfg.chunk_frames > 0 ? " (activations per chunk)" : "");
    static const tal_stage_mode modes[2] = {TAL_STAGE_VANILLA, TAL_STAGE_REVERSIBLE};
    for (int m = 0; m < 2; m++) {
        tal_backbone_config c = cfg;
        for (int s = 0; s < TAL_BACKBONE_MAX_STAGES; s++) c.mode[s] = modes[m];
        tal_backbone_plan pl;
        if (tal_backbone_plan_memory(&pl, &c, B, T, H, W, &err)) {
            fprintf(stderr, "re2tal plan: %s\n", err.msg);
            return 1;
        }
        size_t act = pl.consts_bytes + pl.keep_bytes + pl.scratch_bytes;
        size_t total = pl.params_bytes + pl.grads_bytes + pl.optim_bytes + act;
        size_t mk = 0, ms = 0;
        if (do_measure && measure(&c, B, T, H, W, &mk, &ms, &err)) {
            fprintf(stderr, "re2tal plan: --measure: %s\n", err.msg);
            return 1;
        }
        const char *name = tal_stage_mode_name(modes[m]);
        if (json) {
            printf("{\"mode\": \"%s\", \"batch\": %d, \"frames\": %d, \"height\": %d, "
                   "\"width\": %d, \"params_bytes\": %zu, \"grads_bytes\": %zu, "
                   "\"optim_bytes\": %zu, \"consts_bytes\": %zu, \"keep_bytes\": %zu, "
                   "\"scratch_bytes\": %zu, \"peak_activation_bytes\": %zu, "
                   "\"inference_bytes\": %zu, \"total_train_bytes\": %zu",
                   name, B, T, H, W, pl.params_bytes, pl.grads_bytes, pl.optim_bytes,
                   pl.consts_bytes, pl.keep_bytes, pl.scratch_bytes, act,
                   pl.consts_bytes + pl.infer_bytes, total);
            if (do_measure)
                printf(", \"measured_keep_bytes\": %zu, \"measured_scratch_bytes\": %zu", mk, ms);
            printf("}\n");
            continue;
        }
        printf("\n%s:\n", name);
        printf("  parameters          %10.1f MiB\n", mib(pl.params_bytes));
        printf("  gradients           %10.1f MiB\n", mib(pl.grads_bytes));
        printf("  AdamW state         %10.1f MiB\n", mib(pl.optim_bytes));
        printf("  masks, index maps   %10.1f MiB\n", mib(pl.consts_bytes));
        printf("  kept for backward   %10.1f MiB\n", mib(pl.keep_bytes));
        printf("  working set (peak)  %10.1f MiB\n", mib(pl.scratch_bytes));
        printf("  peak activations    %10.1f MiB\n", mib(act));
        printf("  training total      %10.1f MiB\n", mib(total));
        printf("  inference peak      %10.1f MiB (activations)\n",
               mib(pl.consts_bytes + pl.infer_bytes));
        if (do_measure)
            printf("  measured            kept %.1f MiB (plan %+.2f%%), working set %.1f MiB "
                   "(plan %+.2f%%)\n",
                   mib(mk), mk ? 100.0 * ((double)pl.keep_bytes - (double)mk) / (double)mk : 0,
                   mib(ms), ms ? 100.0 * ((double)pl.scratch_bytes - (double)ms) / (double)ms : 0);
    }
    return 0;
}
TAL_COMMAND("plan", 600, "memory plan of a backbone (vanilla vs reversible) before allocating",
            cmd_plan)
