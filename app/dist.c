/* app/dist.c: the MPI job (see dist.h): joining it only under a launcher, rank / host / layout,
 * agreement on values and flags, gathers, and the split of videos over ranks by duration. */
#include "app/dist.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef TAL_HAVE_MPI
#include <mpi.h>
#endif

static struct {
    int active;        /* MPI_Init done */
    int rank, world, local;
    char host[256];
} g_job = {0, 0, 1, 1, ""};

tal_shard tal_dist_shard(void) {
    tal_shard s = {g_job.rank, g_job.world};
    return s;
}

const char *tal_dist_host(void) {
    if (!g_job.host[0] && gethostname(g_job.host, sizeof g_job.host - 1) != 0)
        strcpy(g_job.host, "?");
    return g_job.host;
}

int tal_dist_local_ranks(void) { return g_job.local; }

/* A launcher's environment: OpenMPI's mpirun, PMIx (srun --mpi=pmix, prterun), PMI-1/2
 * (MPICH's hydra, srun --mpi=pmi2), or a Slurm step of several tasks. */
static int launched(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    const char *tasks = getenv("SLURM_STEP_NUM_TASKS");
    return tasks && atoi(tasks) > 1 && getenv("SLURM_PROCID");
}

#ifdef TAL_HAVE_MPI
static tal_status mpi_fail(tal_err *err, int code, const char *what) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    return tal_err_set(err, TAL_EIO, "rank %d on %s: %s: %s", g_job.rank, tal_dist_host(), what,
                       text);
}
#define MPI_TRY(call, what)                                                                   \
    do {                                                                                      \
        int rc_ = (call);                                                                     \
        if (rc_ != MPI_SUCCESS) return mpi_fail(err, rc_, what);                              \
    } while (0)
#endif

int tal_dist_init(int *argc, char ***argv) {
    tal_dist_host();
#ifdef TAL_HAVE_MPI
    if (!launched()) return 0;
    int provided = 0;
    /* only the main thread calls MPI (the decoder threads never do) */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "re2tal: %s: cannot join the MPI job\n", g_job.host);
        return 1;
    }
    g_job.active = 1;
    /* errors come back as codes: a rank reports what failed, then the job is aborted */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_job.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_job.world);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, &g_job.local);
        MPI_Comm_free(&node);
    }
#else
    (void)argc;
    (void)argv;
    if (launched() && !getenv("RE2TAL_QUIET_MPI"))
        fprintf(stderr, "re2tal: started by an MPI launcher, but built without MPI: running as "
                        "one process (rebuild with libopenmpi-dev for data-parallel ranks)\n");
#endif
    return 0;
}

void tal_dist_finalize(void) {
#ifdef TAL_HAVE_MPI
    if (g_job.active) MPI_Finalize();
    g_job.active = 0;
#endif
}

