/* nn/linear.c: y = x W^T + b on the last dim, and its backward, as GEMMs. */
#include "nn.h"

static void linear_forward_cpu(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b) {
    int64_t rows = tal_tensor_rows(x), cin = tal_tensor_cols(x), cout = w.shape[0];
    float beta = 0.0f;
    if (tal_tensor_present(b)) {
#pragma omp parallel for schedule(static) if (rows * cout > 65536)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t o = 0; o < cout; o++) y.data[r * cout + o] = b.data[o];
        beta = 1.0f;
    }
    tal_gemm(0, 1, rows, cout, cin, 1.0f, x.data, cin, w.data, cin, beta, y.data, cout);
}

void tal_linear_forward(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b) {
    TAL_ASSERT(w.ndim == 2 && tal_tensor_cols(x) == w.shape[1]);
    TAL_ASSERT(tal_tensor_cols(y) == w.shape[0] && tal_tensor_rows(y) == tal_tensor_rows(x));
    TAL_ASSERT(!tal_tensor_present(b) || tal_tensor_numel(b) == w.shape[0]);
    TAL_ASSERT_SAME_DEVICE(y, x);
    linear_forward_cpu(y, x, w, b);
}

static void linear_backward_cpu(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                                tal_tensor x, tal_tensor w) {
    int64_t rows = tal_tensor_rows(x), cin = tal_tensor_cols(x), cout = w.shape[0];
    if (tal_tensor_present(dx)) /* dx = dy W */
        tal_gemm(0, 0, rows, cin, cout, 1.0f, dy.data, cout, w.data, cin, 0.0f, dx.data, cin);
    if (tal_tensor_present(dw)) /* dW += dy^T x: split over the Cout rows of dW */
        tal_gemm(1, 0, cout, cin, rows, 1.0f, dy.data, cout, x.data, cin, 1.0f, dw.data, cin);
    if (tal_tensor_present(db)) {
#pragma omp parallel for schedule(static) if (rows * cout > 65536)
        for (int64_t o = 0; o < cout; o++) {
            double s = 0; /* double: sums over up to ~1e6 rows */
            for (int64_t r = 0; r < rows; r++) s += dy.data[r * cout + o];
            db.data[o] += (float)s;
        }
    }
}

void tal_linear_backward(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                         tal_tensor x, tal_tensor w) {
    TAL_ASSERT(w.ndim == 2 && tal_tensor_cols(x) == w.shape[1]);
    TAL_ASSERT(tal_tensor_cols(dy) == w.shape[0] && tal_tensor_rows(dy) == tal_tensor_rows(x));
    TAL_ASSERT(!tal_tensor_present(dx) || tal_tensor_numel(dx) == tal_tensor_numel(x));
    TAL_ASSERT(!tal_tensor_present(dw) || tal_tensor_same_shape(dw, w));
    linear_backward_cpu(dx, dw, db, dy, x, w);
}
