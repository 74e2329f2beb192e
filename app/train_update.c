/* app/train_update.c: one optimiser update from the accumulated gradients: the reduction over
 * ranks, the finiteness gate (a non-finite loss or gradient norm skips the update, so one bad
 * clip cannot poison the weights), clipping, AdamW at the scheduled rate, EMA. */
#include "app/train_loop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void tal_update_acc_clear(tal_update_acc *a) {
    double *slots = a->slots;
    int n_slots = a->n_slots;
    memset(a, 0, sizeof *a);
    a->recon_max = -1;
    for (int i = 0; i < TAL_BACKBONE_MAX_STAGES; i++) a->recon_stages[i] = -1;
    a->slots = slots, a->n_slots = n_slots;
    for (int i = 0; i < n_slots; i++) slots[i] = 0;
}

void tal_update_acc_add(tal_update_acc *a, const tal_step_stats *ss) {
    const tal_head_losses *l = &ss->losses;
    if (!isfinite(l->total) || !isfinite(l->cls) || !isfinite(l->reg)) {
        a->n_nonfinite++;
        return;
    }
    a->loss += l->total;
    a->cls += l->cls;
    a->reg += l->reg;
    a->n_loss++;
    if (ss->recon_err > a->recon_max) a->recon_max = ss->recon_err;
    a->n_stages = ss->n_stages;
    for (int i = 0; i < ss->n_stages; i++)
        if (ss->recon_stages[i] > a->recon_stages[i]) a->recon_stages[i] = ss->recon_stages[i];
}

tal_status tal_update_apply(const tal_optimizer *o, tal_params *p, const tal_grad_reducer *red,
                            tal_update_acc *acc, int64_t step, tal_update_result *res,
                            tal_err *err) {
    memset(res, 0, sizeof *res);
    res->lr_scale = tal_lr_warmup_cosine(step, o->warmup, o->total, 1.0f, (float)o->min_lr);
    if (red && red->reduce) {
        /* the reconstruction error is a maximum, not a sum: it stays this rank's */
        enum { N_SUMS = 6 };
        int n = N_SUMS + acc->n_slots;
        double *vals = malloc(sizeof(double) * (size_t)n);
        if (!vals) return tal_err_set(err, TAL_ENOMEM, "out of memory");
        double sums[N_SUMS] = {acc->loss, acc->cls, acc->reg, acc->n_loss, acc->n_nonfinite,
                               acc->stop};
        memcpy(vals, sums, sizeof sums);
        if (acc->n_slots) memcpy(vals + N_SUMS, acc->slots, sizeof(double) * (size_t)acc->n_slots);
        tal_status st = red->reduce(red->ctx, p, vals, n, err);
        if (!st) {
            acc->loss = vals[0], acc->cls = vals[1], acc->reg = vals[2];
            acc->n_loss = vals[3], acc->n_nonfinite = vals[4], acc->stop = vals[5];
            /* one rank's clip per slot, zeros elsewhere: the sum is exact */
            if (acc->n_slots)
                memcpy(acc->slots, vals + N_SUMS, sizeof(double) * (size_t)acc->n_slots);
        }
        free(vals);
        if (st) return st;
    }
    res->grad_norm = acc->n_nonfinite > 0 ? NAN : tal_params_clip_grad_norm(p, o->clip_norm);
    if (isfinite(res->grad_norm)) {
        tal_adamw_step(o->adamw, res->lr_scale);
        res->applied = 1;
    }
    tal_params_zero_grad(p);
    if (res->applied && o->ema) tal_ema_update(o->ema, p);
    return TAL_OK;
}

tal_grad_span tal_params_grad_span(tal_params *p) {
    int n = tal_params_count(p);
    tal_grad_span g = {NULL, 0, TAL_DEV_CPU};
    if (n == 0) return g;
    g.data = tal_params_at(p, 0)->grad.data;
    g.device = tal_params_at(p, 0)->grad.device;
    for (int i = 0; i < n; i++) {
        tal_tensor t = tal_params_at(p, i)->grad;
        TAL_ASSERT_MSG(t.device == g.device && t.data >= g.data + g.n,
                       "gradient of %s outside the span", tal_params_at(p, i)->name);
        g.n = t.data + tal_tensor_numel(t) - g.data;
    }
    return g;
}

/* A span of n floats at data on dev, as a tensor for the ops. */
static tal_tensor span_tensor(float *data, int64_t n, tal_device dev) {
    tal_tensor t = tal_t1(data, n);
    t.device = dev;
    return t;
}

void tal_grads_set_aside(tal_grad_span g, float *stash) {
    if (g.device != TAL_DEV_CPU) {
        tal_tensor gt = span_tensor(g.data, g.n, g.device);
        tal_copy(span_tensor(stash, g.n, g.device), gt);
        tal_fill(gt, 0.0f);
        return;
    }
    memcpy(stash, g.data, sizeof(float) * (size_t)g.n);
    memset(g.data, 0, sizeof(float) * (size_t)g.n);
}

void tal_grads_add_back(tal_grad_span g, const float *stash) {
    float *x = g.data;
    if (g.device != TAL_DEV_CPU) { /* the same single additions */
        tal_tensor gt = span_tensor(x, g.n, g.device);
        tal_add(gt, gt, span_tensor((float *)stash, g.n, g.device));
        return;
    }
#pragma omp parallel for schedule(static) if (g.n > 65536)
    for (int64_t i = 0; i < g.n; i++) x[i] += stash[i];
}

int64_t tal_params_count_nonfinite(const tal_params *p, const char **first_name) {
    int64_t n = 0;
    if (first_name) *first_name = NULL;
    tal_params *q = (tal_params *)p; /* read only: the accessors take a non-const store */
    for (int i = 0; i < tal_params_count(q); i++) {
        tal_param *it = tal_params_at(q, i);
        int64_t k = tal_count_nonfinite(it->value); /* on the parameters' device */
        if (k && first_name && !*first_name) *first_name = it->name;
        n += k;
    }
    return n;
}
