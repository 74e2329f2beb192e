/* app/'s own file readers and writers, compiled into this test (app/ is a program): a checkpoint
 * is never written from NaN or Inf weights, EMA weights included, not even under
 * --allow-nonfinite, and the one before stays whole; run configs read back what they wrote,
 * inputs fuzz_app_config found included; whole-video inference names a video that decoded with
 * trouble. */
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/checkpoint.h"
#include "app/classifier.h"
#include "app/model_dir.h"
#include "app/run_config.h"

static tal_params *two_params(void) {
    tal_params *p = tal_params_create();
    int g = tal_params_add_group(p, "all", 1, 0);
    tal_params_declare(p, "a.weight", 2, (int64_t[]){2, 2}, g, 1);
    tal_params_declare(p, "b.bias", 1, (int64_t[]){3}, g, 1);
    tal_err err = {0};
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, &err), TAL_OK);
    tal_fill(tal_params_find(p, "a.weight")->value, 1.5f);
    return p;
}

Test(app_files, nonfinite_weights_are_never_saved) {
    char run[1024], cmd[1200];
    snprintf(run, sizeof run, "%s/ckpt_%d", TEST_TMP, (int)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", run, run);
    cr_assert_eq(system(cmd), 0);
    tal_params *p = two_params();
    tal_ema *ema = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_ema_create(&ema, p, 0.9f, &err), TAL_OK);
    tal_train_state st = {1, 2, 3, 4, 5, -1, -1};
    cr_assert_eq(tal_ckpt_save(run, "last", p, NULL, ema, &st, &err), TAL_OK, "%s", err.msg);

    tal_params_find(p, "b.bias")->value.data[1] = NAN;
    tal_params_find(p, "a.weight")->value.data[3] = INFINITY;
    tal_safetensors_allow_nonfinite(1); /* no way around it */
    st.step = 99;
    cr_assert_eq(tal_ckpt_save(run, "last", p, NULL, ema, &st, &err), TAL_EFORMAT);
    cr_expect(strstr(err.msg, "/last: not saved: model.safetensors: tensor 'a.weight': 1 "
                              "non-finite value (first at index 3: inf); 2 of 2 tensors"),
              "%s", err.msg);
    tal_params_find(p, "b.bias")->value.data[1] = 0;
    tal_params_find(p, "a.weight")->value.data[3] = 0;
    tal_ema_value(ema, 1).data[0] = NAN; /* the EMA weights are checked too */
    cr_assert_eq(tal_ckpt_save(run, "last", p, NULL, ema, &st, &err), TAL_EFORMAT);
    cr_expect(strstr(err.msg, "not saved: ema.safetensors: tensor 'b.bias'"), "%s", err.msg);
    tal_safetensors_allow_nonfinite(0);

    char dir[1200];
    cr_assert_eq(tal_ckpt_find(dir, sizeof dir, run, "last", &err), TAL_OK, "%s", err.msg);
    tal_train_state back;
    cr_assert_eq(tal_ckpt_read_state(dir, &back, &err), TAL_OK, "%s", err.msg);
    cr_expect_eq(back.step, 3, "the checkpoint before stays");
    tal_ema_destroy(ema);
    tal_params_destroy(p);
}

/* fuzz_app_config: a "sampler" of 128 characters was copied into its 16-byte field, over
 * frames, resize_len, ... trunc_thresh (NaN), and the config as run no longer loaded (the
 * sampler is now one of two names; the subsets, 32 bytes, had the same flaw). */
