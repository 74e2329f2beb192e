/* tests/fuzz_eval_pred.c: libFuzzer target for the prediction readers (ActivityNet results
 * JSON through the single-pass reader, THUMOS text through the class list), then scoring
 * whatever was read against a small GT. Build: CC=clang cmake -DRE2TAL_FUZZ=ON ...;
 * run: fuzz_eval_pred -max_total_time=600 CORPUS_DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/eval.h"

static char pred_path[256], list_path[256];
static tal_eval_gt *gt;

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!gt) {
        char gt_path[256];
        snprintf(gt_path, sizeof gt_path, "/tmp/fuzz_eval_%d_gt.json", (int)getpid());
        snprintf(pred_path, sizeof pred_path, "/tmp/fuzz_eval_%d_pred", (int)getpid());
        snprintf(list_path, sizeof list_path, "/tmp/fuzz_eval_%d_classes.txt", (int)getpid());
        const char *g = "{\"database\": {\"v1\": {\"subset\": \"validation\", \"annotations\": ["
                        "{\"segment\": [0, 10], \"label\": \"A\"}, {\"segment\": [5, 5], \"label\": \"B\"},"
                        "{\"segment\": [\"2\", \"9\"], \"label\": \"A\"}]}}}";
        write_file(gt_path, g, strlen(g));
        write_file(list_path, "1 A\n2 B\n", 8);
        tal_err err = {0};
        if (tal_eval_gt_load(&gt, gt_path, NULL, &err)) abort();
    }
    write_file(pred_path, data, size);
    tal_err err = {0};
    tal_eval_dets *d = NULL;
    if (tal_eval_dets_create(&d, &err)) abort();
    if (tal_eval_dets_load(d, pred_path, list_path, &err) == TAL_OK) {
        tal_eval_result *r = NULL;
        for (int p = 0; p < 3; p++) {
            tal_eval_opts o = {.protocol = (tal_eval_protocol)p, .ignore_unknown_labels = 1, .threads = 1,
                               .keep_pr = 1, .n_bucket_edges = 2, .bucket_edges = {2, 20}};
            if (tal_eval_run(&r, gt, d, &o, &err) == TAL_OK) {
                char *json = tal_eval_result_json(r);
                free(json);
                tal_eval_result_destroy(r);
            }
        }
    } else if (!err.msg[0]) {
        abort(); /* every failure must say why */
    }
    tal_eval_dets_destroy(d);
    return 0;
}
