/* The CUDA twins of the elementwise ops against the CPU ops on the same random inputs: lengths
 * of 1, below and past a block (256), not multiples of it, past a million; outputs aliasing
 * inputs. Each output element is one IEEE operation on both devices (nvcc kept from fusing
 * into FMAs where it could), so the results must agree bit for bit. Skipped without a GPU. */
#include "cuda_check.h"

TestSuite(cuda_pointwise, .fini = cuda_test_cleanup);

static const int64_t LENGTHS[] = {1, 31, 257, 65537, 1000003};
#define N_LENGTHS (int)(sizeof LENGTHS / sizeof LENGTHS[0])

enum { ADD, SUB, MUL, SCALE, AXPY };

static void run_op(int op, tal_tensor y, tal_tensor a, tal_tensor b) {
    if (op == ADD) tal_add(y, a, b);
    if (op == SUB) tal_sub(y, a, b);
    if (op == MUL) tal_mul(y, a, b);
    if (op == SCALE) tal_scale(y, a, -1.7f);
    if (op == AXPY) tal_axpy(y, 0.3f, a);
}

/* alias: 0 separate output, 1 y is a, 2 y is b */
static void check_op(int op, int alias) {
    for (int li = 0; li < N_LENGTHS; li++) {
        int64_t n = LENGTHS[li];
        tal_tensor a = rand_host(1, &n, 1 + li), b = rand_host(1, &n, 100 + li);
        tal_tensor y = rand_host(1, &n, 200 + li); /* axpy accumulates into it */
        tal_tensor da = dev_copy(a), db = dev_copy(b), dy = dev_copy(y);
        tal_tensor want = alias == 1 ? a : alias == 2 ? b : y;
        tal_tensor got = alias == 1 ? da : alias == 2 ? db : dy;
        run_op(op, want, a, b);
        run_op(op, got, da, db);
        expect_dev_bits(got, want);
    }
}

Test(cuda_pointwise, add_sub_mul_match_cpu_bits) {
    CUDA_ONLY();
    for (int op = ADD; op <= MUL; op++)
        for (int alias = 0; alias < 3; alias++) check_op(op, alias);
}

Test(cuda_pointwise, scale_and_axpy_match_cpu_bits) {
    CUDA_ONLY();
    check_op(SCALE, 0);
    check_op(SCALE, 1);
    check_op(AXPY, 0);
}

Test(cuda_pointwise, fill_values_and_negative_zero) {
    CUDA_ONLY();
    const float values[] = {0.0f, -0.0f, 3.5f, -INFINITY};
    for (int li = 0; li < N_LENGTHS; li++) {
        int64_t n = LENGTHS[li];
        tal_tensor h = rand_host(1, &n, 7), d = dev_copy(h);
        for (int v = 0; v < 4; v++) {
            tal_fill(h, values[v]);
            tal_fill(d, values[v]);
            expect_dev_bits(d, h); /* -0.0 keeps its sign bit: not the zero memset */
        }
    }
}

Test(cuda_pointwise, copy_between_devices_and_overlapping) {
    CUDA_ONLY();
    int64_t n = 100003;
    tal_tensor h = rand_host(1, &n, 3);
    tal_tensor d1 = dev_copy(h), d2 = dev_tensor(1, &n);
    tal_copy(d2, d1); /* device to device */
    expect_dev_bits(d2, h);
    /* overlapping views shifted by one element both ways: memmove semantics, as on the CPU */
    tal_tensor want = test_clone(h);
    tal_copy(tal_t1(want.data + 1, n - 1), tal_t1(want.data, n - 1));
    tal_tensor s = tal_tensor_slice0(d2, 0, n - 1), t = tal_tensor_slice0(d2, 1, n - 1);
    tal_copy(t, s);
    expect_dev_bits(d2, want);
    tal_copy(tal_t1(want.data, n - 1), tal_t1(want.data + 1, n - 1));
    tal_copy(s, t);
    expect_dev_bits(d2, want);
    /* the views' shapes may differ (flat copy) */
    tal_tensor h2 = test_tensor(2, (int64_t[]){3, 7}), h3 = rand_host(1, (int64_t[]){21}, 9);
    tal_tensor d3 = dev_copy(h3);
    tal_copy(h2, d3);
    expect_close(h2, h3, 0, 0);
}
