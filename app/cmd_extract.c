/* app/cmd_extract.c: `re2tal extract`: backbone features per video as <id>.npy + a JSON sidecar
 * (time of every feature, sampling, backbone, checkpoint hash), either from a run folder (its
 * backbone, its sampler) or from a backbone checkpoint alone (--backbone CKPT --preset NAME),
 * for training a head on features (data.features). Under mpirun each rank extracts a share of
 * the videos balanced by duration. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "app/commands.h"
#include "app/device.h"
#include "app/dist.h"
#include "app/extract.h"
#include "app/model_dir.h"
#include "app/progress.h"
#include "app/video_list.h"
#include "app/weights.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal extract --backbone CKPT.safetensors --preset NAME VIDEO_OR_FOLDER...\n"
            "                      [--list FILE] --out DIR\n"
            "                      [--mode auto|vanilla|reversible] [--set KEY=VALUE ...]\n"
            "                      [--every N | --fps F] [--frames-per-feature P] [--stride S]\n"
            "                      [--window W] [--size S] [--crop C] [--layout CT|TC] [--strict]\n"
            "                      [--device D] [--quiet] [--allow-nonfinite]\n"
            "       re2tal extract --model RUN_DIR VIDEO_OR_FOLDER... [--list FILE] --out DIR\n"
            "                      [--layout CT|TC] [--device D] [--quiet]\n"
            "                      [--allow-nonfinite]\n\n"
            "Writes DIR/<id>.npy (float32 features, [C, T] by default, [T, C] with --layout TC,\n"
            "ActionFormer's) and DIR/<id>.json: the time of every feature in seconds (times_s:\n"
            "the centre of the frames it covers, (offset_frames + k * stride_frames) / fps), the\n"
            "sampling, the backbone and its mode, and the checkpoint's SHA-256. Train a head on\n"
            "them with data.features=DIR. Unreadable videos are reported and skipped (exit 1).\n"
            "Videos: files, folders (their video files in name order) and --list FILE (one path\n"
            "per line). Under `mpirun -np N` each rank extracts a share balanced by duration.\n"
            "Weights holding NaN or Inf (a diverged run) are refused unless --allow-nonfinite.\n\n"
            "--backbone: a backbone checkpoint alone (tools/convert_checkpoint.py turns a .pth\n"
            "into safetensors; mmaction2, Video-Swin and OpenTAD names load), no run folder.\n"
            "  --preset NAME  a backbone: " TAL_BACKBONE_PRESETS "\n"
            "  --set KEY=VALUE  changes a backbone key (embed_dim, depths, heads, window, ...:\n"
            "                 configs/README.md \"backbone\")\n"
            "  --mode M       vanilla: the original network (what ordinary Kinetics weights were\n"
            "                 trained as: plain Swin features); reversible: the Re2TAL rewiring\n"
            "                 (same parameters, different features: what the shipped re2swin\n"
            "                 configs train). auto (default): reversible when the checkpoint's\n"
            "                 names are the rewired ones (...inv_block.Fm...), else vanilla\n"
            "  --every N | --fps F   frames sampled: every N-th frame (default 1) or F per second\n"
            "  --frames-per-feature P, --stride S   snippets: feature k is the backbone on the P\n"
            "                 sampled frames from k * S, averaged over time and space (default\n"
            "                 16 and 4: ActionFormer's I3D grid)\n"
            "  --window W     instead: windows of W sampled frames one after another, every\n"
            "                 output step of the backbone a feature (Swin: 2 frames each),\n"
            "                 averaged over space; the last window ends at the video's end\n"
            "  --size S, --crop C   short side resized to S (224), centre crop C x C (S)\n"
            "  --strict       checkpoint tensors the backbone does not use are an error (else\n"
            "                 they are listed by name and skipped)\n"
            "Frames are normalised as in training: RGB 0..255, (x - mean) / std with ImageNet's\n"
            "mean 123.675 116.28 103.53 and std 58.395 57.12 57.375.\n\n"
            "--device cpu|cuda|cuda:N: where the backbone runs (default: the run's `device` key with\n"
            "--model, else the CPU); each clip goes up, its features come back (fp32).\n\n"
            "--model: a run folder's backbone and sampler: truncate configs give consecutive\n"
            "windows of data.trunc_len frames every data.frame_stride-th frame; resize configs\n"
            "one window of data.frames frames spread over the whole video.\n");
}

typedef struct args {
    const char *model, *ckpt, *preset, *mode, *out;
    const char **sets;
    tal_video_list videos;
    int n_sets, quiet, strict;
    tal_extract_opts o;
} args;

static int number(const char *opt, const char *v, double lo, double *out) {
    char *end;
    double x = v ? strtod(v, &end) : 0;
    if (!v || *end || !(x >= lo) || x > 1e9) {
        fprintf(stderr, "re2tal extract: %s wants a number >= %g\n", opt, lo);
        return 0;
    }
    *out = x;
    return 1;
}

/* 0: ok, 1: --help given, 2: usage error, 3: a bad folder or list (err). */
static int parse(args *a, int argc, char **argv, tal_err *err) {
    a->sets = calloc((size_t)argc + 1, sizeof *a->sets);
    a->mode = "auto";
    a->o = (tal_extract_opts){.every = 0, .frames_per_feature = 16, .stride = 4,
                              .short_side = 224, .layout = TAL_FEAT_CT};
    double every = 0, fps = 0, fpf = 16, stride = 4, window = 0, size = 224, crop = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1, takes = 1, dev_ok;
        if (tal_is_help(o)) return 1;
        if (tal_device_option_parse("extract", argc, argv, &i, &dev_ok)) {
            if (!dev_ok) return 2;
            continue;
        }
        if (!strcmp(o, "--model")) a->model = v;
        else if (!strcmp(o, "--backbone")) a->ckpt = v;
        else if (!strcmp(o, "--preset")) a->preset = v;
        else if (!strcmp(o, "--mode")) a->mode = v;
        else if (!strcmp(o, "--out")) a->out = v;
        else if (!strcmp(o, "--list") && v) {
            if (tal_video_list_add_file(&a->videos, v, err)) return 3;
        }
        else if (!strcmp(o, "--set") && v) a->sets[a->n_sets++] = v;
        else if (!strcmp(o, "--every")) ok = number(o, v, 1, &every);
        else if (!strcmp(o, "--fps")) ok = number(o, v, 1e-3, &fps);
        else if (!strcmp(o, "--frames-per-feature")) ok = number(o, v, 1, &fpf);
        else if (!strcmp(o, "--stride")) ok = number(o, v, 1, &stride);
        else if (!strcmp(o, "--window")) ok = number(o, v, 1, &window);
        else if (!strcmp(o, "--size")) ok = number(o, v, 1, &size);
        else if (!strcmp(o, "--crop")) ok = number(o, v, 1, &crop);
        else if (!strcmp(o, "--layout")) {
            int l = v ? tal_feat_layout_parse(v) : -1;
            ok = l == TAL_FEAT_TC || l == TAL_FEAT_CT;
            if (!ok) fprintf(stderr, "re2tal extract: --layout wants CT or TC\n");
            a->o.layout = (tal_feat_layout)l;
        } else if (!strcmp(o, "--quiet")) {
            a->quiet = 1, takes = 0;
        } else if (!strcmp(o, "--strict")) {
            a->strict = 1, takes = 0;
        } else if (o[0] == '-') {
            fprintf(stderr, "re2tal extract: unknown option '%s'\n", o);
            return 2;
        } else {
            if (tal_video_list_add(&a->videos, o, err)) return 3;
            takes = 0;
        }
        if (!ok || (takes && !v)) {
            if (ok) fprintf(stderr, "re2tal extract: %s needs a value\n", o);
            return 2;
        }
        i += takes;
    }
    if (every > 0 && fps > 0) {
        fprintf(stderr, "re2tal extract: --every or --fps, not both\n");
        return 2;
    }
    a->o.every = fps > 0 ? 0 : every > 0 ? (int)every : 1;
    a->o.fps = fps;
    a->o.frames_per_feature = (int)fpf;
    a->o.stride = (int)stride;
    a->o.window = (int)window;
    a->o.short_side = (int)size;
    a->o.crop = crop > 0 ? (int)crop : (int)size;
    if (a->o.crop > a->o.short_side) {
        fprintf(stderr, "re2tal extract: --crop %d is larger than --size %d\n", a->o.crop,
                a->o.short_side);
        return 2;
    }
    if (!a->out || !a->videos.n || !!a->model == !!a->ckpt || (a->ckpt && !a->preset)) {
        fprintf(stderr, "re2tal extract: give --out DIR, videos, and either --model RUN_DIR or "
                        "--backbone CKPT with --preset NAME\n");
        return 2;
    }
    if (strcmp(a->mode, "auto") && strcmp(a->mode, "vanilla") && strcmp(a->mode, "reversible")) {
        fprintf(stderr, "re2tal extract: --mode wants auto, vanilla or reversible\n");
        return 2;
    }
    return 0;
}

