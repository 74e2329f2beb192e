/* nn/attention.cu: CUDA twin of attention.c on the same views (attention_layout.h). Item by item
 * (b), all heads at once: batched cuBLAS products (gemm.cu: the precision mode's operands,
 * bf16 under TAL_PREC_BF16, fp32 accumulation) around one row kernel for scale + bias + mask +
 * softmax, and in the backward one for the softmax gradient + dbias. With RE2TAL_ATTN_FUSED=1
 * the forward's output comes from one fused kernel instead (logits on chip, online softmax).
 * Forward kernels are deterministic and nothing uses atomics: dbias adds each item's gradient
 * in item order, one thread per element. */
#include "cuda_reduce.cuh"

#include <stdlib.h>

/* ---------------------------------------------------------------- row kernels ----------- */
#define ROW_WARPS 4 /* rows per block: one warp per row, lanes stride over its columns */

/* Item b's mask rows [N, Nk] (NULL without a mask): mask[mask_of[b]], or mask[b % M]. */
__device__ static inline const float *item_mask(const float *mask, const uint8_t *mask_of,
                                                int64_t b, int64_t M, int64_t N, int64_t Nk) {
    if (!mask) return NULL;
    int64_t m = mask_of ? (int64_t)mask_of[b] : b % M;
    return mask + m * N * Nk;
}

/* Logits l [H N, Nk] of one item (row r = h N + i) in place -> probabilities: l + bias[h, i]
 * + mask[i] (that order, as the CPU), then softmax (maximum in float, the sum in double: fp32
 * statistics or better); a row of all -inf becomes zeros. */
__global__ void bias_mask_softmax_rows(float *l, int64_t rows, int64_t N, int64_t Nk,
                                       const float *bias, const float *mask,
                                       const uint8_t *mask_of, int64_t b, int64_t M) {
    int64_t r = (int64_t)blockIdx.x * ROW_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return; /* the whole warp: r is the same for its lanes */
    float *row = l + r * Nk;
    const float *br = bias ? bias + r * Nk : NULL;
    const float *mask_b = item_mask(mask, mask_of, b, M, N, Nk);
    const float *mr = mask_b ? mask_b + (r % N) * Nk : NULL;
    float m = -INFINITY;
    for (int64_t j = lane; j < Nk; j += 32) {
        float v = row[j];
        if (br) v = __fadd_rn(v, br[j]);
        if (mr) v = __fadd_rn(v, mr[j]);
        row[j] = v;
        m = fmaxf(m, v);
    }
    warp_softmax_row_finish(row, Nk, m, lane);
}

/* dP -> dS = P (dP - rowsum(dP P)) in place (the row sum in double, as the CPU), and
 * dbias[h, i] += dS when given (one thread per element: no atomics). */
__global__ void softmax_grad_rows(float *ds, const float *p, float *dbias, int64_t rows,
                                  int64_t Nk) {
    int64_t r = (int64_t)blockIdx.x * ROW_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    warp_softmax_grad_row(ds + r * Nk, p + r * Nk, dbias ? dbias + r * Nk : NULL, Nk, lane);
}

/* ---------------------------------------------------------------- fused forward --------- */
#define FUSED_ROWS 64 /* query rows per block, one per thread */
#define FUSED_KEYS 32 /* keys per shared-memory tile; their scores stay in registers */

__device__ static inline float operand(float x, int bf16) { return bf16 ? round_to_bf16(x) : x; }

__device__ static inline float *view_ptr(attn_view v, int64_t b, int64_t h) {
    return v.base + b * v.b_stride + h * v.h_stride;
}

/* out = softmax(scale q k^T + bias + mask) v for query row i of item (b, h) in thread i: keys
 * and values come through shared memory a tile at a time, the scores of a tile stay in
 * registers, and the softmax runs online (running maximum m, sum l, output acc rescaled when m
 * grows). D >= d: the head dim, padded with zeros. Operands rounded to bf16 (q, k, v and the
 * unnormalised probabilities) under TAL_PREC_BF16, as the products' inputs are. */
