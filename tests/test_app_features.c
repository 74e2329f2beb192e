/* Training the head alone on pre-extracted features through the re2tal binary: synthetic
 * feature files written here (class-specific channel patterns under noise, sharp boundaries)
 * with annotations in seconds -> re2tal train with data.features -> validation mAP@0.5 on the
 * held-out videos; re2tal infer --features on the same files; ActionFormer's layout ([T, C], no
 * sidecars, the grid in the config); bad feature files and grids named in the errors. */
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "heads/heads.h"

static char g_dir[1024];

#define sh(...) test_sh_in(g_dir, __VA_ARGS__)
#define slurp(name) test_slurp_in(g_dir, name)

enum { C = 8, N_VIDEOS = 64, VAL_EVERY = 4, MAX_GT = 3 };
#define FPS 25.0
#define STRIDE 4.0
#define FRAMES 16.0

/* Time of the centre of feature x: (x * stride + frames / 2) / fps (the sidecar's convention). */
static double feat_time(double x) { return (x * STRIDE + FRAMES / 2) / FPS; }

/* Writes feats/<id>.npy ([C, T], or [T, C] with sidecars left out when actionformer) and the
 * video's annotation entry into anno. Segments of 4..24 positions; class k lights channels 2k
 * and 2k + 1 and a shared "action" channel 6; noise elsewhere. */
static void make_video(int i, int actionformer, char *anno, size_t cap) {
    tal_rng_key k = {77, (uint64_t)i, 0};
    int T = 40 + (int)(tal_rng_uniform(k, 0) * 110); /* some span 2-4 windows of 64 */
    float *x = calloc((size_t)C * T, sizeof *x);
    for (int j = 0; j < C * T; j++) x[j] = 0.3f * tal_rng_normal(k, 100 + (uint64_t)j);
    char id[32], seg_json[1024] = "";
    snprintf(id, sizeof id, "vid_%03d", i);
    int pos = 1, n = 0, want = 1 + (int)(tal_rng_uniform(k, 1) * MAX_GT * (T / 40.0));
    for (int g = 0; g < want; g++) {
        int len = 4 + (int)(tal_rng_uniform(k, 10 + (uint64_t)g) * 21);
        int st = pos + 1 + (int)(tal_rng_uniform(k, 20 + (uint64_t)g) * 8);
        if (st + len > T - 1) break;
        int lab = tal_rng_uniform(k, 30 + (uint64_t)g) < 0.5f ? 0 : 1;
        for (int t = st; t < st + len; t++) {
            x[(2 * lab) * T + t] += 1.5f;
            x[(2 * lab + 1) * T + t] -= 1.0f;
            x[6 * T + t] += 1.0f;
        }
        /* positions [st, st + len) span half a stride either side of their centres */
        double s0 = feat_time(st - 0.5), s1 = feat_time(st + len - 0.5);
        size_t l = strlen(seg_json);
        snprintf(seg_json + l, sizeof seg_json - l,
                 "%s{\"segment\": [%.4f, %.4f], \"label\": \"class_%c\"}", n ? ", " : "", s0, s1,
                 'a' + lab);
        pos = st + len;
        n++;
    }
    char path[1200];
    tal_err err = {0};
    snprintf(path, sizeof path, "%s/feats/%s.npy", g_dir, id);
    cr_assert_eq(tal_features_write(path, x, C, T, actionformer ? TAL_FEAT_TC : TAL_FEAT_CT, &err),
                 TAL_OK, "%s", err.msg);
    double duration = (T * STRIDE) / FPS;
    if (!actionformer) {
        snprintf(path, sizeof path, "%s/feats/%s.json", g_dir, id);
        FILE *f = fopen(path, "w");
        fprintf(f, "{\"layout\": \"CT\", \"channels\": %d, \"length\": %d, \"fps\": %g, "
                   "\"stride_frames\": %g, \"frames_per_feature\": %g, \"offset_frames\": %g, "
                   "\"duration_s\": %.4f}\n", C, T, FPS, STRIDE, FRAMES, FRAMES / 2, duration);
        fclose(f);
    }
    size_t l = strlen(anno);
    snprintf(anno + l, cap - l,
             "%s\"%s\": {\"subset\": \"%s\", \"duration\": %.4f, \"fps\": %g, "
             "\"annotations\": [%s]}", i ? ",\n" : "", id,
             i % VAL_EVERY == 0 ? "validation" : "training", duration, FPS, seg_json);
    free(x);
}

