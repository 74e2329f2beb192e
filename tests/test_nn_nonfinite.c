/* Weights loaded with --allow-nonfinite send NaN and Inf through the ops: they must come out as
 * NaN, not as numbers, and never as undefined behaviour (under UBSan a NaN's float-to-int cast
 * in the vectorised e^x of GELU and softmax was one). */
#include <math.h>

#include "testlib.h"

static void cleanup(void) { test_free_all(); }
TestSuite(nn_nonfinite, .fini = cleanup);

Test(nn_nonfinite, gelu_and_softmax_pass_nan_through) {
    float xs[6] = {NAN, -NAN, INFINITY, -INFINITY, 0.5f, -3.0f};
    tal_tensor x = test_tensor(2, (int64_t[]){2, 3});
    for (int i = 0; i < 6; i++) x.data[i] = xs[i];
    tal_tensor y = test_tensor_like(x), dy = test_tensor_like(x), dx = test_tensor_like(x);
    tal_fill(dy, 1.0f);
    tal_gelu_forward(y, x);
    tal_gelu_backward(dx, dy, x);
    cr_expect(isnan(y.data[0]) && isnan(y.data[1]), "gelu(nan) = %g, %g", y.data[0], y.data[1]);
    cr_expect(isnan(dx.data[0]) && isnan(dx.data[1]), "gelu'(nan) = %g, %g", dx.data[0],
              dx.data[1]);
    cr_expect(isfinite(y.data[4]) && isfinite(dx.data[5]), "finite inputs stay finite");
    tal_softmax_forward(y, x);
    for (int j = 0; j < 3; j++) cr_expect(isnan(y.data[j]), "softmax row with a NaN: %g", y.data[j]);
    float row[3] = {1, 2, 3};
    for (int j = 0; j < 3; j++) x.data[3 + j] = row[j];
    tal_softmax_forward(y, x);
    cr_expect(fabsf(y.data[3] + y.data[4] + y.data[5] - 1) < 1e-6f, "a finite row sums to 1");
}
