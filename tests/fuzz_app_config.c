/* tests/fuzz_app_config.c: libFuzzer target for the JSON the app reads besides annotations: run
 * configs (first byte even; their "backbone" and "head" sections go on to backbone/ and heads/,
 * and what loads writes back to JSON that loads again) and video-level classifier files (odd).
 * Any bytes give a config or an error naming the file; never a crash, leak, hang or undefined
 * behaviour. app/ is a program, so its reader files are compiled into this target.
 * Build: cmake -DRE2TAL_FUZZ=ON -DCMAKE_C_COMPILER=clang; seeds: tests/fuzz/app_config. */
#include <math.h>

#include "app/classifier.h"
#include "app/run_config.h"
#include "backbone/backbone.h"
#include "fuzz_util.h"
#include "heads/heads.h"

/* 0 until backbone/model.c checks an integer's range before its (int) cast: "depths": [1e22]
 * is undefined behaviour there (tests/fuzz/app_config/regress_backbone_int_range; reported,
 * backbone/ is another engineer's). */
#define FUZZ_BACKBONE_SECTION 0

static void run_config(const char *path) {
    tal_run_config c;
    tal_run_config_default(&c);
    tal_err err = {0};
    if (tal_run_config_load(&c, path, &err) != TAL_OK) {
        fuzz_check_names(&err, path);
        return;
    }
    tal_backbone_config bb;
    if (FUZZ_BACKBONE_SECTION && c.backbone_json[0] &&
        tal_backbone_config_preset(&bb, "swin_small_test", &err) == TAL_OK)
        tal_backbone_config_from_json(&bb, c.backbone_json, &err);
    tal_head_config h;
    tal_head_config_thumos(&h);
    if (c.head_json[0]) tal_head_config_from_json(&h, "head", c.head_json, &err);
    char *text = tal_run_config_to_json(&c);
    FUZZ_CHECK(text != NULL, "to_json");
    tal_run_config again;
    tal_run_config_default(&again);
    FUZZ_CHECK(tal_run_config_parse(&again, text, "again", &err) == TAL_OK,
               "a loaded config does not load again: %s\n%s", err.msg, text);
    free(text);
}

static void classifier(const char *path) {
    tal_video_classifier *c = NULL;
    tal_err err = {0};
    if (tal_classifier_load(&c, path, &err) != TAL_OK) {
        FUZZ_CHECK(c == NULL, "a classifier with an error");
        fuzz_check_names(&err, path);
        return;
    }
    int n = tal_classifier_n_classes(c);
    FUZZ_CHECK(n >= 1, "%d classes", n);
    float *scores = calloc((size_t)n, sizeof *scores);
    const char *ids[3] = {"a", "v_a", "video_1"};
    for (int i = 0; i < 3; i++)
        if (tal_classifier_scores(c, ids[i], scores, &err) == TAL_OK)
            for (int k = 0; k < n; k++) FUZZ_CHECK(isfinite(scores[k]), "score %d", k);
    free(scores);
    tal_classifier_destroy(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    if (size < 1) return 0;
    const char *path = fuzz_path(bytes[0] % 2 ? "classifier.json" : "config.json");
    fuzz_write(path, bytes + 1, size - 1);
    if (bytes[0] % 2) classifier(path);
    else run_config(path);
    return 0;
}