Test(app_files, long_strings_stay_in_their_fields) {
    char path[1024], json[2048], name[200];
    snprintf(path, sizeof path, "%s/files_%d_config.json", TEST_TMP, (int)getpid());
    memset(name, 'r', 128);
    name[128] = 0;
    snprintf(json, sizeof json, "{\"data\": {\"train_subset\": \"%s\", \"val_subset\": \"%s\", "
             "\"frames\": 16}}", name, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(json, f);
    fclose(f);
    tal_run_config c;
    tal_run_config_default(&c);
    double trunc_thresh = c.trunc_thresh, overlap = c.window_overlap;
    tal_err err = {0};
    cr_assert_eq(tal_run_config_load(&c, path, &err), TAL_OK, "%s", err.msg);
    cr_expect_str_eq(c.train_subset, name);
    cr_expect_str_eq(c.val_subset, name);
    cr_expect_str_eq(c.sampler, "resize");
    cr_expect_eq(c.frames, 16);
    cr_expect_eq(c.trunc_thresh, trunc_thresh);
    cr_expect_eq(c.window_overlap, overlap);
    char *text = tal_run_config_to_json(&c);
    tal_run_config again;
    tal_run_config_default(&again);
    cr_expect_eq(tal_run_config_parse(&again, text, "again", &err), TAL_OK, "%s", err.msg);
    cr_expect_str_eq(again.val_subset, name);
    free(text);
}

static const char *TINY_RUN =
    "{\"data\": {\"sampler\": \"resize\", \"frames\": 16, \"resize_len\": 8, \"short_side\": 32, "
    "\"crop\": 32}, \"backbone\": {\"preset\": \"swin_small_test\", \"embed_dim\": 16, "
    "\"depths\": [2, 2], \"heads\": [1, 2], \"window\": [4, 4, 4], \"mode\": \"reversible\"}, "
    "\"head\": {\"channels\": 32, \"n_head\": 2, \"arch\": [2, 1, 2], \"max_seg_num\": 20}}";

/* Runs a random tiny model over path; returns the status, the warning in *msg. */
static tal_status infer_one(const char *path, char *msg, size_t size) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s/files_%d_tiny.json", TEST_TMP, (int)getpid());
    FILE *f = fopen(cfg, "w");
    cr_assert_not_null(f);
    fputs(TINY_RUN, f);
    fclose(f);
    tal_run_config rc;
    tal_run_config_default(&rc);
    tal_err err = {0};
    cr_assert_eq(tal_run_config_load(&rc, cfg, &err), TAL_OK, "%s", err.msg);
    tal_model m = {0};
    cr_assert_eq(tal_model_create(&m, &rc, 2, 1, &err), TAL_OK, "%s", err.msg);
    tal_video_anno v = {0};
    cr_assert_eq(tal_video_anno_probe(&v, path, &err), TAL_OK, "%s", err.msg);
    tal_tensor buf = test_tensor(1, (int64_t[]){3LL * m.clip_frames * m.crop * m.crop});
    tal_dets dets = {0};
    tal_err e = {0};
    tal_status st = tal_model_infer_video(&m, &rc, path, &v, buf, &dets, &e);
    snprintf(msg, size, "%s", e.msg);
    tal_dets_free(&dets);
    free(v.id);
    tal_model_destroy(&m);
    return st;
}

Test(app_files, inference_names_a_video_that_decoded_with_trouble) {
    char clean[1024], flipped[1024], cmd[4096], msg[512];
    snprintf(clean, sizeof clean, "%s/files_%d_clean.mp4", TEST_TMP, (int)getpid());
    snprintf(flipped, sizeof flipped, "%s/files_%d_flipped.mp4", TEST_TMP, (int)getpid());
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -f lavfi -i testsrc2=size=64x48:rate=25:"
             "duration=4 -c:v libx264 -g 10 -pix_fmt yuv420p -movflags +faststart '%s'", clean);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(infer_one(clean, msg, sizeof msg), TAL_OK);
    cr_expect_str_eq(msg, "", "a clean video: no warning");
    test_flip_bits(clean, flipped, 40, 7); /* the index stays whole at the front */
    cr_assert_eq(infer_one(flipped, msg, sizeof msg), TAL_OK, "answered, with a warning");
    cr_expect(strstr(msg, "files_") && strstr(msg, "_flipped.mp4: decoded with trouble, ") &&
                  strstr(msg, "corrupt packets skipped"),
              "%s", msg);
}

/* fuzz_app_config: a score of 5e42 is a finite double but an infinite float. */
Test(app_files, classifier_scores_beyond_float_are_errors) {
    const char *path = test_write_tmp("files_classifier.json",
                                      "{\"class\": [\"a\", \"b\"], \"results\": {\"v1\": [0.5, "
                                      "5444444444444444444444444444444444444444444], "
                                      "\"v2\": [0.25, 3.4e38]}}");
    tal_video_classifier *c = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_classifier_load(&c, path, &err), TAL_OK, "%s", err.msg);
    float s[2];
    cr_expect_eq(tal_classifier_scores(c, "v1", s, &err), TAL_EINVAL);
    cr_expect(strstr(err.msg, "results.v1[1]: expected a finite score"), "%s", err.msg);
    cr_expect_eq(tal_classifier_scores(c, "v2", s, &err), TAL_OK, "%s", err.msg);
    cr_expect(isfinite(s[1]));
    tal_classifier_destroy(c);
}
