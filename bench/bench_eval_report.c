/* bench/bench_eval_report.c: where the time of `re2tal report` goes, against the plain
 * evaluation measured in the same run: reading GT and detections, scoring without and with
 * what the page needs (PR curves, matches, the mAP lost per detection), writing the page.
 * Best of 3, wall and CPU time. usage: bench_eval_report GT PRED OUT.html [THREADS] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "eval/eval.h"

static double now_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct timing {
    double wall, cpu;
} timing;

static void keep_best(timing *best, double w0, double c0) {
    double w = now_s(CLOCK_MONOTONIC) - w0, c = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    if (w < best->wall) best->wall = w;
    if (c < best->cpu) best->cpu = c;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_eval_report GT PRED OUT.html [THREADS]\n");
        return 2;
    }
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    double w0 = now_s(CLOCK_MONOTONIC);
    if (tal_eval_gt_load(&gt, argv[1], NULL, &err) || tal_eval_dets_create(&d, &err) ||
        tal_eval_dets_load(d, argv[2], NULL, &err))
        goto fail;
    printf("%ld detections, %d GT videos: read %.3f s; %d thread%s, best of 3 (wall / CPU):\n",
           tal_eval_dets_count(d), tal_eval_gt_n_videos(gt), now_s(CLOCK_MONOTONIC) - w0, threads,
           threads > 1 ? "s" : "");
    timing plain = {1e30, 1e30}, kept = {1e30, 1e30}, page = {1e30, 1e30};
    for (int rep = 0; rep < 3; rep++) {
        tal_eval_opts o = {.threads = threads};
        tal_eval_result *r = NULL;
        double w = now_s(CLOCK_MONOTONIC), c = now_s(CLOCK_PROCESS_CPUTIME_ID);
        if (tal_eval_run(&r, gt, d, &o, &err)) goto fail;
        keep_best(&plain, w, c);
        tal_eval_result_destroy(r);
        o.keep_pr = o.keep_matches = 1;
        w = now_s(CLOCK_MONOTONIC), c = now_s(CLOCK_PROCESS_CPUTIME_ID);
        if (tal_eval_run(&r, gt, d, &o, &err)) goto fail;
        keep_best(&kept, w, c);
        w = now_s(CLOCK_MONOTONIC), c = now_s(CLOCK_PROCESS_CPUTIME_ID);
        tal_status st = tal_eval_write_html(argv[3], gt, d, r, NULL, &err);
        keep_best(&page, w, c);
        tal_eval_result_destroy(r);
        if (st) goto fail;
    }
    printf("  scoring (as re2tal eval)                  %.3f s / %.3f s\n", plain.wall, plain.cpu);
    printf("  scoring + PR curves + matches + mAP lost  %.3f s / %.3f s (x%.2f)\n", kept.wall,
           kept.cpu, kept.cpu / plain.cpu);
    printf("  writing the page                          %.3f s / %.3f s\n", page.wall, page.cpu);
    printf("  report beyond the evaluation              %.3f s / %.3f s\n",
           kept.wall - plain.wall + page.wall, kept.cpu - plain.cpu + page.cpu);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
    return 0;
fail:
    fprintf(stderr, "bench_eval_report: %s\n", err.msg);
    return 1;
}
