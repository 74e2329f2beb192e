/* nn/nn.h: re2tal's numeric core: errors, tensor views, arenas and the memory planner, the ops
 * (forward and backward; each runs on the device of its tensors: the CPU code in <op>.c, the CUDA
 * twin beside it in <op>.cu), parameters, AdamW, checkpoints (safetensors), thread control, the
 * GPU context and the precision mode.
 * Conventions: outputs first, then inputs, then what forward saved; shapes come from the
 * tensors. "accumulates" means +=, "writes" means =. An empty tensor (data == NULL) means
 * "not wanted" for an optional output and "absent" for an optional input. */
#ifndef TAL_NN_H
#define TAL_NN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" { /* the CUDA sources (.cu) are C++ */
#endif

/* ---------------------------------------------------------------- errors ---------------- */
typedef enum {
    TAL_OK = 0,
    TAL_EIO,      /* file missing, unreadable, unwritable */
    TAL_EFORMAT,  /* the bytes are not what they claim to be */
    TAL_EINVAL,   /* a value the caller gave is out of range */
    TAL_ENOMEM,   /* an allocation failed */
    TAL_EDEVICE,  /* no GPU, or the GPU failed */
} tal_status;

typedef struct tal_err {
    tal_status code;
    char msg[512];
} tal_err;

/* Formats msg, stores and returns code: `return tal_err_set(...)` reads naturally.
 * `err` may be NULL (the message is dropped). */
