/* nn/arena.c: bump allocators with marks, and counting "planner" arenas that size a model's
 * memory before anything is allocated (the same code path runs on both). */
#include "nn.h"
#include "cuda_ops.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64

struct tal_arena {
    unsigned char *base; /* NULL for a planner */
    size_t capacity;     /* SIZE_MAX for a planner */
    size_t used, high_water;
    tal_device device;
    int pinned;          /* host memory from cudaMallocHost (tal_arena_create_pinned) */
};

size_t tal_arena_round(size_t n) { return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

tal_status tal_arena_create(tal_arena **out, tal_device dev, size_t bytes, tal_err *err) {
    *out = NULL;
    tal_arena *a = calloc(1, sizeof *a);
    if (!a) return tal_err_set(err, TAL_ENOMEM, "arena: out of memory");
    bytes = tal_arena_round(bytes);
    a->capacity = bytes;
    a->device = dev;
    if (dev == TAL_DEV_CPU) {
        /* Zeroed pages from the OS: freshly mapped memory is touched once here, not in the hot
         * loop (page faults cost ~2x on a Swin block otherwise). */
        a->base = bytes ? aligned_alloc(ARENA_ALIGN, bytes) : NULL;
        if (bytes && !a->base) {
            free(a);
            return tal_err_set(err, TAL_ENOMEM, "arena: cannot allocate %zu bytes", bytes);
        }
        if (bytes) memset(a->base, 0, bytes);
    } else {
#ifdef TAL_HAVE_CUDA
        void *p = NULL;
        if (cuda_malloc_bytes(&p, bytes, err) != TAL_OK) {
            free(a);
            return tal_err_prefix(err, "arena");
        }
        cuda_memset_bytes(p, 0, bytes);
        a->base = p;
#else
        free(a);
        return tal_err_set(err, TAL_EDEVICE, "arena: this build has no CUDA (RE2TAL_CUDA=OFF)");
#endif
    }
    *out = a;
    return TAL_OK;
}

tal_status tal_arena_create_pinned(tal_arena **out, size_t bytes, tal_err *err) {
    *out = NULL;
#ifdef TAL_HAVE_CUDA
    tal_arena *a = calloc(1, sizeof *a);
    if (!a) return tal_err_set(err, TAL_ENOMEM, "arena: out of memory");
    bytes = tal_arena_round(bytes);
    void *p = NULL;
    if (cuda_host_alloc(&p, bytes, err) != TAL_OK) {
        free(a);
        return tal_err_prefix(err, "pinned arena");
    }
    if (bytes) memset(p, 0, bytes);
    a->base = p;
    a->capacity = bytes;
    a->device = TAL_DEV_CPU;
    a->pinned = 1;
    *out = a;
    return TAL_OK;
#else
    (void)bytes;
    return tal_err_set(err, TAL_EDEVICE, "pinned arena: this build has no CUDA (RE2TAL_CUDA=OFF)");
#endif
}

tal_arena *tal_arena_create_planner_on(tal_device dev) {
    tal_arena *a = calloc(1, sizeof *a);
    TAL_ASSERT_MSG(a != NULL, "out of memory for a planner");
    a->capacity = SIZE_MAX;
    a->device = dev;
    return a;
}

tal_arena *tal_arena_create_planner(void) { return tal_arena_create_planner_on(TAL_DEV_CPU); }

void tal_arena_destroy(tal_arena *a) {
    if (!a) return;
    if (a->base) {
#ifdef TAL_HAVE_CUDA
        if (a->device == TAL_DEV_CUDA)
            cuda_free_bytes(a->base);
        else if (a->pinned)
            cuda_host_free(a->base);
        else
#endif
            free(a->base);
    }
    free(a);
}

int tal_arena_is_planner(const tal_arena *a) { return a->base == NULL && a->capacity == SIZE_MAX; }

#if defined(__SANITIZE_ADDRESS__)
#define POISON_UNINIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POISON_UNINIT 1
#endif
#endif
#ifndef POISON_UNINIT
#define POISON_UNINIT 0
#endif

/* fill: 0 zero, 1 NaN (0xff bytes), -1 leave as is. */
static void *take(tal_arena *a, size_t n, int fill) {
    size_t need = tal_arena_round(n);
    TAL_ASSERT_MSG(need <= a->capacity - a->used,
                   "arena overflow: %zu bytes asked, %zu of %zu in use (the plan was too small)",
                   n, a->used, a->capacity);
    unsigned char *p = a->base ? a->base + a->used : NULL;
    a->used += need;
    if (a->used > a->high_water) a->high_water = a->used;
    if (!p || !need || fill < 0) return p;
    int byte = fill ? 0xff : 0;
#ifdef TAL_HAVE_CUDA
    if (a->device == TAL_DEV_CUDA) { /* on the compute stream: in order with the ops */
        cuda_memset_bytes(p, byte, need);
        return p;
    }
#endif
    if (!byte && need % sizeof(float) == 0) /* zeros: large fills split over the threads */
        tal_fill(tal_t1((float *)(void *)p, (int64_t)(need / sizeof(float))), 0.0f);
    else
        memset(p, byte, need);
    return p;
}

void *tal_arena_bytes(tal_arena *a, size_t n) { return take(a, n, 0); }

float *tal_arena_floats_uninit(tal_arena *a, int64_t n) {
    TAL_ASSERT(n >= 0);
    return take(a, (size_t)n * sizeof(float), POISON_UNINIT ? 1 : -1);
}

tal_tensor tal_arena_tensor_uninit(tal_arena *a, int ndim, const int64_t *shape) {
    tal_tensor t = tal_tensor_of(NULL, ndim, shape);
    t.data = tal_arena_floats_uninit(a, tal_tensor_numel(t));
    t.device = a->device;
    return t;
}

tal_tensor tal_arena_like_uninit(tal_arena *a, tal_tensor t) {
    return tal_arena_tensor_uninit(a, t.ndim, t.shape);
}

float *tal_arena_floats(tal_arena *a, int64_t n) {
    TAL_ASSERT(n >= 0);
    return tal_arena_bytes(a, (size_t)n * sizeof(float));
}

tal_tensor tal_arena_tensor(tal_arena *a, int ndim, const int64_t *shape) {
    tal_tensor t = tal_tensor_of(NULL, ndim, shape);
    t.data = tal_arena_floats(a, tal_tensor_numel(t));
    t.device = a->device;
    return t;
}

tal_tensor tal_arena_like(tal_arena *a, tal_tensor t) {
    return tal_arena_tensor(a, t.ndim, t.shape);
}

size_t tal_arena_mark(const tal_arena *a) { return a->used; }

void tal_arena_release(tal_arena *a, size_t mark) {
    TAL_ASSERT_MSG(mark <= a->used, "release to %zu above use %zu", mark, a->used);
    a->used = mark;
}

void tal_arena_reset(tal_arena *a) { a->used = 0; }
size_t tal_arena_used(const tal_arena *a) { return a->used; }
size_t tal_arena_capacity(const tal_arena *a) { return a->capacity; }
size_t tal_arena_high_water(const tal_arena *a) { return a->high_water; }
tal_device tal_arena_device(const tal_arena *a) { return a->device; }
