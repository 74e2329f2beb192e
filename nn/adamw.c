/* nn/adamw.c: AdamW as torch.optim.AdamW: p *= 1 - lr * wd (decoupled), m and v moments, bias
 * correction, p -= lr * m_hat / (sqrt(v_hat) + eps). Frozen parameters are skipped. On the
 * device (parameters moved there before the optimiser was made): one multi-tensor launch
 * (adamw.cu) with the same per-group scalars. */
#include "nn.h"
#include "cuda_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct tal_adamw {
    tal_params *params;
    tal_adamw_config cfg;
    tal_arena *state;
    tal_tensor *m, *v; /* per parameter; none for frozen ones */
    int64_t steps;
#ifdef TAL_HAVE_CUDA
    cuda_mt_table *table; /* device: {value, grad, m, v} of the trainable parameters */
#endif
};

#ifdef TAL_HAVE_CUDA
/* The table's entries as the parameters are now (caller frees); *n gets their count. */
static tal_mt_entry *device_entries(const tal_adamw *o, int *n) {
    tal_mt_entry *out = calloc((size_t)tal_params_count(o->params) + 1, sizeof *out);
    TAL_ASSERT_MSG(out != NULL, "out of memory");
    int k = 0;
    for (int i = 0; i < tal_params_count(o->params); i++) {
        tal_param *prm = tal_params_at(o->params, i);
        if (!prm->trainable) continue;
        tal_mt_entry e = {{prm->value.data, prm->grad.data, o->m[i].data, o->v[i].data},
                          tal_tensor_numel(prm->value), prm->group};
        out[k++] = e;
    }
    *n = k;
    return out;
}
#endif

tal_status tal_adamw_create(tal_adamw **out, tal_params *p, tal_adamw_config cfg, tal_err *err) {
    *out = NULL;
    tal_adamw *o = calloc(1, sizeof *o);
    int n = tal_params_count(p);
    if (!o) return tal_err_set(err, TAL_ENOMEM, "optimizer: out of memory");
    o->params = p;
    o->cfg = cfg;
    o->m = calloc((size_t)n + 1, sizeof *o->m);
    o->v = calloc((size_t)n + 1, sizeof *o->v);
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        if (tal_params_at(p, i)->trainable)
            bytes += 2 * tal_arena_round(tal_tensor_bytes(tal_params_at(p, i)->value));
    tal_device dev = n ? tal_params_at(p, 0)->value.device : TAL_DEV_CPU;
    if (!o->m || !o->v || tal_arena_create(&o->state, dev, bytes, err) != TAL_OK) {
        tal_adamw_destroy(o);
        return tal_err_set(err, TAL_ENOMEM, "optimizer state: cannot allocate %zu bytes", bytes);
    }
    for (int i = 0; i < n; i++) {
        tal_param *prm = tal_params_at(p, i);
        if (!prm->trainable) continue;
        o->m[i] = tal_arena_like(o->state, prm->value);
        o->v[i] = tal_arena_like(o->state, prm->value);
    }
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        TAL_ASSERT_MSG(tal_params_group_count(p) <= TAL_MT_MAX_GROUPS, "%d parameter groups",
                       tal_params_group_count(p));
        int n_entries;
        tal_mt_entry *entries = device_entries(o, &n_entries);
        tal_status rc = cuda_mt_create(&o->table, entries, n_entries, err);
        free(entries);
        if (rc != TAL_OK) {
            tal_adamw_destroy(o);
            return tal_err_prefix(err, "optimizer");
        }
    }
#endif
    *out = o;
    return TAL_OK;
}

void tal_adamw_destroy(tal_adamw *o) {
    if (!o) return;
#ifdef TAL_HAVE_CUDA
    cuda_mt_destroy(o->table);
#endif
    tal_arena_destroy(o->state);
    free(o->m);
    free(o->v);
    free(o);
}

int64_t tal_adamw_steps(const tal_adamw *o) { return o->steps; }

