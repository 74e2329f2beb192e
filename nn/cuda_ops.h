/* nn/cuda_ops.h: private to nn/: the CUDA side the .c dispatchers call, in plain C (no CUDA
 * types, so .c files never include CUDA headers). Defined in the .cu files beside each op; the
 * twins take the public op's arguments, already checked by the dispatcher (shapes, one device),
 * and launch on the context's compute stream (cuda_common.cuh). Declared only in CUDA builds. */
#ifndef TAL_CUDA_OPS_H
#define TAL_CUDA_OPS_H

#include "attention_layout.h"
#include "nn.h"

#ifdef TAL_HAVE_CUDA
#ifdef __cplusplus
extern "C" {
#endif

/* ---- memory (cuda_context.cu); each starts the context if needed ---- */
tal_status cuda_malloc_bytes(void **out, size_t bytes, tal_err *err);
void cuda_free_bytes(void *p); /* NULL is fine */
/* bytes of p set to byte, in order on the compute stream */
void cuda_memset_bytes(void *p, int byte, size_t bytes);
/* Any direction; a host side is waited for (see tal_copy_bytes). Overlapping device ranges
 * go through the workspace. */
tal_status cuda_copy_bytes(void *dst, tal_device dst_dev, const void *src, tal_device src_dev,
                           size_t bytes, tal_err *err);

/* ---- stream.cu: pinned memory, the copy stream and events (nn.h), callable from any host
 * thread (each sets the context's device first) ---- */
tal_status cuda_host_alloc(void **out, size_t bytes, tal_err *err);
void cuda_host_free(void *p);
tal_status cuda_stream_create(void **out, tal_err *err);
void cuda_stream_destroy(void *s);
tal_status cuda_event_create(void **out, tal_err *err);
void cuda_event_destroy(void *e);
/* s NULL: the compute stream */
void cuda_copy_async(void *dst, tal_device dst_dev, const void *src, size_t bytes, void *s);
void cuda_event_record(void *e, void *s);
void cuda_stream_wait_event(void *s, void *e);
void cuda_event_synchronize(void *e);
/* adds a copy's bytes to tal_cuda_bus_bytes' counters */
void cuda_count_bus(tal_device dst_dev, tal_device src_dev, size_t bytes);

/* ---- elementwise.cu: flat, y may alias inputs ---- */
void add_cuda(tal_tensor y, tal_tensor a, tal_tensor b);
void sub_cuda(tal_tensor y, tal_tensor a, tal_tensor b);
void mul_cuda(tal_tensor y, tal_tensor a, tal_tensor b);
void scale_cuda(tal_tensor y, tal_tensor x, float s);
void axpy_cuda(tal_tensor y, float a, tal_tensor x);
void fill_cuda(tal_tensor t, float value);

/* ---- gemm.cu: products on cuBLAS in the precision mode (tal_precision_get) ---- */
/* tal_gemm's contract on device pointers (row-major, row strides). */
void gemm_cuda(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
               int64_t ldc);
/* batch products c_i = alpha op(a_i) op(b_i) + beta c_i, operand i at X + i * stride_X. */
void gemm_batched_cuda(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                       int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c,
                       int64_t batch);

/* ---- linear.cu ---- */
void linear_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b);
void linear_backward_cuda(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                          tal_tensor x, tal_tensor w);

/* ---- layernorm.cu ---- */
void layernorm_forward_cuda(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                            tal_tensor gamma, tal_tensor beta, float eps);
void layernorm_backward_cuda(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta, tal_tensor dy,
                             tal_tensor x, tal_tensor gamma, tal_tensor mean, tal_tensor rstd);
void layernorm_ct_forward_cuda(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                               tal_tensor gamma, tal_tensor beta, float eps);
void layernorm_ct_backward_cuda(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta,
                                tal_tensor dy, tal_tensor x, tal_tensor gamma, tal_tensor mean,
                                tal_tensor rstd);

