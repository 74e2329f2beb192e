/* nn/linear.c: y = x W^T + b on the last dim (x [..., Cin], W [Cout, Cin]) and its backward,
 * as GEMMs with the transposes done by sgemm (no copies). */
#include "nn.h"
#include "cuda_ops.h"
#include "dispatch.h"
#include "sgemm.h"

#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Rows per block in the forward: a block of y (<= 256 x Cout floats) is filled with the bias
 * and then accumulated into by sgemm while it is still in cache. */
#define ROW_BLOCK 256
/* db partial sums: up to DB_MAX_COLS doubles (32 KiB) on each thread's stack; wider layers sum
 * DB_BLOCK columns at a time. */
#define DB_MAX_COLS 4096
#define DB_BLOCK 64

static void linear_forward_cpu(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b) {
    int64_t rows = tal_tensor_rows(x), cin = tal_tensor_cols(x), cout = w.shape[0];
    if (rows == 0 || cout == 0) return;
    if (!tal_tensor_present(b)) {
        tal_gemm(0, 1, rows, cout, cin, 1.0f, x.data, cin, w.data, cin, 0.0f, y.data, cout);
        return;
    }
    int64_t nblk = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for schedule(static) if (rows * cout * cin > (1 << 18))
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t r0 = blk * ROW_BLOCK, nr = rows - r0 < ROW_BLOCK ? rows - r0 : ROW_BLOCK;
        float *yb = y.data + r0 * cout;
        for (int64_t r = 0; r < nr; r++) {
            float *restrict yr = yb + r * cout;
            const float *restrict bb = b.data;
#pragma omp simd
            for (int64_t o = 0; o < cout; o++) yr[o] = bb[o];
        }
        tal_sgemm1(0, 1, nr, cout, cin, 1.0f, x.data + r0 * cin, cin, w.data, cin, 1.0f, yb,
                   cout);
    }
}

void tal_linear_forward(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b) {
    TAL_ASSERT(w.ndim == 2 && x.ndim >= 1 && tal_tensor_cols(x) == w.shape[1]);
    TAL_ASSERT(tal_tensor_cols(y) == w.shape[0] && tal_tensor_rows(y) == tal_tensor_rows(x));
    TAL_ASSERT(!tal_tensor_present(b) || tal_tensor_numel(b) == w.shape[0]);
    TAL_ASSERT(y.data != x.data || tal_tensor_numel(y) == 0);
    tal_device dev = OP_DEVICE(y, x, w, b);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        linear_forward_cuda(y, x, w, b);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    linear_forward_cpu(y, x, w, b);
}

/* db[o] += sum_r dy[r, o], in double (up to ~1e6 rows). Each thread sums a fixed range of rows
 * in row order (dy streams through once) into its own stack buffer; the buffers are added to
 * db in thread order, so the result is the same every run. Wider layers than DB_MAX_COLS go by
 * blocks of columns instead. */
static void bias_grad(float *db, const float *dy, int64_t rows, int64_t cout) {
    if (cout > DB_MAX_COLS) {
#pragma omp parallel for schedule(static) if (rows * cout > 65536)
        for (int64_t o0 = 0; o0 < cout; o0 += DB_BLOCK) {
            int64_t n = cout - o0 < DB_BLOCK ? cout - o0 : DB_BLOCK;
            double acc[DB_BLOCK] = {0};
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < n; j++) acc[j] += dy[r * cout + o0 + j];
            for (int64_t j = 0; j < n; j++) db[o0 + j] += (float)acc[j];
        }
        return;
    }
#pragma omp parallel if (rows * cout > 65536)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        int t = 0, nt = 1;
#endif
        double acc[DB_MAX_COLS];
        for (int64_t o = 0; o < cout; o++) acc[o] = 0;
        for (int64_t r = rows * t / nt; r < rows * (t + 1) / nt; r++) {
            const float *restrict d = dy + r * cout;
#pragma omp simd
            for (int64_t o = 0; o < cout; o++) acc[o] += d[o];
        }
#pragma omp for ordered schedule(static, 1)
        for (int i = 0; i < nt; i++) {
#pragma omp ordered
            for (int64_t o = 0; o < cout; o++) db[o] += (float)acc[o];
        }
    }
}

static void linear_backward_cpu(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                                tal_tensor x, tal_tensor w) {
    int64_t rows = tal_tensor_rows(x), cin = tal_tensor_cols(x), cout = w.shape[0];
    if (tal_tensor_present(dx)) /* dx = dy W */
        tal_gemm(0, 0, rows, cin, cout, 1.0f, dy.data, cout, w.data, cin, 0.0f, dx.data, cin);
    if (tal_tensor_present(dw)) /* dW += dy^T x (K = rows) */
        tal_gemm(1, 0, cout, cin, rows, 1.0f, dy.data, cout, x.data, cin, 1.0f, dw.data, cin);
    if (tal_tensor_present(db)) bias_grad(db.data, dy.data, rows, cout);
}

void tal_linear_backward(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                         tal_tensor x, tal_tensor w) {
    TAL_ASSERT(w.ndim == 2 && x.ndim >= 1 && tal_tensor_cols(x) == w.shape[1]);
    TAL_ASSERT(tal_tensor_cols(dy) == w.shape[0] && tal_tensor_rows(dy) == tal_tensor_rows(x));
    TAL_ASSERT(!tal_tensor_present(dx) || tal_tensor_numel(dx) == tal_tensor_numel(x));
    TAL_ASSERT(!tal_tensor_present(dx) || dx.data != dy.data || tal_tensor_numel(dx) == 0);
    TAL_ASSERT(!tal_tensor_present(dw) || tal_tensor_same_shape(dw, w));
    TAL_ASSERT(!tal_tensor_present(db) || tal_tensor_numel(db) == w.shape[0]);
    tal_device dev = OP_DEVICE(dx, dw, db, dy, x, w);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        linear_backward_cuda(dx, dw, db, dy, x, w);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    linear_backward_cpu(dx, dw, db, dy, x, w);
}
