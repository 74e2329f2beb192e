/* app/checkpoint.h: run-folder checkpoints. A checkpoint is a folder (model.safetensors,
 * optim.safetensors, ema.safetensors, state.json) written as NAME.new and swapped in with
 * renames, state.json last, so a crash at any moment leaves a complete checkpoint (NAME, or
 * NAME.old / NAME.new when it struck between the renames: tal_ckpt_find picks the complete one). */
#ifndef TAL_APP_CHECKPOINT_H
#define TAL_APP_CHECKPOINT_H

#include <stdint.h>

#include "nn/nn.h"

typedef struct tal_train_state {
    int epoch;            /* 0-based epoch in progress */
    int64_t index;        /* next sample index within the epoch's order */
    int64_t step;         /* optimiser updates done */
    int64_t samples;      /* clips trained on */
    double loss_norm;     /* the head's running normaliser */
    double best_map;      /* best validation average mAP so far (-1: none) */
    int best_epoch;
} tal_train_state;

/* Writes run_dir/name/ (atomically, see above). opt and ema may be NULL. Weights or EMA weights
 * holding NaN or Inf are refused before anything is written (TAL_EFORMAT naming the first such
 * tensor and how many there are), even under --allow-nonfinite: the previous checkpoint stays. */
tal_status tal_ckpt_save(const char *run_dir, const char *name, const tal_params *p,
                         const void *opt, const void *ema, const tal_train_state *st, tal_err *err);
/* Path of the complete checkpoint folder run_dir/name (or its .new / .old twin) into buf;
 * TAL_EIO if none. */
tal_status tal_ckpt_find(char *buf, size_t size, const char *run_dir, const char *name, tal_err *err);
tal_status tal_ckpt_read_state(const char *ckpt_dir, tal_train_state *st, tal_err *err);
/* Writes text to path atomically (temp + rename). */
tal_status tal_write_file_atomic(const char *path, const char *text, tal_err *err);
/* Reads a whole JSON or text file (caller frees; tal_file_read's checks and size limit); NULL
 * with err set on failure. */
char *tal_read_file(const char *path, tal_err *err);

#endif