/* ---- activations.cu, softmax.cu, dropout.cu ---- */
void gelu_forward_cuda(tal_tensor y, tal_tensor x);
void gelu_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor x);
void relu_forward_cuda(tal_tensor y, tal_tensor x);
void relu_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor y);
void softmax_forward_cuda(tal_tensor y, tal_tensor x);
void softmax_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor y);
/* y = x * keep / (1 - p) with keep from the key; forward and backward alike (p > 0) */
void dropout_cuda(tal_tensor y, tal_tensor x, float p, tal_rng_key key);
void drop_path_cuda(tal_tensor y, tal_tensor x, float p, tal_rng_key key);

/* ---- pool.cu, interp.cu ---- */
void maxpool1d_forward_cuda(tal_tensor y, tal_tensor argmax, tal_tensor x, int kernel,
                            int stride, int padding);
void maxpool1d_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor argmax);
void mean_hw_forward_cuda(tal_tensor y, tal_tensor x);
void mean_hw_backward_cuda(tal_tensor dx, tal_tensor dy);
void maxpool3d_forward_cuda(tal_tensor y, tal_tensor x, tal_pool3d_geom g);
void maxpool3d_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor x, tal_pool3d_geom g);
void interp1d_forward_cuda(tal_tensor y, tal_tensor x);
void interp1d_backward_cuda(tal_tensor dx, tal_tensor dy);

/* ---- conv3d.cu: the general conv takes its column chunk [K, chunk] (NULL for 1x1x1 stride
 * 1) from the dispatcher, which took it from the caller's scratch arena as the CPU does ---- */
void patch_conv3d_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b);
void patch_conv3d_backward_cuda(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                                tal_tensor x, tal_tensor w);
void conv3d_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                         tal_conv3d_geom g, float *cols, int64_t chunk);
void conv3d_backward_cuda(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                          tal_tensor x, tal_tensor w, tal_conv3d_geom g, float *cols,
                          int64_t chunk);

/* ---- conv1d.cu: scratch is a device arena, used as the CPU op uses its own ---- */
void conv1d_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b, tal_tensor mask,
                         tal_conv1d_geom g, tal_arena *scratch);
void conv1d_backward_cuda(tal_tensor dx, tal_tensor dw, tal_tensor db, tal_tensor dy,
                          tal_tensor x, tal_tensor w, tal_tensor mask, tal_conv1d_geom g,
                          tal_arena *scratch);

/* ---- multi-tensor kernels (multi_tensor.cu): one launch over many parameter tensors. A
 * table lists, per tensor, up to four device pointers of numel floats each (what they are is
 * the kernel's business) and a group index; it is uploaded once (device memory it owns, 32
 * bytes per tensor and 24 per chunk of 16384 elements) ---- */
typedef struct tal_mt_entry {
    float *p[4];
    int64_t numel;
    int group;
} tal_mt_entry;
typedef struct cuda_mt_table cuda_mt_table;
tal_status cuda_mt_create(cuda_mt_table **out, const tal_mt_entry *entries, int n, tal_err *err);
void cuda_mt_destroy(cuda_mt_table *t); /* NULL is fine */
/* 1 when the table was made from exactly these entries (the tensors have not moved since) */
int cuda_mt_matches(const cuda_mt_table *t, const tal_mt_entry *entries, int n);
/* The table holds pointers: aborts, naming `who`, unless it was made from these entries (the
 * parameters moved after the optimiser or EMA was made). Frees entries. */
void cuda_mt_assert_unmoved(const cuda_mt_table *t, tal_mt_entry *entries, int n,
                            const char *who);
/* sum of p[0][i]^2 over all tensors, in double, in a fixed order (params.cu) */
double sum_squares_cuda(const cuda_mt_table *t);
void scale_all_cuda(const cuda_mt_table *t, float s); /* p[0] *= s */
/* AdamW on {value, grad, exp_avg, exp_avg_sq}; per group: decay (1 - lr wd) and step size
 * (lr / bias correction 1), as adamw.c rounds them (adamw.cu) */
#define TAL_MT_MAX_GROUPS 16
void adamw_step_cuda(const cuda_mt_table *t, const float *decay, const float *step_size,
                     int n_groups, float beta1, float beta2, float eps, float sqrt_bc2);
