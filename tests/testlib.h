/* tests/testlib.h: what every test needs: fixtures (safetensors files written by
 * tests/make_fixtures.py), tensor comparison with a readable failure, finite differences in
 * double, and temp paths. */
#ifndef TAL_TESTLIB_H
#define TAL_TESTLIB_H

#include <criterion/criterion.h>

#include "nn/nn.h"

/* A loaded fixture file; tensors are looked up by name and abort the test if absent. */
typedef struct fixture {
    char path[512];
    tal_tensor_set set;
} fixture;

/* Loads FIXTURES "/<name>.safetensors"; fails the test (with the reason) if it cannot. */
void fixture_load(fixture *fx, const char *name);
tal_tensor fixture_get(const fixture *fx, const char *tensor_name);
/* A scalar stored as a 1-element tensor. */
float fixture_scalar(const fixture *fx, const char *tensor_name);
int fixture_has(const fixture *fx, const char *tensor_name);
void fixture_free(fixture *fx);

/* Asserts |got - want| <= atol + rtol * |want| elementwise (and equal shapes); on failure
 * prints the worst index, both values and the maximum error. `what` names the quantity. */
void expect_close_impl(const char *what, tal_tensor got, tal_tensor want, double atol, double rtol,
                       const char *file, int line);
#define expect_close(got, want, atol, rtol)                                                   \
    expect_close_impl(#got, (got), (want), (atol), (rtol), __FILE__, __LINE__)

/* Heap tensors for tests (freed with test_free_all at the end of the test, or leaked into the
 * forked test process' exit: Criterion runs each test in its own process). */
tal_tensor test_tensor(int ndim, const int64_t *shape);
tal_tensor test_tensor_like(tal_tensor t);
tal_tensor test_clone(tal_tensor t);
/* Deterministic values in [-1, 1) from a seed. */
void test_fill_uniform(tal_tensor t, uint64_t seed);
void test_free_all(void);

/* Numerical gradient of a scalar function of one tensor by central differences in double:
 * f(ctx) reads the current contents of x. Writes grad (same shape as x). */
typedef double (*test_scalar_fn)(void *ctx);
void test_numeric_grad(tal_tensor grad, tal_tensor x, test_scalar_fn f, void *ctx, double h);

/* Sum of w * y over all elements, in double (the usual "loss" for gradient checks). */
double test_dot(tal_tensor y, tal_tensor w);

/* A path under the build's tests/tmp for this test's files: TEST_TMP "/<name>". */
const char *test_tmp_path(const char *name);

/* Writes text to test_tmp_path(name); returns that path, valid for the next 7 calls. */
const char *test_write_tmp(const char *name, const char *text);
/* Runs a shell command in folder `dir`; returns its exit status (128 + signal if killed). */
int test_sh_in(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents of dir/name (caller frees), or NULL if it cannot be read. */
char *test_slurp_in(const char *dir, const char *name);

#endif