tal_status tal_err_set(tal_err *err, tal_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to an error already set (adds context on the way up). */
tal_status tal_err_prefix(tal_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *tal_status_name(tal_status s);

/* Bugs, never bad input: always on, prints file, line and the condition, then aborts. */
void tal_assert_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
#define TAL_ASSERT(cond)                                                                      \
    do {                                                                                      \
        if (!(cond)) tal_assert_fail(__FILE__, __LINE__, #cond, NULL);                        \
    } while (0)
#define TAL_ASSERT_MSG(cond, ...)                                                             \
    do {                                                                                      \
        if (!(cond)) tal_assert_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                 \
    } while (0)

/* ---------------------------------------------------------------- input files ----------- */
/* Every reader of a user's file opens it through these: the path must be a regular file (a
 * folder, device or pipe is an error naming the path, not an endless read) of at most max_bytes
 * (0: tal_file_limit_bytes()). TAL_EIO: missing, unreadable, not a regular file; TAL_EFORMAT:
 * larger than the limit. */
tal_status tal_file_open(FILE **out, size_t *size_bytes, const char *path, size_t max_bytes,
                         tal_err *err);
/* Reads the whole file into *out (caller frees), NUL-terminated; *size_bytes (may be NULL)
 * excludes the NUL. */
tal_status tal_file_read(char **out, size_t *size_bytes, const char *path, size_t max_bytes,
                         tal_err *err);
/* The limit for JSON and text inputs (annotations, results, configs, class lists, .npy):
 * RE2TAL_MAX_INPUT_BYTES (bytes, or with a K / M / G suffix) if set, else 1 GiB. */
size_t tal_file_limit_bytes(void);

/* ---------------------------------------------------------------- tensors --------------- */
typedef enum { TAL_DEV_CPU = 0, TAL_DEV_CUDA = 1 } tal_device;

#define TAL_MAX_DIMS 6

/* A view: float32, contiguous, row-major. Never owns memory; passed by value. */
typedef struct tal_tensor {
    float *data;
    int64_t shape[TAL_MAX_DIMS];
    int ndim;
    tal_device device;
} tal_tensor;

/* Builds a view. Dimensions are given as a list ending in -1 is error-prone, so use the
 * fixed-arity helpers: tal_t1(p, a), tal_t2(p, a, b), ... tal_t6. */
tal_tensor tal_tensor_of(float *data, int ndim, const int64_t *shape);
tal_tensor tal_t1(float *data, int64_t d0);
tal_tensor tal_t2(float *data, int64_t d0, int64_t d1);
tal_tensor tal_t3(float *data, int64_t d0, int64_t d1, int64_t d2);
tal_tensor tal_t4(float *data, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
tal_tensor tal_t5(float *data, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int64_t d4);
tal_tensor tal_t6(float *data, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int64_t d4,
                  int64_t d5);
static inline tal_tensor tal_tensor_none(void) {
    tal_tensor t = {NULL, {0}, 0, TAL_DEV_CPU}; /* every field named: C++ (.cu) reads it too */
    return t;
}
static inline int tal_tensor_present(tal_tensor t) { return t.data != NULL; }

int64_t tal_tensor_numel(tal_tensor t);
size_t tal_tensor_bytes(tal_tensor t);
/* Product of all dims but the last (the "rows" of a [..., C] tensor) and the last dim. */
int64_t tal_tensor_rows(tal_tensor t);
int64_t tal_tensor_cols(tal_tensor t);
/* Same data, new shape; asserts the element count is unchanged. */
tal_tensor tal_tensor_reshape(tal_tensor t, int ndim, const int64_t *shape);
/* Sub-view of rows [start, start + count) along dim 0 (contiguous, so no copy). */
tal_tensor tal_tensor_slice0(tal_tensor t, int64_t start, int64_t count);
int tal_tensor_same_shape(tal_tensor a, tal_tensor b);
/* "[2, 3, 4]" into buf; returns buf. */
const char *tal_tensor_shape_str(tal_tensor t, char *buf, size_t size);

#define TAL_ASSERT_SAME_SHAPE(a, b)                                                           \
    do {                                                                                      \
        if (!tal_tensor_same_shape((a), (b))) {                                               \
            char sa_[96], sb_[96];                                                            \
            tal_assert_fail(__FILE__, __LINE__, #a " same shape as " #b, "%s vs %s",          \
                            tal_tensor_shape_str((a), sa_, 96),                               \
                            tal_tensor_shape_str((b), sb_, 96));                              \
        }                                                                                     \
    } while (0)
#define TAL_ASSERT_SAME_DEVICE(a, b) TAL_ASSERT((a).device == (b).device)
/* A CPU loop about to touch t: t must be a host tensor (an absent one touches nothing). Every
 * op's CPU path checks its tensors this way, so a device tensor never reaches a CPU loop. */
#define TAL_ASSERT_CPU(t)                                                                     \
    TAL_ASSERT_MSG(!(t).data || (t).device == TAL_DEV_CPU,                                    \
                   "%s is a CUDA tensor on a CPU-only path", #t)

/* ---------------------------------------------------------------- arenas and planning --- */
/* An arena hands out 64-byte-aligned blocks from one allocation, bump style, and frees them all
 * at once (reset) or back to a mark (stack discipline). A *counting* arena (created with
 * tal_arena_create_planner) has no memory: it only adds up what the same sequence of
 * allocations would need, which is how the memory planner sizes a model before anything is
 * allocated. Running past the end of a real arena is a bug (TAL_ASSERT). */
typedef struct tal_arena tal_arena;

tal_status tal_arena_create(tal_arena **out, tal_device dev, size_t bytes, tal_err *err);
tal_arena *tal_arena_create_planner(void);
void tal_arena_destroy(tal_arena *a); /* NULL is fine */
int tal_arena_is_planner(const tal_arena *a);
/* Returns zero-filled floats (planner: NULL). */
float *tal_arena_floats(tal_arena *a, int64_t n);
void *tal_arena_bytes(tal_arena *a, size_t n);
/* A zero-filled tensor of the given shape from the arena (planner: data NULL, shape set). */
tal_tensor tal_arena_tensor(tal_arena *a, int ndim, const int64_t *shape);
tal_tensor tal_arena_like(tal_arena *a, tal_tensor t);
/* The same without the zero fill, for a buffer its user writes entirely before reading it
 * (saves one memset pass per allocation in the hot loop). Sanitizer builds fill it with NaN
 * (all bits set) instead, so a read before the write shows up in the tests. */
float *tal_arena_floats_uninit(tal_arena *a, int64_t n);
tal_tensor tal_arena_tensor_uninit(tal_arena *a, int ndim, const int64_t *shape);
tal_tensor tal_arena_like_uninit(tal_arena *a, tal_tensor t);
size_t tal_arena_mark(const tal_arena *a);
void tal_arena_release(tal_arena *a, size_t mark); /* back to a mark; later blocks are gone */
void tal_arena_reset(tal_arena *a);
size_t tal_arena_used(const tal_arena *a);
size_t tal_arena_capacity(const tal_arena *a);
size_t tal_arena_high_water(const tal_arena *a); /* most ever in use since create */
tal_device tal_arena_device(const tal_arena *a);
/* Copies between arenas' memory of any devices (host <-> device <-> device), bytes long, in
 * order with the ops on the compute stream; returns once a host destination holds the bytes
 * (and a host source may be reused). TAL_EDEVICE (with CUDA's text) if the copy fails or the
 * build has no CUDA. */
tal_status tal_copy_bytes(void *dst, tal_device dst_dev, const void *src, tal_device src_dev,
                          size_t bytes, tal_err *err);

/* Bytes an allocation of n bytes takes in an arena (alignment included): planners use it. */
size_t tal_arena_round(size_t n);
/* A counting arena for a model that will run on dev (tal_arena_create_planner plans for the
 * CPU): its views carry dev, and ops whose scratch differs by device (the attention backward)
 * count that device's. */
tal_arena *tal_arena_create_planner_on(tal_device dev);

/* ---------------------------------------------------------------- GPU ------------------- */
/* One CUDA context per process: a device, one compute stream that every op launches on (so ops
 * run in call order), cuBLAS / cuBLASLt handles bound to it and a device workspace. It starts
 * on first use (device 0 unless tal_cuda_select chose another). Builds without CUDA answer
 * count 0 and TAL_EDEVICE. */
/* CUDA devices usable by this build (0 when built without CUDA or when no GPU is present). */
int tal_cuda_device_count(void);
/* Chooses the device and starts the context on it. TAL_EDEVICE naming the ordinal and the
 * device count when there is no such device; TAL_EINVAL if the context already runs on another
 * device (arenas live on it). */
tal_status tal_cuda_select(int ordinal, tal_err *err);
/* Waits for every queued op; an asynchronous CUDA error pending from them (a kernel fault)
 * becomes TAL_EDEVICE with CUDA's text. */
tal_status tal_cuda_synchronize(tal_err *err);
tal_status tal_cuda_mem_info(size_t *free_bytes, size_t *total_bytes, tal_err *err);
/* "NVIDIA H100 80GB HBM3" once the context runs; "" before, or without CUDA. Borrowed. */
const char *tal_cuda_device_name(void);
/* Device memory the context holds besides the arenas: cuBLAS' fixed workspace (32 MiB) plus
 * three workspaces, each grown (in whole MiB, never shrunk) to the largest request it saw,
 * a deterministic function of the shapes the ops ran on:
 *   op:       one sample's patch matrix of a patch conv3d (its input's bytes / B), staging
 *             for a device copy between overlapping ranges (the bytes copied), one item's
 *             probabilities of an attention forward that keeps none ([H, N, Nk] floats), and
 *             tal_max_abs_diff's block maxima (8 KiB at most);
 *   operands: under bf16, the bf16 copies of a product's operands (2 bytes per element of
 *             op(A) and op(B), all batches);
 *   partials: the deterministic reductions' per-block sums (8 bytes x columns x blocks, at
 *             most 256 blocks per column).
 * 0 before the context starts. */
size_t tal_cuda_workspace_bytes(void);
/* Grows the op workspace to at least bytes now (a trainer reserves its largest need once, so a
 * later op does not allocate); TAL_EDEVICE naming the byte count if it cannot. */
tal_status tal_cuda_workspace_reserve(size_t bytes, tal_err *err);

/* Bytes copied host -> device and device -> host since the process started: every copy
 * across the bus (tal_copy, tal_copy_bytes, tal_copy_async, the scalars ops and checkpoints
 * read back). 0 and 0 without CUDA. */
void tal_cuda_bus_bytes(uint64_t *to_device, uint64_t *to_host);

/* Feeding the device while it computes. Ops run in order on the compute stream; a *copy
 * stream* runs host <-> device copies beside it, and *events* order the two on the device
 * (a stream waits for an event recorded on the other, the host waits for neither). Copies
 * overlap the ops only from pinned host memory (tal_arena_create_pinned). These functions may
 * be called from any thread (a decoder thread uploads its clips). Without CUDA the create
 * functions return TAL_EDEVICE. */
typedef struct tal_stream tal_stream; /* opaque: a CUDA stream of the context's device */
typedef struct tal_event tal_event;   /* opaque: a CUDA event */
/* A CPU arena in page-locked host memory (cudaMallocHost): tensors from it are CPU tensors
 * whose copies to the device can run asynchronously. TAL_EDEVICE (no GPU, no CUDA) or
 * TAL_ENOMEM naming the bytes. tal_arena_destroy frees it. */
tal_status tal_arena_create_pinned(tal_arena **out, size_t bytes, tal_err *err);
tal_status tal_stream_create(tal_stream **out, tal_err *err);
void tal_stream_destroy(tal_stream *s); /* waits for its copies; NULL is fine */
tal_status tal_event_create(tal_event **out, tal_err *err);
void tal_event_destroy(tal_event *e);   /* NULL is fine */
/* Queues dst <- src (same numel: a device tensor and a host one, the host one pinned, either
 * way) on s and returns at once: the host tensor must stay untouched until an event recorded
 * on s after the copy has completed. */
void tal_copy_async(tal_tensor dst, tal_tensor src, tal_stream *s);
/* Marks on s (NULL: the compute stream) the work queued there so far. */
void tal_event_record(tal_event *e, tal_stream *s);
/* s (NULL: the compute stream) runs nothing queued after this call until the work before e's
 * latest record is done; the host does not wait. An event never recorded is no wait. */
void tal_stream_wait_event(tal_stream *s, tal_event *e);
/* The host waits until the work before e's latest record is done. */
void tal_event_synchronize(tal_event *e);

/* How the CUDA matrix products (gemm, bmm, linear, convs via GEMM, the attention's products)
 * compute; a process-wide mode, like PyTorch's autocast. Tensors stay float32 in memory.
 *   FP32: cuBLAS in pedantic fp32 (no TF32): CUDA matches the CPU to ~1e-5 relative.
 *   TF32: cuBLAS may use TF32 tensor cores (10-bit mantissa inputs, fp32 accumulation).
 *   BF16: the inputs are rounded to bf16 (to nearest even), multiplied on tensor cores with
 *         fp32 accumulation, written as fp32. Everything else (norms, softmax statistics,
 *         residual streams, optimiser) stays fp32.
 * The CPU ops ignore the mode (they always compute in fp32). Default FP32. */
typedef enum { TAL_PREC_FP32 = 0, TAL_PREC_TF32, TAL_PREC_BF16 } tal_precision;
void tal_precision_set(tal_precision p);
tal_precision tal_precision_get(void);
const char *tal_precision_name(tal_precision p); /* "fp32", "tf32", "bf16" */

/* ---------------------------------------------------------------- threads --------------- */
/* Sets OpenMP's and OpenBLAS's thread counts alike. n <= 0: RE2TAL_THREADS if set, else the
 * number of cores. Returns the count in force. */
int tal_threads_set(int n);
int tal_threads_get(void);

/* ---------------------------------------------------------------- random numbers -------- */
/* Counter-based: the same (seed, step, stream) key always gives the same numbers, so a
 * recomputed forward (reversible backward) draws the same dropout / drop-path masks. */
typedef struct tal_rng_key {
    uint64_t seed, step, stream;
} tal_rng_key;
/* Uniform in [0, 1) for counter i of the key. */
float tal_rng_uniform(tal_rng_key key, uint64_t i);
/* Standard normal for counter i (Box-Muller on two uniforms). */
float tal_rng_normal(tal_rng_key key, uint64_t i);
uint64_t tal_rng_u64(tal_rng_key key, uint64_t i);

/* ---------------------------------------------------------------- matrix products ------- */
/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major, op = transpose if trans_*. Rows of C are
 * split over the threads, each calling a 1-thread sgemm (faster here than OpenBLAS's own
 * threading on these shapes). lda/ldb/ldc are row strides. Host pointers only (bare pointers
 * carry no device): products of device tensors go through tal_bmm or the ops. */
void tal_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc);
/* Batched: c[b] = alpha * op(a[b]) op(b[b]) + beta * c[b] for tensors [Bt, rows, cols]
 * (or 2-D, treated as Bt = 1). Batches are spread over threads. */
void tal_bmm(tal_tensor c, tal_tensor a, tal_tensor b, int trans_a, int trans_b, float alpha,
             float beta);

/* ---------------------------------------------------------------- ops: dense ------------ */
/* Linear on the last dim: x [..., Cin], w [Cout, Cin], b [Cout] or none -> y [..., Cout]. */
void tal_linear_forward(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b);
/* Writes dx (skipped if none); accumulates dw, db (each skipped if none). */
void tal_linear_backward(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                         tal_tensor x, tal_tensor w);

/* LayerNorm over the last dim: x [N, C] (any leading dims) -> y; saves mean, rstd [N]
 * (may be none at inference). gamma/beta [C] may be none (no affine). */
void tal_layernorm_forward(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                           tal_tensor gamma, tal_tensor beta, float eps);
/* Writes dx; accumulates dgamma, dbeta (skipped if none, e.g. frozen norms). */
void tal_layernorm_backward(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta, tal_tensor dy,
                            tal_tensor x, tal_tensor gamma, tal_tensor mean, tal_tensor rstd);
/* LayerNorm over channels of x [B, C, T] (each (b, t) column normalised over C); mean, rstd
 * [B, T]. */
void tal_layernorm_ct_forward(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                              tal_tensor gamma, tal_tensor beta, float eps);
void tal_layernorm_ct_backward(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta,
                               tal_tensor dy, tal_tensor x, tal_tensor gamma, tal_tensor mean,
                               tal_tensor rstd);

/* GELU, exact erf form (PyTorch's default; erf evaluated to within 4.2e-7, not the tanh
 * approximation). y may alias x in forward; backward needs x (dx may alias dy). */
void tal_gelu_forward(tal_tensor y, tal_tensor x);
void tal_gelu_backward(tal_tensor dx, tal_tensor dy, tal_tensor x);
void tal_relu_forward(tal_tensor y, tal_tensor x);
/* Uses y (the output) to decide the mask; dx may alias dy. */
void tal_relu_backward(tal_tensor dx, tal_tensor dy, tal_tensor y);

/* Softmax over the last dim. y may alias x. Backward: dx = y * (dy - sum(dy * y)). */
void tal_softmax_forward(tal_tensor y, tal_tensor x);
void tal_softmax_backward(tal_tensor dx, tal_tensor dy, tal_tensor y);

/* Scaled dot-product attention. q, k, v [B, H, N, d] (k, v may have Nk != N) -> out
 * [B, H, N, d]; probs [B, H, N, Nk] saved for backward.
 * logits = scale * q k^T + bias[h] (bias [H, N, Nk] or none) + mask[b % M] (mask [M, N, Nk] or
 * none; -inf entries allowed: a row of all -inf gives zeros, not NaN). */
void tal_attention_forward(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                           tal_tensor v, tal_tensor bias, tal_tensor mask, float scale);
/* Writes dq, dk, dv; accumulates dbias (skipped if none). scratch: on the CPU an arena for one
 * block of query rows x Nk per thread, plus an [N, Nk] one per thread when dbias is wanted; on
 * the device one [H, N, Nk] buffer (items go one after another, so dbias adds up over them in
 * item order: no atomics). A planner arena counts its device's (tal_arena_create_planner_on);
 * dbias may then be a shape without data. */
void tal_attention_backward(tal_tensor dq, tal_tensor dk, tal_tensor dv, tal_tensor dbias,
                            tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor v,
                            tal_tensor probs, float scale, tal_arena *scratch);
/* The same on Swin's packed layouts, with no copies between them: qkv [B, N, 3 C] as the qkv
 * linear writes it (token t's q, k, v side by side, C = heads * d split into heads within
 * each), out / dout [B, N, C] as the output projection reads it (tokens, heads side by side),
 * dqkv like qkv (written). probs, bias, mask, scale, scratch as above, with Nk = N; mask_of
 * (NULL: b % M as above) picks item b's mask, mask[mask_of[b]] (Swin's window classes); it
 * lives on the tensors' device, like them.
 * The forward takes probs none when no backward follows (inference): nothing is stored.
 * probs_read_soon: 1 when the backward follows at once (a recompute: the probabilities stay
 * in cache), 0 when it comes much later (they are streamed to memory, not read first).
 * On the device both forwards compute out the same way whether probs is wanted or not, so a
 * recompute gives the forward's bits: batched cuBLAS products around one softmax kernel, or,
 * with RE2TAL_ATTN_FUSED=1 (head dim <= 64), one fused kernel that keeps the logits on chip
 * (the probabilities, when wanted, then come from the products as well). */
void tal_attention_qkv_forward(tal_tensor out, tal_tensor probs, int probs_read_soon,
                               tal_tensor qkv, int64_t heads, tal_tensor bias, tal_tensor mask,
                               const uint8_t *mask_of, float scale);
void tal_attention_qkv_backward(tal_tensor dqkv, tal_tensor dbias, tal_tensor dout,
                                tal_tensor qkv, tal_tensor probs, int64_t heads, float scale,
                                tal_arena *scratch);

/* ---------------------------------------------------------------- ops: elementwise ------ */
void tal_add(tal_tensor y, tal_tensor a, tal_tensor b);          /* y = a + b (may alias) */
void tal_sub(tal_tensor y, tal_tensor a, tal_tensor b);          /* y = a - b */
void tal_scale(tal_tensor y, tal_tensor x, float s);             /* y = s * x */
void tal_axpy(tal_tensor y, float a, tal_tensor x);              /* y += a * x */
/* Same numel; the one copy across devices too (host <-> device <-> device, by the tensors'
 * devices: returns once a host destination holds the data). */
void tal_copy(tal_tensor dst, tal_tensor src);
void tal_fill(tal_tensor t, float value);
void tal_mul(tal_tensor y, tal_tensor a, tal_tensor b);          /* y = a * b elementwise */

/* Dropout with probability p: y = x * keep / (1 - p), keep drawn from key per element.
 * Backward redraws the same mask from the key (nothing stored). */
void tal_dropout_forward(tal_tensor y, tal_tensor x, float p, tal_rng_key key);
void tal_dropout_backward(tal_tensor dx, tal_tensor dy, float p, tal_rng_key key);
/* Drop-path (stochastic depth) per sample on dim 0: sample b kept with prob 1 - p and scaled
 * by 1 / (1 - p). Backward is the same function applied to dy (linear, same mask). */
void tal_drop_path_forward(tal_tensor y, tal_tensor x, float p, tal_rng_key key);
void tal_drop_path_backward(tal_tensor dx, tal_tensor dy, float p, tal_rng_key key);

/* ---------------------------------------------------------------- ops: conv, pool ------- */
/* conv3d with stride = kernel, no padding (patch embedding): x [B, Ci, T, H, W] with T, H, W
 * multiples of the kernel, w [Co, Ci, kt, kh, kw], b [Co] or none -> y [B, Co, T/kt, H/kh,
 * W/kw]. */
void tal_patch_conv3d_forward(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b);
/* Writes dx (skipped if none); accumulates dw, db. */
void tal_patch_conv3d_backward(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                               tal_tensor x, tal_tensor w);

typedef struct tal_conv3d_geom {
    int stride[3];   /* t, h, w */
    int padding[3];  /* zero padding, both sides */
} tal_conv3d_geom;
/* General conv3d: x [B, Ci, T, H, W], w [Co, Ci, kt, kh, kw]. CPU: oneDNN's convolution
 * primitives, scratch holding the operands in oneDNN's layouts and its scratchpad (about the
 * size of x, w and y together); 1x1x1 stride-1 convs are plain GEMMs (no scratch). Device:
 * im2col + GEMM, scratch for the columns of one chunk of output positions (max(2^21, 256 K)
 * floats at most, K = Ci kt kh kw). Scratch is released before returning; a planner arena
 * counts it. Backward writes dx, accumulates dw and db (each skipped if none). */
void tal_conv3d_forward(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                        tal_conv3d_geom g, tal_arena *scratch);
void tal_conv3d_backward(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                         tal_tensor x, tal_tensor w, tal_conv3d_geom g, tal_arena *scratch);
/* Output size of one axis. */
int64_t tal_conv_out_len(int64_t in, int k, int stride, int padding);

/* conv1d: x [B, Ci, T], w [Co, Ci/groups, k], b [Co] or none -> y [B, Co, T_out];
 * T_out = (T + 2 pad - k) / stride + 1. mask [B, T_out] (1 valid / 0 padded) or none:
 * when given, y is multiplied by it (and backward masks dy the same way). */
typedef struct tal_conv1d_geom {
    int stride, padding, groups;
} tal_conv1d_geom;
void tal_conv1d_forward(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                        tal_tensor mask, tal_conv1d_geom g, tal_arena *scratch);
/* Writes dx (skipped if none); accumulates dw, db (each skipped if none). scratch: one sample's
 * im2col buffer and masked dy (planners count it). */
void tal_conv1d_backward(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                         tal_tensor x, tal_tensor w, tal_tensor mask, tal_conv1d_geom g,
                         tal_arena *scratch);

/* Max-pool 1D over T: x [B, C, T] -> y [B, C, T_out] with kernel, stride, padding (padded
 * positions are -inf, as PyTorch). argmax [B, C, T_out] stores the source index as float
 * (exact for T < 2^24) for backward. */
void tal_maxpool1d_forward(tal_tensor y, tal_tensor argmax, tal_tensor x, int kernel,
                           int stride, int padding);
void tal_maxpool1d_backward(tal_tensor dx, tal_tensor dy, tal_tensor argmax);

/* Max-pool 3D (nn/pool3d.c): x [B, C, T, H, W] -> y [B, C, To, Ho, Wo], Xo = (X + 2 pad - k) /
 * stride + 1, PyTorch's MaxPool3d (padding never wins, ties keep the first position in
 * (t, h, w) order). Backward overwrites dx, routing dy to each window's winner in x (found
 * again, no index tensor). */
typedef struct tal_pool3d_geom {
    int kernel[3], stride[3], padding[3]; /* t, h, w; padding at most kernel / 2 */
} tal_pool3d_geom;
void tal_maxpool3d_forward(tal_tensor y, tal_tensor x, tal_pool3d_geom g);
void tal_maxpool3d_backward(tal_tensor dx, tal_tensor dy, tal_tensor x, tal_pool3d_geom g);
int64_t tal_pool3d_out_len(int64_t in, int kernel, int stride, int padding);

/* Mean over the spatial dims: x [B, C, T, H, W] -> y [B, C, T]. */
void tal_mean_hw_forward(tal_tensor y, tal_tensor x);
void tal_mean_hw_backward(tal_tensor dx, tal_tensor dy);

/* 1-D linear interpolation on the last dim, PyTorch interpolate(mode='linear',
 * align_corners=False): x [B, C, Tin] -> y [B, C, Tout]. Backward writes dx. */
void tal_interp1d_forward(tal_tensor y, tal_tensor x);
void tal_interp1d_backward(tal_tensor dx, tal_tensor dy);

/* ---------------------------------------------------------------- ops: layout ----------- */
/* The backbone's data movement as ops, so it runs on the device of its tensors too: window
 * gathers by index map, the relative-position bias table, PatchMerging, transposes, padding,
 * slices, the channel-last spatial mean, frozen BatchNorm and the reversible check. Copies
 * give the same bits on both devices; the sums say how they add up. */

/* An int32 index array on a device: a view like tal_tensor (never owns memory). Models build
 * their index maps once on the host and keep them in an arena on their device. */
typedef struct tal_index {
    int32_t *data;
    int64_t n;
    tal_device device;
} tal_index;
/* n zeroed int32 from a, on a's device (a planner counts them: data NULL). */
tal_index tal_arena_index(tal_arena *a, int64_t n);
tal_index tal_index_slice(tal_index ix, int64_t start, int64_t count);
/* ix <- ix.n values from host memory (any device; returns when ix holds them). */
void tal_index_upload(tal_index ix, const int32_t *host);
/* The entries of index [n] (values in [0, rows)) grouped by value, for deterministic
 * reductions: out [rows + 1 + n] gets the offsets of each value's group (rows + 1 of them,
 * relative to the members), then the members (positions in index), each group increasing.
 * Host memory. Returns the length written. */
int64_t tal_index_group_by(int32_t *out, const int32_t *index, int64_t n, int64_t rows);

/* dst [R, C] <- rows of src [S, C] through map [R]: dst[r] = src[map[r]], zeros where
 * map[r] < 0 (padding slots). */
void tal_rows_gather(tal_tensor dst, tal_tensor src, tal_index map);
/* The inverse: dst[map[r]] = src[r], or += with accumulate, for each map[r] >= 0; other rows
 * of dst are left as they are. Entries >= 0 must be distinct (one source per row). */
void tal_rows_scatter(tal_tensor dst, tal_tensor src, tal_index map, int accumulate);
/* t [R, C]: t[r] = 0 where map[r] < 0. */
void tal_rows_zero_unmapped(tal_tensor t, tal_index map);

/* Relative-position bias: bias [H, n, n] from table [rows, H] through index [n * n] (the table
 * row of each query-key pair ij): bias[h, ij] = table[index[ij], h]. */
void tal_bias_gather(tal_tensor bias, tal_tensor table, tal_index index);
/* Its gradient: dtable[r, h] += dbias[h, ij] over the ij with index[ij] = r, added in
 * increasing ij on both devices (the bits of a serial loop; no atomics). by_row: the index
 * grouped by row (tal_index_group_by, rows = dtable's). */
void tal_bias_gather_backward(tal_tensor dtable, tal_tensor dbias, tal_index by_row);

/* Swin's PatchMerging gather: x [A, H, W, C] -> m4 [A, ceil(H/2), ceil(W/2), 4 C]: the
 * neighbours (h even, w even), (h odd, w even), (h even, w odd), (h odd, w odd) side by side,
 * zeros past an odd edge. Backward writes dx [A, H, W, C] from dm4 (the padding drops). */
void tal_merge2x2_forward(tal_tensor m4, tal_tensor x);
void tal_merge2x2_backward(tal_tensor dx, tal_tensor dm4);

/* dst [A, N, M] = src [A, M, N] with its last two dims swapped ([B, C, S] <-> [B, S, C]). */
void tal_transpose_last2(tal_tensor dst, tal_tensor src);
/* dst [A, T2, H2, W2] <- src [A, T, H, W] (T2 >= T, ...): src at the start of each axis, zeros
 * past its end. */
void tal_pad_end3(tal_tensor dst, tal_tensor src);
/* dst [A, Ld, I], src [A, Ls, I]: dst[:, d0 + t, :] = src[:, s0 + t, :] for t in [0, len)
 * (a chunk of frames, a slice of features along time); the rest of dst is left as it is. */
void tal_copy_slice1(tal_tensor dst, int64_t d0, tal_tensor src, int64_t s0, int64_t len);

/* Mean over the tokens of each frame of channel-last x [B, D, S, C] (S = H W) -> y [B, C, D],
 * summed in double in token order on both devices (the same bits). Backward writes
 * dx [B, D, S, C] = dy / S. */
void tal_mean_hw_last_forward(tal_tensor y, tal_tensor x);
void tal_mean_hw_last_backward(tal_tensor dx, tal_tensor dy);

/* Frozen BatchNorm (eval statistics) on channel-first x [B, C, ...]: y = x s[c] + t[c] with
 * s = w / sqrt(var + eps), t = b - mean s, in float (two roundings, no fused multiply-add, on
 * both devices: the same bits). y may alias x. Backward: dx = dy s (may alias). w, b, mean,
 * var [C]. */
void tal_batchnorm_frozen_forward(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                                  tal_tensor mean, tal_tensor var, float eps);
void tal_batchnorm_frozen_backward(tal_tensor dx, tal_tensor dy, tal_tensor w, tal_tensor var,
                                   float eps);

/* max |a - b| over all elements, in double (NaNs skipped), for the reversible backward's
 * reconstruction check; a device pair is waited for. */
double tal_max_abs_diff(tal_tensor a, tal_tensor b);

/* ---------------------------------------------------------------- ops: sequences -------- */
/* The detection head's steps on channel-first sequences x [B, C, T] with a length mask [B, T]
 * (1 valid, 0 padded; nn/sequence.c, attention_ct.c, losses.c). Copies and products of two
 * floats give the same bits on both devices; sums say how they add up. */

/* y[b, c, t] = x[b, c, t] mask[b, t]; y may alias x. */
void tal_mask_columns(tal_tensor y, tal_tensor x, tal_tensor mask);
/* Per-channel scale (layer scale): y[b, c, t] = g[c] x[b, c, t], g of C elements; y may alias
 * x. */
void tal_channel_scale_forward(tal_tensor y, tal_tensor x, tal_tensor g);
/* dg[c] += sum over b, t of dy x (double; b then t in order on the CPU, per-block partials on
 * the device), then dx = g[c] dy (dx may be dy itself). dg, dx: none skips. */
void tal_channel_scale_backward(tal_tensor dx, tal_tensor dg, tal_tensor dy, tal_tensor x,
                                tal_tensor g);
/* y[b, c, t] = x[b, c, t] + table[c, t] mask[b, t], table [C, Tt] with Tt >= T (an absolute
 * position embedding, its first T columns); y may alias x. */
void tal_add_position_table(tal_tensor y, tal_tensor x, tal_tensor table, tal_tensor mask);
/* dst[a, t] = src[a, t stride] along the last dim: src [..., T], dst [..., To] with the same
 * leading dims and (To - 1) stride < T (a mask at the next pyramid level). */
void tal_take_every(tal_tensor dst, tal_tensor src, int stride);
/* y = max(s x, 0) with s one element on the tensors' device (the head's learned regression
 * scale); y may alias x. Backward: dx = (y > 0 ? dy : 0) s, ds[0] += sum of (y > 0 ? dy : 0) x
 * (double; flat order on the CPU); dx may be dy itself, ds none skips. */
void tal_scale_relu_forward(tal_tensor y, tal_tensor x, tal_tensor s);
void tal_scale_relu_backward(tal_tensor dx, tal_tensor ds, tal_tensor dy, tal_tensor y,
                             tal_tensor x, tal_tensor s);
/* Elements of t that are NaN or infinite (a device tensor is counted there, then waited for). */
int64_t tal_count_nonfinite(tal_tensor t);

/* Multi-head attention on channel-first q, k, vm [B, C, T], channel c = h hd + d of head h
 * (OpenTAD's view(B, H, hd, T)), hd = C / n_head, logits scaled by 1 / sqrt(hd); qmask, kvmask
 * [B, T]; vm is v already multiplied by kvmask. window < 0: global attention, invalid keys get
 * -inf (a query without a valid key gets zeros); probs [B, H, T, T]. window w > 0 (odd): query
 * i sees keys |i - j| <= w / 2, invalid keys get -1e4 and the rows of invalid queries are zeroed
 * after the softmax (ActionFormer's local MHCA); probs [B, H, T, w] hold the band only (entry
 * (i, o) is key i - w/2 + o). Device: batched products in the precision mode (global) or one
 * thread per query row (band), softmax rows in fp32 with double sums, no atomics. */
void tal_attention_ct_forward(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                              tal_tensor vm, tal_tensor qmask, tal_tensor kvmask, int n_head,
                              int window);
/* Writes dq, dk, dvm; dlogits (shaped as probs) is scratch. The band's dk and dvm add each
 * query's term in query order on both devices (gathered per key on the device). */
void tal_attention_ct_backward(tal_tensor dq, tal_tensor dk, tal_tensor dvm, tal_tensor dlogits,
                               tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor vm,
                               tal_tensor probs, int n_head, int window);
/* Columns of probs: T (global) or w (band). */
int64_t tal_attention_ct_probs_cols(int64_t T, int window);

/* Sigmoid focal loss (spec-actionformer.md §7) of logits x against (smoothed) targets t, both
 * [B, K, T], over the columns (b, t) where mask [B, T] > 0 (mask none: all): returns the sum, in
 * double (the CPU adds b, t, k in order; the device adds per-element terms in a fixed tree);
 * writes dx = gscale d(sum)/dx there and 0 in the masked columns (dx none: skipped). The
 * element's math is focal_loss_term (device_math.h) on both devices. */
double tal_focal_loss_masked(tal_tensor dx, tal_tensor x, tal_tensor t, tal_tensor mask,
                             float alpha, float gamma, float gscale);
/* 1-D DIoU loss of the segments that offsets r [B, 2, T] (left, right) predict at points
 * p = t stride against target offsets rt [B, 2, T], over the points where pos [B, T] > 0:
 * segment (p - left stride, p + right stride) rounded to float; returns the sum in double and
 * writes dr = gscale d(sum)/dr there, 0 elsewhere (dr none: skipped). */
double tal_diou_loss_offsets(tal_tensor dr, tal_tensor r, tal_tensor rt, tal_tensor pos,
                             float stride, float gscale);
/* The same terms on plain arrays (one logit / one segment), for code that loops itself. */
double tal_focal_loss_one(float x, float t, float alpha, float gamma, float gscale, float *dx);
double tal_diou_loss_one(float ps, float pe, float gs, float ge, float gscale, float *dps,
                         float *dpe);

/* ---------------------------------------------------------------- safetensors ----------- */
/* A set of named tensors read from / written to a safetensors file. Reading converts F32, F16,
 * BF16 (and F64, I64, I32 for index buffers) to float32. */
typedef struct tal_named_tensor {
    char *name;       /* owned by the set */
    tal_tensor t;     /* data owned by the set */
    char dtype[8];    /* dtype as stored in the file ("F32", "BF16", ...) */
} tal_named_tensor;

typedef struct tal_tensor_set {
    tal_named_tensor *items;
    int count, capacity;
    char *metadata_json; /* the "__metadata__" object as JSON text, or NULL; owned */
} tal_tensor_set;

/* Reads the whole file. Errors name the file and, where it applies, the tensor. */
tal_status tal_safetensors_read(tal_tensor_set *out, const char *path, tal_err *err);
/* Writes atomically (temp file in the same folder + rename). metadata_json: a JSON object of
 * string values, or NULL. Tensors are borrowed, on any device (device tensors pass through a
 * host buffer). */
tal_status tal_safetensors_write(const char *path, const tal_named_tensor *items, int count,
                                 const char *metadata_json, tal_err *err);
/* Weights with NaN or Inf in them come from a run that diverged: by default reading a safetensors
 * file refuses them (TAL_EFORMAT naming the first such tensor, its first bad value and how many
 * tensors are affected), and so does writing one. 1 lets them through (`--allow-nonfinite`);
 * process-wide, set it before loading. */
void tal_safetensors_allow_nonfinite(int allow);
int tal_safetensors_nonfinite_allowed(void);
/* TAL_EFORMAT if any of the count host tensors holds a NaN or Inf: "<what>: tensor '<name>':
 * <n> non-finite values (first at index <i>: nan); <k> of <count> tensors have some". Tensors in
 * device memory are not looked at. */
tal_status tal_tensors_check_finite(const tal_named_tensor *items, int count, const char *what,
                                    tal_err *err);
/* Finds by exact name; NULL if absent. Borrowed. */
const tal_named_tensor *tal_tensor_set_find(const tal_tensor_set *set, const char *name);
/* Adds a host copy of t (on any device) under name. */
tal_status tal_tensor_set_add(tal_tensor_set *set, const char *name, tal_tensor t, tal_err *err);
void tal_tensor_set_free(tal_tensor_set *set); /* leaves an empty set; zeroed set is fine */

/* Half-precision conversions used on load (round-to-nearest-even on store). */
float tal_f16_to_f32(uint16_t h);
float tal_bf16_to_f32(uint16_t h);
uint16_t tal_f32_to_f16(float f);
uint16_t tal_f32_to_bf16(float f);

/* ---------------------------------------------------------------- parameters ------------ */
/* A named parameter store: each parameter has its value and gradient (views into the store's
 * arenas), a group (own lr scale and weight decay) and a trainable flag. Names follow the
 * reference checkpoints: "layers.0.blocks.1.attn.qkv.weight". */
typedef struct tal_param {
    char name[128];
    tal_tensor value;
    tal_tensor grad;
    int group;        /* index into tal_params.groups */
    int trainable;    /* frozen parameters get no gradient updates */
} tal_param;

typedef struct tal_param_group {
    char name[32];
    float lr_scale;      /* multiplies the schedule's lr */
    float weight_decay;
} tal_param_group;

typedef struct tal_params tal_params; /* opaque: owns names, values, grads */

tal_params *tal_params_create(void);
void tal_params_destroy(tal_params *p);
int tal_params_add_group(tal_params *p, const char *name, float lr_scale, float weight_decay);
/* Declares a parameter (before tal_params_allocate). Returns its index. */
int tal_params_declare(tal_params *p, const char *name, int ndim, const int64_t *shape, int group,
                       int trainable);
/* Allocates values and grads (zeroed) in one arena each. */
tal_status tal_params_allocate(tal_params *p, tal_device dev, tal_err *err);
/* Moves values and gradients into new arenas on dev: copies the values, zeroes the gradients,
 * frees the old arenas (views into them are stale after). Models are built, initialised and
 * loaded on the CPU, then moved; create the optimiser and the EMA after the move. A failed
 * move (TAL_EDEVICE: no GPU, out of device memory) leaves everything where it was. */
tal_status tal_params_move(tal_params *p, tal_device dev, tal_err *err);
int tal_params_count(const tal_params *p);
tal_param *tal_params_at(tal_params *p, int i);
tal_param *tal_params_find(tal_params *p, const char *name); /* NULL if absent */
int tal_params_group_count(const tal_params *p);
tal_param_group *tal_params_group_at(tal_params *p, int g);
int64_t tal_params_numel(const tal_params *p, int trainable_only);
void tal_params_zero_grad(tal_params *p);
/* Gradients-final notification, for a caller that starts communicating a gradient as soon as
 * the backward has finished it (data-parallel ranks). The backward calls
 * tal_params_grads_ready(p, first, end) when the gradients of parameters [first, end) will not
 * change again in this backward; parts it does not report are final only at its end. No
 * callback set: nothing happens. */
typedef void (*tal_grads_ready_fn)(void *ctx, int first, int end);
void tal_params_set_grads_ready(tal_params *p, tal_grads_ready_fn fn, void *ctx);
void tal_params_grads_ready(tal_params *p, int first, int end);
/* Global L2 norm of all trainable gradients (double accumulation); scales them down to max_norm
 * if above it (max_norm <= 0: no clipping). Returns the norm before clipping. */
double tal_params_clip_grad_norm(tal_params *p, double max_norm);

/* Loads values by name from a safetensors file. rename: optional function mapping a file name
 * to a parameter name (NULL to drop it); NULL means identity. Missing parameters are an error
 * unless allow_missing; names in the file that no parameter takes are counted in *n_unused and
 * listed in err->msg when nonzero (not an error); a shape mismatch is an error naming the
 * tensor and both shapes, and so are two file tensors mapped to one parameter. Values are
 * converted to float (F16, BF16, ...) and copied only once the whole file checks out: a failed
 * load leaves every parameter as it was. */
typedef const char *(*tal_name_map_fn)(const char *file_name, char *buf, size_t size, void *ctx);
tal_status tal_params_load(tal_params *p, const char *path, tal_name_map_fn rename, void *ctx,
                           int allow_missing, int *n_unused, tal_err *err);
/* Writes all values (atomic). */
tal_status tal_params_save(const tal_params *p, const char *path, const char *metadata_json,
                           tal_err *err);

/* ---------------------------------------------------------------- optimiser ------------- */
/* AdamW with PyTorch's semantics: p -= lr * wd * p (decoupled), then Adam with bias
 * correction. State (m, v) owned. */
typedef struct tal_adamw_config {
    float lr, beta1, beta2, eps;
} tal_adamw_config;
typedef struct tal_adamw tal_adamw;
tal_status tal_adamw_create(tal_adamw **out, tal_params *p, tal_adamw_config cfg, tal_err *err);
void tal_adamw_destroy(tal_adamw *opt);
/* One step with base learning rate lr (group lr_scale applied per parameter). */
void tal_adamw_step(tal_adamw *opt, float lr);
int64_t tal_adamw_steps(const tal_adamw *opt);
/* State to and from tensor sets (names "<param>.exp_avg", "<param>.exp_avg_sq", "step"). */
tal_status tal_adamw_state_save(const tal_adamw *opt, const char *path, tal_err *err);
tal_status tal_adamw_state_load(tal_adamw *opt, const char *path, tal_err *err);

/* Linear warm-up from 0 over warmup_steps, then cosine from base_lr to min_lr at total_steps
 * (held at min_lr after). For the 0-based step s about to run, W = warmup_steps, T = total:
 *   s < W:      base * (s + 1) / W   (the ramp through 0 at s = -1; base reached at s = W - 1)
 *   W <= s < T: min + (base - min) * (1 + cos(pi * (s - W) / (T - W))) / 2
 *   s >= T:     min. */
float tal_lr_warmup_cosine(int64_t step, int64_t warmup_steps, int64_t total_steps,
                           float base_lr, float min_lr);

/* Exponential moving average of the parameter values: ema = decay * ema + (1 - decay) * p. */
typedef struct tal_ema tal_ema;
tal_status tal_ema_create(tal_ema **out, const tal_params *p, float decay, tal_err *err);
void tal_ema_destroy(tal_ema *e);
void tal_ema_update(tal_ema *e, const tal_params *p);
/* Swaps EMA weights and live weights (call twice to swap back). */
void tal_ema_swap(tal_ema *e, tal_params *p);
tal_tensor tal_ema_value(const tal_ema *e, int param_index);

#ifdef __cplusplus
}
#endif

#endif /* TAL_NN_H */
