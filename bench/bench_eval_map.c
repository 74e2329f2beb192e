/* bench/bench_eval_map.c: where the time of an evaluation goes: reading the GT, reading the
 * detections (JSON parse), scoring (mAP over 10 thresholds), with 1 and 2 threads.
 * usage: bench_eval_map GT PRED [SUBSET] */
#include <stdio.h>
#include <time.h>

#include "eval/eval.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_eval_map GT PRED [SUBSET]\n");
        return 2;
    }
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    double t0 = now_s();
    if (tal_eval_gt_load(&gt, argv[1], argc > 3 ? argv[3] : NULL, &err)) goto fail;
    double t1 = now_s();
    if (tal_eval_dets_create(&d, &err) || tal_eval_dets_load(d, argv[2], NULL, &err)) goto fail;
    double t2 = now_s();
    printf("%ld detections: GT %.3f s, detections %.3f s", tal_eval_dets_count(d), t1 - t0, t2 - t1);
    for (int th = 1; th <= 2; th++) {
        tal_eval_opts o = {.threads = th};
        tal_eval_result *r = NULL;
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double a = now_s();
            if (tal_eval_run(&r, gt, d, &o, &err)) goto fail;
            double b = now_s();
            if (b - a < best) best = b - a;
            tal_eval_result_destroy(r);
        }
        printf(", scoring (%d thread%s) %.3f s", th, th > 1 ? "s" : "", best);
    }
    printf("\n");
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
    return 0;
fail:
    fprintf(stderr, "bench_eval_map: %s\n", err.msg);
    return 1;
}
