/* nn/attention.c: scaled dot-product attention on [B, H, N, d] with an optional additive bias
 * [H, N, Nk] (relative position bias) and mask [M, N, Nk] (item b uses mask[b % M], as Swin's
 * shifted windows do). Work is split over the (b, h) pairs, each a few 1-thread GEMMs on one
 * window, with the softmax done row by row while the row is in L1. */
#include "nn.h"
#include "gemm_thin.h"
#include "simd_math.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int threads_here(void) {
#ifdef _OPENMP
    if (!omp_in_parallel()) return omp_get_max_threads();
#endif
    return 1;
}

static void gemm1(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K == 0) { /* empty sum (d = 0 or Nk = 0): the product is zero */
        for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    if (tal_gemm_thin(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* Adds bias and mask rows (either may be NULL) to logits rows and turns each row into softmax
 * probabilities; a row that is all -inf becomes zeros (nothing to attend to), not NaN. */
VECTOR_CLONES
static void bias_mask_softmax(float *p, const float *bias, const float *mask, int64_t rows,
                              int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        float *restrict row = p + r * n;
        /* One pass adds bias then mask (that order: the same bits as two passes) and finds the
         * row maximum as a vector reduction (a scalar max chain was half of this function). */
        float m = -INFINITY;
        const float *restrict br = bias ? bias + r * n : NULL;
        const float *restrict mr = mask ? mask + r * n : NULL;
        if (br && mr) {
#pragma omp simd reduction(max : m)
            for (int64_t j = 0; j < n; j++) {
                float v = (row[j] + br[j]) + mr[j];
                row[j] = v;
                m = v > m ? v : m;
            }
        } else if (br || mr) {
            const float *restrict add = br ? br : mr;
#pragma omp simd reduction(max : m)
            for (int64_t j = 0; j < n; j++) {
                float v = row[j] + add[j];
                row[j] = v;
                m = v > m ? v : m;
            }
        } else {
#pragma omp simd reduction(max : m)
            for (int64_t j = 0; j < n; j++) m = row[j] > m ? row[j] : m;
        }
        if (m == -INFINITY) {
            memset(row, 0, (size_t)n * sizeof(float));
            continue;
        }
#pragma omp simd
        for (int64_t j = 0; j < n; j++) row[j] = tal_exp_nonpos(row[j] - m);
        double s = 0; /* a separate pass: mixed float/double in one loop does not vectorise */
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < n; j++) s += row[j];
        float inv = (float)(1.0 / s);
#pragma omp simd
        for (int64_t j = 0; j < n; j++) row[j] *= inv;
    }
}

/* dS = P * (dP - rowsum(dP * P)) in place of dP, row by row; adds dS to dbias when given. */
VECTOR_CLONES
static void softmax_grad_rows(float *ds, const float *p, float *dbias, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        float *restrict dr = ds + r * n;
        const float *restrict pr = p + r * n;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < n; j++) s += (double)dr[j] * pr[j];
        float sf = (float)s;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dr[j] = pr[j] * (dr[j] - sf);
        if (dbias) {
            float *restrict db = dbias + r * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) db[j] += dr[j];
        }
    }
}

static void check_shapes(tal_tensor q, tal_tensor k, tal_tensor v, tal_tensor probs) {
    TAL_ASSERT(q.ndim == 4 && k.ndim == 4 && v.ndim == 4);
    int64_t B = q.shape[0], H = q.shape[1], N = q.shape[2], d = q.shape[3], Nk = k.shape[2];
    TAL_ASSERT(k.shape[0] == B && k.shape[1] == H && k.shape[3] == d);
    TAL_ASSERT(v.shape[0] == B && v.shape[1] == H && v.shape[2] == Nk && v.shape[3] == d);
    TAL_ASSERT_MSG(tal_tensor_numel(probs) == B * H * N * Nk, "probs has %lld elements, not %lld",
                   (long long)tal_tensor_numel(probs), (long long)(B * H * N * Nk));
    TAL_ASSERT_SAME_DEVICE(q, k);
    TAL_ASSERT_SAME_DEVICE(q, v);
}

/* bias [H, N, Nk] (given data or, in planning, a shape). */
static void check_bias(tal_tensor bias, tal_tensor q, tal_tensor k) {
    TAL_ASSERT(bias.ndim == 3 && bias.shape[0] == q.shape[1] && bias.shape[1] == q.shape[2] &&
               bias.shape[2] == k.shape[2]);
}

static void attention_forward_cpu(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                                  tal_tensor v, tal_tensor bias, tal_tensor mask, float scale) {
    int64_t B = q.shape[0], H = q.shape[1], N = q.shape[2], d = q.shape[3], Nk = k.shape[2];
    int64_t M = mask.data ? mask.shape[0] : 1;
    int threads = threads_here();
#pragma omp parallel for schedule(static) num_threads(threads) if (B * H > 1)
    for (int64_t bh = 0; bh < B * H; bh++) {
        int64_t b = bh / H, h = bh % H;
        float *p = probs.data + bh * N * Nk;
        gemm1(0, 1, N, Nk, d, scale, q.data + bh * N * d, d, k.data + bh * Nk * d, d, 0.0f, p, Nk);
        bias_mask_softmax(p, bias.data ? bias.data + h * N * Nk : NULL,
                          mask.data ? mask.data + (b % M) * N * Nk : NULL, N, Nk);
        gemm1(0, 0, N, d, Nk, 1.0f, p, Nk, v.data + bh * Nk * d, d, 0.0f, out.data + bh * N * d, d);
    }
}

