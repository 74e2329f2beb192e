/* nn/ema.cu: the EMA's update and swap as one multi-tensor launch each over {ema, value} of
 * every parameter; the update rounds as ema.c does (no fused multiply-add). */
#include "cuda_multi_tensor.cuh"

__global__ void ema_update_chunks(const tal_mt_entry *entries, const mt_chunk *chunks, float d,
                                  float rest) {
    mt_chunk c = chunks[blockIdx.x];
    float *a = entries[c.entry].p[0] + c.start;
    const float *w = entries[c.entry].p[1] + c.start;
    for (int j = threadIdx.x; j < c.len; j += blockDim.x)
        a[j] = __fadd_rn(__fmul_rn(d, a[j]), __fmul_rn(rest, w[j]));
}

__global__ void ema_swap_chunks(const tal_mt_entry *entries, const mt_chunk *chunks) {
    mt_chunk c = chunks[blockIdx.x];
    float *a = entries[c.entry].p[0] + c.start, *w = entries[c.entry].p[1] + c.start;
    for (int j = threadIdx.x; j < c.len; j += blockDim.x) {
        float t = a[j];
        a[j] = w[j];
        w[j] = t;
    }
}

void ema_update_cuda(const cuda_mt_table *t, float decay) {
    if (t->n_chunks == 0) return;
    ema_update_chunks<<<mt_blocks(t), MT_BLOCK, 0, tal_cuda_stream()>>>(t->entries, t->chunks,
                                                                        decay, 1.0f - decay);
    TAL_LAUNCH_CHECK();
}

void ema_swap_cuda(const cuda_mt_table *t) {
    if (t->n_chunks == 0) return;
    ema_swap_chunks<<<mt_blocks(t), MT_BLOCK, 0, tal_cuda_stream()>>>(t->entries, t->chunks);
    TAL_LAUNCH_CHECK();
}
