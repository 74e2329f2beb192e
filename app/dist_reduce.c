/* app/dist_reduce.c: the data-parallel gradient reducer (see dist.h). Gradients are cut into
 * buckets of about bucket_mb, last parameters first (the order the backward finishes them), and
 * each bucket's collective starts as soon as the backward reports it final, so communication
 * overlaps the rest of the backward. Deterministic mode sums in rank order: an alltoall gives
 * rank r every rank's copy of chunk r of the bucket, r adds them in rank order, and an allgather
 * hands the sums back (the bandwidth of a ring all-reduce, plus one gradient-sized buffer). */
#include "app/dist.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef TAL_HAVE_MPI
#include <mpi.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct bucket {
    int first, end;         /* parameters [first, end) */
    float *data;            /* their gradients: one span of the store's gradient arena */
    int n;                  /* floats in the span */
    float *tmp;             /* deterministic: every rank's copy of this rank's chunk */
    int *counts, *displs;   /* [world]: chunk c is [displs[c], displs[c] + counts[c]) */
    int *rcounts, *rdispls; /* [world]: where each rank's copy of my chunk lands in tmp */
    int phase;              /* 0 idle, 1 first collective in flight, 2 second, 3 done */
    MPI_Request req;
} bucket;

struct tal_dist_reducer {
    tal_params *p;
    tal_dist_reduce_opts o;
    int rank, world;
    bucket *b;               /* b[0] holds the last parameters: the backward's first */
    int nb;
    int next_start;          /* buckets start in the fixed order 0, 1, ... on every rank */
    int next_sum;            /* deterministic: next bucket whose first collective may be done */
    int armed;               /* notices count while armed (2), or only reduce() sends (1) */
    uint8_t *ready;          /* [count]: reported final, or frozen (never written) */
    int ready_from;          /* gradients [ready_from, count) are all final */
    const float *stash;      /* armed with the update's earlier clips set aside: added back */
    float *span;             /* start of the gradient span the stash mirrors */
    float *tmp_all;
    MPI_Comm c1, c2;         /* one communicator per phase: each sees its collectives in bucket
                              * order on every rank, however the phases interleave in time */
    double wait_s;
};

static tal_status mpi_error(tal_err *err, int code, const char *what) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    return tal_err_set(err, TAL_EIO, "rank %d on %s: %s: %s", tal_dist_shard().rank,
                       tal_dist_host(), what, text);
}

static int start_bucket(tal_dist_reducer *r, bucket *k) {
    if (r->stash) { /* the update's earlier clips, added back in the layout of the span */
        const float *s = r->stash + (k->data - r->span);
        for (int i = 0; i < k->n; i++) k->data[i] += s[i];
    }
    if (!r->o.deterministic) {
        k->phase = 2;
        return MPI_Iallreduce(MPI_IN_PLACE, k->data, k->n, MPI_FLOAT, MPI_SUM, r->c1, &k->req);
    }
    k->phase = 1;
    return MPI_Ialltoallv(k->data, k->counts, k->displs, MPI_FLOAT, k->tmp, k->rcounts,
                          k->rdispls, MPI_FLOAT, r->c1, &k->req);
}

/* Deterministic: this rank's chunk summed in rank order, then everyone's chunks to everyone. */
static int finish_first_phase(tal_dist_reducer *r, bucket *k) {
    int len = k->counts[r->rank];
    float *out = k->data + k->displs[r->rank];
    for (int i = 0; i < len; i++) {
        float s = k->tmp[i];
        for (int q = 1; q < r->world; q++) s += k->tmp[(size_t)q * len + i];
        out[i] = s;
    }
    k->phase = 2;
    return MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, k->data, k->counts, k->displs,
                           MPI_FLOAT, r->c2, &k->req);
}

