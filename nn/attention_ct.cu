/* nn/attention_ct.cu: CUDA twin of attention_ct.c. Global attention: batched cuBLAS products
 * over the (batch, head) pairs (gemm.cu: the precision mode's operands) around one row kernel
 * (mask + softmax, and in the backward the softmax gradient), a warp per row with the sums in
 * double as the CPU. Local (band) attention: one thread per query row computes its band as the
 * CPU loop does (the same single roundings), and the backward gathers each key's dk and dv terms
 * in query order instead of scattering them, so no atomics and the CPU's order of additions. */
#include "cuda_reduce.cuh"

#define ROW_WARPS 4 /* rows per block: one warp per row, lanes stride over its columns */

/* ---------------------------------------------------------------- global ---------------- */
/* Scaled logits p [B H T, T] in place -> probabilities: keys with kvmask <= 0 get -inf; a row
 * with no valid key becomes zeros (as the CPU). */
__global__ void masked_softmax_rows(float *p, const float *kvmask, int64_t rows, int64_t T,
                                    int64_t heads) {
    int64_t r = (int64_t)blockIdx.x * ROW_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return; /* the whole warp: r is the same for its lanes */
    float *row = p + r * T;
    const float *km = kvmask + (r / (heads * T)) * T;
    float m = -INFINITY;
    for (int64_t j = lane; j < T; j += 32) {
        float v = km[j] <= 0.0f ? -INFINITY : row[j];
        row[j] = v;
        m = fmaxf(m, v);
    }
    warp_softmax_row_finish(row, T, m, lane);
}

/* dP -> dS = P (dP - rowsum(dP P)) in place (the row sum in double). */
__global__ void softmax_grad_rows_ct(float *ds, const float *p, int64_t rows, int64_t T) {
    int64_t r = (int64_t)blockIdx.x * ROW_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    warp_softmax_grad_row(ds + r * T, p + r * T, NULL, T, lane);
}

static unsigned row_blocks(int64_t rows) {
    int64_t b = (rows + ROW_WARPS - 1) / ROW_WARPS;
    TAL_ASSERT_MSG(b <= INT32_MAX, "%lld attention rows", (long long)rows);
    return (unsigned)(b < 1 ? 1 : b);
}

/* Item (b, h) of q [B, C, T] is the [hd, T] block at (b H + h) hd T: one stride for all. */
static void dense_forward(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                          tal_tensor vm, tal_tensor kvmask, int64_t heads) {
    int64_t B = q.shape[0], C = q.shape[1], T = q.shape[2], hd = C / heads, n = B * heads;
    float scale = 1.0f / sqrtf((float)hd);
    gemm_batched_cuda(1, 0, T, T, hd, scale, q.data, T, hd * T, k.data, T, hd * T, 0.0f,
                      probs.data, T, T * T, n);
    masked_softmax_rows<<<row_blocks(n * T), ROW_WARPS * 32, 0, tal_cuda_stream()>>>(
        probs.data, kvmask.data, n * T, T, heads);
    TAL_LAUNCH_CHECK();
    gemm_batched_cuda(0, 1, hd, T, T, 1.0f, vm.data, T, hd * T, probs.data, T, T * T, 0.0f,
                      out.data, T, hd * T, n);
}

static void dense_backward(tal_tensor dq, tal_tensor dk, tal_tensor dvm, tal_tensor dlogits,
                           tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor vm,
                           tal_tensor probs, int64_t heads) {
    int64_t B = q.shape[0], C = q.shape[1], T = q.shape[2], hd = C / heads, n = B * heads;
    float scale = 1.0f / sqrtf((float)hd);
    const int64_t sv = hd * T, sp = T * T;
    /* dV = dO P, dP = dO^T V */
    gemm_batched_cuda(0, 0, hd, T, T, 1.0f, dout.data, T, sv, probs.data, T, sp, 0.0f, dvm.data,
                      T, sv, n);
    gemm_batched_cuda(1, 0, T, T, hd, 1.0f, dout.data, T, sv, vm.data, T, sv, 0.0f, dlogits.data,
                      T, sp, n);
    softmax_grad_rows_ct<<<row_blocks(n * T), ROW_WARPS * 32, 0, tal_cuda_stream()>>>(
        dlogits.data, probs.data, n * T, T);
    TAL_LAUNCH_CHECK();
    /* dQ = scale K dS^T, dK = scale Q dS */
    gemm_batched_cuda(0, 1, hd, T, T, scale, k.data, T, sv, dlogits.data, T, sp, 0.0f, dq.data,
                      T, sv, n);
    gemm_batched_cuda(0, 0, hd, T, T, scale, q.data, T, sv, dlogits.data, T, sp, 0.0f, dk.data,
                      T, sv, n);
}