/* The backbone section: {"preset": NAME, "mode": MODE, KEY: VALUE...} (values as JSON, else
 * strings). */
static char *backbone_json(const args *a, const char *mode) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "preset", a->preset);
    for (int i = 0; i < a->n_sets; i++) {
        const char *eq = strchr(a->sets[i], '='), *key = a->sets[i];
        if (!eq) continue;
        if (!strncmp(key, "backbone.", 9)) key += 9;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(eq - key), key);
        cJSON *v = cJSON_Parse(eq + 1);
        if (!v) v = cJSON_CreateString(eq + 1);
        cJSON_DeleteItemFromObjectCaseSensitive(o, name);
        cJSON_AddItemToObject(o, name, v);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "mode");
    cJSON_AddStringToObject(o, "mode", mode);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* "reversible" if the checkpoint names the rewired blocks (it was trained rewired). */
static tal_status detect_mode(const char *path, const char **mode, tal_err *err) {
    tal_tensor_set set = {0};
    tal_status st = tal_safetensors_read(&set, path, err);
    *mode = "vanilla";
    for (int i = 0; !st && i < set.count; i++)
        if (strstr(set.items[i].name, "inv_block.")) *mode = "reversible";
    tal_tensor_set_free(&set);
    return st;
}

/* What every sidecar says of the weights: checkpoint, its hash, the backbone section. */
static char *weights_json(const char *ckpt, const char *bb_json, const char *run,
                          tal_err *err) {
    char hex[65];
    if (tal_file_sha256(ckpt, hex, err)) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "backbone", cJSON_Parse(bb_json));
    cJSON_AddStringToObject(o, "checkpoint", ckpt);
    cJSON_AddStringToObject(o, "checkpoint_sha256", hex);
    if (run) cJSON_AddStringToObject(o, "run", run);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