void tal_attention_forward(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                           tal_tensor v, tal_tensor bias, tal_tensor mask, float scale) {
    check_shapes(q, k, v, probs);
    TAL_ASSERT_SAME_SHAPE(out, q);
    TAL_ASSERT_SAME_DEVICE(out, q);
    if (bias.data) check_bias(bias, q, k);
    TAL_ASSERT(!mask.data || (mask.ndim == 3 && mask.shape[0] >= 1 &&
                              mask.shape[1] == q.shape[2] && mask.shape[2] == k.shape[2]));
    TAL_ASSERT(out.data != q.data || tal_tensor_numel(q) == 0); /* q is read after out written */
    attention_forward_cpu(out, probs, q, k, v, bias, mask, scale);
}

/* The (b, h) pairs run in h-major order (i = h * B + b) over fixed ranges per thread, so every
 * dbias[h] gets its sum over b in a fixed order. A thread whose range starts inside some h's run
 * (shared with the thread before it) sums that h into its private `edge` buffer, added after
 * the loop in thread order; every other h it has is its alone and is summed in place. */
static void attention_backward_cpu(tal_tensor dq, tal_tensor dk, tal_tensor dv, tal_tensor dbias,
                                   tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor v,
                                   tal_tensor probs, float scale, tal_arena *scratch,
                                   int threads) {
    int64_t B = q.shape[0], H = q.shape[1], N = q.shape[2], d = q.shape[3], Nk = k.shape[2];
    int64_t pairs = B * H, nn = N * Nk;
    size_t mark = tal_arena_mark(scratch);
    /* ds is written by a beta = 0 product, edge zeroed where used: neither needs zero fill */
    float *ds_all = tal_arena_floats_uninit(scratch, (int64_t)threads * nn);
    float *edge_all = dbias.data ? tal_arena_floats_uninit(scratch, (int64_t)threads * nn) : NULL;
    int used = 1;
#pragma omp parallel num_threads(threads) if (pairs > 1)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        int t = 0, nt = 1;
#endif
        if (t == 0) used = nt;
        float *ds = ds_all + (int64_t)t * nn, *edge = edge_all ? edge_all + (int64_t)t * nn : NULL;
        int64_t i0 = pairs * t / nt, i1 = pairs * (t + 1) / nt;
        int64_t shared_h = i0 < i1 && i0 % B != 0 ? i0 / B : -1;
        if (edge && shared_h >= 0) memset(edge, 0, (size_t)nn * sizeof(float));
        for (int64_t i = i0; i < i1; i++) {
            int64_t h = i / B, b = i % B, bh = b * H + h;
            const float *p = probs.data + bh * nn, *go = dout.data + bh * N * d;
            gemm1(1, 0, Nk, d, N, 1.0f, p, Nk, go, d, 0.0f, dv.data + bh * Nk * d, d); /* P^T dO */
            gemm1(0, 1, N, Nk, d, 1.0f, go, d, v.data + bh * Nk * d, d, 0.0f, ds, Nk); /* dO v^T */
            softmax_grad_rows(ds, p, !dbias.data ? NULL : h == shared_h ? edge : dbias.data + h * nn,
                              N, Nk);
            gemm1(0, 0, N, d, Nk, scale, ds, Nk, k.data + bh * Nk * d, d, 0.0f,
                  dq.data + bh * N * d, d);
            gemm1(1, 0, Nk, d, N, scale, ds, Nk, q.data + bh * N * d, d, 0.0f,
                  dk.data + bh * Nk * d, d);
        }
    }
    if (dbias.data)
        for (int t = 0; t < used; t++) {
            int64_t i0 = pairs * t / used, i1 = pairs * (t + 1) / used;
            if (i0 >= i1 || i0 % B == 0) continue;
            float *restrict db = dbias.data + (i0 / B) * nn;
            const float *restrict e = edge_all + (int64_t)t * nn;
#pragma omp simd
            for (int64_t j = 0; j < nn; j++) db[j] += e[j];
        }
    tal_arena_release(scratch, mark);
}

void tal_attention_backward(tal_tensor dq, tal_tensor dk, tal_tensor dv, tal_tensor dbias,
                            tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor v,
                            tal_tensor probs, float scale, tal_arena *scratch) {
    check_shapes(q, k, v, probs);
    TAL_ASSERT_SAME_SHAPE(dq, q);
    TAL_ASSERT_SAME_SHAPE(dk, k);
    TAL_ASSERT_SAME_SHAPE(dv, v);
    TAL_ASSERT_SAME_SHAPE(dout, q);
    TAL_ASSERT(scratch != NULL);
    /* A planner's dbias has a shape but no data: "wanted" either way. */
    int want_dbias = dbias.data || dbias.ndim;
    if (want_dbias) check_bias(dbias, q, k);
    int threads = threads_here();
    int64_t nn = q.shape[2] * k.shape[2];
    if (tal_arena_is_planner(scratch)) { /* planning: count exactly what the real call takes */
        size_t mark = tal_arena_mark(scratch);
        tal_arena_floats(scratch, (int64_t)threads * nn);
        if (want_dbias) tal_arena_floats(scratch, (int64_t)threads * nn);
        tal_arena_release(scratch, mark);
        return;
    }
    TAL_ASSERT_SAME_DEVICE(dq, q);
    attention_backward_cpu(dq, dk, dv, dbias, dout, q, k, v, probs, scale, scratch, threads);
}