static void make_set(int actionformer) {
    cr_assert_eq(sh("mkdir -p feats"), 0);
    size_t cap = 1 << 20;
    char *anno = calloc(1, cap);
    strcpy(anno, "{\"database\": {\n");
    for (int i = 0; i < N_VIDEOS; i++) make_video(i, actionformer, anno, cap);
    strcat(anno, "\n}}\n");
    test_write_tmp_in(g_dir, "anno.json", anno);
    free(anno);
}

static const char *CONFIG =
    "{\n"
    "  \"data\": {\"annotations\": \"anno.json\", \"features\": \"feats\", \"feature_dim\": 8,"
    " \"sampler\": \"truncate\", \"trunc_len\": 64, \"trunc_thresh\": 0.5,"
    " \"window_overlap\": 0.5, \"prefetch\": 2},\n"
    "  \"head\": {\"channels\": 16, \"n_head\": 2, \"arch\": [2, 1, 3],"
    " \"regression_range\": [[0, 4], [4, 8], [8, 16], [16, 10000]], \"init_loss_norm\": 20,"
    " \"max_seg_num\": 50, \"nms_sigma\": 0.5},\n"
    "  \"optim\": {\"epochs\": 25, \"batch_size\": 4, \"lr_head\": 0.005, \"warmup_epochs\": 1,"
    " \"min_lr\": 0.02, \"ema_decay\": 0.99},\n"
    "  \"train\": {\"seed\": 5, \"eval_every\": 5, \"eval_start\": 25},\n"
    "  \"eval\": {\"tiou\": [0.3, 0.5, 0.7]}\n"
    "}\n";

#define BIN RE2TAL_BIN " --threads 1"

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "%s/features_%d", TEST_TMP, (int)getpid());
    mkdir(g_dir, 0755);
    test_require_binary();
    test_write_tmp_in(g_dir, "feat.json", CONFIG);
}

static void teardown(void) { sh("cd .. && rm -rf '%s'", g_dir); }

TestSuite(app_features, .init = setup, .fini = teardown, .timeout = 600);

/* text has "key": value (any spacing; value as written, e.g. "8" or "\"feats\""). */
static int json_has(const char *text, const char *key, const char *value) {
    char k[128];
    snprintf(k, sizeof k, "\"%s\":", key);
    for (const char *p = text ? strstr(text, k) : NULL; p; p = strstr(p + 1, k)) {
        const char *v = p + strlen(k);
        while (*v == ' ' || *v == '\t') v++;
        if (!strncmp(v, value, strlen(value))) return 1;
    }
    return 0;
}

/* The last validation's mAP@0.5 in a run's log.jsonl. */
static double val_map05(const char *run) {
    char name[256];
    snprintf(name, sizeof name, "%s/log.jsonl", run);
    char *log = slurp(name);
    cr_assert_not_null(log, "no %s", name);
    double v = -1;
    for (char *p = strstr(log, "\"val_map_0.5\": "); p; p = strstr(p + 1, "\"val_map_0.5\": "))
        v = atof(p + strlen("\"val_map_0.5\": "));
    free(log);
    return v;
}