/* ---------------------------------------------------------------- band ------------------ */
/* One thread per query row (bh, i), i fastest: the warp's reads of q[d, i] are contiguous. */
__global__ void band_forward_rows(float *out, float *probs, const float *q, const float *k,
                                  const float *vm, const float *qmask, const float *kvmask,
                                  int64_t heads, int64_t hd, int64_t T, int w, float scale,
                                  int64_t rows) {
    int64_t half_w = w / 2;
    GRID_STRIDE_LOOP(r, rows) {
        int64_t bh = r / T, i = r % T, b = bh / heads, off = bh * hd * T;
        const float *Q = q + off, *K = k + off, *V = vm + off;
        const float *km = kvmask + b * T, *qm = qmask + b * T;
        float *row = probs + r * w, mx = -INFINITY;
        for (int o = 0; o < w; o++) {
            int64_t j = band_key(i, o, half_w);
            if (j < 0 || j >= T) {
                row[o] = -INFINITY;
                continue;
            }
            float sum = 0;
            for (int64_t d = 0; d < hd; d++)
                sum = __fadd_rn(sum, __fmul_rn(Q[d * T + i], K[d * T + j]));
            row[o] = __fsub_rn(__fmul_rn(scale, sum), km[j] > 0.0f ? 0.0f : 1e4f);
            if (row[o] > mx) mx = row[o];
        }
        if (mx == -INFINITY || qm[i] <= 0.0f) {
            for (int o = 0; o < w; o++) row[o] = 0.0f;
        } else {
            double z = 0;
            for (int o = 0; o < w; o++) {
                row[o] = expf(row[o] - mx);
                z += row[o];
            }
            for (int o = 0; o < w; o++) row[o] = (float)(row[o] / z);
        }
        for (int64_t d = 0; d < hd; d++) {
            float acc = 0;
            for (int o = 0; o < w; o++) {
                int64_t j = band_key(i, o, half_w);
                if (j >= 0 && j < T) acc = __fadd_rn(acc, __fmul_rn(row[o], V[d * T + j]));
            }
            out[off + d * T + i] = acc;
        }
    }
}

/* The row part of the band backward, one thread per query row: ds (dlogits) of its band and
 * dq, as the CPU loop. */
__global__ void band_backward_rows(float *dq, float *dlogits, const float *dout, const float *q,
                                   const float *k, const float *vm, const float *probs,
                                   int64_t hd, int64_t T, int w, float scale, int64_t rows) {
    int64_t half_w = w / 2;
    GRID_STRIDE_LOOP(r, rows) {
        int64_t bh = r / T, i = r % T, off = bh * hd * T;
        const float *K = k + off, *V = vm + off, *dO = dout + off;
        const float *pr = probs + r * w;
        float *ds = dlogits + r * w;
        double dot = 0;
        for (int o = 0; o < w; o++) {
            int64_t j = band_key(i, o, half_w);
            ds[o] = 0;
            if (j < 0 || j >= T || pr[o] == 0.0f) continue;
            float acc = 0;
            for (int64_t d = 0; d < hd; d++)
                acc = __fadd_rn(acc, __fmul_rn(dO[d * T + i], V[d * T + j]));
            ds[o] = acc;
            dot += (double)acc * pr[o];
        }
        float dotf = (float)dot;
        for (int o = 0; o < w; o++) ds[o] = __fmul_rn(pr[o], __fsub_rn(ds[o], dotf));
        for (int64_t d = 0; d < hd; d++) {
            float acc = 0;
            for (int o = 0; o < w; o++) {
                int64_t j = band_key(i, o, half_w);
                if (j < 0 || j >= T || ds[o] == 0.0f) continue;
                acc = __fadd_rn(acc, __fmul_rn(ds[o], K[d * T + j]));
            }
            dq[off + d * T + i] = __fmul_rn(scale, acc);
        }
    }
}