template <int D>
__global__ void __launch_bounds__(FUSED_ROWS)
    attention_fused_forward(attn_view out, attn_view q, attn_view k, attn_view v, int64_t N,
                            int64_t Nk, int d, const float *bias, const float *mask,
                            const uint8_t *mask_of, int64_t M, float scale, int bf16) {
    __shared__ float ks[FUSED_KEYS][D], vs[FUSED_KEYS][D];
    int64_t b = blockIdx.z, h = blockIdx.y, i = (int64_t)blockIdx.x * FUSED_ROWS + threadIdx.x;
    bool active = i < N;
    float qr[D], acc[D];
    const float *qp = view_ptr(q, b, h) + (active ? i : 0) * q.ld;
#pragma unroll
    for (int c = 0; c < D; c++) {
        qr[c] = active && c < d ? operand(qp[c], bf16) : 0.0f;
        acc[c] = 0.0f;
    }
    const float *mask_b = item_mask(mask, mask_of, b, M, N, Nk);
    const float *br = bias && active ? bias + (h * N + i) * Nk : NULL;
    const float *mr = mask_b && active ? mask_b + i * Nk : NULL;
    const float *kb = view_ptr(k, b, h), *vb = view_ptr(v, b, h);
    float m = -INFINITY, l = 0.0f;
    for (int64_t j0 = 0; j0 < Nk; j0 += FUSED_KEYS) {
        int nk = Nk - j0 < FUSED_KEYS ? (int)(Nk - j0) : FUSED_KEYS;
        for (int e = threadIdx.x; e < FUSED_KEYS * D; e += FUSED_ROWS) {
            int jj = e / D, c = e % D;
            bool in = jj < nk && c < d;
            ks[jj][c] = in ? operand(kb[(j0 + jj) * k.ld + c], bf16) : 0.0f;
            vs[jj][c] = in ? operand(vb[(j0 + jj) * v.ld + c], bf16) : 0.0f;
        }
        __syncthreads();
        if (active) {
            float sc[FUSED_KEYS];
            float tile_max = -INFINITY;
#pragma unroll
            for (int jj = 0; jj < FUSED_KEYS; jj++) {
                float x = -INFINITY;
                if (jj < nk) {
                    float dot = 0.0f;
#pragma unroll
                    for (int c = 0; c < D; c++) dot += qr[c] * ks[jj][c];
                    x = scale * dot;
                    if (br) x += br[j0 + jj];
                    if (mr) x += mr[j0 + jj];
                }
                sc[jj] = x;
                tile_max = fmaxf(tile_max, x);
            }
            float m_new = fmaxf(m, tile_max);
            if (m_new != -INFINITY) { /* else every score so far is -inf: nothing yet */
                float corr = expf(m - m_new); /* 0 while m is -inf */
                l *= corr;
#pragma unroll
                for (int c = 0; c < D; c++) acc[c] *= corr;
#pragma unroll
                for (int jj = 0; jj < FUSED_KEYS; jj++) {
                    float p = sc[jj] == -INFINITY ? 0.0f : expf(sc[jj] - m_new);
                    l += p;
                    p = operand(p, bf16);
#pragma unroll
                    for (int c = 0; c < D; c++) acc[c] += p * vs[jj][c];
                }
                m = m_new;
            }
        }
        __syncthreads();
    }
    if (!active) return;
    float *op = view_ptr(out, b, h) + i * out.ld;
    float inv = l > 0.0f ? 1.0f / l : 0.0f; /* a row of all -inf gives zeros */
#pragma unroll
    for (int c = 0; c < D; c++) /* constant indices keep acc in registers */
        if (c < d) op[c] = acc[c] * inv;
}

/* RE2TAL_ATTN_FUSED=1 and a shape the kernel takes. Read per call (a getenv is cheap next to
 * an attention), so a test can switch it. */
static int fused_forward_selected(attn_dims s) {
    const char *e = getenv("RE2TAL_ATTN_FUSED");
    return e && e[0] == '1' && s.d <= 64 && s.H <= 65535 && s.B <= 65535 &&
           (s.N + FUSED_ROWS - 1) / FUSED_ROWS <= INT32_MAX;
}

static void fused_forward(attn_view out, attn_view q, attn_view k, attn_view v, attn_dims s,
                          tal_tensor bias, tal_tensor mask, const uint8_t *mask_of, float scale) {
    dim3 grid((unsigned)((s.N + FUSED_ROWS - 1) / FUSED_ROWS), (unsigned)s.H, (unsigned)s.B);
    int64_t M = mask.data ? mask.shape[0] : 1;
    int bf16 = tal_precision_get() == TAL_PREC_BF16;
    if (s.d <= 32)
        attention_fused_forward<32><<<grid, FUSED_ROWS, 0, tal_cuda_stream()>>>(
            out, q, k, v, s.N, s.Nk, (int)s.d, bias.data, mask.data, mask_of, M, scale, bf16);
    else
        attention_fused_forward<64><<<grid, FUSED_ROWS, 0, tal_cuda_stream()>>>(
            out, q, k, v, s.N, s.Nk, (int)s.d, bias.data, mask.data, mask_of, M, scale, bf16);
    TAL_LAUNCH_CHECK();
}

/* ---------------------------------------------------------------- forward --------------- */
static unsigned row_blocks(int64_t rows) {
    int64_t blocks = (rows + ROW_WARPS - 1) / ROW_WARPS;
    TAL_ASSERT_MSG(blocks <= INT32_MAX, "%lld attention rows", (long long)rows);
    return (unsigned)blocks;
}

