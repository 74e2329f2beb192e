/* nn/attention_ct.c: multi-head attention on channel-first [B, C, T] tensors, the core of
 * ActionFormer's masked MHCA (nn.h "ops: sequences"), so no transposes are needed: per (batch,
 * head) the logits are Q^T K with Q = q[b, h*hd:(h+1)*hd, :] ([hd, T] rows), the output V P^T.
 * Global attention as OpenTAD's MaskedMHCA, local as ActionFormer's LocalMaskedMHCA (only the
 * band is stored). The CPU code is the head's own (heads/mhca.c before it moved here: the same
 * bits); the CUDA twin is attention_ct.cu. */
#include "nn.h"
#include "cuda_ops.h"
#include "device_math.h"
#include "dispatch.h"

#include <math.h>
#include <string.h>

/* Called inside the loops over (batch, head) pairs: tal_gemm runs there on one thread. */
static void gemm1(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    tal_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void dense_forward(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                          tal_tensor vm, tal_tensor qmask, tal_tensor kvmask, int n_head,
                          int window) {
    int64_t B = q.shape[0], C = q.shape[1], T = q.shape[2], hd = C / n_head;
    TAL_ASSERT(C % n_head == 0 && tal_tensor_numel(probs) == B * n_head * T * T);
    float scale = 1.0f / sqrtf((float)hd);
    int64_t half = window > 0 ? window / 2 : -1;
#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < B * n_head; bh++) {
        int64_t b = bh / n_head, h = bh % n_head;
        const float *Q = q.data + (b * C + h * hd) * T, *K = k.data + (b * C + h * hd) * T;
        const float *V = vm.data + (b * C + h * hd) * T;
        const float *km = kvmask.data + b * T, *qm = qmask.data + b * T;
        float *P = probs.data + bh * T * T;
        gemm1(1, 0, T, T, hd, scale, Q, T, K, T, 0.0f, P, T);
        for (int64_t i = 0; i < T; i++) {
            float *row = P + i * T, mx = -INFINITY;
            for (int64_t j = 0; j < T; j++) {
                if (half >= 0 && (j < i - half || j > i + half)) row[j] = -INFINITY;
                else if (km[j] <= 0.0f) row[j] = half >= 0 ? row[j] - 1e4f : -INFINITY;
                if (row[j] > mx) mx = row[j];
            }
            if (mx == -INFINITY || (half >= 0 && qm[i] <= 0.0f)) {
                memset(row, 0, (size_t)T * sizeof(float));
                continue;
            }
            double s = 0;
            for (int64_t j = 0; j < T; j++) {
                row[j] = expf(row[j] - mx);
                s += row[j];
            }
            float inv = (float)(1.0 / s);
            for (int64_t j = 0; j < T; j++) row[j] *= inv;
        }
        gemm1(0, 1, hd, T, T, 1.0f, V, T, P, T, 0.0f, out.data + (b * C + h * hd) * T, T);
    }
}

static void dense_backward(tal_tensor dq, tal_tensor dk, tal_tensor dvm, tal_tensor dlogits,
                           tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor vm,
                           tal_tensor probs, int n_head) {
    int64_t B = q.shape[0], C = q.shape[1], T = q.shape[2], hd = C / n_head;
    TAL_ASSERT(tal_tensor_numel(dlogits) == B * n_head * T * T);
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < B * n_head; bh++) {
        int64_t b = bh / n_head, h = bh % n_head, off = (b * C + h * hd) * T;
        const float *P = probs.data + bh * T * T, *dO = dout.data + off;
        float *dS = dlogits.data + bh * T * T;
        gemm1(0, 0, hd, T, T, 1.0f, dO, T, P, T, 0.0f, dvm.data + off, T); /* dV = dO P */
        gemm1(1, 0, T, T, hd, 1.0f, dO, T, vm.data + off, T, 0.0f, dS, T); /* dP = dO^T V */
        for (int64_t i = 0; i < T; i++) { /* dS = P (dP - sum_j dP P) */
            const float *pr = P + i * T;
            float *dr = dS + i * T;
            double s = 0;
            for (int64_t j = 0; j < T; j++) s += (double)dr[j] * pr[j];
            for (int64_t j = 0; j < T; j++) dr[j] = pr[j] * (dr[j] - (float)s);
        }
        gemm1(0, 1, hd, T, T, scale, k.data + off, T, dS, T, 0.0f, dq.data + off, T);
        gemm1(0, 0, hd, T, T, scale, q.data + off, T, dS, T, 0.0f, dk.data + off, T);
    }
}

