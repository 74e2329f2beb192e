/* nn/params.c: the named parameter store: declare, allocate (values and gradients in one arena
 * each), find by name, clip gradients by global norm, load and save by name (safetensors). */
#include "nn.h"
#include "cuda_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 16

struct tal_params {
    tal_param *items;
    int count, capacity;
    tal_param_group groups[MAX_GROUPS];
    int n_groups;
    tal_arena *values, *grads;
    tal_grads_ready_fn on_ready;
    void *on_ready_ctx;
#ifdef TAL_HAVE_CUDA
    cuda_mt_table *grad_table; /* device: the trainable gradients, for the global norm */
#endif
};

tal_params *tal_params_create(void) {
    tal_params *p = calloc(1, sizeof *p);
    TAL_ASSERT_MSG(p != NULL, "out of memory");
    return p;
}

void tal_params_destroy(tal_params *p) {
    if (!p) return;
#ifdef TAL_HAVE_CUDA
    cuda_mt_destroy(p->grad_table);
#endif
    tal_arena_destroy(p->values);
    tal_arena_destroy(p->grads);
    free(p->items);
    free(p);
}

int tal_params_add_group(tal_params *p, const char *name, float lr_scale, float weight_decay) {
    TAL_ASSERT(p->n_groups < MAX_GROUPS);
    tal_param_group *g = &p->groups[p->n_groups];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->lr_scale = lr_scale;
    g->weight_decay = weight_decay;
    return p->n_groups++;
}

int tal_params_declare(tal_params *p, const char *name, int ndim, const int64_t *shape, int group,
                       int trainable) {
    TAL_ASSERT_MSG(!p->values, "declare '%s' after allocate", name);
    TAL_ASSERT_MSG(group >= 0 && group < p->n_groups, "'%s': group %d of %d", name, group,
                   p->n_groups);
    TAL_ASSERT_MSG(strlen(name) < sizeof p->items[0].name, "name too long: %s", name);
    TAL_ASSERT_MSG(!tal_params_find(p, name), "parameter '%s' declared twice", name);
    if (p->count == p->capacity) {
        p->capacity = p->capacity ? 2 * p->capacity : 64;
        p->items = realloc(p->items, (size_t)p->capacity * sizeof *p->items);
        TAL_ASSERT_MSG(p->items != NULL, "out of memory");
    }
    tal_param *it = &p->items[p->count];
    memset(it, 0, sizeof *it);
    snprintf(it->name, sizeof it->name, "%s", name);
    it->value = tal_tensor_of(NULL, ndim, shape);
    it->grad = it->value;
    it->group = group;
    it->trainable = trainable;
    return p->count++;
}

/* Two zeroed arenas on dev holding every parameter's value and gradient. */
static tal_status make_arenas(const tal_params *p, tal_device dev, tal_arena **values,
                              tal_arena **grads, tal_err *err) {
    size_t bytes = 0;
    for (int i = 0; i < p->count; i++)
        bytes += tal_arena_round(tal_tensor_bytes(p->items[i].value));
    *values = *grads = NULL;
    tal_status rc = tal_arena_create(values, dev, bytes, err);
    if (rc == TAL_OK) rc = tal_arena_create(grads, dev, bytes, err);
    if (rc != TAL_OK) {
        tal_arena_destroy(*values);
        *values = NULL;
        return tal_err_prefix(err, "parameters (%zu bytes)", bytes);
    }
    return TAL_OK;
}

tal_status tal_params_allocate(tal_params *p, tal_device dev, tal_err *err) {
    TAL_ASSERT(!p->values);
    tal_status rc = make_arenas(p, dev, &p->values, &p->grads, err);
    if (rc != TAL_OK) return rc;
    for (int i = 0; i < p->count; i++) {
        tal_param *it = &p->items[i];
        it->value = tal_arena_tensor(p->values, it->value.ndim, it->value.shape);
        it->grad = tal_arena_tensor(p->grads, it->grad.ndim, it->grad.shape);
    }
    return TAL_OK;
}

