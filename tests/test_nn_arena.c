/* Arenas hand out aligned zeroed blocks, release to marks, and the planner counts exactly what a
 * real arena then uses. */
#include "testlib.h"

#include <math.h>
#include <signal.h>

static void allocate_model(tal_arena *a) {
    tal_arena_floats(a, 1000);
    size_t mark = tal_arena_mark(a);
    tal_arena_tensor(a, 3, (int64_t[]){2, 3, 5});
    tal_arena_release(a, mark);
    tal_arena_bytes(a, 1);
    tal_arena_floats(a, 4096);
}

Test(nn_arena, planner_matches_real_arena) {
    tal_arena *plan = tal_arena_create_planner();
    allocate_model(plan);
    cr_assert(tal_arena_is_planner(plan));
    size_t need = tal_arena_high_water(plan);
    tal_arena *a = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CPU, need, &err), TAL_OK, "%s", err.msg);
    allocate_model(a);
    cr_assert_eq(tal_arena_high_water(a), need);
    cr_assert_eq(tal_arena_used(a), tal_arena_used(plan));
    tal_arena_destroy(a);
    tal_arena_destroy(plan);
}

Test(nn_arena, blocks_are_aligned_and_zeroed) {
    tal_arena *a = NULL;
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CPU, 1 << 16, NULL), TAL_OK);
    float *x = tal_arena_floats(a, 3);
    x[0] = 7;
    size_t mark = tal_arena_mark(a);
    float *y = tal_arena_floats(a, 10);
    cr_assert_eq((uintptr_t)y % 64, 0);
    y[3] = 5;
    tal_arena_release(a, mark);
    float *z = tal_arena_floats(a, 10);
    cr_assert_eq(z, y);
    cr_assert_eq(z[3], 0.0f, "a block handed out again must be zeroed");
    tal_arena_destroy(a);
}

Test(nn_arena, overflow_is_a_bug_that_aborts, .signal = SIGABRT) {
    tal_arena *a = NULL;
    cr_assert_eq(tal_arena_create(&a, TAL_DEV_CPU, 256, NULL), TAL_OK);
    tal_arena_floats(a, 65); /* 260 bytes > 256 */
}

Test(nn_tensor, reshape_and_slice_keep_the_data) {
    float buf[24];
    tal_tensor t = tal_t3(buf, 2, 3, 4);
    cr_assert_eq(tal_tensor_rows(t), 6);
    cr_assert_eq(tal_tensor_cols(t), 4);
    tal_tensor s = tal_tensor_slice0(t, 1, 1);
    cr_assert_eq(s.data, buf + 12);
    tal_tensor r = tal_tensor_reshape(t, 2, (int64_t[]){6, 4});
    cr_assert_eq(r.data, buf);
    char str[64];
    cr_assert_str_eq(tal_tensor_shape_str(t, str, sizeof str), "[2, 3, 4]");
}

Test(nn_rng, same_key_same_numbers_other_key_other_numbers) {
    tal_rng_key k = {42, 7, 3}, k2 = {42, 8, 3};
    int same = 0;
    double mean = 0;
    for (int i = 0; i < 10000; i++) {
        float u = tal_rng_uniform(k, (uint64_t)i);
        cr_assert(u >= 0 && u < 1);
        cr_assert_eq(u, tal_rng_uniform(k, (uint64_t)i));
        same += u == tal_rng_uniform(k2, (uint64_t)i);
        mean += u;
    }
    cr_assert_lt(same, 10);
    mean /= 10000;
    cr_assert(fabs(mean - 0.5) < 0.01, "mean %f", mean);
}
