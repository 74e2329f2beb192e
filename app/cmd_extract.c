/* app/cmd_extract.c: `re2tal extract --model RUN_DIR VIDEO... --out DIR`: backbone features per
 * video as <id>.npy ([C, T] float32) with <id>.json recording their time grid, for training the
 * head alone on features (feature-based TAL). Under mpirun each rank extracts a share of the
 * videos balanced by duration. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/checkpoint.h"
#include "app/commands.h"
#include "app/device.h"
#include "app/dist.h"
#include "app/model_dir.h"
#include "app/progress.h"
#include "app/video_list.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal extract --model RUN_DIR VIDEO_OR_FOLDER... [--list FILE] --out DIR\n"
            "                      [--device D] [--quiet] [--allow-nonfinite]\n\n"
            "Runs the trained backbone over each video and writes DIR/<id>.npy (float32 [C, T],\n"
            "spatially mean-pooled features) and DIR/<id>.json (channels, length, seconds per\n"
            "feature, frames per feature, duration). Resize configs give one clip spread over the\n"
            "whole video; truncate configs give consecutive windows, concatenated (windows do not\n"
            "see across their edges). Unreadable videos are reported and skipped (exit 1 if any).\n"
            "Videos: files, folders (their video files in name order) and --list FILE (one path\n"
            "per line). Under `mpirun -np N` each rank extracts a share balanced by duration.\n"
            "Weights holding NaN or Inf (a diverged run) are refused unless --allow-nonfinite.\n");
}

/* float32 [rows, cols] C-order .npy, written atomically. */
static tal_status write_npy(const char *path, const float *data, int rows, int cols, tal_err *err) {
    char header[128];
    int n = snprintf(header, sizeof header,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64; /* header block to a multiple of 64 */
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    unsigned short hlen = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fwrite(header, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    size_t count = (size_t)rows * cols;
    int ok = fwrite(data, sizeof(float), count, f) == count;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return tal_err_set(err, TAL_EIO, "%s: write failed", path);
    }
    return TAL_OK;
}

static tal_status extract_one(tal_loaded_model *lm, const char *path, const char *out_dir,
                              tal_tensor video, tal_err *err) {
    tal_model *m = &lm->m;
    const tal_run_config *rc = &lm->rc;
    tal_video_anno v = {0};
    tal_status st = tal_video_anno_probe(&v, path, err);
    if (st) {
        free(v.id);
        return st;
    }
    const char *id = v.id;
    int resize = !strcmp(rc->sampler, "resize");
    tal_run_config wrc = *rc;
    wrc.window_overlap = 0; /* consecutive windows */
    int n_windows = 1;
    if (!resize) {
        tal_window_opts o;
        tal_window_opts_default(&o);
        o.window_len = rc->trunc_len;
        o.window_stride = rc->trunc_len;
        o.frame_stride = rc->frame_stride;
        o.snippet_stride = rc->snippet_stride;
        n_windows = tal_window_count(v.n_frames, &o);
    }
    int T_per = m->feat_len, C = m->feat_ch;
    float *feats = malloc(sizeof(float) * (size_t)C * T_per * n_windows);
    float *clip_feats = malloc(sizeof(float) * (size_t)C * T_per); /* from the device */
    if (!feats || !clip_feats)
        st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory for %d x %d features", path, C,
                         T_per * n_windows);
    int T = 0;
    tal_rng_key key = {0, 0, 0};
    for (int w = 0; w < n_windows && !st; w++) {
        tal_clip clip = {0};
        st = tal_clip_for(&clip, &wrc, &v, 0, w, key, err);
        if (!st) st = tal_clip_load(video, &wrc, path, &clip, 0, key, err);
        if (!st) {
            tal_model_clip_features(m, video, clip_feats);
            /* this window's valid features; the right-aligned last window overlaps the one
             * before it, so its first (T - start) features are already written */
            int valid = resize ? T_per
                               : (int)((int64_t)clip.n_valid_frames * T_per / m->clip_frames);
            int start = resize ? 0
                               : (int)(clip.time.window_start_frame / rc->frame_stride /
                                       (m->clip_frames / T_per));
            int skip = start < T ? T - start : 0;
            for (int c = 0; c < C; c++)
                for (int t = skip; t < valid; t++)
                    feats[(size_t)c * T_per * n_windows + start + t] =
                        clip_feats[(size_t)c * T_per + t];
            if (valid > skip) T = start + valid;
        }
        tal_clip_free(&clip);
    }
    if (!st) { /* compact [C, T_per * n_windows] to [C, T] */
        for (int c = 1; c < C; c++)
            memmove(feats + (size_t)c * T, feats + (size_t)c * T_per * n_windows, sizeof(float) * T);
        char p[1200];
        snprintf(p, sizeof p, "%s/%s.npy", out_dir, id);
        st = write_npy(p, feats, C, T, err);
        if (!st) {
            double frames_per_feat = resize ? (double)v.n_frames / T
                                            : (double)m->clip_frames * rc->frame_stride / T_per;
            char meta[512];
            snprintf(meta, sizeof meta,
                     "{\"video\": \"%s\", \"channels\": %d, \"length\": %d, \"fps\": %.6f, "
                     "\"frames_per_feature\": %.6f, \"seconds_per_feature\": %.6f, "
                     "\"duration_s\": %.6f, \"sampler\": \"%s\"}\n",
                     id, C, T, v.fps, frames_per_feat, v.fps > 0 ? frames_per_feat / v.fps : 0,
                     v.duration_s, rc->sampler);
            snprintf(p, sizeof p, "%s/%s.json", out_dir, id);
            st = tal_write_file_atomic(p, meta, err);
        }
    }
    free(feats);
    free(clip_feats);
    free(v.id);
    return st;
}