void tal_adamw_step(tal_adamw *o, float lr) {
    o->steps++;
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    const double bc1 = 1.0 - pow(b1, (double)o->steps), bc2 = 1.0 - pow(b2, (double)o->steps);
#ifdef TAL_HAVE_CUDA
    if (o->table) { /* the same scalars as below, per group instead of per parameter */
        float decay[TAL_MT_MAX_GROUPS], step_size[TAL_MT_MAX_GROUPS];
        int n_groups = tal_params_group_count(o->params);
        for (int gi = 0; gi < n_groups; gi++) {
            const tal_param_group *g = tal_params_group_at(o->params, gi);
            const float glr = lr * g->lr_scale;
            decay[gi] = (float)(1.0 - (double)glr * (double)g->weight_decay);
            step_size[gi] = (float)(glr / bc1);
        }
        int n_now;
        tal_mt_entry *now = device_entries(o, &n_now);
        cuda_mt_assert_unmoved(o->table, now, n_now, "optimizer");
        adamw_step_cuda(o->table, decay, step_size, n_groups, b1, b2, eps, (float)sqrt(bc2));
        return;
    }
#endif
    for (int i = 0; i < tal_params_count(o->params); i++) {
        tal_param *prm = tal_params_at(o->params, i);
        if (!prm->trainable) continue;
        const tal_param_group *g = tal_params_group_at(o->params, prm->group);
        TAL_ASSERT_CPU(prm->value); /* moved to the device after the optimiser was made */
        /* torch takes lr, decay and the bias corrections as Python (double) scalars and rounds
         * each to float once: p *= 1 - lr wd; step_size = lr / bc1; denom = sqrt(v) / sqrt(bc2)
         * + eps; p += -step_size * (m / denom) (addcdiv: the quotient first). */
        const float glr = lr * g->lr_scale;
        const float decay = (float)(1.0 - (double)glr * (double)g->weight_decay);
        const float step_size = (float)(glr / bc1), sqrt_bc2 = (float)sqrt(bc2);
        float *w = prm->value.data, *gr = prm->grad.data, *m = o->m[i].data, *v = o->v[i].data;
        int64_t n = tal_tensor_numel(prm->value);
#pragma omp parallel for simd schedule(static) if (n > 65536)
        for (int64_t j = 0; j < n; j++) {
            w[j] *= decay;
            m[j] = b1 * m[j] + (1.0f - b1) * gr[j];
            v[j] = b2 * v[j] + (1.0f - b2) * gr[j] * gr[j];
            w[j] -= step_size * (m[j] / (sqrtf(v[j]) / sqrt_bc2 + eps));
        }
    }
}

tal_status tal_adamw_state_save(const tal_adamw *o, const char *path, tal_err *err) {
    int n = tal_params_count(o->params);
    tal_named_tensor *items = calloc(2 * (size_t)n + 1, sizeof *items);
    char (*names)[160] = calloc(2 * (size_t)n + 1, sizeof *names);
    if (!items || !names) {
        free(items);
        free(names);
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        tal_param *prm = tal_params_at(o->params, i);
        if (!prm->trainable) continue;
        snprintf(names[k], 160, "%s.exp_avg", prm->name);
        items[k].name = names[k];
        items[k++].t = o->m[i];
        snprintf(names[k], 160, "%s.exp_avg_sq", prm->name);
        items[k].name = names[k];
        items[k++].t = o->v[i];
    }
    char meta[64];
    snprintf(meta, sizeof meta, "{\"step\":\"%lld\"}", (long long)o->steps);
    tal_status rc = tal_safetensors_write(path, items, k, meta, err);
    free(items);
    free(names);
    return rc;
}

tal_status tal_adamw_state_load(tal_adamw *o, const char *path, tal_err *err) {
    tal_tensor_set set;
    tal_status rc = tal_safetensors_read(&set, path, err);
    if (rc != TAL_OK) return rc;
    const char *step = set.metadata_json ? strstr(set.metadata_json, "\"step\":\"") : NULL;
    if (!step) {
        tal_tensor_set_free(&set);
        return tal_err_set(err, TAL_EFORMAT, "%s: no step count in the metadata: not an optimizer "
                           "state file", path);
    }
    char *end = NULL;
    long long steps = strtoll(step + 8, &end, 10);
    if (end == step + 8 || *end != '"' || steps < 0) {
        tal_tensor_set_free(&set);
        return tal_err_set(err, TAL_EFORMAT, "%s: step count in the metadata is not a count",
                           path);
    }
    /* pass 0 checks every tensor, pass 1 copies: a bad file leaves the state as it was */
    for (int pass = 0; pass < 2 && rc == TAL_OK; pass++)
        for (int i = 0; i < tal_params_count(o->params) && rc == TAL_OK; i++) {
            tal_param *prm = tal_params_at(o->params, i);
            if (!prm->trainable) continue;
            for (int which = 0; which < 2 && rc == TAL_OK; which++) {
                char name[160];
                snprintf(name, sizeof name, "%s.%s", prm->name, which ? "exp_avg_sq" : "exp_avg");
                const tal_named_tensor *t = tal_tensor_set_find(&set, name);
                tal_tensor dst = which ? o->v[i] : o->m[i];
                char a[96], b[96];
                if (!t)
                    rc = tal_err_set(err, TAL_EFORMAT, "%s: tensor '%s' is missing", path, name);
                else if (!tal_tensor_same_shape(t->t, dst))
                    rc = tal_err_set(err, TAL_EFORMAT, "%s: tensor '%s': shape %s, expected %s",
                                     path, name, tal_tensor_shape_str(t->t, a, 96),
                                     tal_tensor_shape_str(dst, b, 96));
                else if (pass == 1)
                    tal_copy(dst, t->t);
            }
        }
    if (rc == TAL_OK) o->steps = (int64_t)steps;
    tal_tensor_set_free(&set);
    return rc;
}
