/* decode/prefetch.c: a producer thread filling a ring of slots ahead of the consumer. */
#include "decode/decode.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct tal_prefetch {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t n_items, produced, released; /* items [released, produced) are ready or in use */
    int depth, stop;
    tal_produce_fn fn;
    void *ctx;
    tal_status *status; /* per slot */
    tal_err *errs;      /* per slot */
};

static void *worker(void *arg) {
    tal_prefetch *pf = arg;
    for (int64_t i = 0; i < pf->n_items; i++) {
        pthread_mutex_lock(&pf->mu);
        while (!pf->stop && i - pf->released >= pf->depth) pthread_cond_wait(&pf->cv, &pf->mu);
        int stop = pf->stop;
        pthread_mutex_unlock(&pf->mu);
        if (stop) break;
        int slot = (int)(i % pf->depth);
        memset(&pf->errs[slot], 0, sizeof pf->errs[slot]);
        pf->status[slot] = pf->fn(i, slot, pf->ctx, &pf->errs[slot]);
        pthread_mutex_lock(&pf->mu);
        pf->produced = i + 1;
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
    }
    return NULL;
}

tal_status tal_prefetch_start(tal_prefetch **out, int64_t n_items, int depth, tal_produce_fn fn,
                              void *ctx, tal_err *err) {
    *out = NULL;
    TAL_ASSERT(depth >= 1 && n_items >= 0);
    tal_prefetch *pf = calloc(1, sizeof *pf);
    if (!pf) return tal_err_set(err, TAL_ENOMEM, "prefetch: out of memory");
    pf->status = calloc((size_t)depth, sizeof *pf->status);
    pf->errs = calloc((size_t)depth, sizeof *pf->errs);
    pf->n_items = n_items;
    pf->depth = depth;
    pf->fn = fn;
    pf->ctx = ctx;
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->cv, NULL);
    if (!pf->status || !pf->errs || pthread_create(&pf->thread, NULL, worker, pf) != 0) {
        pthread_mutex_destroy(&pf->mu);
        pthread_cond_destroy(&pf->cv);
        free(pf->status);
        free(pf->errs);
        free(pf);
        return tal_err_set(err, TAL_ENOMEM, "prefetch: cannot start the worker thread");
    }
    *out = pf;
    return TAL_OK;
}

tal_status tal_prefetch_wait(tal_prefetch *pf, int64_t i, int *slot, tal_err *err) {
    TAL_ASSERT_MSG(i >= pf->released && i < pf->n_items, "prefetch: item %lld out of order",
                   (long long)i);
    pthread_mutex_lock(&pf->mu);
    while (pf->produced <= i) pthread_cond_wait(&pf->cv, &pf->mu);
    pthread_mutex_unlock(&pf->mu);
    *slot = (int)(i % pf->depth);
    if (pf->status[*slot] != TAL_OK && err) *err = pf->errs[*slot];
    return pf->status[*slot];
}

void tal_prefetch_release(tal_prefetch *pf, int64_t i) {
    pthread_mutex_lock(&pf->mu);
    if (i + 1 > pf->released) pf->released = i + 1;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
}

void tal_prefetch_stop(tal_prefetch *pf) {
    if (!pf) return;
    pthread_mutex_lock(&pf->mu);
    pf->stop = 1;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    pthread_join(pf->thread, NULL);
    pthread_mutex_destroy(&pf->mu);
    pthread_cond_destroy(&pf->cv);
    free(pf->status);
    free(pf->errs);
    free(pf);
}