static int cmd_extract(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    int quiet = 0;
    tal_shard sh = tal_dist_shard();
    tal_video_list list = {0};
    tal_err err = {0};
    for (int i = 1; i < argc && !err.code; i++) {
        int dev_ok;
        if (tal_device_option_parse("extract", argc, argv, &i, &dev_ok)) {
            if (dev_ok) continue;
            tal_video_list_free(&list);
            return 2;
        }
        if (tal_is_help(argv[i])) {
            usage(stdout);
            tal_video_list_free(&list);
            return 0;
        } else if (!strcmp(argv[i], "--list") && i + 1 < argc) {
            tal_video_list_add_file(&list, argv[++i], &err);
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "re2tal extract: unknown option '%s'\n", argv[i]);
            tal_video_list_free(&list);
            return 2;
        } else {
            tal_video_list_add(&list, argv[i], &err);
        }
    }
    if (err.code) {
        fprintf(stderr, "re2tal extract: %s\n", err.msg);
        tal_video_list_free(&list);
        return 1;
    }
    int n_paths = list.n;
    if (!model || !out || !n_paths) {
        usage(stderr);
        tal_video_list_free(&list);
        return 2;
    }
    tal_loaded_model lm;
    int code = 0, n_bad = 0;
    tal_arena *buf = NULL;
    int failed = tal_model_open_dir(&lm, model, &err) != TAL_OK;
    if (tal_dist_count(failed) > 0) { /* every rank stops, or none */
        if (failed) fprintf(stderr, "re2tal extract: %s\n", err.msg);
        tal_model_close_dir(&lm);
        tal_video_list_free(&list);
        return 1;
    }
    mkdir(out, 0755);
    size_t floats = (size_t)3 * lm.m.clip_frames * lm.m.crop * lm.m.crop;
    tal_status bst = lm.m.dev == TAL_DEV_CPU /* on a device: page-locked, one DMA per window */
                         ? tal_arena_create(&buf, TAL_DEV_CPU, floats * 4 + 64, &err)
                         : tal_arena_create_pinned(&buf, floats * 4 + 64, &err);
    if (bst != TAL_OK) {
        fprintf(stderr, "re2tal extract: %s\n", err.msg);
        tal_dist_abort(1); /* memory on this host: the other ranks would wait at the report */
    } else {
        tal_tensor video = tal_arena_tensor(buf, 1, (int64_t[]){(int64_t)floats});
        int *owner = calloc((size_t)n_paths, sizeof *owner), n_mine = 0;
        char **msgs = calloc((size_t)n_paths, sizeof *msgs);
        TAL_ASSERT_MSG(owner && msgs, "out of memory");
        tal_video_list_share(&list, owner);
        for (int i = 0; i < n_paths; i++) n_mine += owner[i] == sh.rank;
        tal_progress bar;
        tal_progress_start(&bar, stderr, "extract", "videos", n_mine, quiet || sh.rank != 0);
        for (int i = 0, done = 0; i < n_paths; i++) {
            if (owner[i] != sh.rank) continue;
            tal_err e = {0};
            if (extract_one(&lm, list.paths[i], out, video, &e) != TAL_OK) {
                if (sh.world == 1) tal_progress_message(&bar, "warning: skipped video: %s", e.msg);
                msgs[i] = strdup(e.msg);
            }
            tal_progress_update(&bar, ++done, NULL);
        }
        tal_progress_finish(&bar, NULL);
        n_bad = tal_video_list_report_skipped(&list, msgs);
        if (!quiet && sh.rank == 0)
            fprintf(stderr, "features of %d video(s) in %s (%d skipped)\n", n_paths - n_bad, out,
                    n_bad);
        if (n_bad) code = 1;
        for (int i = 0; i < n_paths; i++) free(msgs[i]);
        free(msgs);
        free(owner);
    }
    tal_arena_destroy(buf);
    tal_model_close_dir(&lm);
    tal_video_list_free(&list);
    return code;
}
TAL_COMMAND("extract", 65, "write backbone features of videos as .npy", cmd_extract)
