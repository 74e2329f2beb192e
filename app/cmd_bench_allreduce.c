/* app/cmd_bench_allreduce.c: `mpirun -np N re2tal bench allreduce [--floats F] [--reps R]
 * [--bucket-mb B]`: the gradient reducer's time for F floats (Swin-T's 28 M by default), plain
 * and deterministic, beside the ring model 2(N-1)/N x bytes / link bandwidth measured in the same
 * run (rank 0 <-> 1 ping-pong). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/commands.h"
#include "app/dist.h"

int tal_cmd_bench_allreduce(int argc, char **argv) {
    long floats = 28000000;
    int reps = 5;
    double bucket_mb = 25;
    for (int i = 1; i < argc; i++) {
        if (tal_is_help(argv[i])) {
            printf("usage: mpirun -np N re2tal bench allreduce [--floats F] [--reps R] "
                   "[--bucket-mb B]\n\nTimes the training's gradient reduction of F floats "
                   "(default 28000000, Swin-T)\nin buckets of B MB (default 25), plain "
                   "(MPI_Iallreduce) and deterministic (rank-order\nsums), best and mean of R "
                   "(default 5) after a warm-up, against the ring model\n2(N-1)/N x bytes / link "
                   "bandwidth, the bandwidth measured by ping-pong in the same run.\nRank 0 "
                   "prints one JSON line per mode.\n");
            return 0;
        }
        char *end = NULL;
        if (i + 1 < argc && !strcmp(argv[i], "--floats")) {
            floats = strtol(argv[++i], &end, 10);
            if (*end || floats < 1) goto bad;
        } else if (i + 1 < argc && !strcmp(argv[i], "--reps")) {
            reps = (int)strtol(argv[++i], &end, 10);
            if (*end || reps < 1) goto bad;
        } else if (i + 1 < argc && !strcmp(argv[i], "--bucket-mb")) {
            bucket_mb = strtod(argv[++i], &end);
            if (*end || !(bucket_mb > 0)) goto bad;
        } else {
            fprintf(stderr, "re2tal bench allreduce: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    return tal_dist_bench_allreduce(floats, reps, bucket_mb);
bad:
    fprintf(stderr, "re2tal bench allreduce: '%s %s': expected a positive number\n", argv[0],
            argv[argc - 1]);
    return 2;
}