/* EMA on {ema, value} (ema.cu) */
void ema_update_cuda(const cuda_mt_table *t, float decay);
void ema_swap_cuda(const cuda_mt_table *t);

/* ---- layout.cu, channels.cu: one thread per output element, no atomics ---- */
void rows_gather_cuda(tal_tensor dst, tal_tensor src, tal_index map);
void rows_scatter_cuda(tal_tensor dst, tal_tensor src, tal_index map, int accumulate);
void rows_zero_unmapped_cuda(tal_tensor t, tal_index map);
void bias_gather_cuda(tal_tensor bias, tal_tensor table, tal_index index);
void bias_gather_backward_cuda(tal_tensor dtable, tal_tensor dbias, tal_index by_row);
void merge2x2_forward_cuda(tal_tensor m4, tal_tensor x);
void merge2x2_backward_cuda(tal_tensor dx, tal_tensor dm4);
void transpose_last2_cuda(tal_tensor dst, tal_tensor src);
void pad_end3_cuda(tal_tensor dst, tal_tensor src);
void copy_slice1_cuda(tal_tensor dst, int64_t d0, tal_tensor src, int64_t s0, int64_t len);
void mean_hw_last_forward_cuda(tal_tensor y, tal_tensor x);
void mean_hw_last_backward_cuda(tal_tensor dx, tal_tensor dy);
void batchnorm_frozen_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor w, tal_tensor b,
                                   tal_tensor mean, tal_tensor var, float eps);
void batchnorm_frozen_backward_cuda(tal_tensor dx, tal_tensor dy, tal_tensor w, tal_tensor var,
                                    float eps);
double max_abs_diff_cuda(tal_tensor a, tal_tensor b); /* waits for the result */

/* ---- sequence.cu, attention_ct.cu, losses.cu: the head's ops (nn.h "ops: sequences") ---- */
void mask_columns_cuda(tal_tensor y, tal_tensor x, tal_tensor mask);
void channel_scale_cuda(tal_tensor y, tal_tensor x, tal_tensor g);
void channel_scale_grad_cuda(tal_tensor dg, tal_tensor dy, tal_tensor x); /* dg += */
void add_position_table_cuda(tal_tensor y, tal_tensor x, tal_tensor table, tal_tensor mask);
void take_every_cuda(tal_tensor dst, tal_tensor src, int stride);
void scale_relu_forward_cuda(tal_tensor y, tal_tensor x, tal_tensor s);
void scale_relu_backward_cuda(tal_tensor dx, tal_tensor ds, tal_tensor dy, tal_tensor y,
                              tal_tensor x, tal_tensor s);
int64_t count_nonfinite_cuda(tal_tensor t); /* waits for the count */
void attention_ct_forward_cuda(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                               tal_tensor vm, tal_tensor qmask, tal_tensor kvmask, int n_head,
                               int window);
void attention_ct_backward_cuda(tal_tensor dq, tal_tensor dk, tal_tensor dvm, tal_tensor dlogits,
                                tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor vm,
                                tal_tensor probs, int n_head, int window);
/* both wait for their sum */
double focal_loss_masked_cuda(tal_tensor dx, tal_tensor x, tal_tensor t, tal_tensor mask,
                              float alpha, float gamma, float gscale);
double diou_loss_offsets_cuda(tal_tensor dr, tal_tensor r, tal_tensor rt, tal_tensor pos,
                              float stride, float gscale);

/* ---- attention.cu: the views and sizes of attention_layout.h; mask_of on the device ---- */
void attention_forward_cuda(attn_view out, float *probs, attn_view q, attn_view k, attn_view v,
                            attn_dims s, tal_tensor bias, tal_tensor mask, const uint8_t *mask_of,
                            float scale);
/* scratch: a device arena with room for attention_backward_cuda_floats(s) floats */
void attention_backward_cuda(attn_view dq, attn_view dk, attn_view dv, tal_tensor dbias,
                             attn_view dout, attn_view q, attn_view k, attn_view v,
                             const float *probs, attn_dims s, float scale, tal_arena *scratch);

#ifdef __cplusplus
}
#endif
#endif /* TAL_HAVE_CUDA */
#endif /* TAL_CUDA_OPS_H */
