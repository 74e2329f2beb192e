/* app/train_loop.h: the seams of the training loop (app/trainer.c drives them). Each is the one
 * place where a way of running enters: data-parallel ranks at the sample plan and the gradient
 * reduction, a GPU at the model (the step) and the clip buffers, the writer rank at checkpoints
 * and validation. One CPU process is the plain case of each: shard {0, 1}, no reducer. */
#ifndef TAL_APP_TRAIN_LOOP_H
#define TAL_APP_TRAIN_LOOP_H

#include "app/checkpoint.h"
#include "app/trainer.h"

/* ---------------------------------------------------------------- ranks ----------------- */
/* This process's place among the ranks of a data-parallel job. */
typedef struct tal_shard {
    int rank, world;
} tal_shard;

/* ---------------------------------------------------------------- 1. the sample plan ----- */
/* One epoch: a global order of the training videos (one shuffle from (seed, epoch), the same on
 * every rank), cut into updates of per_update x world consecutive samples; rank r takes the
 * r-th run of per_update in each. The last update may be short: a rank whose share is empty
 * still takes part in it (its gradient is zero), so every rank runs the same number of updates
 * and one rank with batch 2b computes what two ranks with batch b compute together. */
typedef struct tal_epoch_plan {
    int64_t n_samples;   /* global samples this epoch (training videos, or fewer: a cap) */
    int per_update;      /* samples per update on each rank (batch_size x accum_steps) */
    int world;
    int64_t updates;     /* per epoch, the same on every rank */
} tal_epoch_plan;

/* max_updates > 0 caps the epoch (train.max_steps_per_epoch). */
tal_epoch_plan tal_epoch_plan_make(int64_t n_train, int per_update, int64_t max_updates,
                                   int world);
/* Global sample index of item j (0-based) of update u on `rank`, or -1 past the epoch's end. */
int64_t tal_epoch_sample(const tal_epoch_plan *p, int rank, int64_t u, int j);
/* Writes the epoch's global order (d->n_train video indices into d->ds->videos). */
void tal_epoch_order(int *order, const tal_run_data *d, const tal_run_config *rc, int epoch);

/* ---------------------------------------------------------------- 2. the batch source ---- */
/* Decodes this rank's clips of an epoch ahead of the step (a prefetch thread), in plan order
 * from a given global sample on. */
typedef struct tal_train_item {
    tal_tensor video;         /* [3 * T * crop * crop] floats, valid until released */
    const tal_clip *clip;
    int64_t sample;           /* global sample index in the epoch's order */
    int video_index;          /* into d->ds->videos */
} tal_train_item;

typedef struct tal_batch_source tal_batch_source;

/* Clip buffers for `depth` clips of the model's input shape. */
tal_status tal_batch_source_create(tal_batch_source **out, const tal_run_config *rc,
                                   const tal_run_data *d, const tal_model *m, tal_err *err);
void tal_batch_source_destroy(tal_batch_source *s); /* NULL is fine; stops an epoch in flight */
/* Starts decoding the epoch's items of `rank` from update u0, item j0 on. */
tal_status tal_batch_source_start(tal_batch_source *s, const tal_epoch_plan *plan, int epoch,
                                  tal_shard sh, int64_t u0, int j0, tal_err *err);
/* Waits for the next item in order. TAL_OK: *item is filled; another status: that clip could
 * not be made (err says why; skip it), *item still names its sample. Call release after
 * either. */
tal_status tal_batch_source_next(tal_batch_source *s, tal_train_item *item, tal_err *err);
void tal_batch_source_release(tal_batch_source *s);
void tal_batch_source_stop(tal_batch_source *s); /* ends the epoch (joins the decoder) */

/* ---------------------------------------------------------------- 3. gradient reduction -- */
/* Where the ranks' gradients meet. reduce() sums every rank's gradients into each rank's params
 * and sums vals[0..n) the same way (loss sums, counts, flags), so that every rank sees the same
 * numbers and takes the same decisions (skip, stop). fn NULL: one process, nothing to do. */
typedef struct tal_grad_reducer {
    tal_status (*reduce)(void *ctx, tal_params *p, double *vals, int n, tal_err *err);
    void *ctx;
} tal_grad_reducer;

/* ---------------------------------------------------------------- 4. the update --------- */
/* What the clips of one update added up to (before the reduction: this rank's; after: all). */
typedef struct tal_update_acc {
    double loss, cls, reg;    /* sums over the clips that gave a loss */
    double n_loss;            /* clips that gave a loss */
    double n_nonfinite;       /* clips whose loss was not finite */
    double recon_max;         /* worst reversible reconstruction error (-1: none) */
    double recon_stages[TAL_BACKBONE_MAX_STAGES]; /* the same per backbone stage */
    int n_stages;
    double stop;              /* ranks asking to stop after this update (Ctrl-C on any rank) */
    /* Slot i: max(positives, 1) of the update's i-th global clip, 0 where no loss came (another
     * rank's clip before the reduction): the head's loss normaliser moves by these, in global
     * order, once per update, so every split over ranks gives the same normaliser. Caller-owned
     * [n_slots] (per_update x world); not cleared by tal_update_acc_clear. */
    double *slots;
    int n_slots;
} tal_update_acc;

void tal_update_acc_clear(tal_update_acc *a);
void tal_update_acc_add(tal_update_acc *a, const tal_step_stats *ss);

typedef struct tal_update_result {
    int applied;              /* 0: skipped (non-finite loss or gradient norm) */
    double grad_norm;         /* before clipping */
    float lr_scale;           /* the schedule's factor on each group's learning rate */
} tal_update_result;

typedef struct tal_optimizer {
    tal_adamw *adamw;
    tal_ema *ema;             /* NULL: no EMA */
    double clip_norm;
    int64_t warmup, total;    /* updates */
    double min_lr;
} tal_optimizer;

/* Reduces (red may be NULL), then: if any clip's loss or the gradient norm is not finite, skips
 * (gradients zeroed, weights untouched); else clips, steps AdamW at the scheduled rate for
 * `step`, zeroes the gradients and updates the EMA. */
tal_status tal_update_apply(const tal_optimizer *o, tal_params *p, const tal_grad_reducer *red,
                            tal_update_acc *acc, int64_t step, tal_update_result *res,
                            tal_err *err);
/* Every gradient as one span of the store's gradient arena (parameters in declaration order,
 * alignment padding between them). Deterministic sums (train.deterministic_reduce) use it: a
 * rank's second and later clips of an update compute their gradient alone, into zeroed
 * gradients, and add the earlier clips' sum set aside here, so an update's gradient is the sum of
 * per-clip gradients in sample order on one rank as on many (kernels that add into a non-zero
 * gradient round differently). */
typedef struct tal_grad_span {
    float *data;
    int64_t n;
    tal_device device;        /* the gradients'; the stash must be there too */
} tal_grad_span;
tal_grad_span tal_params_grad_span(tal_params *p);
void tal_grads_set_aside(tal_grad_span g, float *stash);      /* stash = g; g = 0 */
void tal_grads_add_back(tal_grad_span g, const float *stash); /* g += stash */

/* Counts parameter values that are not finite (an update can overflow the weights). */
int64_t tal_params_count_nonfinite(const tal_params *p, const char **first_name);

#endif
