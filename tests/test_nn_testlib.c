/* tests/test_nn_testlib.c: the comparison every numeric test rests on (tests/testlib.c). A test
 * is only as strict as expect_close: shapes must agree dim by dim, and inf / NaN must not slip
 * through the tolerance formula (inf - inf is NaN, and NaN > tol is false). */
#include <math.h>

#include "testlib.h"

static tal_tensor vec(int n, const float *v) {
    tal_tensor t = test_tensor(1, (int64_t[]){n});
    for (int i = 0; i < n; i++) t.data[i] = v[i];
    return t;
}

/* Number of elements of {got} vs {want} (one element each) out of atol 1e-3, rtol 1e-3. */
static int64_t n_bad_1(float got, float want) {
    test_closeness c = test_compare(vec(1, &got), vec(1, &want), 1e-3, 1e-3);
    cr_assert(c.same_shape);
    return c.n_bad;
}

Test(nn_testlib, shapes_must_agree_dim_by_dim_not_only_in_count) {
    tal_tensor a = test_tensor(2, (int64_t[]){2, 3}), b = test_tensor(2, (int64_t[]){3, 2});
    tal_tensor flat = test_tensor(1, (int64_t[]){6}), lead = test_tensor(3, (int64_t[]){1, 2, 3});
    cr_expect_not(test_compare(a, b, 1, 1).same_shape, "[2, 3] vs [3, 2]");
    cr_expect_not(test_compare(a, flat, 1, 1).same_shape, "[2, 3] vs [6]");
    cr_expect_not(test_compare(a, lead, 1, 1).same_shape, "[2, 3] vs [1, 2, 3]");
    cr_expect(test_compare(a, test_tensor_like(a), 0, 0).same_shape);
    test_free_all();
}

Test(nn_testlib, infinities_match_only_the_same_infinity) {
    cr_expect_eq(n_bad_1(INFINITY, INFINITY), 0);
    cr_expect_eq(n_bad_1(-INFINITY, -INFINITY), 0);
    cr_expect_eq(n_bad_1(1.0f, INFINITY), 1, "a finite value is not +inf");
    cr_expect_eq(n_bad_1(-INFINITY, INFINITY), 1, "-inf is not +inf");
    cr_expect_eq(n_bad_1(INFINITY, -INFINITY), 1);
    cr_expect_eq(n_bad_1(INFINITY, 1e30f), 1, "an overflow is not a large value");
    cr_expect_eq(n_bad_1(NAN, INFINITY), 1);
    test_free_all();
}

Test(nn_testlib, nan_matches_only_nan) {
    cr_expect_eq(n_bad_1(NAN, NAN), 0);
    cr_expect_eq(n_bad_1(0.0f, NAN), 1);
    cr_expect_eq(n_bad_1(NAN, 0.0f), 1);
    cr_expect_eq(n_bad_1(INFINITY, NAN), 1);
    test_free_all();
}

Test(nn_testlib, tolerance_is_atol_plus_rtol_times_expected) {
    /* |2.0029 - 2| = 0.0029 <= 1e-3 + 1e-3 * 2 = 0.003, and 0.0031 is not (float steps near 2
     * are 2.4e-7, far below the 1e-4 margins) */
    cr_expect_eq(n_bad_1(2.0029f, 2.0f), 0);
    cr_expect_eq(n_bad_1(1.9971f, 2.0f), 0);
    cr_expect_eq(n_bad_1(2.0031f, 2.0f), 1);
    cr_expect_eq(n_bad_1(1.9969f, 2.0f), 1);
    /* rtol scales with the expected value, not with the one computed */
    cr_expect_eq(n_bad_1(0.0f, 1.0f), 1);
    test_free_all();
}

Test(nn_testlib, reports_the_worst_element_and_the_count) {
    const float want[5] = {0, 1, 2, 3, 4}, got[5] = {0, 1.5f, 2, 3, 7};
    test_closeness c = test_compare(vec(5, got), vec(5, want), 0.1, 0);
    cr_expect(c.same_shape);
    cr_expect_eq(c.n_bad, 2);
    cr_expect_eq(c.worst, 4);
    cr_expect_float_eq(c.max_abs_err, 3.0, 1e-12);
    c = test_compare(vec(5, want), vec(5, want), 0, 0);
    cr_expect_eq(c.n_bad, 0);
    cr_expect_eq(c.worst, -1, "exact equality passes a zero tolerance");
    test_free_all();
}

/* Sum of a[i] * b[i] in float: forwards, backwards, or in blocks of 16 added at the end (how a
 * blocked kernel orders it). */
static float dot_in_order(const float *a, const float *b, int n, int order) {
    float s = 0;
    if (order == 0)
        for (int i = 0; i < n; i++) s += a[i] * b[i];
    if (order == 1)
        for (int i = n - 1; i >= 0; i--) s += a[i] * b[i];
    if (order == 2)
        for (int i0 = 0; i0 < n; i0 += 16) {
            float block = 0;
            for (int i = i0; i < n && i < i0 + 16; i++) block += a[i] * b[i];
            s += block;
        }
    return s;
}

/* The bound holds for sums reordered as threads and kernels do, and a lost product breaks it. */
Test(nn_testlib, reorder_atol_covers_summation_order_not_a_lost_product) {
    const int sizes[5] = {3, 27, 216, 1200, 2400};
    double worst_ratio = 0;
    for (int s = 0; s < 5; s++) {
        int n = sizes[s];
        double atol = test_reorder_atol(n);
        for (int trial = 0; trial < 200; trial++) {
            tal_tensor a = test_tensor(1, (int64_t[]){n}), b = test_tensor(1, (int64_t[]){n});
            test_fill_uniform(a, 1000 + 2 * trial);
            test_fill_uniform(b, 1001 + 2 * trial);
            float sums[3];
            int largest = 0;
            for (int o = 0; o < 3; o++) sums[o] = dot_in_order(a.data, b.data, n, o);
            for (int i = 1; i < n; i++)
                if (fabsf(a.data[i] * b.data[i]) > fabsf(a.data[largest] * b.data[largest]))
                    largest = i;
            for (int o = 1; o < 3; o++) {
                double diff = fabs((double)sums[o] - sums[0]);
                if (diff / atol > worst_ratio) worst_ratio = diff / atol;
            }
            float lost = sums[0] - a.data[largest] * b.data[largest];
            cr_assert_gt(fabs((double)lost - sums[0]), atol, "n %d: a lost product must show", n);
            test_free_all();
        }
    }
    cr_expect_lt(worst_ratio, 1.0, "reordered sums differ by %.2f of the bound", worst_ratio);
}
