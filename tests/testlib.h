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

/* Asserts equal shapes (ndim and every dim), then |got - want| <= atol + rtol * |want|
 * elementwise. Non-finite expected values are matched exactly: +-inf only by the same infinity,
 * NaN only by NaN (and a finite expected value by no inf or NaN). Both tensors must be on the
 * host. On failure prints the worst index, both values and the maximum error; `what` names the
 * quantity. */
void expect_close_impl(const char *what, tal_tensor got, tal_tensor want, double atol, double rtol,
                       const char *file, int line);
#define expect_close(got, want, atol, rtol)                                                   \
    expect_close_impl(#got, (got), (want), (atol), (rtol), __FILE__, __LINE__)

/* What expect_close judges, without asserting (so its own test can check it): whether the
 * shapes agree and, if they do, how many elements are out of tolerance, the worst one's flat
 * index (-1 if none) and the largest |got - want| that is not NaN. */
typedef struct test_closeness {
    int same_shape;
    int64_t n_bad, worst;
    double max_abs_err;
} test_closeness;
test_closeness test_compare(tal_tensor got, tal_tensor want, double atol, double rtol);

/* atol for two results that each sum the same n products of values in [-1, 1) in different
 * orders (threads split the sums, kernels block them differently): fp32 eps * sqrt(n) * n.
 * Each addition rounds by up to eps times the running sum; with random signs n of them add up
 * to about eps * sqrt(n) times the running sums' size (Higham & Mary's probabilistic bound), and
 * a running sum is at most the sum of the products' magnitudes, < n. (Their typical size,
 * sqrt(n) / 3, is too tight: conv3d's 216-term sums differ by 1.3e-5 over 19,200 outputs, 78%
 * of that bound.) Use it with rtol 0: rounding follows the running sums, not the final value (a
 * sum that cancels to ~0 rounds as much as one that does not). A real bug (a lost or doubled
 * partial sum) moves elements by about one product, ~0.25, far above it (n = 2400: 1.4e-2). */
double test_reorder_atol(int64_t n_products);

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

/* Fails the test unless the re2tal binary (RE2TAL_BIN) is built. Every test that runs it
 * depends on it in CMake, so a missing binary is a broken build, never a reason to skip. */
void test_require_binary(void);

/* A path in this test binary's own scratch folder, TEST_TMP "/<name>" (TEST_TMP is
 * build/tests/tmp/<binary>, defined per binary, hence the macro). Static buffer. */
#define test_tmp_path(name) test_tmp_path_in(TEST_TMP, (name))
const char *test_tmp_path_in(const char *dir, const char *name);

/* Writes text to test_tmp_path(name); returns that path, valid for the next 7 calls. */
#define test_write_tmp(name, text) test_write_tmp_in(TEST_TMP, (name), (text))
const char *test_write_tmp_in(const char *dir, const char *name, const char *text);
/* Runs a shell command in folder `dir`; returns its exit status (128 + signal if killed). */
int test_sh_in(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents of dir/name (caller frees), or NULL if it cannot be read. */
char *test_slurp_in(const char *dir, const char *name);
/* Copies the file `from` to `to` with n_bits bits flipped in its middle half (a video's frames,
 * not its header or an index at the end); the same seed flips the same bits. */
void test_flip_bits(const char *from, const char *to, int n_bits, uint64_t seed);

#endif