typedef struct source {
    tal_params *params;         /* --backbone: the store of bb */
    tal_backbone *bb;
    tal_loaded_model lm;        /* --model */
    char *extra;
} source;

static tal_status open_backbone(source *s, args *a, tal_err *err) {
    const char *mode = a->mode, *why = "";
    tal_status st = TAL_OK;
    if (!strcmp(mode, "auto")) {
        if ((st = detect_mode(a->ckpt, &mode, err))) return st;
        why = !strcmp(mode, "reversible") ? ", auto: the checkpoint names rewired blocks"
                                          : ", auto: the checkpoint has ordinary names (a re2tal "
                                            "run's reversible weights: --mode reversible)";
    }
    char *json = backbone_json(a, mode);
    tal_backbone_config cfg;
    if ((st = tal_backbone_config_from_json(&cfg, json, err))) {
        tal_err_prefix(err, "backbone");
        free(json);
        return st;
    }
    s->params = tal_params_create();
    int g = tal_params_add_group(s->params, "backbone", 1, 0);
    /* loaded on the host, then moved to --device (the backbone prepares on its params' device) */
    tal_device_spec dev = {TAL_DEV_CPU, 0};
    const char *want = tal_device_override();
    if (want && (st = tal_device_spec_parse(&dev, want, err))) return st;
    if (!(st = tal_backbone_create(&s->bb, &cfg, s->params, g, g, err)) &&
        !(st = tal_params_allocate(s->params, TAL_DEV_CPU, err)))
        st = tal_weights_load(s->params, NULL, a->ckpt, tal_backbone_canonical_name, NULL,
                              !a->strict, stderr, !a->quiet, "backbone", NULL, err);
    if (!st && dev.dev != TAL_DEV_CPU &&
        !(st = tal_device_activate(&dev, tal_precision_of("fp32", 0), err)))
        st = tal_params_move(s->params, dev.dev, err);
    a->o.device = dev.dev;
    if (!st) st = tal_backbone_prepare(s->bb, 1, tal_extract_clip_frames(&a->o), a->o.crop,
                                       a->o.crop, err);
    if (!st && !(s->extra = weights_json(a->ckpt, json, NULL, err))) st = err->code;
    if (!st && !a->quiet)
        fprintf(stderr, "backbone %s, mode %s%s; %s\n", a->preset, mode, why,
                a->o.window > 0 ? "windows" : "snippets");
    free(json);
    return st;
}

