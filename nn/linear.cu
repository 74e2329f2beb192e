/* nn/linear.cu: CUDA twin of linear.c: y = x W^T + b as one product (the bias broadcast into y
 * first, then accumulated into), and its backward: dx = dy W, dW += dy^T x (products in the
 * precision mode), db += the column sums of dy (deterministic, in double as the CPU). */
#include "cuda_reduce.cuh"

/* y [rows, cout] = b broadcast over rows */
__global__ void broadcast_rows_kernel(float *y, const float *b, int64_t cout, int64_t n) {
    GRID_STRIDE_LOOP(i, n) y[i] = b[i % cout];
}

void linear_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b) {
    int64_t rows = tal_tensor_rows(x), cin = tal_tensor_cols(x), cout = w.shape[0];
    if (rows == 0 || cout == 0) return;
    float beta = 0.0f;
    if (tal_tensor_present(b)) {
        int64_t n = rows * cout;
        broadcast_rows_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(y.data, b.data,
                                                                                cout, n);
        TAL_LAUNCH_CHECK();
        beta = 1.0f;
    }
    gemm_cuda(0, 1, rows, cout, cin, 1.0f, x.data, cin, w.data, cin, beta, y.data, cout);
}

void linear_backward_cuda(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                          tal_tensor x, tal_tensor w) {
    int64_t rows = tal_tensor_rows(x), cin = tal_tensor_cols(x), cout = w.shape[0];
    if (tal_tensor_present(dx))
        gemm_cuda(0, 0, rows, cin, cout, 1.0f, dy.data, cout, w.data, cin, 0.0f, dx.data, cin);
    if (tal_tensor_present(dw))
        gemm_cuda(1, 0, cout, cin, rows, 1.0f, dy.data, cout, x.data, cin, 1.0f, dw.data, cin);
    if (tal_tensor_present(db)) channel_sum_plain(db.data, dy.data, rows, cout, 1);
}
