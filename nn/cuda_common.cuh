/* nn/cuda_common.cuh: private to nn/'s .cu files: the context's stream, handles and workspace
 * (cuda_context.cu), the error checks and the launch helpers every kernel file uses. */
#ifndef TAL_CUDA_COMMON_CUH
#define TAL_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_ops.h"
#include "device_math.h"
#include "nn.h"

/* A CUDA API failure other than an allocation, or a failed launch, is a bug (bad arguments,
 * a kernel that faulted): abort with file, line and CUDA's text. Allocations return TAL_EDEVICE
 * instead (cuda_malloc_bytes). */
#define TAL_CUDA_CHECK(call)                                                                  \
    do {                                                                                      \
        cudaError_t rc_ = (call);                                                             \
        if (rc_ != cudaSuccess)                                                               \
            tal_assert_fail(__FILE__, __LINE__, #call, "%s (%s)", cudaGetErrorString(rc_),    \
                            cudaGetErrorName(rc_));                                           \
    } while (0)
#define TAL_CUBLAS_CHECK(call)                                                                \
    do {                                                                                      \
        cublasStatus_t st_ = (call);                                                          \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                     \
            tal_assert_fail(__FILE__, __LINE__, #call, "%s",                                  \
                            TAL_BLAS(cublasGetStatusString)(st_));                            \
    } while (0)

/* cuBLAS and cuBLASLt are loaded when the context starts (dlopen), not with the program: their
 * ~600 MB take every process about half a second to map and relocate, and most processes (the
 * CPU tests, CI) never start a context. So no file calls them directly: TAL_BLAS(fn) is fn from
 * the loaded library, with fn's own type, which the compiler checks against the header. For a
 * function the header overloads (cublasGemmEx has C++ overloads), name its type:
 * TAL_BLAS_AS(type, fn). The first use on each line looks the symbol up once. */
#define TAL_STR2(x) #x
#define TAL_STR(x) TAL_STR2(x)
/* The symbol `name` of the loaded libcublas / libcublasLt; aborts if neither has it. */
void *tal_cuda_blas_symbol(const char *name);
#define TAL_BLAS_AS(F, fn)                                                                    \
    ([]() -> F {                                                                              \
        static_assert(sizeof(static_cast<F>(&fn)) > 0, "the type of " #fn);                   \
        static F p = reinterpret_cast<F>(tal_cuda_blas_symbol(TAL_STR(fn)));                  \
        return p;                                                                             \
    }())
#define TAL_BLAS(fn) TAL_BLAS_AS(decltype(&fn), fn)
/* After every kernel launch: a bad configuration shows here, at its own line. */
#define TAL_LAUNCH_CHECK() TAL_CUDA_CHECK(cudaGetLastError())

/* Starts the context if needed and makes its device current on the calling thread (the
 * current device is per host thread: a decoder thread's copies need it). TAL_EDEVICE as
 * tal_cuda_select. */
tal_status cuda_make_current(tal_err *err);

/* The context (started: every device tensor came from a device arena, which started it). All
 * ops launch on this stream, so they run in call order. */
cudaStream_t tal_cuda_stream(void);
cublasHandle_t tal_cuda_cublas(void);     /* bound to the stream and cuBLAS' fixed workspace */
cublasLtHandle_t tal_cuda_cublaslt(void); /* made on first use */
/* cuBLAS' fixed workspace, for cublasLt calls (shared: the stream orders its users). */
void *tal_cuda_blas_workspace(size_t *bytes);

/* The workspace, in slots by purpose so that a helper one op calls never moves the op's own
 * block: a slot's block (256-byte aligned) is valid until the next request for the *same* slot
 * (which may move it: growing frees the old block once the device is idle). Each slot grows to
 * the largest request it saw and never shrinks. Aborts if the device is out of memory
 * (tal_cuda_workspace_reserve ahead of time turns that into an error for the op slot). */
typedef enum {
    TAL_WS_OP = 0,   /* an op's own buffers (patch matrices, staged copies) */
    TAL_WS_OPERANDS, /* the products' bf16 operand copies (gemm.cu only) */
    TAL_WS_PARTIALS, /* per-block partial sums of the reductions (cuda_reduce.cuh only) */
    TAL_WS_SLOTS
} tal_ws_slot;
void *tal_cuda_workspace_slot(tal_ws_slot slot, size_t bytes);
/* The op slot: what an op asks for once, for all its own buffers. */
void *tal_cuda_workspace(size_t bytes);

/* Threads per block for the plain elementwise kernels. */
#define TAL_BLOCK 256

/* Blocks for n elements at TAL_BLOCK per block, the kernels loop (grid-stride) over the rest. */
static inline unsigned grid_for(int64_t n) {
    int64_t b = (n + TAL_BLOCK - 1) / TAL_BLOCK;
    if (b < 1) b = 1;
    return (unsigned)(b < 65535 * 32 ? b : 65535 * 32);
}

/* i, i + stride, ... below n for this thread of a 1-D grid. */
#define GRID_STRIDE_LOOP(i, n)                                                                \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                 \
         i += (int64_t)gridDim.x * blockDim.x)

/* Sum over the block of one double per thread, in a fixed tree order (the same every run);
 * every thread gets the total. shared: blockDim.x doubles; blockDim.x a power of two. */
__device__ static inline double block_sum_double(double v, double *shared) {
    shared[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
        __syncthreads();
    }
    double total = shared[0];
    __syncthreads(); /* shared is free again once everyone has read the total */
    return total;
}

#endif /* TAL_CUDA_COMMON_CUH */
