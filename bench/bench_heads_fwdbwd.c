/* bench/bench_heads_fwdbwd.c: forward + backward time of the ActionFormer head at the THUMOS e2e
 * shape (C_in 768 -> C 512, T 512, 6 levels, global attention, K 20), from the loss seeds of a
 * real loss. Usage: bench_heads_fwdbwd [B] [steps] [threads]; prints one JSON line. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "heads/heads.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double cpu_now_s(void) { /* the process' CPU time, all threads */
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
    int B = argc > 1 ? atoi(argv[1]) : 2, steps = argc > 2 ? atoi(argv[2]) : 3;
    int threads = tal_threads_set(argc > 3 ? atoi(argv[3]) : 0);
    tal_head_config c;
    tal_head_config_thumos(&c);
    tal_err err = {0};
    tal_params *pp = tal_params_create();
    int gd = tal_params_add_group(pp, "decay", 1, 0.05f), gn = tal_params_add_group(pp, "no", 1, 0);
    tal_head *h = NULL;
    if (tal_head_create(&h, &c, pp, "", gd, gn, B, &err) != TAL_OK ||
        tal_params_allocate(pp, TAL_DEV_CPU, &err) != TAL_OK ||
        tal_head_init(h, 1, &err) != TAL_OK) {
        fprintf(stderr, "bench_heads: %s\n", err.msg);
        return 1;
    }
    int64_t T = c.max_seq_len;
    float *xd = malloc(sizeof(float) * (size_t)(B * c.in_channels * T));
    float *md = malloc(sizeof(float) * (size_t)(B * T));
    float *dxd = malloc(sizeof(float) * (size_t)(B * c.in_channels * T));
    tal_rng_key k = {1, 0, 0};
    for (int64_t i = 0; i < B * c.in_channels * T; i++) xd[i] = tal_rng_normal(k, (uint64_t)i);
    for (int64_t i = 0; i < B * T; i++) md[i] = 1;
    tal_tensor x = tal_t3(xd, B, c.in_channels, T), m = tal_t2(md, B, T);
    tal_tensor dx = tal_t3(dxd, B, c.in_channels, T);
    float seg[4] = {10, 40, 100, 300};
    int lab[2] = {3, 7};
    tal_head_gt gt[64];
    for (int b = 0; b < B && b < 64; b++) gt[b] = (tal_head_gt){seg, lab, 2};
    double best = 1e30, sum = 0, fwd_best = 1e30, best_cpu = 1e30;
    tal_head_set_train(h, 1, 0);
    for (int s = 0; s < steps + 1; s++) {
        double t0 = now_s(), c0 = cpu_now_s();
        tal_head_forward(h, x, m);
        double t1 = now_s();
        tal_head_losses L;
        tal_head_loss(h, gt, 1, &L, &err);
        tal_params_zero_grad(pp);
        tal_head_backward(h, dx);
        double t = now_s() - t0, cpu = cpu_now_s() - c0;
        if (s == 0) continue; /* warm-up */
        if (cpu < best_cpu) best_cpu = cpu;
        sum += t;
        if (t < best) best = t;
        if (t1 - t0 < fwd_best) fwd_best = t1 - t0;
    }
    size_t bwd = 0, act = tal_head_arena_bytes(h, &bwd);
    printf("{\"re2tal_head_fwd_bwd_ms\": %.1f, \"re2tal_best_ms\": %.1f, "
           "\"re2tal_fwd_best_ms\": %.1f, \"re2tal_best_cpu_ms\": %.1f, "
           "\"B\": %d, \"T\": %lld, \"threads\": %d, \"params_M\": %.2f, \"act_MiB\": %.1f, "
           "\"bwd_MiB\": %.1f}\n",
           1000 * sum / steps, 1000 * best, 1000 * fwd_best, 1000 * best_cpu, B, (long long)T,
           threads, tal_params_numel(pp, 0) / 1e6, act / 1048576.0, bwd / 1048576.0);
    free(xd);
    free(md);
    free(dxd);
    tal_head_destroy(h);
    tal_params_destroy(pp);
    return 0;
}