Test(app_features, head_alone_on_features_reaches_map50_090) {
    make_set(0);
    cr_assert_eq(sh(BIN " train feat.json --set train.out_dir=run --quiet 2> train.err"), 0, "%s",
                 slurp("train.err"));
    double map = val_map05("run");
    cr_log_info("feature training: held-out mAP@0.5 = %.3f\n", map);
    cr_assert(map >= 0.9, "held-out mAP@0.5 %.3f after feature training (want >= 0.9)", map);
    /* the run folder keeps the feature setup; infer --features reproduces validation */
    char *cfg = slurp("run/config.json");
    cr_expect(json_has(cfg, "features", "\"feats\"") && json_has(cfg, "feature_dim", "8"), "%s",
              cfg);
    free(cfg);
    cr_assert_eq(sh(BIN " infer --model run --features feats/vid_000.npy feats/vid_004.npy "
                        "--out res.json --quiet"), 0);
    char *res = slurp("res.json"), *val = slurp("run/val_results.json");
    cr_assert(res && strstr(res, "\"vid_000\"") && strstr(res, "\"vid_004\""), "%s", res);
    /* same weights (best/ = the EMA weights validated), same windows: the same first detection */
    char *a = strstr(res, "\"vid_000\""), *b = val ? strstr(val, "\"vid_000\"") : NULL;
    cr_assert_not_null(b);
    cr_expect_eq(strncmp(a, b, 120), 0, "infer --features %.120s\nvalidation %.120s", a, b);
    /* a folder gives its .npy files (not the sidecars), --features before or after it */
    cr_assert_eq(sh(BIN " infer --model run feats --features --out all.json --quiet"), 0);
    char *all = slurp("all.json");
    cr_assert_not_null(all);
    char *c = strstr(all, "\"vid_000\"");
    cr_expect(c && !strncmp(a, c, 120) && strstr(all, "\"vid_063\""), /* exit 0: no sidecar */
              "%.300s", all);
    free(all);
    free(res);
    free(val);
}

Test(app_features, actionformer_layout_with_the_grid_in_the_config) {
    make_set(1);
    /* [T, C] files without sidecars: the grid must come from the config */
    int rc = sh(BIN " train feat.json --set train.out_dir=run --set optim.epochs=1 --quiet "
                    "2> e1");
    char *e1 = slurp("e1");
    cr_expect_eq(rc, 1);
    cr_expect(e1 && strstr(e1, "data.feature_stride"), "the missing key must be named: %s", e1);
    free(e1);
    cr_assert_eq(sh(BIN " train feat.json --set train.out_dir=run --set data.feature_layout=TC "
                        "--set data.feature_stride=4 --set data.feature_frames=16 "
                        "--set data.feature_dim=0 --set optim.epochs=25 --quiet 2> e2"),
                 0, "%s", slurp("e2"));
    double map = val_map05("run");
    cr_log_info("ActionFormer layout: held-out mAP@0.5 = %.3f\n", map);
    cr_expect(map >= 0.9, "mAP@0.5 %.3f (want >= 0.9)", map);
    char *cfg = slurp("run/config.json");
    cr_expect(json_has(cfg, "feature_dim", "8"), "read from the files and kept: %s", cfg);
    free(cfg);
}

Test(app_features, bad_feature_files_are_named) {
    make_set(0);
    /* wrong channel count in one file */
    tal_err err = {0};
    float x[5 * 20] = {0};
    char path[1200];
    snprintf(path, sizeof path, "%s/feats/vid_001.npy", g_dir);
    cr_assert_eq(tal_features_write(path, x, 5, 20, TAL_FEAT_CT, &err), TAL_OK);
    int rc = sh(BIN " train feat.json --set train.out_dir=run --quiet 2> e");
    char *e = slurp("e");
    cr_expect_eq(rc, 1);
    cr_expect(e && strstr(e, "vid_001.npy") && strstr(e, "8"), "%s", e);
    free(e);
    /* a sidecar that disagrees with the config */
    make_set(0);
    rc = sh(BIN " train feat.json --set train.out_dir=run --set data.feature_stride=8 --quiet "
            "2> e");
    e = slurp("e");
    cr_expect_eq(rc, 1);
    cr_expect(e && strstr(e, "data.feature_stride 8") && strstr(e, "stride_frames 4"), "%s", e);
    free(e);
    /* a truncated file */
    make_set(0);
    cr_assert_eq(sh("head -c 300 feats/vid_002.npy > t && mv t feats/vid_002.npy"), 0);
    rc = sh(BIN " train feat.json --set train.out_dir=run --quiet 2> e");
    e = slurp("e");
    cr_expect_eq(rc, 1);
    cr_expect(e && strstr(e, "vid_002.npy") && strstr(e, "truncated"), "%s", e);
    free(e);
    /* backbone weights make no sense for a feature run */
    rc = sh(BIN " train feat.json --set train.pretrained=x.safetensors --quiet 2> e");
    e = slurp("e");
    cr_expect_eq(rc, 1);
    cr_expect(e && strstr(e, "data.features"), "%s", e);
    free(e);
}
