/* The counter-based RNG (same key and counter -> same number; distributions right; keys that
 * differ in seed, step or stream give unrelated streams), the thread knob and error helpers.
 * Statistical bounds are 5 standard deviations of the estimate, so a correct generator fails
 * about once in 3.5 million runs, while a biased or repeated stream fails every time. */
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_DRAWS 200000

Test(nn_rng, same_key_same_numbers) {
    tal_rng_key a = {42, 7, 3};
    for (uint64_t i = 0; i < 1000; i += 37) {
        cr_assert_eq(tal_rng_uniform(a, i), tal_rng_uniform(a, i));
        cr_assert_eq(tal_rng_normal(a, i), tal_rng_normal(a, i));
        cr_assert_eq(tal_rng_u64(a, i), tal_rng_u64(a, i));
    }
    /* counters past 2^32 are distinct draws, not the low word wrapped */
    cr_assert_neq(tal_rng_u64(a, 5), tal_rng_u64(a, 5 + (1ull << 32)));
}

Test(nn_rng, uniform_is_uniform_on_0_1) {
    tal_rng_key key = {1, 0, 0};
    double s = 0, ss = 0;
    int bins[10] = {0};
    for (uint64_t i = 0; i < N_DRAWS; i++) {
        float u = tal_rng_uniform(key, i);
        cr_assert(u >= 0.0f && u < 1.0f, "draw %llu = %.9g", (unsigned long long)i, u);
        s += u, ss += (double)u * u;
        bins[(int)(u * 10)]++;
    }
    double mean = s / N_DRAWS, var = ss / N_DRAWS - mean * mean;
    /* sd(mean) = sqrt(1/12 / n) = 6.5e-4; sd(var) = sqrt(1/180 / n) ~ 1.7e-4 */
    cr_assert(fabs(mean - 0.5) < 3.3e-3, "mean %g", mean);
    cr_assert(fabs(var - 1.0 / 12) < 8.5e-4, "variance %g", var);
    /* each bin: binomial(n, 0.1), sd = sqrt(n * 0.09) ~ 134 */
    for (int b = 0; b < 10; b++)
        cr_assert(abs(bins[b] - N_DRAWS / 10) < 670, "bin %d has %d of %d", b, bins[b], N_DRAWS);
}

Test(nn_rng, normal_has_mean_0_variance_1) {
    tal_rng_key key = {2, 5, 1};
    double s = 0, ss = 0, s4 = 0;
    for (uint64_t i = 0; i < N_DRAWS; i++) {
        double z = tal_rng_normal(key, i);
        cr_assert(isfinite(z));
        s += z, ss += z * z, s4 += z * z * z * z;
    }
    double mean = s / N_DRAWS, var = ss / N_DRAWS - mean * mean, kurt = s4 / N_DRAWS;
    /* sd(mean) = 2.2e-3; sd(var) = sqrt(2 / n) = 3.2e-3; sd(E z^4) = sqrt(96 / n) = 0.022 */
    cr_assert(fabs(mean) < 0.011, "mean %g", mean);
    cr_assert(fabs(var - 1) < 0.016, "variance %g", var);
    cr_assert(fabs(kurt - 3) < 0.11, "fourth moment %g (normal: 3)", kurt);
}

/* Pearson correlation of two streams over the same counters: ~N(0, 1/n) when unrelated. */
static double correlation(tal_rng_key a, tal_rng_key b) {
    double sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
    for (uint64_t i = 0; i < N_DRAWS; i++) {
        double x = tal_rng_uniform(a, i), y = tal_rng_uniform(b, i);
        sa += x, sb += y, sab += x * y, saa += x * x, sbb += y * y;
    }
    double n = N_DRAWS, cov = sab / n - sa / n * sb / n;
    return cov / sqrt((saa / n - sa * sa / n / n) * (sbb / n - sb * sb / n / n));
}

Test(nn_rng, seed_step_and_stream_each_change_the_stream) {
    tal_rng_key base = {9, 100, 4};
    tal_rng_key keys[3] = {{10, 100, 4}, {9, 101, 4}, {9, 100, 5}};
    for (int k = 0; k < 3; k++) {
        int same = 0;
        for (uint64_t i = 0; i < 1000; i++) same += tal_rng_u64(base, i) == tal_rng_u64(keys[k], i);
        cr_assert_eq(same, 0, "key %d repeats the base stream", k);
        double r = correlation(base, keys[k]);
        cr_assert(fabs(r) < 5 / sqrt(N_DRAWS), "key %d: correlation %g", k, r); /* 0.011 */
    }
    /* neighbouring counters of one stream are unrelated too */
    double s = 0;
    for (uint64_t i = 0; i < N_DRAWS; i++)
        s += (tal_rng_uniform(base, i) - 0.5) * (tal_rng_uniform(base, i + 1) - 0.5);
    cr_assert(fabs(s / N_DRAWS) < 5 * (1.0 / 12) / sqrt(N_DRAWS), "lag-1 covariance %g",
              s / N_DRAWS);
}

Test(nn_rng, u64_bits_are_balanced) {
    tal_rng_key key = {3, 0, 0};
    int ones[64] = {0};
    const int n = 20000;
    for (uint64_t i = 0; i < (uint64_t)n; i++) {
        uint64_t x = tal_rng_u64(key, i);
        for (int b = 0; b < 64; b++) ones[b] += (int)((x >> b) & 1);
    }
    for (int b = 0; b < 64; b++) /* sd = sqrt(n / 4) ~ 71 */
        cr_assert(abs(ones[b] - n / 2) < 355, "bit %d set %d times of %d", b, ones[b], n);
}

Test(nn_threads, explicit_count_and_environment) {
    cr_assert_eq(tal_threads_set(2), 2);
    cr_assert_eq(tal_threads_get(), 2);
    setenv("RE2TAL_THREADS", "3", 1);
    cr_assert_eq(tal_threads_set(0), 3, "n <= 0 takes RE2TAL_THREADS");
    cr_assert_eq(tal_threads_get(), 3);
    unsetenv("RE2TAL_THREADS");
    cr_assert_geq(tal_threads_set(-1), 1, "without the variable: the number of cores");
    tal_threads_set(1);
}

Test(nn_err, set_prefix_and_names) {
    tal_err err = {0};
    cr_assert_eq(tal_err_set(&err, TAL_EFORMAT, "%s: tensor '%s'", "a.safetensors", "w"),
                 TAL_EFORMAT);
    cr_assert_eq(err.code, TAL_EFORMAT);
    cr_assert_str_eq(err.msg, "a.safetensors: tensor 'w'");
    cr_assert_eq(tal_err_prefix(&err, "loading %s", "model"), TAL_EFORMAT);
    cr_assert_str_eq(err.msg, "loading model: a.safetensors: tensor 'w'");
    cr_assert_eq(tal_err_set(NULL, TAL_EIO, "dropped"), TAL_EIO, "NULL err: code still returned");
    char long_name[2000];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    tal_err_set(&err, TAL_EIO, "%s", long_name); /* truncated, never overflowed */
    cr_assert_eq(strlen(err.msg), sizeof err.msg - 1);
    const tal_status all[6] = {TAL_OK, TAL_EIO, TAL_EFORMAT, TAL_EINVAL, TAL_ENOMEM, TAL_EDEVICE};
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(tal_status_name(all[i]), tal_status_name(all[j]));
}
