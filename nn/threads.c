/* nn/threads.c: one knob for OpenMP and OpenBLAS threads (--threads / RE2TAL_THREADS). */
#include "nn.h"

#include <stdlib.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS's own entry point; declared here so no OpenBLAS-specific header is needed. */
void openblas_set_num_threads(int num_threads);

static int g_threads = 0;

int tal_threads_set(int n) {
    if (n <= 0) {
        const char *env = getenv("RE2TAL_THREADS");
        n = env ? atoi(env) : 0;
    }
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    g_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    /* tal_gemm splits rows over OpenMP threads itself, each calling a 1-thread sgemm. */
    openblas_set_num_threads(1);
    return n;
}

int tal_threads_get(void) {
    if (g_threads == 0) tal_threads_set(0);
    return g_threads;
}