/* The key part, one thread per (bh, d, key j): dv[d, j] and dk[d, j] add the terms of the queries
 * whose band holds j, in increasing query order (the order the CPU loop adds them in). */
__global__ void band_backward_keys(float *dk, float *dvm, const float *dout, const float *q,
                                   const float *probs, const float *dlogits, int64_t hd,
                                   int64_t T, int w, float scale, int64_t n) {
    int64_t half_w = w / 2;
    GRID_STRIDE_LOOP(e, n) {
        int64_t j = e % T, bh = e / (hd * T), off = bh * hd * T, d = (e / T) % hd;
        const float *Q = q + off, *dO = dout + off;
        int64_t i0 = j - half_w > 0 ? j - half_w : 0, i1 = j + half_w < T - 1 ? j + half_w : T - 1;
        float dv = 0, dkv = 0;
        for (int64_t i = i0; i <= i1; i++) {
            int64_t o = band_entry(i, j, half_w), r = bh * T + i;
            float p = probs[r * w + o], g = dlogits[r * w + o];
            if (p != 0.0f) dv = __fadd_rn(dv, __fmul_rn(p, dO[d * T + i]));
            if (g != 0.0f) dkv = __fadd_rn(dkv, __fmul_rn(__fmul_rn(scale, g), Q[d * T + i]));
        }
        dvm[e] = dv;
        dk[e] = dkv;
    }
}

/* ---------------------------------------------------------------- entry points ---------- */
void attention_ct_forward_cuda(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                               tal_tensor vm, tal_tensor qmask, tal_tensor kvmask, int n_head,
                               int window) {
    if (!tal_tensor_numel(q)) return;
    if (window <= 0) {
        dense_forward(out, probs, q, k, vm, kvmask, n_head);
        return;
    }
    int64_t hd = q.shape[1] / n_head, T = q.shape[2], rows = q.shape[0] * n_head * T;
    float scale = 1.0f / sqrtf((float)hd);
    band_forward_rows<<<grid_for(rows), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        out.data, probs.data, q.data, k.data, vm.data, qmask.data, kvmask.data, n_head, hd, T,
        window, scale, rows);
    TAL_LAUNCH_CHECK();
}

void attention_ct_backward_cuda(tal_tensor dq, tal_tensor dk, tal_tensor dvm, tal_tensor dlogits,
                                tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor vm,
                                tal_tensor probs, int n_head, int window) {
    if (!tal_tensor_numel(q)) return;
    if (window <= 0) {
        dense_backward(dq, dk, dvm, dlogits, dout, q, k, vm, probs, n_head);
        return;
    }
    int64_t hd = q.shape[1] / n_head, T = q.shape[2], rows = q.shape[0] * n_head * T;
    int64_t n = tal_tensor_numel(q);
    float scale = 1.0f / sqrtf((float)hd);
    cudaStream_t stream = tal_cuda_stream();
    band_backward_rows<<<grid_for(rows), TAL_BLOCK, 0, stream>>>(
        dq.data, dlogits.data, dout.data, q.data, k.data, vm.data, probs.data, hd, T, window,
        scale, rows);
    TAL_LAUNCH_CHECK();
    band_backward_keys<<<grid_for(n), TAL_BLOCK, 0, stream>>>(
        dk.data, dvm.data, dout.data, q.data, probs.data, dlogits.data, hd, T, window, scale, n);
    TAL_LAUNCH_CHECK();
}
