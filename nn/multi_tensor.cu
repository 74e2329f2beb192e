/* nn/multi_tensor.cu: multi-tensor tables (cuda_ops.h) and the two plain kernels over them:
 * the global sum of squares (the gradient norm: per-chunk partial sums in a fixed layout, then
 * one block adding them in a fixed order, so the same bits every run) and the scale that clips. */
#include "cuda_multi_tensor.cuh"

#include <stdlib.h>
#include <string.h>

tal_status cuda_mt_create(cuda_mt_table **out, const tal_mt_entry *entries, int n, tal_err *err) {
    *out = NULL;
    int64_t n_chunks = 0;
    for (int i = 0; i < n; i++) n_chunks += (entries[i].numel + MT_CHUNK - 1) / MT_CHUNK;
    TAL_ASSERT_MSG(n_chunks <= 65535LL * 32768, "%lld chunks", (long long)n_chunks);
    cuda_mt_table *t = (cuda_mt_table *)calloc(1, sizeof *t);
    mt_chunk *chunks = (mt_chunk *)malloc(((size_t)n_chunks + 1) * sizeof *chunks);
    if (t) t->host = (tal_mt_entry *)malloc(((size_t)n + 1) * sizeof *entries);
    if (!t || !chunks || !t->host) {
        free(chunks);
        cuda_mt_destroy(t);
        return tal_err_set(err, TAL_ENOMEM, "multi-tensor table of %d tensors: out of memory", n);
    }
    t->n_entries = n;
    t->n_chunks = n_chunks;
    if (n) memcpy(t->host, entries, (size_t)n * sizeof *entries);
    int64_t c = 0;
    for (int i = 0; i < n; i++)
        for (int64_t s = 0; s < entries[i].numel; s += MT_CHUNK) {
            int64_t len = entries[i].numel - s < MT_CHUNK ? entries[i].numel - s : MT_CHUNK;
            chunks[c++] = mt_chunk{s, i, (int32_t)len};
        }
    size_t e_bytes = (size_t)n * sizeof *entries, c_bytes = (size_t)n_chunks * sizeof *chunks;
    void *e_dev = NULL, *c_dev = NULL;
    tal_status rc = cuda_malloc_bytes(&e_dev, e_bytes, err);
    if (rc == TAL_OK) rc = cuda_malloc_bytes(&c_dev, c_bytes, err);
    if (rc == TAL_OK) rc = cuda_copy_bytes(e_dev, TAL_DEV_CUDA, entries, TAL_DEV_CPU, e_bytes, err);
    if (rc == TAL_OK) rc = cuda_copy_bytes(c_dev, TAL_DEV_CUDA, chunks, TAL_DEV_CPU, c_bytes, err);
    t->entries = (tal_mt_entry *)e_dev;
    t->chunks = (mt_chunk *)c_dev;
    free(chunks);
    if (rc != TAL_OK) {
        cuda_mt_destroy(t);
        return tal_err_prefix(err, "multi-tensor table of %d tensors", n);
    }
    *out = t;
    return TAL_OK;
}

void cuda_mt_destroy(cuda_mt_table *t) {
    if (!t) return;
    cuda_free_bytes(t->entries);
    cuda_free_bytes(t->chunks);
    free(t->host);
    free(t);
}

int cuda_mt_matches(const cuda_mt_table *t, const tal_mt_entry *entries, int n) {
    return t && t->n_entries == n &&
           (n == 0 || !memcmp(t->host, entries, (size_t)n * sizeof *entries));
}

void cuda_mt_assert_unmoved(const cuda_mt_table *t, tal_mt_entry *entries, int n,
                            const char *who) {
    TAL_ASSERT_MSG(cuda_mt_matches(t, entries, n),
                   "%s: the parameters moved after it was made (make it after tal_params_move)",
                   who);
    free(entries);
}

__global__ void sum_squares_chunks(double *partial, const tal_mt_entry *entries,
                                   const mt_chunk *chunks) {
    __shared__ double shared[MT_BLOCK];
    mt_chunk c = chunks[blockIdx.x];
    const float *x = entries[c.entry].p[0] + c.start;
    double s = 0;
    for (int j = threadIdx.x; j < c.len; j += blockDim.x) s += (double)x[j] * x[j];
    double total = block_sum_double(s, shared);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

/* one block: thread i adds partials i, i + MT_BLOCK, ... then the block's fixed tree */
__global__ void sum_partials(double *out, const double *partial, int64_t n) {
    __shared__ double shared[MT_BLOCK];
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
    double total = block_sum_double(s, shared);
    if (threadIdx.x == 0) *out = total;
}

double sum_squares_cuda(const cuda_mt_table *t) {
    if (t->n_chunks == 0) return 0.0;
    double *partial = (double *)tal_cuda_workspace_slot(
        TAL_WS_PARTIALS, ((size_t)t->n_chunks + 1) * sizeof(double));
    cudaStream_t stream = tal_cuda_stream();
    sum_squares_chunks<<<mt_blocks(t), MT_BLOCK, 0, stream>>>(partial, t->entries, t->chunks);
    TAL_LAUNCH_CHECK();
    sum_partials<<<1, MT_BLOCK, 0, stream>>>(partial + t->n_chunks, partial, t->n_chunks);
    TAL_LAUNCH_CHECK();
    double total = 0;
    tal_err err = {TAL_OK, ""};
    tal_status rc = cuda_copy_bytes(&total, TAL_DEV_CPU, partial + t->n_chunks, TAL_DEV_CUDA,
                                    sizeof total, &err);
    TAL_ASSERT_MSG(rc == TAL_OK, "gradient norm: %s", err.msg);
    return total;
}

__global__ void scale_chunks(const tal_mt_entry *entries, const mt_chunk *chunks, float s) {
    mt_chunk c = chunks[blockIdx.x];
    float *x = entries[c.entry].p[0] + c.start;
    for (int j = threadIdx.x; j < c.len; j += blockDim.x) x[j] = s * x[j];
}

void scale_all_cuda(const cuda_mt_table *t, float s) {
    if (t->n_chunks == 0) return;
    scale_chunks<<<mt_blocks(t), MT_BLOCK, 0, tal_cuda_stream()>>>(t->entries, t->chunks, s);
    TAL_LAUNCH_CHECK();
}
