/* app/cmd_plan.c: `re2tal plan CONFIG`: the memory a backbone needs for a clip shape, in vanilla
 * and reversible mode, on the CPU or a CUDA device, computed before anything is allocated (the
 * model's own allocation sequence run on counting arenas); --measure runs one training step
 * there and prints the real high-water marks (and on a GPU what cudaMemGetInfo saw) beside the
 * plan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "app/checkpoint.h"
#include "app/commands.h"
#include "app/device.h"
#include "app/progress.h"
#include "app/run_config.h"
#include "backbone/backbone.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal plan CONFIG [--batch B] [--frames T] [--size S | --height H --width W]"
            "\n                   [--device cpu|cuda|cuda:N] [--precision fp32|tf32|bf16]"
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
            "  --device D    plan for (and --measure on) the CPU or a CUDA device: on a GPU the\n"
            "                attention backward's scratch differs, and --measure also prints the\n"
            "                CUDA workspaces (cuBLAS' 32 MiB plus the op, bf16-operand and\n"
            "                reduction workspaces, sized by the ops on first use: not planned)\n"
            "                and the device memory the step took (cudaMemGetInfo)\n"
            "  --precision P with --measure on a GPU: the products' mode (bf16 adds the operand\n"
            "                workspace)\n"
            "  --measure     also run one training step per mode and print the measured arena\n"
            "                high-water marks (allocates; use small shapes)\n"
            "  --json        one JSON object per mode instead of the table\n");
}

/* A run config (with a "backbone" section) also gives the clip shape training uses. */
static tal_status load_config(tal_backbone_config *cfg, const char *arg, int *frames, int *crop,
                              tal_err *err) {
    if (tal_backbone_config_preset(cfg, arg, NULL) == TAL_OK) return TAL_OK;
    char found[1200];
    arg = tal_config_locate(arg, found, sizeof found);
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

/* What one training step on a device took. */
typedef struct measured {
    size_t keep, scratch;   /* arena high-water marks */
    size_t io;              /* the clip and the features */
    size_t workspace, workspace_before; /* CUDA workspaces after the step and before the model */
    size_t used, used_before; /* cudaMemGetInfo's used bytes after the step and before the model */
} measured;

/* One training step with random weights on dev: the arenas' high-water marks, and on a GPU
 * the workspaces and the device memory in use. */
static tal_status measure(const tal_backbone_config *cfg, tal_device dev, int B, int T, int H,
                          int W, measured *m, tal_err *err) {
    memset(m, 0, sizeof *m);
    size_t free_b = 0, total_b = 0;
    tal_status rc = dev == TAL_DEV_CUDA ? tal_cuda_mem_info(&free_b, &total_b, err) : TAL_OK;
    if (rc) return rc;
    m->used_before = total_b - free_b;
    m->workspace_before = dev == TAL_DEV_CUDA ? tal_cuda_workspace_bytes() : 0;
    tal_params *p = tal_params_create();
    tal_params_add_group(p, "backbone", 1.0f, 0.0f);
    tal_backbone *bb = NULL;
    tal_arena *io = NULL;
    rc = tal_backbone_create(&bb, cfg, p, 0, 0, err);
    if (!rc) rc = tal_params_allocate(p, TAL_DEV_CPU, err);
    if (!rc) {
        tal_backbone_init(bb, 1); /* on the host, then moved: as a trainer does */
        if (dev != TAL_DEV_CPU) rc = tal_params_move(p, dev, err);
    }
    if (!rc) rc = tal_backbone_prepare(bb, B, T, H, W, err);
    int Tc = cfg->chunk_frames > 0 && cfg->chunk_frames < T ? cfg->chunk_frames : T;
    int64_t C = tal_backbone_out_channels(cfg), To = tal_backbone_out_frames(cfg, Tc);
    int64_t vshape[5] = {B, 3, Tc, H, W}, fshape[3] = {B, C, To};
    m->io = tal_arena_round(sizeof(float) * (size_t)(B * 3 * Tc) * H * W) +
            tal_arena_round(sizeof(float) * (size_t)(B * C * To));
    if (!rc) rc = tal_arena_create(&io, dev, m->io, err);
    if (!rc) {
        /* zero-filled clip and feature gradient: the memory does not depend on the values */
        tal_tensor video = tal_arena_tensor(io, 5, vshape), feats = tal_arena_tensor(io, 3, fshape);
        tal_backbone_forward(bb, feats, video); /* scratch serves inference too */
        tal_backbone_forward_train(bb, feats, video);
        tal_backbone_backward(bb, feats, NULL);
        if (dev == TAL_DEV_CUDA) rc = tal_cuda_synchronize(err);
        tal_backbone_high_water(bb, &m->keep, &m->scratch);
    }
    if (!rc && dev == TAL_DEV_CUDA) {
        m->workspace = tal_cuda_workspace_bytes();
        rc = tal_cuda_mem_info(&free_b, &total_b, err);
        m->used = total_b - free_b;
    }
    tal_arena_destroy(io);
    tal_backbone_destroy(bb);
    tal_params_destroy(p);
    if (rc == TAL_ENOMEM || rc == TAL_EDEVICE)
        tal_err_prefix(err, "a clip [%d, 3, %d, %d, %d] on %s", B, Tc, H, W,
                       dev == TAL_DEV_CUDA ? "the GPU" : "the CPU");
    return rc;
}

static double mib(size_t b) { return (double)b / 1048576.0; }

static int cmd_plan(int argc, char **argv) {
    const char *config = NULL;
    int B = 1, T = 0, H = 0, W = 0, do_measure = 0, json = 0; /* 0: from the config */
    tal_precision prec = TAL_PREC_FP32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *dst = !strcmp(a, "--batch")    ? &B
                   : !strcmp(a, "--frames") ? &T
                   : !strcmp(a, "--height") ? &H
                   : !strcmp(a, "--width")  ? &W
                   : !strcmp(a, "--size")   ? &H
                                            : NULL;
        int ok = 1;
        if (tal_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (tal_device_option_parse("plan", argc, argv, &i, &ok)) {
            if (!ok) return 2;
        } else if (!strcmp(a, "--precision")) {
            const char *names[3] = {"fp32", "tf32", "bf16"};
            int k = 0;
            while (k < 3 && !(v && !strcmp(v, names[k]))) k++;
            if (k == 3) {
                fprintf(stderr, "re2tal plan: --precision wants fp32, tf32 or bf16\n");
                return 2;
            }
            prec = k == 0 ? TAL_PREC_FP32 : k == 1 ? TAL_PREC_TF32 : TAL_PREC_BF16;
            i++;
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
    tal_device_spec spec = {TAL_DEV_CPU, 0};
    const char *dev_text = tal_device_override() ? tal_device_override() : "cpu";
    if (tal_device_spec_parse(&spec, dev_text, &err)) {
        fprintf(stderr, "re2tal plan: %s\n", err.msg);
        return 2;
    }
    if (spec.dev == TAL_DEV_CPU && prec != TAL_PREC_FP32) {
        fprintf(stderr, "re2tal plan: --precision %s needs --device cuda (the CPU computes in "
                        "fp32 only)\n", tal_precision_name(prec));
        return 2;
    }
    if (do_measure && spec.dev == TAL_DEV_CUDA) {
        if (tal_cuda_select(spec.ordinal, &err)) {
            fprintf(stderr, "re2tal plan: --measure on %s: %s\n", dev_text, err.msg);
            return 1;
        }
        tal_precision_set(prec);
    }
    if (!T) T = cfg_frames;
    if (!H) H = cfg_crop;
    if (!W) W = cfg_crop;
    if (!json)
        printf("backbone %s, clips [%d, 3, %d, %d, %d]%s, on %s%s%s\n", config, B, T, H, W,
               cfg.chunk_frames > 0 ? " (activations per chunk)" : "", dev_text,
               spec.dev == TAL_DEV_CUDA && do_measure ? " " : "",
               spec.dev == TAL_DEV_CUDA && do_measure ? tal_cuda_device_name() : "");
    static const tal_stage_mode modes[2] = {TAL_STAGE_VANILLA, TAL_STAGE_REVERSIBLE};
    for (int m = 0; m < 2; m++) {
        tal_backbone_config c = cfg;
        for (int s = 0; s < TAL_BACKBONE_MAX_STAGES; s++) c.mode[s] = modes[m];
        tal_backbone_plan pl;
        if (tal_backbone_plan_memory_on(&pl, &c, spec.dev, B, T, H, W, &err)) {
            fprintf(stderr, "re2tal plan: %s\n", err.msg);
            return 1;
        }
        size_t act = pl.consts_bytes + pl.keep_bytes + pl.scratch_bytes;
        size_t total = pl.params_bytes + pl.grads_bytes + pl.optim_bytes + act;
        measured me;
        if (do_measure && measure(&c, spec.dev, B, T, H, W, &me, &err)) {
            fprintf(stderr, "re2tal plan: --measure: %s\n", err.msg);
            return 1;
        }
        size_t mk = do_measure ? me.keep : 0, ms = do_measure ? me.scratch : 0;
        const char *name = tal_stage_mode_name(modes[m]);
        if (json) {
            printf("{\"mode\": \"%s\", \"device\": \"%s\", \"batch\": %d, \"frames\": %d, "
                   "\"height\": %d, \"width\": %d, \"params_bytes\": %zu, \"grads_bytes\": %zu, "
                   "\"optim_bytes\": %zu, \"consts_bytes\": %zu, \"keep_bytes\": %zu, "
                   "\"scratch_bytes\": %zu, \"peak_activation_bytes\": %zu, "
                   "\"inference_bytes\": %zu, \"total_train_bytes\": %zu",
                   name, dev_text, B, T, H, W, pl.params_bytes, pl.grads_bytes, pl.optim_bytes,
                   pl.consts_bytes, pl.keep_bytes, pl.scratch_bytes, act,
                   pl.consts_bytes + pl.infer_bytes, total);
            if (do_measure)
                printf(", \"measured_keep_bytes\": %zu, \"measured_scratch_bytes\": %zu", mk, ms);
            if (do_measure && spec.dev == TAL_DEV_CUDA)
                printf(", \"precision\": \"%s\", \"measured_workspace_bytes\": %zu, "
                       "\"measured_workspace_before_bytes\": %zu, \"io_bytes\": %zu, "
                       "\"device_used_bytes\": %zu, \"device_used_before_bytes\": %zu",
                       tal_precision_name(prec), me.workspace, me.workspace_before, me.io,
                       me.used, me.used_before);
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
        if (do_measure && spec.dev == TAL_DEV_CUDA) {
            /* what cudaMemGetInfo saw the step take, against the plan (no optimiser ran) plus
             * the clip and the workspaces' growth */
            long long took = (long long)me.used - (long long)me.used_before;
            size_t want = total - pl.optim_bytes + me.io + me.workspace - me.workspace_before;
            printf("  CUDA workspaces     %10.1f MiB (%s, measured)\n", mib(me.workspace),
                   tal_precision_name(prec));
            printf("  device used         %10.1f MiB by the step (cudaMemGetInfo); plan without "
                   "AdamW, with the clip and the workspaces' growth %.1f MiB (%+.2f%%)\n",
                   (double)took / 1048576.0, mib(want),
                   took > 0 ? 100.0 * ((double)want - (double)took) / (double)took : 0);
        }
    }
    return 0;
}
TAL_COMMAND("plan", 600, "memory plan of a backbone (vanilla vs reversible) before allocating",
            cmd_plan)