void tal_dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
#ifdef TAL_HAVE_MPI
    if (g_job.active && g_job.world > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

void tal_dist_print_layout(FILE *out, int threads) {
    int devices = tal_cuda_device_count();
    char mine[300];
    snprintf(mine, sizeof mine, "%s", tal_dist_host());
    char *all = NULL;
    tal_err err = {0};
    if (g_job.world > 1 &&
        tal_dist_gather_bytes(mine, sizeof mine, 0, &all, NULL, &err) != TAL_OK) {
        fprintf(stderr, "re2tal: %s\n", err.msg);
        tal_dist_abort(1);
    }
    if (g_job.rank != 0) return;
    /* hosts in rank order with their rank ranges: "a: 0-3, b: 4-7" */
    char hosts[2048] = "";
    int n_hosts = 0;
    for (int r = 0; r < g_job.world;) {
        const char *h = all ? all + (size_t)r * sizeof mine : mine;
        int e = r + 1;
        while (e < g_job.world && !strcmp(all + (size_t)e * sizeof mine, h)) e++;
        size_t used = strlen(hosts);
        if (e - r > 1)
            snprintf(hosts + used, sizeof hosts - used, "%s%s: ranks %d-%d", n_hosts ? ", " : "",
                     h, r, e - 1);
        else
            snprintf(hosts + used, sizeof hosts - used, "%s%s: rank %d", n_hosts ? ", " : "", h, r);
        n_hosts++;
        r = e;
    }
    fprintf(out, "layout: %d rank(s) on %d host(s) (%s), %d thread(s) per rank, devices: %s\n",
            g_job.world, n_hosts, hosts, threads,
            devices > 0 ? "CUDA present (this MPI path trains on the CPU)" : "CPU");
    fflush(out);
    free(all);
}

/* ---------------------------------------------------------------- agreement ------------- */
tal_status tal_dist_sum(double *vals, int n, tal_err *err) {
    if (g_job.world == 1 || n == 0) return TAL_OK;
#ifdef TAL_HAVE_MPI
    /* allgather, then each rank adds in rank order: the same bits everywhere, whatever the
     * message timing (MPI_Allreduce may combine in any order) */
    double *all = malloc(sizeof(double) * (size_t)n * (size_t)g_job.world);
    if (!all) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    int rc = MPI_Allgather(vals, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        free(all);
        return mpi_fail(err, rc, "summing values over the ranks");
    }
    for (int i = 0; i < n; i++) {
        double s = all[i];
        for (int r = 1; r < g_job.world; r++) s += all[(size_t)r * n + i];
        vals[i] = s;
    }
    free(all);
#else
    (void)vals; /* one rank without MPI: its own values are the sum */
    (void)err;
#endif
    return TAL_OK;
}

int tal_dist_count(int flag) {
    double v = flag != 0;
    tal_err err = {0};
    if (tal_dist_sum(&v, 1, &err) != TAL_OK) {
        fprintf(stderr, "re2tal: %s\n", err.msg);
        tal_dist_abort(1);
    }
    return (int)v;
}

tal_status tal_dist_bcast(void *buf, size_t bytes, int root, tal_err *err) {
    if (g_job.world == 1) return TAL_OK;
#ifdef TAL_HAVE_MPI
    TAL_ASSERT(bytes <= (size_t)0x7fffffff);
    MPI_TRY(MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
#else
    (void)buf, (void)bytes, (void)root, (void)err;
#endif
    return TAL_OK;
}

tal_status tal_dist_gather_bytes(const void *mine, size_t n, int to_all, char **out,
                                 size_t **sizes, tal_err *err) {
    *out = NULL;
    if (sizes) *sizes = NULL;
    int W = g_job.world, me = g_job.rank;
    int receives = to_all || me == 0;
    size_t *sz = calloc((size_t)W, sizeof *sz);
    if (!sz) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    sz[me] = n;
    if (W == 1) {
        *out = malloc(n + 1);
        if (!*out) {
            free(sz);
            return tal_err_set(err, TAL_ENOMEM, "out of memory");
        }
        if (n) memcpy(*out, mine, n);
        if (sizes) *sizes = sz; else free(sz);
        return TAL_OK;
    }
#ifdef TAL_HAVE_MPI
    TAL_ASSERT(n <= (size_t)0x7fffffff);
    int my_n = (int)n;
    int *counts = calloc((size_t)W, sizeof *counts), *displs = calloc((size_t)W, sizeof *displs);
    char *buf = NULL;
    tal_status st = TAL_OK;
    int rc = !counts || !displs ? MPI_ERR_NO_MEM
             : to_all ? MPI_Allgather(&my_n, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD)
                      : MPI_Gather(&my_n, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail(err, rc, "gathering sizes");
        goto done;
    }
    size_t total = 0;
    if (receives) {
        for (int r = 0; r < W; r++) {
            TAL_ASSERT_MSG(total + (size_t)counts[r] <= (size_t)0x7fffffff,
                           "gathered results past 2 GiB");
            displs[r] = (int)total;
            total += (size_t)counts[r];
            sz[r] = (size_t)counts[r];
        }
        buf = malloc(total + 1);
        if (!buf) {
            st = tal_err_set(err, TAL_ENOMEM, "out of memory for %zu gathered bytes", total);
            tal_dist_abort(1); /* the others are about to wait in the gather */
        }
    }
    rc = to_all ? MPI_Allgatherv(mine, my_n, MPI_BYTE, buf, counts, displs, MPI_BYTE,
                                 MPI_COMM_WORLD)
                : MPI_Gatherv(mine, my_n, MPI_BYTE, buf, counts, displs, MPI_BYTE, 0,
                              MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail(err, rc, "gathering results");
        goto done;
    }
    if (receives) {
        *out = buf;
        buf = NULL;
    }
done:
    free(buf);
    free(counts);
    free(displs);
    if (st == TAL_OK && sizes && receives)
        *sizes = sz;
    else
        free(sz);
    return st;
#else
    (void)receives;
    free(sz);
    return tal_err_set(err, TAL_EINVAL, "built without MPI");
#endif
}

/* ---------------------------------------------------------------- sharding -------------- */
typedef struct cost_item {
    double cost;
    int index;
} cost_item;

static int by_cost_desc(const void *a, const void *b) {
    const cost_item *x = a, *y = b;
    if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
    return x->index - y->index;
}

void tal_dist_share_by_cost(const double *cost, int n, int world, int *owner) {
    cost_item *items = malloc(sizeof *items * ((size_t)n + 1));
    double *load = calloc((size_t)world, sizeof *load);
    TAL_ASSERT_MSG(items && load, "out of memory");
    for (int i = 0; i < n; i++) {
        items[i].cost = cost[i] > 0 ? cost[i] : 0; /* unknown lengths cost nothing */
        items[i].index = i;
    }
    qsort(items, (size_t)n, sizeof *items, by_cost_desc);
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int r = 1; r < world; r++)
            if (load[r] < load[best]) best = r;
        owner[items[i].index] = best;
        load[best] += items[i].cost + 1e-3; /* a video costs something even when its length is
                                               unknown: zero-cost items still spread out */
    }
    free(items);
    free(load);
}