tal_status tal_params_move(tal_params *p, tal_device dev, tal_err *err) {
    TAL_ASSERT_MSG(p->values, "move before allocate");
    tal_arena *values, *grads;
    tal_status rc = make_arenas(p, dev, &values, &grads, err);
    if (rc != TAL_OK) return rc;
    for (int i = 0; i < p->count; i++) {
        tal_param *it = &p->items[i];
        tal_tensor v = tal_arena_like_uninit(values, it->value);
        tal_copy(v, it->value);
        it->value = v;
        it->grad = tal_arena_like(grads, it->grad); /* zeroed */
    }
    tal_arena_destroy(p->values);
    tal_arena_destroy(p->grads);
#ifdef TAL_HAVE_CUDA
    cuda_mt_destroy(p->grad_table); /* it pointed into the old gradients */
    p->grad_table = NULL;
#endif
    p->values = values;
    p->grads = grads;
    return TAL_OK;
}

int tal_params_count(const tal_params *p) { return p->count; }
tal_param *tal_params_at(tal_params *p, int i) {
    TAL_ASSERT(i >= 0 && i < p->count);
    return &p->items[i];
}

tal_param *tal_params_find(tal_params *p, const char *name) {
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->items[i].name, name)) return &p->items[i];
    return NULL;
}

int tal_params_group_count(const tal_params *p) { return p->n_groups; }
tal_param_group *tal_params_group_at(tal_params *p, int g) {
    TAL_ASSERT(g >= 0 && g < p->n_groups);
    return &p->groups[g];
}

int64_t tal_params_numel(const tal_params *p, int trainable_only) {
    int64_t n = 0;
    for (int i = 0; i < p->count; i++)
        if (!trainable_only || p->items[i].trainable) n += tal_tensor_numel(p->items[i].value);
    return n;
}

void tal_params_zero_grad(tal_params *p) {
    for (int i = 0; i < p->count; i++)
        if (p->items[i].grad.data) tal_fill(p->items[i].grad, 0.0f);
}

void tal_params_set_grads_ready(tal_params *p, tal_grads_ready_fn fn, void *ctx) {
    p->on_ready = fn;
    p->on_ready_ctx = ctx;
}

void tal_params_grads_ready(tal_params *p, int first, int end) {
    TAL_ASSERT(first >= 0 && first <= end && end <= p->count);
    if (p->on_ready) p->on_ready(p->on_ready_ctx, first, end);
}

/* Eight independent double accumulators: the compiler vectorises them, where one running sum
 * is a serial dependency chain (this was 6% of a small model's training step). */
static double sum_squares(const float *x, int64_t n) {
    double acc[8] = {0}, s = 0;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) acc[k] += (double)x[j + k] * x[j + k];
    for (; j < n; j++) s += (double)x[j] * x[j];
    for (int k = 0; k < 8; k++) s += acc[k];
    return s;
}

#ifdef TAL_HAVE_CUDA
/* The trainable gradients' table, made on first use and again after the arenas moved. */
static cuda_mt_table *grad_table(tal_params *p) {
    tal_mt_entry *now = calloc((size_t)p->count + 1, sizeof *now);
    TAL_ASSERT_MSG(now != NULL, "out of memory");
    int n = 0;
    for (int i = 0; i < p->count; i++)
        if (p->items[i].trainable) {
            tal_mt_entry e = {{p->items[i].grad.data, NULL, NULL, NULL},
                              tal_tensor_numel(p->items[i].grad), 0};
            now[n++] = e;
        }
    if (!cuda_mt_matches(p->grad_table, now, n)) {
        cuda_mt_destroy(p->grad_table);
        p->grad_table = NULL;
        tal_err err = {TAL_OK, ""};
        /* a few bytes per tensor: failing here means the device is gone, not a bad input */
        TAL_ASSERT_MSG(cuda_mt_create(&p->grad_table, now, n, &err) == TAL_OK, "%s", err.msg);
    }
    free(now);
    return p->grad_table;
}
#endif

