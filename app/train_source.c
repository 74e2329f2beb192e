/* app/train_source.c: the sample plan of an epoch (global order, updates, each rank's share) and
 * the batch source that decodes a rank's clips ahead of the step (see train_loop.h). */
#include "app/train_loop.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the plan -------------- */
tal_epoch_plan tal_epoch_plan_make(int64_t n_train, int per_update, int64_t max_updates,
                                   int world) {
    TAL_ASSERT(n_train >= 0 && per_update >= 1 && world >= 1);
    tal_epoch_plan p = {n_train, per_update, world, 0};
    int64_t global = (int64_t)per_update * world;
    if (max_updates > 0 && max_updates * global < p.n_samples) p.n_samples = max_updates * global;
    p.updates = (p.n_samples + global - 1) / global;
    return p;
}

int64_t tal_epoch_sample(const tal_epoch_plan *p, int rank, int64_t u, int j) {
    TAL_ASSERT(rank >= 0 && rank < p->world && j >= 0 && j < p->per_update);
    int64_t g = (u * p->world + rank) * p->per_update + j;
    return g < p->n_samples ? g : -1;
}

void tal_epoch_order(int *order, const tal_run_data *d, const tal_run_config *rc, int epoch) {
    for (int i = 0; i < d->n_train; i++) order[i] = d->train[i];
    tal_rng_key k = {(uint64_t)rc->seed, (uint64_t)epoch, 0x0de5};
    for (int i = d->n_train - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(tal_rng_u64(k, (uint64_t)i) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* ---------------------------------------------------------------- the source ------------ */
struct tal_batch_source {
    const tal_run_config *rc;
    const tal_run_data *d;
    int depth;
    tal_arena *arena;         /* the clip buffers */
    tal_tensor *videos;       /* [depth] */
    tal_clip *clips;          /* [depth] */
    int *order;               /* the epoch's global order [n_train] */
    int64_t *samples;         /* this rank's global samples from the start item on */
    int64_t n_items, next;    /* items this epoch (from the start), next one to hand out */
    int epoch, slot;
    tal_prefetch *pf;
    /* a model on a device: the decoder fills pinned host slots (arena) and queues each clip's
     * upload into its device slot on the copy stream; the step's stream waits for uploaded[],
     * the next upload into a device slot for consumed[] (the step done reading it) */
    tal_arena *dev_arena;
    tal_tensor *dev_videos;   /* [depth] */
    tal_stream *copy;
    tal_event **uploaded, **consumed;
};

/* Augmentation and window keys come from the global sample, so they do not depend on how the
 * samples are spread over ranks. */
static tal_rng_key sample_key(const tal_run_config *rc, int epoch, int64_t sample) {
    tal_rng_key k = {(uint64_t)rc->seed, (uint64_t)epoch, 0x5a3d1e00u + (uint64_t)sample};
    return k;
}

static tal_status produce(int64_t item, int slot, void *ctx, tal_err *err) {
    tal_batch_source *s = ctx;
    int64_t g = s->samples[item];
    int vi = s->order[g];
    const tal_video_anno *v = &s->d->ds->videos[vi];
    tal_clip_free(&s->clips[slot]);
    tal_rng_key key = sample_key(s->rc, s->epoch, g);
    tal_status st = tal_clip_for(&s->clips[slot], s->rc, v, 1, 0, key, err);
    if (s->copy) /* the slot's last upload must be done before its host memory changes */
        tal_event_synchronize(s->uploaded[slot]);
    if (!st) st = tal_clip_load(s->videos[slot], s->rc, s->d->paths[vi], &s->clips[slot], 1, key, err);
    if (!st && s->copy) { /* on the copy stream, overlapping the step in flight */
        tal_stream_wait_event(s->copy, s->consumed[slot]);
        tal_copy_async(s->dev_videos[slot], s->videos[slot], s->copy);
        tal_event_record(s->uploaded[slot], s->copy);
    }
    return st;
}

/* Device slots, the copy stream and its events for a model on dev. */
static tal_status make_device_feed(tal_batch_source *s, tal_device dev, size_t clip_floats,
                                   tal_err *err) {
    s->dev_videos = calloc((size_t)s->depth, sizeof *s->dev_videos);
    s->uploaded = calloc((size_t)s->depth, sizeof *s->uploaded);
    s->consumed = calloc((size_t)s->depth, sizeof *s->consumed);
    if (!s->dev_videos || !s->uploaded || !s->consumed)
        return tal_err_set(err, TAL_ENOMEM, "out of memory");
    tal_status st = tal_arena_create(&s->dev_arena, dev,
                                     (size_t)s->depth * tal_arena_round(clip_floats * 4), err);
    if (!st) st = tal_stream_create(&s->copy, err);
    for (int i = 0; !st && i < s->depth; i++) {
        s->dev_videos[i] = tal_arena_tensor(s->dev_arena, 1, (int64_t[]){(int64_t)clip_floats});
        if (!(st = tal_event_create(&s->uploaded[i], err)))
            st = tal_event_create(&s->consumed[i], err);
    }
    return st ? tal_err_prefix(err, "data.prefetch %d clips of %zu bytes on the device",
                               s->depth, clip_floats * 4)
              : TAL_OK;
}

tal_status tal_batch_source_create(tal_batch_source **out, const tal_run_config *rc,
                                   const tal_run_data *d, const tal_model *m, tal_err *err) {
    *out = NULL;
    tal_batch_source *s = calloc(1, sizeof *s);
    if (!s) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    s->rc = rc;
    s->d = d;
    s->depth = rc->prefetch > 0 ? rc->prefetch : 1;
    size_t clip_floats = (size_t)3 * m->clip_frames * m->crop * m->crop;
    s->videos = calloc((size_t)s->depth, sizeof *s->videos);
    s->clips = calloc((size_t)s->depth, sizeof *s->clips);
    s->order = malloc(sizeof(int) * ((size_t)d->n_train + 1));
    s->samples = malloc(sizeof(int64_t) * ((size_t)d->n_train + 1));
    tal_status st = TAL_OK;
    size_t bytes = (size_t)s->depth * tal_arena_round(clip_floats * 4);
    if (!s->videos || !s->clips || !s->order || !s->samples)
        st = tal_err_set(err, TAL_ENOMEM, "out of memory");
    else if (m->dev == TAL_DEV_CPU)
        st = tal_arena_create(&s->arena, TAL_DEV_CPU, bytes, err);
    else if (!(st = tal_arena_create_pinned(&s->arena, bytes, err)))
        st = make_device_feed(s, m->dev, clip_floats, err);
    if (st) {
        tal_batch_source_destroy(s);
        return st;
    }
    for (int i = 0; i < s->depth; i++)
        s->videos[i] = tal_arena_tensor(s->arena, 1, (int64_t[]){(int64_t)clip_floats});
    *out = s;
    return TAL_OK;
}

void tal_batch_source_destroy(tal_batch_source *s) {
    if (!s) return;
    tal_batch_source_stop(s);
    if (s->clips)
        for (int i = 0; i < s->depth; i++) tal_clip_free(&s->clips[i]);
    free(s->clips);
    free(s->videos);
    free(s->order);
    free(s->samples);
    tal_stream_destroy(s->copy); /* waits for its uploads */
    for (int i = 0; i < s->depth; i++) {
        if (s->uploaded) tal_event_destroy(s->uploaded[i]);
        if (s->consumed) tal_event_destroy(s->consumed[i]);
    }
    free(s->uploaded);
    free(s->consumed);
    free(s->dev_videos);
    tal_arena_destroy(s->dev_arena);
    tal_arena_destroy(s->arena);
    free(s);
}

tal_status tal_batch_source_start(tal_batch_source *s, const tal_epoch_plan *plan, int epoch,
                                  tal_shard sh, int64_t u0, int j0, tal_err *err) {
    tal_batch_source_stop(s);
    tal_epoch_order(s->order, s->d, s->rc, epoch);
    s->epoch = epoch;
    s->n_items = s->next = 0;
    for (int64_t u = u0; u < plan->updates; u++)
        for (int j = u == u0 ? j0 : 0; j < plan->per_update; j++) {
            int64_t g = tal_epoch_sample(plan, sh.rank, u, j);
            if (g >= 0) s->samples[s->n_items++] = g;
        }
    if (s->n_items == 0) return TAL_OK;
    return tal_prefetch_start(&s->pf, s->n_items, s->depth, produce, s, err);
}

tal_status tal_batch_source_next(tal_batch_source *s, tal_train_item *item, tal_err *err) {
    TAL_ASSERT_MSG(s->pf && s->next < s->n_items, "batch source: item %lld of %lld",
                   (long long)s->next, (long long)s->n_items);
    int64_t g = s->samples[s->next];
    item->sample = g;
    item->video_index = s->order[g];
    tal_status st = tal_prefetch_wait(s->pf, s->next, &s->slot, err);
    item->video = st ? tal_tensor_none() : s->copy ? s->dev_videos[s->slot] : s->videos[s->slot];
    item->clip = st ? NULL : &s->clips[s->slot];
    if (!st && s->copy) /* the step's work waits on the device, not the host */
        tal_stream_wait_event(NULL, s->uploaded[s->slot]);
    return st;
}

void tal_batch_source_release(tal_batch_source *s) {
    if (s->copy) /* after the step's reads of the device slot */
        tal_event_record(s->consumed[s->slot], NULL);
    tal_prefetch_release(s->pf, s->next++);
}

void tal_batch_source_stop(tal_batch_source *s) {
    tal_prefetch_stop(s->pf);
    s->pf = NULL;
}