/* Local attention stores only the band: probs [B, H, T, w], entry (i, o) is key j = i - w/2 + o.
 * O(T w hd) work and memory instead of O(T^2) (ActionFormer's feature configs use T = 2304,
 * w = 19). Loops run over the band with channel-strided reads: the band is short. */
static void band_forward(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                         tal_tensor vm, tal_tensor qmask, tal_tensor kvmask, int n_head, int w) {
    int64_t B = q.shape[0], C = q.shape[1], T = q.shape[2], hd = C / n_head, half = w / 2;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < B * n_head; bh++) {
        int64_t b = bh / n_head, off = (b * C + (bh % n_head) * hd) * T;
        const float *Q = q.data + off, *K = k.data + off, *V = vm.data + off;
        const float *km = kvmask.data + b * T, *qm = qmask.data + b * T;
        float *O = out.data + off;
        for (int64_t i = 0; i < T; i++) {
            float *row = probs.data + (bh * T + i) * w, mx = -INFINITY;
            for (int64_t o = 0; o < w; o++) {
                int64_t j = band_key(i, o, half);
                if (j < 0 || j >= T) {
                    row[o] = -INFINITY;
                    continue;
                }
                float sum = 0;
                for (int64_t d = 0; d < hd; d++) sum += Q[d * T + i] * K[d * T + j];
                row[o] = scale * sum - (km[j] > 0.0f ? 0.0f : 1e4f);
                if (row[o] > mx) mx = row[o];
            }
            if (mx == -INFINITY || qm[i] <= 0.0f) {
                memset(row, 0, (size_t)w * sizeof(float));
            } else {
                double z = 0;
                for (int64_t o = 0; o < w; o++) {
                    row[o] = expf(row[o] - mx);
                    z += row[o];
                }
                for (int64_t o = 0; o < w; o++) row[o] = (float)(row[o] / z);
            }
            for (int64_t d = 0; d < hd; d++) {
                float acc = 0;
                for (int64_t o = 0; o < w; o++) {
                    int64_t j = band_key(i, o, half);
                    if (j >= 0 && j < T) acc += row[o] * V[d * T + j];
                }
                O[d * T + i] = acc;
            }
        }
    }
}

static void band_backward(tal_tensor dq, tal_tensor dk, tal_tensor dvm, tal_tensor dlogits,
                          tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor vm,
                          tal_tensor probs, int n_head, int w) {
    int64_t B = q.shape[0], C = q.shape[1], T = q.shape[2], hd = C / n_head, half = w / 2;
    float scale = 1.0f / sqrtf((float)hd);
    memset(dk.data, 0, tal_tensor_bytes(dk));
    memset(dvm.data, 0, tal_tensor_bytes(dvm));
#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < B * n_head; bh++) {
        int64_t off = ((bh / n_head) * C + (bh % n_head) * hd) * T;
        const float *Q = q.data + off, *K = k.data + off, *V = vm.data + off;
        const float *dO = dout.data + off;
        float *dQ = dq.data + off, *dK = dk.data + off, *dV = dvm.data + off;
        for (int64_t i = 0; i < T; i++) {
            const float *pr = probs.data + (bh * T + i) * w;
            float *ds = dlogits.data + (bh * T + i) * w;
            double dot = 0;
            for (int64_t o = 0; o < w; o++) {
                int64_t j = band_key(i, o, half);
                ds[o] = 0;
                if (j < 0 || j >= T || pr[o] == 0.0f) continue;
                float acc = 0;
                for (int64_t d = 0; d < hd; d++) {
                    acc += dO[d * T + i] * V[d * T + j];
                    dV[d * T + j] += pr[o] * dO[d * T + i];
                }
                ds[o] = acc;
                dot += (double)acc * pr[o];
            }
            for (int64_t o = 0; o < w; o++) ds[o] = pr[o] * (ds[o] - (float)dot);
            for (int64_t d = 0; d < hd; d++) {
                float acc = 0;
                for (int64_t o = 0; o < w; o++) {
                    int64_t j = band_key(i, o, half);
                    if (j < 0 || j >= T || ds[o] == 0.0f) continue;
                    acc += ds[o] * K[d * T + j];
                    dK[d * T + j] += scale * ds[o] * Q[d * T + i];
                }
                dQ[d * T + i] = scale * acc;
            }
        }
    }
}


