/* nn/gemm.cu: row-major products on cuBLAS in the precision mode (nn.h, tal_precision):
 * FP32 pedantic (no TF32: matches the CPU to ~1e-5), TF32, or BF16 (operands rounded to bf16 by
 * device_math.h's rounding into the workspace, fp32 accumulation and output). cuBLAS is
 * column-major, so C^T = op(B)^T op(A)^T is what it computes: the operands swap places. */
#include "cuda_common.cuh"

#define WS_ALIGN 256

static size_t round_up(size_t n) { return (n + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN; }

/* dst [batch, rows, cols] packed bf16 <- src (row stride ld, batch stride stride) */
__global__ void to_bf16_kernel(uint16_t *dst, const float *src, int64_t rows, int64_t cols,
                               int64_t ld, int64_t stride, int64_t n) {
    GRID_STRIDE_LOOP(i, n) {
        int64_t c = i % cols, r = (i / cols) % rows, b = i / (rows * cols);
        dst[i] = f32_to_bf16_bits(src[b * stride + r * ld + c]);
    }
}

static void to_bf16(uint16_t *dst, const float *src, int64_t rows, int64_t cols, int64_t ld,
                    int64_t stride, int64_t batch) {
    int64_t n = rows * cols * batch;
    if (!n) return;
    to_bf16_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(dst, src, rows, cols, ld,
                                                                     stride, n);
    TAL_LAUNCH_CHECK();
}

/* K = 0: C = beta C (beta 0 clears, NaN included), as the CPU's empty sum. */
__global__ void scale_rows_kernel(float *c, int64_t rows, int64_t cols, int64_t ldc,
                                  int64_t stride, float beta, int64_t n) {
    GRID_STRIDE_LOOP(i, n) {
        int64_t j = i % cols, r = (i / cols) % rows, b = i / (rows * cols);
        float *p = c + b * stride + r * ldc + j;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

void gemm_batched_cuda(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                       int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c,
                       int64_t batch) {
    TAL_ASSERT(M >= 0 && N >= 0 && K >= 0 && batch >= 0);
    TAL_ASSERT_MSG(M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX && batch <= INT32_MAX,
                   "gemm %lld x %lld x %lld (batch %lld) exceeds cuBLAS int", (long long)M,
                   (long long)N, (long long)K, (long long)batch);
    if (M == 0 || N == 0 || batch == 0) return;
    TAL_ASSERT(ldc >= N && lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N));
    cudaStream_t stream = tal_cuda_stream();
    if (K == 0) {
        int64_t n = M * N * batch;
        scale_rows_kernel<<<grid_for(n), TAL_BLOCK, 0, stream>>>(C, M, N, ldc, stride_c, beta, n);
        TAL_LAUNCH_CHECK();
        return;
    }
    /* the operands as stored (row-major): A is [M, K] or [K, M], B [K, N] or [N, K] */
    int64_t a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
    int64_t b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    const void *pa = A, *pb = B;
    int64_t la = lda, lb = ldb, sa = stride_a, sb = stride_b;
    cudaDataType_t in_type = CUDA_R_32F;
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F_PEDANTIC;
    tal_precision mode = tal_precision_get();
    if (mode == TAL_PREC_TF32) compute = CUBLAS_COMPUTE_32F_FAST_TF32;
    if (mode == TAL_PREC_BF16) {
        size_t a_bytes = round_up((size_t)(a_rows * a_cols * batch) * sizeof(uint16_t));
        size_t b_bytes = round_up((size_t)(b_rows * b_cols * batch) * sizeof(uint16_t));
        char *ws = (char *)tal_cuda_workspace_slot(TAL_WS_OPERANDS, a_bytes + b_bytes);
        uint16_t *a16 = (uint16_t *)ws, *b16 = (uint16_t *)(ws + a_bytes);
        to_bf16(a16, A, a_rows, a_cols, lda, stride_a, batch);
        to_bf16(b16, B, b_rows, b_cols, ldb, stride_b, batch);
        pa = a16, pb = b16;
        la = a_cols, lb = b_cols, sa = a_rows * a_cols, sb = b_rows * b_cols;
        in_type = CUDA_R_16BF;
        compute = CUBLAS_COMPUTE_32F;
    }
    cublasHandle_t h = tal_cuda_cublas();
    /* the C entry points (the header adds C++ overloads of both) */
    typedef cublasStatus_t (*gemm_ex_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                         int, int, const void *, const void *, cudaDataType, int,
                                         const void *, cudaDataType, int, const void *, void *,
                                         cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
    typedef cublasStatus_t (*gemm_batched_ex_fn)(
        cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
        const void *, cudaDataType, int, long long, const void *, cudaDataType, int, long long,
        const void *, void *, cudaDataType, int, long long, int, cublasComputeType_t,
        cublasGemmAlgo_t);
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (batch == 1)
        TAL_CUBLAS_CHECK(TAL_BLAS_AS(gemm_ex_fn, cublasGemmEx)(
            h, op_b, op_a, (int)N, (int)M, (int)K, &alpha, pb, in_type, (int)lb, pa, in_type,
            (int)la, &beta, C, CUDA_R_32F, (int)ldc, compute, CUBLAS_GEMM_DEFAULT));
    else
        TAL_CUBLAS_CHECK(TAL_BLAS_AS(gemm_batched_ex_fn, cublasGemmStridedBatchedEx)(
            h, op_b, op_a, (int)N, (int)M, (int)K, &alpha, pb, in_type, (int)lb, (long long)sb,
            pa, in_type, (int)la, (long long)sa, &beta, C, CUDA_R_32F, (int)ldc,
            (long long)stride_c, (int)batch, compute, CUBLAS_GEMM_DEFAULT));
}

void gemm_cuda(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
               int64_t ldc) {
    gemm_batched_cuda(trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}
