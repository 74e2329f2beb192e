/* bench/bench_decode_cycles.c: open / read a 40-frame clip / close, N times, on one video;
 * prints resident memory along the way and cycles per second. bench/run_decode.sh runs it under
 * valgrind (no leak over 1,000 cycles) and natively (the cost of opening a file per sample).
 * usage: bench_decode_cycles VIDEO [N=1000] [THREADS=0] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode/decode.h"

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s VIDEO [N=1000] [THREADS=0]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    tal_decode_opts opts = {.threads = argc > 3 ? atoi(argv[3]) : 0};
    enum { T = 40, S = 32 };
    float *buf = malloc(sizeof(float) * 3 * T * S * S);
    if (!buf || n < 1) return 2;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        tal_decoder *dec = NULL;
        tal_err err = {0};
        if (tal_decoder_open(&dec, argv[1], &opts, &err) != TAL_OK) {
            fprintf(stderr, "%s\n", err.msg);
            free(buf);
            return 1;
        }
        tal_frame_transform tf;
        tal_transform_resize_center(&tf, tal_decoder_info(dec), S, S);
        double times[T];
        tal_times_at_fps(times, T, 0, 10);
        tal_status rc = tal_decoder_read_times(dec, times, T, &tf, tal_t4(buf, 3, T, S, S), &err);
        tal_decoder_close(dec);
        if (rc != TAL_OK) {
            fprintf(stderr, "%s\n", err.msg);
            free(buf);
            return 1;
        }
        if (i == 0 || (i + 1) % (n / 4 > 0 ? n / 4 : 1) == 0)
            printf("cycle %d rss_kb %ld\n", i + 1, rss_kb());
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    printf("%d cycles in %.2f s: %.1f cycles/s\n", n, s, n / s);
    free(buf);
    return 0;
}
