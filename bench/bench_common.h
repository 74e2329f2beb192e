/* bench/bench_common.h: the timing harness the nn benchmarks share (one translation unit
 * each): a clock, random tensors from a bench-owned arena, best-of-N timing. */
#ifndef TAL_BENCH_COMMON_H
#define TAL_BENCH_COMMON_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/nn.h"

/* Wall time, or with BENCH_CLOCK=cpu the process' CPU time (all its threads): on a shared
 * machine other processes' load stretches wall time, not CPU time (compare at 1 thread). */
static inline double now_s(void) {
    static int cpu = -1;
    if (cpu < 0) cpu = getenv("BENCH_CLOCK") && !strcmp(getenv("BENCH_CLOCK"), "cpu");
    struct timespec ts;
    clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The arena make() carves from; the benchmark creates it (and destroys it) in main. */
static tal_arena *g_arena;

/* A tensor of `shape` from g_arena, uniform in [-1, 1) from the counter RNG at `seed`. */
static inline tal_tensor make(int ndim, const int64_t *shape, uint64_t seed) {
    tal_tensor t = tal_arena_tensor(g_arena, ndim, shape);
    tal_rng_key key = {seed, 0, 0};
    for (int64_t i = 0; i < tal_tensor_numel(t); i++)
        t.data[i] = 2.0f * tal_rng_uniform(key, (uint64_t)i) - 1.0f;
    return t;
}

typedef void (*run_fn)(void *ctx);

/* Seconds by the clock `seconds` of the fastest of `reps` calls of f (no warm-up). */
static inline double best_by(double (*seconds)(void), run_fn f, void *ctx, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = seconds();
        f(ctx);
        double dt = seconds() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

/* Best of `reps` timed runs after one warm-up (first touch of the buffers excluded). */
static inline double best_time(run_fn f, void *ctx, int reps) {
    f(ctx);
    return best_by(now_s, f, ctx, reps);
}

#endif
