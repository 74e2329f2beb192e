/* app/weights.c: a checkpoint matched name by name against a parameter store, every problem
 * listed (see weights.h); loading itself is tal_params_load's. */
#include "app/weights.h"

#include <stdlib.h>
#include <string.h>

/* Buffers a checkpoint carries that no parameter takes on purpose: the attention index
 * (recomputed), BatchNorm's counter, the head's loss normaliser (training state), the data
 * preprocessor's mean and std (constants of the decoder). */
static int is_buffer(const char *name) {
    return strstr(name, "relative_position_index") || strstr(name, "num_batches_tracked") ||
           strstr(name, "loss_normalizer") || strstr(name, "data_preprocessor.");
}

static tal_status push(char ***list, int *n, const char *text, tal_err *err) {
    char **l = realloc(*list, sizeof *l * (size_t)(*n + 1));
    if (!l) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    *list = l;
    if (!(l[*n] = strdup(text))) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    ++*n;
    return TAL_OK;
}

void tal_weights_report_free(tal_weights_report *r) {
    for (int i = 0; i < r->n_missing; i++) free(r->missing[i]);
    for (int i = 0; i < r->n_unused; i++) free(r->unused[i]);
    for (int i = 0; i < r->n_mismatch; i++) free(r->mismatch[i]);
    free(r->missing);
    free(r->unused);
    free(r->mismatch);
    free(r->metadata);
    memset(r, 0, sizeof *r);
}

static int in_scope(const char *name, const char *only) {
    return !only || !strncmp(name, only, strlen(only));
}

tal_status tal_weights_check(tal_weights_report *r, tal_params *p, const char *only,
                             const char *path, tal_name_map_fn rename, void *ctx, tal_err *err) {
    memset(r, 0, sizeof *r);
    tal_tensor_set set = {0};
    tal_status st = tal_safetensors_read(&set, path, err);
    if (st) return st;
    int n_params = tal_params_count(p);
    char *taken = calloc((size_t)n_params + 1, 1);
    if (!taken) st = tal_err_set(err, TAL_ENOMEM, "out of memory");
    if (!st && set.metadata_json && !(r->metadata = strdup(set.metadata_json)))
        st = tal_err_set(err, TAL_ENOMEM, "out of memory");
    for (int i = 0; i < set.count && !st; i++) {
        const char *file_name = set.items[i].name;
        char buf[256];
        const char *name = rename ? rename(file_name, buf, sizeof buf, ctx) : file_name;
        tal_param *q = name ? tal_params_find(p, name) : NULL;
        if (q && !in_scope(q->name, only)) q = NULL;
        if (!q) {
            if (is_buffer(file_name)) r->n_buffers++;
            else st = push(&r->unused, &r->n_unused, file_name, err);
            continue;
        }
        taken[q - tal_params_at(p, 0)] = 1;
        if (!tal_tensor_same_shape(q->value, set.items[i].t)) {
            char a[96], b[96], line[640];
            snprintf(line, sizeof line, "%s -> %s: expected %s, the file has %s", file_name,
                     q->name, tal_tensor_shape_str(q->value, a, sizeof a),
                     tal_tensor_shape_str(set.items[i].t, b, sizeof b));
            st = push(&r->mismatch, &r->n_mismatch, line, err);
        } else {
            r->n_matched++;
        }
    }
    for (int k = 0; k < n_params && !st; k++) {
        const char *name = tal_params_at(p, k)->name;
        if (!taken[k] && in_scope(name, only)) st = push(&r->missing, &r->n_missing, name, err);
    }
    free(taken);
    tal_tensor_set_free(&set);
    if (st) tal_weights_report_free(r);
    return st;
}

static void print_list(FILE *out, const char *title, char **items, int n) {
    if (!n) return;
    fprintf(out, "  %s (%d):\n", title, n);
    for (int i = 0; i < n; i++) fprintf(out, "    %s\n", items[i]);
}

void tal_weights_report_print(FILE *out, const tal_weights_report *r, const char *path,
                              const char *what) {
    fprintf(out, "%s: %d tensors fit the %s, %d buffers not needed, %d parameters missing, %d "
                 "tensors with the wrong shape, %d unused\n", path, r->n_matched, what,
            r->n_buffers, r->n_missing, r->n_mismatch, r->n_unused);
    print_list(out, "missing parameters (as the model names them; each was looked for under "
                    "its ordinary, rewired and OpenTAD spellings)", r->missing, r->n_missing);
    print_list(out, "wrong shapes", r->mismatch, r->n_mismatch);
    print_list(out, "unused tensors", r->unused, r->n_unused);
}

tal_status tal_weights_load(tal_params *p, const char *only, const char *path,
                            tal_name_map_fn rename, void *ctx, int allow_unused, FILE *report,
                            int verbose, const char *what, tal_weights_report *keep,
                            tal_err *err) {
    tal_weights_report r;
    tal_status st = tal_weights_check(&r, p, only, path, rename, ctx, err);
    if (st) return st;
    if (report && (verbose || r.n_missing || r.n_mismatch || r.n_unused))
        tal_weights_report_print(report, &r, path, what);
    if (r.n_missing || r.n_mismatch || (r.n_unused && !allow_unused)) {
        char first[400] = "";
        if (r.n_missing) snprintf(first, sizeof first, "; first missing: %s", r.missing[0]);
        else if (r.n_mismatch) snprintf(first, sizeof first, "; %s", r.mismatch[0]);
        else snprintf(first, sizeof first, "; first unused: %s", r.unused[0]);
        st = tal_err_set(err, TAL_EFORMAT, "%s does not fit the %s: %d parameters missing, %d "
                         "tensors with the wrong shape, %d tensors unused%s", path, what,
                         r.n_missing, r.n_mismatch, r.n_unused, first);
    } else {
        int unused = 0;
        st = tal_params_load(p, path, rename, ctx, only != NULL, &unused, err);
        if (!st && err) err->msg[0] = 0; /* the unused ones are in the report */
    }
    if (keep && !st) *keep = r;
    else tal_weights_report_free(&r);
    return st;
}
