/* nn/adamw.cu: AdamW as adamw.c, one multi-tensor launch over {value, grad, exp_avg,
 * exp_avg_sq} of every trainable parameter. Each operation is rounded as the CPU loop rounds
 * it (__fmul_rn and friends keep nvcc from fusing multiply-adds), so both devices take the
 * same steps. */
#include "cuda_multi_tensor.cuh"

typedef struct adamw_groups {
    float decay[TAL_MT_MAX_GROUPS], step_size[TAL_MT_MAX_GROUPS];
} adamw_groups;

__global__ void adamw_chunks(const tal_mt_entry *entries, const mt_chunk *chunks, adamw_groups g,
                             float b1, float b2, float eps, float sqrt_bc2) {
    mt_chunk c = chunks[blockIdx.x];
    tal_mt_entry e = entries[c.entry];
    float *w = e.p[0] + c.start, *m = e.p[2] + c.start, *v = e.p[3] + c.start;
    const float *gr = e.p[1] + c.start;
    const float decay = g.decay[e.group], step = g.step_size[e.group];
    const float one_b1 = 1.0f - b1, one_b2 = 1.0f - b2;
    for (int j = threadIdx.x; j < c.len; j += blockDim.x) {
        float gj = gr[j];
        float wj = __fmul_rn(w[j], decay);
        float mj = __fadd_rn(__fmul_rn(b1, m[j]), __fmul_rn(one_b1, gj));
        float vj = __fadd_rn(__fmul_rn(b2, v[j]), __fmul_rn(__fmul_rn(one_b2, gj), gj));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vj), sqrt_bc2), eps);
        w[j] = __fsub_rn(wj, __fmul_rn(step, __fdiv_rn(mj, denom)));
        m[j] = mj;
        v[j] = vj;
    }
}

void adamw_step_cuda(const cuda_mt_table *t, const float *decay, const float *step_size,
                     int n_groups, float beta1, float beta2, float eps, float sqrt_bc2) {
    TAL_ASSERT(n_groups <= TAL_MT_MAX_GROUPS);
    if (t->n_chunks == 0) return;
    adamw_groups g;
    for (int i = 0; i < TAL_MT_MAX_GROUPS; i++) {
        g.decay[i] = i < n_groups ? decay[i] : 1.0f;
        g.step_size[i] = i < n_groups ? step_size[i] : 0.0f;
    }
    adamw_chunks<<<mt_blocks(t), MT_BLOCK, 0, tal_cuda_stream()>>>(t->entries, t->chunks, g, beta1,
                                                                   beta2, eps, sqrt_bc2);
    TAL_LAUNCH_CHECK();
}