/* Item b's probabilities, all heads, into l [H, N, Nk]: scale q k^T on cuBLAS, then the row
 * kernel. The same calls whether l is the caller's probs or a temporary, so out's bits do not
 * depend on whether probabilities are kept. */
static void item_probs(float *l, int64_t b, attn_view q, attn_view k, attn_dims s,
                       tal_tensor bias, tal_tensor mask, const uint8_t *mask_of, float scale) {
    gemm_batched_cuda(0, 1, s.N, s.Nk, s.d, scale, view_at(q, b, 0), q.ld, q.h_stride,
                      view_at(k, b, 0), k.ld, k.h_stride, 0.0f, l, s.Nk, s.N * s.Nk, s.H);
    int64_t rows = s.H * s.N;
    bias_mask_softmax_rows<<<row_blocks(rows), 32 * ROW_WARPS, 0, tal_cuda_stream()>>>(
        l, rows, s.N, s.Nk, bias.data, mask.data, mask_of, b, mask.data ? mask.shape[0] : 1);
    TAL_LAUNCH_CHECK();
}

void attention_forward_cuda(attn_view out, float *probs, attn_view q, attn_view k, attn_view v,
                            attn_dims s, tal_tensor bias, tal_tensor mask, const uint8_t *mask_of,
                            float scale) {
    if (!s.B || !s.H || !s.N) return;
    int fused = fused_forward_selected(s);
    if (fused) fused_forward(out, q, k, v, s, bias, mask, mask_of, scale);
    if (fused && !probs) return;
    int64_t item = s.H * s.N * s.Nk;
    /* inference: one item's probabilities in the op workspace (the products use their own) */
    float *tmp = probs ? NULL : (float *)tal_cuda_workspace(sizeof(float) * (size_t)item + 1);
    for (int64_t b = 0; b < s.B; b++) {
        float *l = probs ? probs + b * item : tmp;
        item_probs(l, b, q, k, s, bias, mask, mask_of, scale);
        if (!fused) /* out = P v */
            gemm_batched_cuda(0, 0, s.N, s.d, s.Nk, 1.0f, l, s.Nk, s.N * s.Nk, view_at(v, b, 0),
                              v.ld, v.h_stride, 0.0f, view_at(out, b, 0), out.ld, out.h_stride,
                              s.H);
    }
}

/* ---------------------------------------------------------------- backward -------------- */
/* Item by item, all heads at once, through one [H, N, Nk] buffer from scratch:
 * dV = P^T dO, dP = dO v^T, dS = softmax gradient (+ dbias), dQ = scale dS k,
 * dK = scale dS^T q. */
void attention_backward_cuda(attn_view dq, attn_view dk, attn_view dv, tal_tensor dbias,
                             attn_view dout, attn_view q, attn_view k, attn_view v,
                             const float *probs, attn_dims s, float scale, tal_arena *scratch) {
    if (!s.B || !s.H) return;
    int64_t item = s.H * s.N * s.Nk, rows = s.H * s.N;
    size_t mark = tal_arena_mark(scratch);
    float *ds = tal_arena_floats_uninit(scratch, attention_backward_cuda_floats(s));
    for (int64_t b = 0; b < s.B; b++) {
        const float *p = probs + b * item;
        const float *go = view_at(dout, b, 0);
        gemm_batched_cuda(1, 0, s.Nk, s.d, s.N, 1.0f, p, s.Nk, s.N * s.Nk, go, dout.ld,
                          dout.h_stride, 0.0f, view_at(dv, b, 0), dv.ld, dv.h_stride, s.H);
        gemm_batched_cuda(0, 1, s.N, s.Nk, s.d, 1.0f, go, dout.ld, dout.h_stride,
                          view_at(v, b, 0), v.ld, v.h_stride, 0.0f, ds, s.Nk, s.N * s.Nk, s.H);
        if (rows && s.Nk) {
            softmax_grad_rows<<<row_blocks(rows), 32 * ROW_WARPS, 0, tal_cuda_stream()>>>(
                ds, p, dbias.data, rows, s.Nk);
            TAL_LAUNCH_CHECK();
        }
        gemm_batched_cuda(0, 0, s.N, s.d, s.Nk, scale, ds, s.Nk, s.N * s.Nk, view_at(k, b, 0),
                          k.ld, k.h_stride, 0.0f, view_at(dq, b, 0), dq.ld, dq.h_stride, s.H);
        gemm_batched_cuda(1, 0, s.Nk, s.d, s.N, scale, ds, s.Nk, s.N * s.Nk, view_at(q, b, 0),
                          q.ld, q.h_stride, 0.0f, view_at(dk, b, 0), dk.ld, dk.h_stride, s.H);
    }
    tal_arena_release(scratch, mark);
}