/* Moves finished first phases on (in bucket order); MPI_Test also drives the transfers. */
static int progress(tal_dist_reducer *r) {
    while (r->o.deterministic && r->next_sum < r->next_start) {
        bucket *k = &r->b[r->next_sum];
        int done = 0, rc = MPI_Test(&k->req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return rc;
        if (!done) break;
        if ((rc = finish_first_phase(r, k)) != MPI_SUCCESS) return rc;
        r->next_sum++;
    }
    for (int i = 0; i < r->next_start; i++) {
        bucket *k = &r->b[i];
        if (k->phase != 2) continue;
        int done = 0, rc = MPI_Test(&k->req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return rc;
        if (done) k->phase = 3;
    }
    return MPI_SUCCESS;
}

/* The backward's notice: gradients [first, end) are final. A bucket may go once every gradient
 * from its first parameter up is final, so the buckets start in their fixed order whatever order
 * the backward reports in; what it never reports waits for its end. */
static void on_grads_ready(void *ctx, int first, int end) {
    tal_dist_reducer *r = ctx;
    if (r->armed != 2) return;
    for (int i = first; i < end; i++) r->ready[i] = 1;
    while (r->ready_from > 0 && r->ready[r->ready_from - 1]) r->ready_from--;
    int rc = MPI_SUCCESS;
    while (rc == MPI_SUCCESS && r->next_start < r->nb && r->b[r->next_start].first >= r->ready_from)
        rc = start_bucket(r, &r->b[r->next_start++]);
    if (rc == MPI_SUCCESS) rc = progress(r);
    if (rc != MPI_SUCCESS) { /* inside the backward: no way back but to end the job */
        tal_err err = {0};
        mpi_error(&err, rc, "gradient all-reduce");
        fprintf(stderr, "re2tal: %s\n", err.msg);
        tal_dist_abort(1);
    }
}

static void reset_ready(tal_dist_reducer *r) {
    int count = tal_params_count(r->p);
    for (int i = 0; i < count; i++) r->ready[i] = !tal_params_at(r->p, i)->trainable;
    r->ready_from = count;
    while (r->ready_from > 0 && r->ready[r->ready_from - 1]) r->ready_from--;
}

static tal_status reduce(void *ctx, tal_params *p, double *vals, int n, tal_err *err) {
    tal_dist_reducer *r = ctx;
    TAL_ASSERT(p == r->p);
    double t0 = now_s();
    int rc = MPI_SUCCESS;
    while (rc == MPI_SUCCESS && r->next_start < r->nb) rc = start_bucket(r, &r->b[r->next_start++]);
    while (rc == MPI_SUCCESS && r->o.deterministic && r->next_sum < r->nb) {
        bucket *k = &r->b[r->next_sum];
        rc = MPI_Wait(&k->req, MPI_STATUS_IGNORE);
        if (rc == MPI_SUCCESS) rc = finish_first_phase(r, k);
        r->next_sum++;
    }
    for (int i = 0; rc == MPI_SUCCESS && i < r->nb; i++) {
        if (r->b[i].phase == 2) rc = MPI_Wait(&r->b[i].req, MPI_STATUS_IGNORE);
        r->b[i].phase = 0;
    }
    r->next_start = r->next_sum = 0;
    r->armed = 0;
    r->stash = NULL;
    reset_ready(r);
    if (rc != MPI_SUCCESS) return mpi_error(err, rc, "gradient all-reduce");
    tal_status st = tal_dist_sum(vals, n, err);
    r->wait_s += now_s() - t0;
    return st;
}

static float *grad_end(tal_param *q) { return q->grad.data + tal_tensor_numel(q->grad); }

tal_status tal_dist_reducer_create(tal_dist_reducer **out, tal_params *p,
                                   const tal_dist_reduce_opts *o, tal_err *err) {
    *out = NULL;
    tal_dist_reducer *r = calloc(1, sizeof *r);
    int count = tal_params_count(p);
    if (!r) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    r->p = p;
    r->o = *o;
    r->rank = tal_dist_shard().rank;
    r->world = tal_dist_shard().world;
    r->span = tal_params_grad_span(p).data;
    r->c1 = r->c2 = MPI_COMM_NULL;
    r->b = calloc((size_t)count + 1, sizeof *r->b);
    r->ready = calloc((size_t)count + 1, 1);
    if (!r->b || !r->ready) goto nomem;
    reset_ready(r);
    /* buckets from the last parameter back; each a span of the gradient arena */
    size_t limit = (size_t)(o->bucket_mb * 1e6), tmp_floats = 0;
    if (limit < 4) limit = 4;
    for (int end = count; end > 0;) {
        int first = end;
        size_t bytes = 0;
        while (first > 0 && (bytes == 0 || bytes < limit)) {
            tal_param *q = tal_params_at(p, --first);
            TAL_ASSERT_MSG(q->grad.device == TAL_DEV_CPU, "%s: the MPI reducer sums host "
                           "gradients", q->name);
            bytes += tal_tensor_bytes(q->grad);
        }
        bucket *k = &r->b[r->nb++];
        k->first = first;
        k->end = end;
        k->data = tal_params_at(p, first)->grad.data;
        float *last = grad_end(tal_params_at(p, end - 1));
        for (int i = first + 1; i < end; i++) /* one arena, in declaration order */
            TAL_ASSERT_MSG(tal_params_at(p, i)->grad.data >= grad_end(tal_params_at(p, i - 1)),
                           "gradients out of declaration order at %s", tal_params_at(p, i)->name);
        TAL_ASSERT_MSG(last - k->data < 0x7fffffff, "bucket past 2^31 floats");
        k->n = (int)(last - k->data);
        tmp_floats += (size_t)k->n + (size_t)r->world;
        end = first;
    }
    if (o->deterministic && !(r->tmp_all = malloc(sizeof(float) * tmp_floats))) goto nomem;
    size_t used = 0;
    for (int i = 0; i < r->nb; i++) {
        bucket *k = &r->b[i];
        k->counts = calloc((size_t)r->world * 4, sizeof(int));
        if (!k->counts) goto nomem;
        k->displs = k->counts + r->world;
        k->rcounts = k->displs + r->world;
        k->rdispls = k->rcounts + r->world;
        for (int c = 0; c < r->world; c++) {
            k->displs[c] = (int)((int64_t)k->n * c / r->world);
            k->counts[c] = (int)((int64_t)k->n * (c + 1) / r->world) - k->displs[c];
        }
        for (int q = 0; q < r->world; q++) {
            k->rcounts[q] = k->counts[r->rank];
            k->rdispls[q] = q * k->counts[r->rank];
        }
        if (r->tmp_all) {
            k->tmp = r->tmp_all + used;
            used += (size_t)k->n + (size_t)r->world;
        }
    }
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &r->c1);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_dup(MPI_COMM_WORLD, &r->c2);
    if (rc != MPI_SUCCESS) {
        tal_dist_reducer_destroy(r);
        return mpi_error(err, rc, "gradient communicators");
    }
    MPI_Comm_set_errhandler(r->c1, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(r->c2, MPI_ERRORS_RETURN);
    tal_params_set_grads_ready(p, on_grads_ready, r);
    *out = r;
    return TAL_OK;
nomem:
    tal_dist_reducer_destroy(r);
    return tal_err_set(err, TAL_ENOMEM, "out of memory for the gradient buckets");
}

void tal_dist_reducer_destroy(tal_dist_reducer *r) {
    if (!r) return;
    tal_params_set_grads_ready(r->p, NULL, NULL);
    if (r->c1 != MPI_COMM_NULL) MPI_Comm_free(&r->c1);
    if (r->c2 != MPI_COMM_NULL) MPI_Comm_free(&r->c2);
    for (int i = 0; r->b && i < r->nb; i++) free(r->b[i].counts);
    free(r->b);
    free(r->ready);
    free(r->tmp_all);
    free(r);
}

tal_grad_reducer tal_dist_reducer_seam(tal_dist_reducer *r) {
    tal_grad_reducer g = {reduce, r};
    return g;
}

void tal_dist_reducer_arm(tal_dist_reducer *r, const float *stash, int overlap) {
    r->armed = overlap && r->o.overlap ? 2 : 1;
    r->stash = stash;
}

double tal_dist_reducer_take_wait_s(tal_dist_reducer *r) {
    double s = r->wait_s;
    r->wait_s = 0;
    return s;
}

/* ---------------------------------------------------------------- bench ----------------- */
/* Seconds of `reps` runs of fn; best and mean. */
typedef struct timing {
    double best_s, mean_s;
} timing;

static timing time_reduce(tal_dist_reducer *r, tal_params *p, int reps) {
    timing t = {1e30, 0};
    for (int i = 0; i < reps; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now_s();
        tal_err err = {0};
        if (reduce(r, p, NULL, 0, &err) != TAL_OK) {
            fprintf(stderr, "re2tal bench allreduce: %s\n", err.msg);
            tal_dist_abort(1);
        }
        double s = now_s() - t0, worst = 0;
        MPI_Allreduce(&s, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD); /* the slowest rank */
        if (worst < t.best_s) t.best_s = worst;
        t.mean_s += worst / reps;
    }
    return t;
}

/* Unidirectional bandwidth rank 0 -> 1 (bytes/s) from ping-pongs of `bytes`. */
static double link_bandwidth(float *buf, int n, int reps) {
    int rank = tal_dist_shard().rank;
    double best = 1e30;
    for (int i = -1; i < reps; i++) { /* -1: a warm-up (connections, first touch) */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now_s();
        if (rank == 0) {
            MPI_Send(buf, n, MPI_FLOAT, 1, 7, MPI_COMM_WORLD);
            MPI_Recv(buf, n, MPI_FLOAT, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, n, MPI_FLOAT, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, n, MPI_FLOAT, 0, 7, MPI_COMM_WORLD);
        }
        double s = now_s() - t0;
        if (i >= 0 && s < best) best = s;
    }
    return 2.0 * n * sizeof(float) / best;
}

int tal_dist_bench_allreduce(long floats, int reps, double bucket_mb) {
    tal_shard sh = tal_dist_shard();
    if (sh.world < 2) {
        fprintf(stderr, "re2tal bench allreduce: run it under mpirun -np N (N >= 2)\n");
        return 2;
    }
    /* a store of 1M-float parameters, like a model's gradients */
    tal_params *p = tal_params_create();
    int g = tal_params_add_group(p, "all", 1, 0);
    char name[32];
    for (long done = 0, i = 0; done < floats; i++) {
        int64_t n = floats - done < 1000000 ? floats - done : 1000000;
        snprintf(name, sizeof name, "p%ld", i);
        tal_params_declare(p, name, 1, &n, g, 1);
        done += n;
    }
    tal_err err = {0};
    if (tal_params_allocate(p, TAL_DEV_CPU, &err) != TAL_OK) {
        fprintf(stderr, "re2tal bench allreduce: %s\n", err.msg);
        tal_dist_abort(1);
    }
    for (int i = 0; i < tal_params_count(p); i++) {
        tal_tensor gr = tal_params_at(p, i)->grad;
        for (int64_t j = 0; j < tal_tensor_numel(gr); j++)
            gr.data[j] = (float)((j * 7 + i + sh.rank) % 97) * 0.01f;
    }
    double bytes = (double)floats * sizeof(float);
    int pp = floats < 16000000 ? (int)floats : 16000000;
    float *buf = calloc((size_t)pp, sizeof(float));
    double bw = link_bandwidth(buf, pp, reps);
    free(buf);
    double model_s = 2.0 * (sh.world - 1) / sh.world * bytes / bw;
    for (int det = 0; det <= 1; det++) {
        tal_dist_reduce_opts o = {bucket_mb, det, 0};
        tal_dist_reducer *r = NULL;
        if (tal_dist_reducer_create(&r, p, &o, &err) != TAL_OK) {
            fprintf(stderr, "re2tal bench allreduce: %s\n", err.msg);
            tal_dist_abort(1);
        }
        time_reduce(r, p, 1); /* warm-up: connections, registration */
        timing t = time_reduce(r, p, reps);
        if (sh.rank == 0)
            printf("{\"ranks\": %d, \"floats\": %ld, \"bucket_mb\": %g, \"buckets\": %d, "
                   "\"deterministic\": %d, \"best_ms\": %.2f, \"mean_ms\": %.2f, "
                   "\"link_GBps\": %.3f, \"model_ms\": %.2f, \"model_over_best\": %.3f}\n",
                   sh.world, floats, bucket_mb, r->nb, det, t.best_s * 1e3, t.mean_s * 1e3,
                   bw / 1e9, model_s * 1e3, model_s / t.best_s);
        fflush(stdout);
        tal_dist_reducer_destroy(r);
    }
    tal_params_destroy(p);
    return 0;
}

#else /* built without MPI: the one-process case never creates a reducer */

tal_status tal_dist_reducer_create(tal_dist_reducer **out, tal_params *p,
                                   const tal_dist_reduce_opts *o, tal_err *err) {
    (void)p, (void)o;
    *out = NULL;
    return tal_err_set(err, TAL_EINVAL, "built without MPI: no data-parallel reducer");
}
void tal_dist_reducer_destroy(tal_dist_reducer *r) { (void)r; }
tal_grad_reducer tal_dist_reducer_seam(tal_dist_reducer *r) {
    tal_grad_reducer g = {NULL, r};
    return g;
}
void tal_dist_reducer_arm(tal_dist_reducer *r, const float *stash, int overlap) {
    (void)r, (void)stash, (void)overlap;
}
double tal_dist_reducer_take_wait_s(tal_dist_reducer *r) {
    (void)r;
    return 0;
}
int tal_dist_bench_allreduce(long floats, int reps, double bucket_mb) {
    (void)floats, (void)reps, (void)bucket_mb;
    fprintf(stderr, "re2tal bench allreduce: built without MPI (install libopenmpi-dev)\n");
    return 2;
}
#endif