double tal_params_clip_grad_norm(tal_params *p, double max_norm) {
#ifdef TAL_HAVE_CUDA
    if (p->grads && tal_arena_device(p->grads) == TAL_DEV_CUDA) {
        /* one launch, partial sums in a fixed layout: the same norm every run */
        cuda_mt_table *t = grad_table(p);
        double norm = sqrt(sum_squares_cuda(t));
        if (max_norm > 0 && norm > max_norm) scale_all_cuda(t, (float)(max_norm / (norm + 1e-6)));
        return norm;
    }
#endif
    double ss = 0;
    for (int i = 0; i < p->count; i++)
        if (p->items[i].trainable) {
            TAL_ASSERT_CPU(p->items[i].grad);
            ss += sum_squares(p->items[i].grad.data, tal_tensor_numel(p->items[i].grad));
        }
    double norm = sqrt(ss);
    /* as torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when above */
    if (max_norm > 0 && norm > max_norm) {
        float s = (float)(max_norm / (norm + 1e-6));
        for (int i = 0; i < p->count; i++)
            if (p->items[i].trainable) tal_scale(p->items[i].grad, p->items[i].grad, s);
    }
    return norm;
}

/* Two passes: every tensor of the file is matched and checked first, and values are copied only
 * when the whole file fits, so a failed load leaves the parameters as they were. */
tal_status tal_params_load(tal_params *p, const char *path, tal_name_map_fn rename, void *ctx,
                           int allow_missing, int *n_unused, tal_err *err) {
    tal_tensor_set set;
    tal_status rc = tal_safetensors_read(&set, path, err);
    if (rc != TAL_OK) return rc;
    int *source = malloc(((size_t)p->count + 1) * sizeof *source); /* file index per param */
    if (!source) {
        tal_tensor_set_free(&set);
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < p->count; i++) source[i] = -1;
    char unused_list[256] = "";
    int unused = 0;
    for (int i = 0; i < set.count && rc == TAL_OK; i++) {
        char buf[256];
        const char *name = rename ? rename(set.items[i].name, buf, sizeof buf, ctx)
                                  : set.items[i].name;
        tal_param *prm = name ? tal_params_find(p, name) : NULL;
        if (!prm) {
            if (unused++ < 4) {
                size_t len = strlen(unused_list);
                snprintf(unused_list + len, sizeof unused_list - len, "%s%s", len ? ", " : "",
                         set.items[i].name);
            }
            continue;
        }
        int k = (int)(prm - p->items);
        if (source[k] >= 0) {
            rc = tal_err_set(err, TAL_EFORMAT, "%s: tensors '%s' and '%s' both map to parameter "
                             "'%s'", path, set.items[source[k]].name, set.items[i].name,
                             prm->name);
        } else if (!tal_tensor_same_shape(prm->value, set.items[i].t)) {
            char a[96], b[96];
            rc = tal_err_set(err, TAL_EFORMAT,
                             "%s: tensor '%s': shape %s, but parameter '%s' is %s", path,
                             set.items[i].name, tal_tensor_shape_str(set.items[i].t, a, 96),
                             prm->name, tal_tensor_shape_str(prm->value, b, 96));
        }
        source[k] = i;
    }
    if (rc == TAL_OK && !allow_missing)
        for (int i = 0; i < p->count; i++)
            if (source[i] < 0) {
                rc = tal_err_set(err, TAL_EFORMAT, "%s: parameter '%s' is missing from the file",
                                 path, p->items[i].name);
                break;
            }
    if (rc == TAL_OK) {
        for (int i = 0; i < p->count; i++)
            if (source[i] >= 0) tal_copy(p->items[i].value, set.items[source[i]].t);
        if (n_unused) *n_unused = unused;
        if (unused)
            tal_err_set(err, TAL_OK, "%s: %d tensor(s) not used: %s%s", path, unused, unused_list,
                        unused > 4 ? ", ..." : "");
    }
    free(source);
    tal_tensor_set_free(&set);
    return rc;
}

tal_status tal_params_save(const tal_params *p, const char *path, const char *metadata_json,
                           tal_err *err) {
    tal_named_tensor *items = calloc((size_t)p->count + 1, sizeof *items);
    if (!items) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < p->count; i++) {
        items[i].name = p->items[i].name;
        items[i].t = p->items[i].value;
    }
    tal_status rc = tal_safetensors_write(path, items, p->count, metadata_json, err);
    free(items);
    return rc;
}
