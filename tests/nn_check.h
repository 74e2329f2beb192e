/* tests/nn_check.h: helpers shared by the nn op tests: a mutable copy of a fixture tensor and a
 * finite-difference check of one analytic gradient. */
#ifndef TAL_NN_CHECK_H
#define TAL_NN_CHECK_H

#include "testlib.h"

/* A heap copy the test may perturb (fixture tensors are shared by the whole set). */
static inline tal_tensor fx_clone(const fixture *fx, const char *name) {
    return test_clone(fixture_get(fx, name));
}

/* Central differences of f (a double sum(w * y) over float outputs) with respect to x, compared
 * with the analytic gradient. h = 1e-2 balances truncation (~ h^2 |f'''| / 6 ~ 2e-5 for O(1)
 * inputs) against rounding (each float output is off by ~6e-8 |y|, divided by 2h). The worst
 * error measured over all cases here is 1.2e-4 (conv3d 3x3x3: 96 outputs of 81-term sums);
 * atol 5e-4 + rtol 5e-3 keeps a 4x margin, while a wrong or missing term in a gradient is off
 * by O(0.1-1). Kinked ops (ReLU, max-pool) use inputs >= 0.05 from the kink, so h never
 * crosses it. */
static inline void fd_check_impl(const char *what, tal_tensor analytic, tal_tensor x,
                                 test_scalar_fn f, void *ctx, double h, double atol, double rtol,
                                 const char *file, int line) {
    tal_tensor num = test_tensor_like(x);
    test_numeric_grad(num, x, f, ctx, h);
    expect_close_impl(what, analytic, num, atol, rtol, file, line);
}
#define fd_check(analytic, x, f, ctx)                                                         \
    fd_check_impl(#analytic " vs finite differences", (analytic), (x), (f), (ctx), 1e-2, 5e-4, \
                  5e-3, __FILE__, __LINE__)

/* A small parameter store on the CPU: "a.weight" [3, 5], "a.bias" [3], "frozen" [2, 70, 33]
 * (not trainable), values uniform in [-1, 1), gradients 0.25. */
static inline tal_params *test_small_params(void) {
    tal_params *p = tal_params_create();
    int g = tal_params_add_group(p, "all", 1.0f, 0.0f);
    tal_params_declare(p, "a.weight", 2, (int64_t[]){3, 5}, g, 1);
    tal_params_declare(p, "a.bias", 1, (int64_t[]){3}, g, 1);
    tal_params_declare(p, "frozen", 3, (int64_t[]){2, 70, 33}, g, 0);
    tal_err err = {0};
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    for (int i = 0; i < tal_params_count(p); i++) {
        test_fill_uniform(tal_params_at(p, i)->value, 10 + (uint64_t)i);
        tal_fill(tal_params_at(p, i)->grad, 0.25f);
    }
    return p;
}

/* A real CPU arena of the given size (fails the test if it cannot be made). */
static inline tal_arena *test_arena(size_t bytes) {
    tal_arena *a = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CPU, bytes, &err), TAL_OK, "%s", err.msg);
    return a;
}

#endif
