/* app/'s own file readers and writers, compiled into this test (app/ is a program): a checkpoint
 * is never written from NaN or Inf weights, EMA weights included, not even under
 * --allow-nonfinite, and the one before stays whole; run configs read back what they wrote,
 * inputs fuzz_app_config found included. */
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/checkpoint.h"
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
 * frames, resize_len, ... trunc_thresh (NaN), and the config as run no longer loaded. */
Test(app_files, long_strings_stay_in_their_fields) {
    char path[1024], json[2048], name[200];
    snprintf(path, sizeof path, "%s/files_%d_config.json", TEST_TMP, (int)getpid());
    memset(name, 'r', 128);
    name[128] = 0;
    snprintf(json, sizeof json, "{\"data\": {\"sampler\": \"%s\", \"train_subset\": \"%s\", "
             "\"val_subset\": \"%s\", \"frames\": 16}}", name, name, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(json, f);
    fclose(f);
    tal_run_config c;
    tal_run_config_default(&c);
    double trunc_thresh = c.trunc_thresh, overlap = c.window_overlap;
    tal_err err = {0};
    cr_assert_eq(tal_run_config_load(&c, path, &err), TAL_OK, "%s", err.msg);
    cr_expect_str_eq(c.sampler, name);
    cr_expect_str_eq(c.val_subset, name);
    cr_expect_eq(c.frames, 16);
    cr_expect_eq(c.trunc_thresh, trunc_thresh);
    cr_expect_eq(c.window_overlap, overlap);
    char *text = tal_run_config_to_json(&c);
    tal_run_config again;
    tal_run_config_default(&again);
    cr_expect_eq(tal_run_config_parse(&again, text, "again", &err), TAL_OK, "%s", err.msg);
    cr_expect_str_eq(again.sampler, name);
    free(text);
}
