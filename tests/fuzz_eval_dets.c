/* tests/fuzz_eval_dets.c: libFuzzer target for the prediction reader (ActivityNet results JSON
 * or THUMOS text, chosen by the first byte) and the scorers behind it: any bytes must give either
 * detections that score to mAPs in [0, 1] under all three protocols (with PR curves and
 * length buckets kept, and the JSON report written) and average recalls in [0, 1] (proposal AR
 * at three budgets), or an error naming the file; never a crash, leak or undefined behaviour.
 * Build: cmake -DRE2TAL_FUZZ=ON -DCMAKE_C_COMPILER=clang; run:
 *   fuzz_eval_dets -max_len=4096 -max_total_time=600 CORPUS tests/fuzz/eval_dets */
#include "fuzz_eval_util.h"

static tal_eval_gt *gt;
static char pred_path[768], classlist_path[768];

static void setup(void) {
    char gt_path[768];
    snprintf(gt_path, sizeof gt_path, "%s", fuzz_path("gt.json"));
    snprintf(pred_path, sizeof pred_path, "%s", fuzz_path("pred"));
    snprintf(classlist_path, sizeof classlist_path, "%s", fuzz_path("classes.txt"));
    /* GT with the corners: zero-length, duplicate, a training video, two classes */
    const char *g = "{\"database\":{"
                    "\"v1\":{\"subset\":\"validation\",\"annotations\":[{\"segment\":[0,10],\"label\":\"A\"},"
                    "{\"segment\":[0,10],\"label\":\"A\"},{\"segment\":[5,5],\"label\":\"B\"}]},"
                    "\"v2\":{\"subset\":\"validation\",\"annotations\":[{\"segment\":[\"1.5\",\"9\"],\"label\":\"B\"}]},"
                    "\"v9\":{\"subset\":\"training\",\"annotations\":[{\"segment\":[0,1],\"label\":\"C\"}]}}}";
    const char *cl = "7 A\n9 B\n";
    tal_err err = {0};
    fuzz_write(gt_path, g, strlen(g));
    fuzz_write(classlist_path, cl, strlen(cl));
    if (tal_eval_gt_load(&gt, gt_path, NULL, &err) != TAL_OK) {
        fprintf(stderr, "fuzz_eval_dets: setup failed: %s\n", err.msg);
        abort();
    }
    remove(gt_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    if (!gt) setup();
    fuzz_write(pred_path, bytes, size);
    tal_eval_dets *d = NULL;
    tal_err err = {0};
    if (tal_eval_dets_create(&d, &err) != TAL_OK) abort();
    if (tal_eval_dets_load(d, pred_path, classlist_path, &err) == TAL_OK)
        fuzz_score(gt, d);
    else
        fuzz_check_names(&err, pred_path);
    tal_eval_dets_destroy(d);
    return 0;
}