int64_t tal_attention_ct_probs_cols(int64_t T, int window) { return window > 0 ? window : T; }

static void check(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k, tal_tensor vm,
                  int n_head, int window) {
    TAL_ASSERT(q.ndim == 3 && n_head >= 1 && q.shape[1] % n_head == 0);
    TAL_ASSERT_SAME_SHAPE(k, q);
    TAL_ASSERT_SAME_SHAPE(vm, q);
    TAL_ASSERT_SAME_SHAPE(out, q);
    TAL_ASSERT_MSG(window <= 0 || window % 2 == 1, "local attention window %d is not odd",
                   window);
    int64_t B = q.shape[0], T = q.shape[2];
    TAL_ASSERT_MSG(probs.ndim == 4 && probs.shape[0] == B && probs.shape[1] == n_head &&
                       probs.shape[2] == T &&
                       probs.shape[3] == tal_attention_ct_probs_cols(T, window),
                   "attention_ct: probs for B %lld, heads %d, T %lld, window %d", (long long)B,
                   n_head, (long long)T, window);
}

void tal_attention_ct_forward(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                              tal_tensor vm, tal_tensor qmask, tal_tensor kvmask, int n_head,
                              int window) {
    check(out, probs, q, k, vm, n_head, window);
    TAL_ASSERT(tal_tensor_numel(qmask) == q.shape[0] * q.shape[2]);
    TAL_ASSERT(tal_tensor_numel(kvmask) == q.shape[0] * q.shape[2]);
    tal_device dev = OP_DEVICE(out, probs, q, k, vm, qmask, kvmask);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        attention_ct_forward_cuda(out, probs, q, k, vm, qmask, kvmask, n_head, window);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    if (window > 0) band_forward(out, probs, q, k, vm, qmask, kvmask, n_head, window);
    else dense_forward(out, probs, q, k, vm, qmask, kvmask, n_head, window);
}

void tal_attention_ct_backward(tal_tensor dq, tal_tensor dk, tal_tensor dvm, tal_tensor dlogits,
                               tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor vm,
                               tal_tensor probs, int n_head, int window) {
    check(dout, probs, q, k, vm, n_head, window);
    TAL_ASSERT_SAME_SHAPE(dq, q);
    TAL_ASSERT_SAME_SHAPE(dk, q);
    TAL_ASSERT_SAME_SHAPE(dvm, q);
    TAL_ASSERT_SAME_SHAPE(dlogits, probs);
    tal_device dev = OP_DEVICE(dq, dk, dvm, dlogits, dout, q, k, vm, probs);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        attention_ct_backward_cuda(dq, dk, dvm, dlogits, dout, q, k, vm, probs, n_head, window);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    if (window > 0) band_backward(dq, dk, dvm, dlogits, dout, q, k, vm, probs, n_head, window);
    else dense_backward(dq, dk, dvm, dlogits, dout, q, k, vm, probs, n_head);
}
