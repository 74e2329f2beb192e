/* The CUDA twins of the elementwise ops, activations, softmax, dropout and drop-path against
 * the CPU ops on the same random inputs: lengths of 1, below and past a block (256), not
 * multiples of it, past a million; outputs aliasing inputs. Where each output element is one
 * IEEE operation on both devices (nvcc kept from fusing into FMAs where it could), and for the
 * dropout masks, the results must agree bit for bit. Skipped without a GPU. */
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

/* ---------------------------------------------------------------- activations ----------- */
/* GELU: CUDA's erff / expf against the CPU's polynomials (both within a few 1e-7): 1e-6
 * absolute + 1e-5 relative. ReLU: one comparison, bit for bit. */
Test(cuda_pointwise, gelu_relu_forward_backward) {
    CUDA_ONLY();
    for (int li = 0; li < N_LENGTHS; li++) {
        int64_t n = LENGTHS[li];
        tal_tensor x = rand_range(1, &n, 1 + li, -4.0f, 4.0f), dy = rand_host(1, &n, 50 + li);
        tal_tensor gx = dev_copy(x), gdy = dev_copy(dy);
        tal_tensor y = test_tensor_like(x), gy = dev_like(x);
        tal_gelu_forward(y, x);
        tal_gelu_forward(gy, gx);
        expect_dev_close(gy, y, 1e-6, 1e-5);
        tal_tensor dx = test_clone(dy), gdx = dev_copy(dy); /* dx aliases dy */
        tal_gelu_backward(dx, dx, x);
        tal_gelu_backward(gdx, gdx, gx);
        expect_dev_close(gdx, dx, 1e-6, 1e-5);
        tal_relu_forward(y, x);
        tal_relu_forward(gy, gx);
        expect_dev_bits(gy, y);
        tal_relu_backward(dx, dy, y);
        tal_relu_backward(gdx, gdy, gy);
        expect_dev_bits(gdx, dx);
        tal_relu_forward(gx, gx); /* in place */
        expect_dev_bits(gx, y);
    }
}

/* ---------------------------------------------------------------- softmax --------------- */
/* Rows of 1, 31, 257 and 4099; -inf entries, a row of all -inf (zeros), in place. expf against
 * the CPU's polynomial: 1e-6 relative on the probabilities, 1e-7 absolute. */
Test(cuda_pointwise, softmax_rows_of_any_length) {
    CUDA_ONLY();
    const int64_t widths[] = {1, 31, 257, 4099};
    for (int wi = 0; wi < 4; wi++) {
        int64_t rows = 9, n = widths[wi];
        tal_tensor x = rand_range(2, (int64_t[]){rows, n}, 3 + wi, -8.0f, 8.0f);
        for (int64_t j = 0; j < n; j += 3) x.data[1 * n + j] = -INFINITY; /* some -inf */
        for (int64_t j = 0; j < n; j++) x.data[4 * n + j] = -INFINITY;    /* all -inf */
        tal_tensor gx = dev_copy(x), y = test_tensor_like(x), gy = dev_like(x);
        tal_softmax_forward(y, x);
        tal_softmax_forward(gy, gx);
        expect_dev_close(gy, y, 1e-7, 1e-6);
        for (int64_t j = 0; j < n; j++) cr_assert_eq(y.data[4 * n + j], 0.0f);
        tal_tensor dy = rand_host(2, x.shape, 9 + wi), dx = test_tensor_like(x);
        tal_tensor gdy = dev_copy(dy);
        tal_softmax_backward(dx, dy, y);
        tal_softmax_backward(gdy, gdy, gy); /* dx aliases dy */
        expect_dev_close(gdy, dx, 1e-7, 1e-5);
        tal_softmax_forward(gx, gx); /* y aliases x */
        expect_dev_close(gx, y, 1e-7, 1e-6);
    }
}

/* ---------------------------------------------------------------- dropout --------------- */
/* The same Philox draws on both devices: the same elements dropped, the same values kept (one
 * multiply each), bit for bit; forward and backward alike; p = 0 copies. */
Test(cuda_pointwise, dropout_masks_equal_the_cpu_bits) {
    CUDA_ONLY();
    const float ps[] = {0.0f, 0.1f, 0.5f, 0.9f};
    for (int li = 0; li < N_LENGTHS; li++)
        for (int pi = 0; pi < 4; pi++) {
            int64_t n = LENGTHS[li];
            tal_rng_key key = {77, (uint64_t)li, (uint64_t)pi};
            tal_tensor x = rand_host(1, &n, 30 + li), y = test_tensor_like(x);
            tal_tensor gx = dev_copy(x), gy = dev_like(x);
            tal_dropout_forward(y, x, ps[pi], key);
            tal_dropout_forward(gy, gx, ps[pi], key);
            expect_dev_bits(gy, y);
            tal_dropout_backward(y, x, ps[pi], key);
            tal_dropout_backward(gy, gx, ps[pi], key);
            expect_dev_bits(gy, y);
            tal_dropout_forward(gx, gx, ps[pi], key); /* in place */
            expect_dev_bits(gx, y);
        }
}

Test(cuda_pointwise, drop_path_masks_equal_the_cpu_bits) {
    CUDA_ONLY();
    const int64_t batches[] = {1, 3, 64};
    for (int bi = 0; bi < 3; bi++)
        for (int pi = 0; pi < 3; pi++) {
            float p = pi == 0 ? 0.0f : pi == 1 ? 0.2f : 0.5f;
            tal_rng_key key = {5, 11, (uint64_t)(bi * 3 + pi)};
            int64_t shape[3] = {batches[bi], 7, 33};
            tal_tensor x = rand_host(3, shape, 40 + bi), y = test_tensor_like(x);
            tal_tensor gx = dev_copy(x), gy = dev_like(x);
            tal_drop_path_forward(y, x, p, key);
            tal_drop_path_forward(gy, gx, p, key);
            expect_dev_bits(gy, y);
            tal_drop_path_backward(y, x, p, key);
            tal_drop_path_backward(gy, gx, p, key);
            expect_dev_bits(gy, y);
        }
}
