/* app/weights.h: a checkpoint matched against a parameter store before anything is loaded, and
 * every problem listed by name: parameters with no tensor, tensors no parameter takes, shapes
 * that disagree (tensor, expected shape, given shape). Used where users bring weights from
 * elsewhere (re2tal extract --backbone, re2tal import), so one run shows the whole mismatch. */
#ifndef TAL_APP_WEIGHTS_H
#define TAL_APP_WEIGHTS_H

#include <stdio.h>

#include "nn/nn.h"

typedef struct tal_weights_report {
    char **missing;      /* parameter names with no tensor in the file */
    int n_missing;
    char **unused;       /* file tensors no parameter takes (known buffers left out) */
    int n_unused;
    char **mismatch;     /* "TENSOR -> PARAMETER: expected [..], the file has [..]" */
    int n_mismatch;
    int n_matched, n_buffers; /* tensors loaded; buffers that are recomputed or not needed */
    char *metadata;      /* the file's __metadata__ JSON text, or NULL (owned) */
} tal_weights_report;

/* Maps every tensor of the safetensors file `path` with rename (NULL: identity; the map may
 * return NULL for "not a parameter") onto the parameters whose names start with `only` (NULL:
 * all). Bad content of the file itself is an error; mismatches go into the report. */
tal_status tal_weights_check(tal_weights_report *r, tal_params *p, const char *only,
                             const char *path, tal_name_map_fn rename, void *ctx, tal_err *err);
/* Prints the report: counts, then every missing parameter, mismatch and unused tensor, one per
 * line. what names the model part ("backbone", "model"). */
void tal_weights_report_print(FILE *out, const tal_weights_report *r, const char *path,
                              const char *what);
void tal_weights_report_free(tal_weights_report *r); /* leaves it zeroed */

/* tal_weights_check, then the values loaded (tal_params_load: non-finite values and the rest of
 * its checks apply). The report goes to `report` (may be NULL) when anything did not map, or
 * always when verbose. TAL_EFORMAT if anything is missing or misshapen, or if unused tensors
 * exist and !allow_unused; err names the first of each kind and the counts. keep (may be NULL)
 * gets the report on success (free it). */
tal_status tal_weights_load(tal_params *p, const char *only, const char *path,
                            tal_name_map_fn rename, void *ctx, int allow_unused, FILE *report,
                            int verbose, const char *what, tal_weights_report *keep,
                            tal_err *err);

#endif
