/* nn/ema.c: exponential moving average of parameter values (ema = d * ema + (1 - d) * p), kept
 * in its own arena, swappable with the live weights for evaluation. On the device: one
 * multi-tensor launch per update or swap (ema.cu). */
#include "nn.h"
#include "cuda_ops.h"

#include <stdlib.h>

struct tal_ema {
    tal_arena *arena;
    tal_tensor *values;
    int count;
    float decay;
#ifdef TAL_HAVE_CUDA
    cuda_mt_table *table; /* device: {ema, value} per parameter */
#endif
};

#ifdef TAL_HAVE_CUDA
static tal_mt_entry *device_entries(const tal_ema *e, tal_params *p) {
    tal_mt_entry *out = calloc((size_t)e->count + 1, sizeof *out);
    TAL_ASSERT_MSG(out != NULL, "out of memory");
    for (int i = 0; i < e->count; i++) {
        tal_mt_entry en = {{e->values[i].data, tal_params_at(p, i)->value.data, NULL, NULL},
                           tal_tensor_numel(e->values[i]), 0};
        out[i] = en;
    }
    return out;
}
#endif

tal_status tal_ema_create(tal_ema **out, const tal_params *p_const, float decay, tal_err *err) {
    tal_params *p = (tal_params *)p_const; /* read only: the accessors are not const */
    *out = NULL;
    tal_ema *e = calloc(1, sizeof *e);
    int n = tal_params_count(p);
    if (!e) return tal_err_set(err, TAL_ENOMEM, "EMA: out of memory");
    e->values = calloc((size_t)n + 1, sizeof *e->values);
    e->count = n;
    e->decay = decay;
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += tal_arena_round(tal_tensor_bytes(tal_params_at(p, i)->value));
    tal_device dev = n ? tal_params_at(p, 0)->value.device : TAL_DEV_CPU;
    if (!e->values || tal_arena_create(&e->arena, dev, bytes, err) != TAL_OK) {
        tal_ema_destroy(e);
        return tal_err_set(err, TAL_ENOMEM, "EMA: cannot allocate %zu bytes", bytes);
    }
    for (int i = 0; i < n; i++) {
        e->values[i] = tal_arena_like(e->arena, tal_params_at(p, i)->value);
        tal_copy(e->values[i], tal_params_at(p, i)->value);
    }
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        tal_mt_entry *entries = device_entries(e, p);
        tal_status rc = cuda_mt_create(&e->table, entries, n, err);
        free(entries);
        if (rc != TAL_OK) {
            tal_ema_destroy(e);
            return tal_err_prefix(err, "EMA");
        }
    }
#endif
    *out = e;
    return TAL_OK;
}

void tal_ema_destroy(tal_ema *e) {
    if (!e) return;
#ifdef TAL_HAVE_CUDA
    cuda_mt_destroy(e->table);
#endif
    tal_arena_destroy(e->arena);
    free(e->values);
    free(e);
}

void tal_ema_update(tal_ema *e, const tal_params *p_const) {
    tal_params *p = (tal_params *)p_const;
    TAL_ASSERT(tal_params_count(p) == e->count);
#ifdef TAL_HAVE_CUDA
    if (e->table) {
        cuda_mt_assert_unmoved(e->table, device_entries(e, p), e->count, "EMA");
        ema_update_cuda(e->table, e->decay);
        return;
    }
#endif
    for (int i = 0; i < e->count; i++) {
        TAL_ASSERT_CPU(tal_params_at(p, i)->value);
        float *a = e->values[i].data;
        const float *w = tal_params_at(p, i)->value.data;
        int64_t n = tal_tensor_numel(e->values[i]);
        const float d = e->decay, rest = 1.0f - e->decay;
#pragma omp parallel for simd schedule(static) if (n > 65536)
        for (int64_t j = 0; j < n; j++) a[j] = d * a[j] + rest * w[j];
    }
}

void tal_ema_swap(tal_ema *e, tal_params *p) {
    TAL_ASSERT(tal_params_count(p) == e->count);
#ifdef TAL_HAVE_CUDA
    if (e->table) {
        cuda_mt_assert_unmoved(e->table, device_entries(e, p), e->count, "EMA");
        ema_swap_cuda(e->table);
        return;
    }
#endif
    for (int i = 0; i < e->count; i++) {
        TAL_ASSERT_CPU(tal_params_at(p, i)->value);
        float *a = e->values[i].data, *w = tal_params_at(p, i)->value.data;
        int64_t n = tal_tensor_numel(e->values[i]);
        for (int64_t j = 0; j < n; j++) {
            float t = a[j];
            a[j] = w[j];
            w[j] = t;
        }
    }
}

tal_tensor tal_ema_value(const tal_ema *e, int param_index) {
    TAL_ASSERT(param_index >= 0 && param_index < e->count);
    return e->values[param_index];
}
