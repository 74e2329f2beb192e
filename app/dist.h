/* app/dist.h: many processes over MPI (`mpirun -np N re2tal ...`, `srun`): this process's rank,
 * the gradient reducer of data-parallel training, agreement on flags, gathers for sharded
 * inference. Built without MPI, or started without a launcher, everything here is the one-process
 * case: rank 0 of 1, and each call is a no-op or a copy. No other file includes mpi.h. */
#ifndef TAL_APP_DIST_H
#define TAL_APP_DIST_H

#include <stdio.h>

#include "app/train_loop.h"

/* ---------------------------------------------------------------- the job --------------- */
/* Joins the job when a launcher started this process (mpirun / srun / hydra environment);
 * otherwise does nothing (no MPI_Init: a plain `re2tal` stays one process). Call first in
 * main. Returns 0, or 1 if the launcher's job cannot be joined (message printed). */
int tal_dist_init(int *argc, char ***argv);
/* Leaves the job (MPI_Finalize). Every rank must call it (or exit through tal_dist_abort). */
void tal_dist_finalize(void);
/* Ends the whole job now with `code` (MPI_Abort): for an error on this rank that the others did
 * not share (they may wait in a collective). One process: exit(code). */
void tal_dist_abort(int code) __attribute__((noreturn));

tal_shard tal_dist_shard(void);     /* {0, 1} without a job */
const char *tal_dist_host(void);    /* this process's host name */
int tal_dist_local_ranks(void);     /* ranks of the job on this host (1 without a job) */
/* Rank 0 prints ranks, hosts, threads per rank and devices; collective. */
void tal_dist_print_layout(FILE *out, int threads);

/* ---------------------------------------------------------------- agreement ------------- */
/* Sums vals[0..n) over the ranks in rank order (every rank gets the same bits). */
tal_status tal_dist_sum(double *vals, int n, tal_err *err);
/* Number of ranks where flag != 0. */
int tal_dist_count(int flag);
/* root's bytes to every rank. */
tal_status tal_dist_bcast(void *buf, size_t bytes, int root, tal_err *err);
/* Every rank's bytes, concatenated in rank order, to every rank (all_gather) or to rank 0 only
 * (others get NULL). *out is malloc'ed (caller frees), sizes [world] likewise (may be NULL). */
tal_status tal_dist_gather_bytes(const void *mine, size_t n, int to_all, char **out,
                                 size_t **sizes, tal_err *err);

/* ---------------------------------------------------------------- sharding -------------- */
/* Owner rank of each of n items with these costs (seconds of video): longest first, each to the
 * least-loaded rank (ties: the lower rank), so every rank computes the same split. */
void tal_dist_share_by_cost(const double *cost, int n, int world, int *owner);

/* ---------------------------------------------------------------- the gradient reducer -- */
typedef struct tal_dist_reducer tal_dist_reducer;
typedef struct tal_dist_reduce_opts {
    double bucket_mb;      /* gradient bytes per collective (the last bucket may be smaller) */
    int deterministic;     /* rank-order sums: alltoall + sum + allgather instead of allreduce */
    int overlap;           /* start a bucket when the backward says its gradients are final */
} tal_dist_reduce_opts;

/* Buckets over p's gradients (which must be host memory, one arena in declaration order);
 * registers the backward's grads-ready notice on p. */
tal_status tal_dist_reducer_create(tal_dist_reducer **out, tal_params *p,
                                   const tal_dist_reduce_opts *o, tal_err *err);
void tal_dist_reducer_destroy(tal_dist_reducer *r); /* NULL is fine; unregisters the notice */
/* The seam of train_loop.h. */
tal_grad_reducer tal_dist_reducer_seam(tal_dist_reducer *r);
/* Arms the reducer for this rank's last clip of an update: with overlap on, the backward's
 * notices then start buckets (earlier clips still add to every gradient, so they must not).
 * stash (may be NULL): the earlier clips' gradients set aside (tal_grads_set_aside, laid out as
 * tal_params_grad_span): each bucket adds its part back just before it is sent. reduce()
 * disarms. */
void tal_dist_reducer_arm(tal_dist_reducer *r, const float *stash, int overlap);
/* Seconds this rank spent waiting for reductions (inside reduce()) since the last call. */
double tal_dist_reducer_take_wait_s(tal_dist_reducer *r);

/* ---------------------------------------------------------------- bench ----------------- */
/* `re2tal bench allreduce`: all-reduce time of `floats` floats (best and mean of reps), both
 * reductions, and the point-to-point bandwidth of rank 0 <-> 1; rank 0 prints JSON lines. */
int tal_dist_bench_allreduce(long floats, int reps, double bucket_mb);

#endif
