/* tests/fuzz_data_anno.c: libFuzzer target for the annotation JSON reader: any bytes must give
 * either a dataset or an error naming the input, never a crash, leak or undefined behaviour.
 * Build: cmake -DRE2TAL_FUZZ=ON -DCMAKE_C_COMPILER=clang-14; run: fuzz_data_anno -max_len=4096
 * with tests/fuzz/data_anno as the seed corpus (tests/fuzz/README.md). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    /* The reader takes a length; a copy without a terminator checks it never reads past it. */
    char *json = malloc(size ? size : 1);
    if (!json) return 0;
    memcpy(json, bytes, size);
    tal_dataset *ds = NULL;
    tal_err err = {0};
    tal_status s = tal_dataset_parse(&ds, "fuzz.json", json, size, &err);
    if (s == TAL_OK) {
        TAL_ASSERT(ds != NULL);
        /* Exercise what callers do next on whatever was accepted. */
        for (int i = 0; i < ds->n_videos; i++) {
            const tal_video_anno *v = &ds->videos[i];
            for (int k = 0; k < v->n_segments; k++) {
                TAL_ASSERT(v->segments[k].end_s >= v->segments[k].start_s);
                TAL_ASSERT(v->segments[k].start_s >= 0);
                TAL_ASSERT(v->segments[k].label >= 0 && v->segments[k].label < ds->n_classes);
            }
            TAL_ASSERT(tal_dataset_find(ds, v->id) >= 0);
        }
        tal_check_opts o = {0};
        tal_check_report r;
        if (tal_dataset_check(&r, ds, &o, &err) == TAL_OK) {
            char *text = tal_check_report_json(&r, ds);
            free(text);
            tal_check_report_free(&r);
        }
        tal_dataset_filter_subset(ds, TAL_SUBSET_TRAINING);
        tal_dataset_destroy(ds);
    } else {
        TAL_ASSERT(ds == NULL);
        TAL_ASSERT(strstr(err.msg, "fuzz.json") != NULL);
    }
    free(json);
    return 0;
}
