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
 * with the analytic gradient. Error budget: truncation ~ h^2 |f'''| / 6 and rounding
 * ~ 6e-8 * sum|w y| / h (float outputs summed in double); with h = 1e-2, O(1) values and a few
 * hundred outputs both stay below ~5e-4, so callers use atol 2e-3, rtol 1e-2: a wrong term in a
 * gradient is off by O(1). */
static inline void fd_check_impl(const char *what, tal_tensor analytic, tal_tensor x,
                                 test_scalar_fn f, void *ctx, double h, double atol, double rtol,
                                 const char *file, int line) {
    tal_tensor num = test_tensor_like(x);
    test_numeric_grad(num, x, f, ctx, h);
    expect_close_impl(what, analytic, num, atol, rtol, file, line);
}
#define fd_check(analytic, x, f, ctx)                                                         \
    fd_check_impl(#analytic " vs finite differences", (analytic), (x), (f), (ctx), 1e-2, 2e-3, \
                  1e-2, __FILE__, __LINE__)

/* Fresh planner and real arenas. The real one is big enough for any test shape here. */
static inline tal_arena *test_arena(size_t bytes) {
    tal_arena *a = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CPU, bytes, &err), TAL_OK, "%s", err.msg);
    return a;
}

#endif