/* The run's backbone and sampler: truncate -> windows every frame_stride-th frame; resize ->
 * one window spread over the video. */
static tal_status open_run(source *s, args *a, tal_err *err) {
    tal_status st = tal_model_open_dir(&s->lm, a->model, err);
    if (st) return st;
    const tal_run_config *rc = &s->lm.rc;
    if (s->lm.m.features)
        return tal_err_set(err, TAL_EINVAL, "%s was trained on features (data.features): it has "
                           "no backbone to extract with", a->model);
    s->bb = s->lm.m.bb;
    tal_feat_layout layout = a->o.layout;
    a->o = tal_extract_opts_for_run(rc);
    a->o.layout = layout;
    a->o.device = s->lm.m.dev;
    s->extra = weights_json(s->lm.checkpoint, rc->backbone_json, a->model, err);
    return s->extra ? TAL_OK : err->code;
}

static int cmd_extract(int argc, char **argv) {
    args a = {0};
    tal_err err = {0};
    int pr = parse(&a, argc, argv, &err);
    if (pr) {
        if (pr == 3)
            fprintf(stderr, "re2tal extract: %s\n", err.msg);
        else
            usage(pr == 1 ? stdout : stderr);
        free(a.sets);
        tal_video_list_free(&a.videos);
        return pr == 1 ? 0 : pr == 3 ? 1 : 2;
    }
    tal_shard sh = tal_dist_shard();
    if (sh.rank != 0) a.quiet = 1; /* rank 0 speaks for the job */
    source s = {0};
    int code = 0, n = a.videos.n;
    tal_status st = a.model ? open_run(&s, &a, &err) : open_backbone(&s, &a, &err);
    if (!st && mkdir(a.out, 0755) != 0 && errno != EEXIST)
        st = tal_err_set(&err, TAL_EIO, "%s: cannot create: %s", a.out, strerror(errno));
    if (tal_dist_count(st != TAL_OK) > 0) { /* every rank stops, or none */
        if (st) fprintf(stderr, "re2tal extract: %s\n", err.msg);
        code = 1;
    } else {
        a.o.sidecar_extra = s.extra;
        int *owner = calloc((size_t)n, sizeof *owner), n_mine = 0;
        char **msgs = calloc((size_t)n, sizeof *msgs);
        TAL_ASSERT_MSG(owner && msgs, "out of memory");
        tal_video_list_share(&a.videos, owner);
        for (int i = 0; i < n; i++) n_mine += owner[i] == sh.rank;
        tal_progress bar;
        tal_progress_start(&bar, stderr, "extract", "videos", n_mine, a.quiet || sh.rank != 0);
        for (int i = 0, done = 0; i < n; i++) {
            if (owner[i] != sh.rank) continue;
            tal_err e = {0};
            if (tal_extract_video(s.bb, &a.o, a.videos.paths[i], a.out, &e) != TAL_OK) {
                if (sh.world == 1) tal_progress_message(&bar, "warning: skipped video: %s", e.msg);
                msgs[i] = strdup(e.msg);
                TAL_ASSERT_MSG(msgs[i], "out of memory");
            }
            tal_progress_update(&bar, ++done, NULL);
        }
        tal_progress_finish(&bar, NULL);
        int n_bad = tal_video_list_report_skipped(&a.videos, msgs);
        if (!a.quiet && sh.rank == 0)
            fprintf(stderr, "features of %d video(s) in %s (%d skipped)\n", n - n_bad, a.out,
                    n_bad);
        if (n_bad) code = 1;
        for (int i = 0; i < n; i++) free(msgs[i]);
        free(msgs);
        free(owner);
    }
    free(s.extra);
    if (a.model) {
        tal_model_close_dir(&s.lm);
    } else {
        tal_backbone_destroy(s.bb);
        tal_params_destroy(s.params);
    }
    free(a.sets);
    tal_video_list_free(&a.videos);
    return code;
}
TAL_COMMAND("extract", 65, "write backbone features of videos as .npy (+ time grid sidecars)",
            cmd_extract)
