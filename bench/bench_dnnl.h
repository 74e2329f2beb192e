/* bench/bench_dnnl.h: what the benchmarks comparing nn/ with oneDNN share (one translation unit
 * each): a status check, one CPU engine and stream, and best-of timing by process CPU time. */
#ifndef TAL_BENCH_DNNL_H
#define TAL_BENCH_DNNL_H

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_common.h"

#define DNNL_CHECK(call)                                                                           \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            fprintf(stderr, "%s:%d: %s failed: %d\n", __FILE__, __LINE__, #call, (int)st_);       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;

/* One core for everything (OpenMP: nn/ and oneDNN; OpenBLAS), the engine and the stream. */
static inline void dnnl_bench_start(void) {
    tal_threads_set(1);
    DNNL_CHECK(dnnl_engine_create(&g_engine, dnnl_cpu, 0));
    DNNL_CHECK(dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags));
}

static inline void dnnl_bench_end(void) {
    dnnl_stream_destroy(g_stream);
    dnnl_engine_destroy(g_engine);
}

/* The process' CPU time (all its threads): other processes' load on a shared machine does
 * not count in it. */
static inline double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the fastest of `rounds` calls of f. */
static inline double best_cpu(run_fn f, void *ctx, int rounds) {
    return best_by(cpu_s, f, ctx, rounds);
}

#endif
