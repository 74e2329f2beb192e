/* nn/attention.c: scaled dot-product attention on [B, H, N, d] with an optional additive bias
 * [H, N, Nk] (relative position bias) and mask [M, N, Nk] (item b uses mask[b % M], as Swin's
 * shifted windows do). Work is split over (b, h) pairs, each a few 1-thread GEMMs. */
#include "nn.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void gemm1(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

static void softmax_rows_inplace(float *p, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        float *row = p + r * n, m = -INFINITY;
        for (int64_t j = 0; j < n; j++) m = row[j] > m ? row[j] : m;
        if (m == -INFINITY) {
            memset(row, 0, (size_t)n * sizeof(float));
            continue;
        }
        double s = 0;
        for (int64_t j = 0; j < n; j++) {
            row[j] = expf(row[j] - m);
            s += row[j];
        }
        float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < n; j++) row[j] *= inv;
    }
}

static void check_shapes(tal_tensor q, tal_tensor k, tal_tensor v, tal_tensor probs,
                         tal_tensor bias, tal_tensor mask) {
    TAL_ASSERT(q.ndim == 4 && k.ndim == 4 && v.ndim == 4);
    int64_t B = q.shape[0], H = q.shape[1], N = q.shape[2], d = q.shape[3], Nk = k.shape[2];
    TAL_ASSERT(k.shape[0] == B && k.shape[1] == H && k.shape[3] == d);
    TAL_ASSERT(v.shape[0] == B && v.shape[1] == H && v.shape[2] == Nk && v.shape[3] == d);
    TAL_ASSERT(tal_tensor_numel(probs) == B * H * N * Nk);
    TAL_ASSERT(!bias.data || (bias.ndim == 3 && bias.shape[0] == H && bias.shape[1] == N &&
                              bias.shape[2] == Nk));
    TAL_ASSERT(!mask.data || (mask.ndim == 3 && mask.shape[1] == N && mask.shape[2] == Nk &&
                              mask.shape[0] >= 1));
}

static void attention_forward_cpu(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                                  tal_tensor v, tal_tensor bias, tal_tensor mask, float scale) {
    int64_t B = q.shape[0], H = q.shape[1], N = q.shape[2], d = q.shape[3], Nk = k.shape[2];
    int64_t M = mask.data ? mask.shape[0] : 1;
#pragma omp parallel for schedule(static)
    for (int64_t bh = 0; bh < B * H; bh++) {
        int64_t b = bh / H, h = bh % H;
        float *p = probs.data + bh * N * Nk;
        gemm1(0, 1, N, Nk, d, scale, q.data + bh * N * d, d, k.data + bh * Nk * d, d, 0.0f, p, Nk);
        if (bias.data) {
            const float *bb = bias.data + h * N * Nk;
            for (int64_t i = 0; i < N * Nk; i++) p[i] += bb[i];
        }
        if (mask.data) {
            const float *mm = mask.data + (b % M) * N * Nk;
            for (int64_t i = 0; i < N * Nk; i++) p[i] += mm[i];
        }
        softmax_rows_inplace(p, N, Nk);
        gemm1(0, 0, N, d, Nk, 1.0f, p, Nk, v.data + bh * Nk * d, d, 0.0f, out.data + bh * N * d, d);
    }
}

void tal_attention_forward(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                           tal_tensor v, tal_tensor bias, tal_tensor mask, float scale) {
    check_shapes(q, k, v, probs, bias, mask);
    TAL_ASSERT_SAME_SHAPE(out, q);
    TAL_ASSERT_SAME_DEVICE(out, q);
    attention_forward_cpu(out, probs, q, k, v, bias, mask, scale);
}

static void attention_backward_cpu(tal_tensor dq, tal_tensor dk, tal_tensor dv, tal_tensor dbias,
                                   tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor v,
                                   tal_tensor probs, float scale, tal_arena *scratch) {
    int64_t B = q.shape[0], H = q.shape[1], N = q.shape[2], d = q.shape[3], Nk = k.shape[2];
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    size_t mark = tal_arena_mark(scratch);
    float *ds_all = tal_arena_floats(scratch, (int64_t)threads * N * Nk);
    /* Each thread sums its dS into a private dbias, added up after: no races, fixed order. */
    float *dbias_all = dbias.data ? tal_arena_floats(scratch, (int64_t)threads * H * N * Nk) : NULL;
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num();
#else
        int t = 0;
#endif
        float *ds = ds_all + (int64_t)t * N * Nk;
#pragma omp for schedule(static)
        for (int64_t bh = 0; bh < B * H; bh++) {
            int64_t h = bh % H;
            const float *p = probs.data + bh * N * Nk, *go = dout.data + bh * N * d;
            /* dv = P^T dout; dP = dout v^T */
            gemm1(1, 0, Nk, d, N, 1.0f, p, Nk, go, d, 0.0f, dv.data + bh * Nk * d, d);
            gemm1(0, 1, N, Nk, d, 1.0f, go, d, v.data + bh * Nk * d, d, 0.0f, ds, Nk);
            for (int64_t i = 0; i < N; i++) { /* dS = P * (dP - rowsum(dP * P)) */
                float *r = ds + i * Nk;
                const float *pr = p + i * Nk;
                double s = 0;
                for (int64_t j = 0; j < Nk; j++) s += (double)r[j] * pr[j];
                for (int64_t j = 0; j < Nk; j++) r[j] = pr[j] * (r[j] - (float)s);
            }
            if (dbias_all) {
                float *db = dbias_all + ((int64_t)t * H + h) * N * Nk;
                for (int64_t i = 0; i < N * Nk; i++) db[i] += ds[i];
            }
            gemm1(0, 0, N, d, Nk, scale, ds, Nk, k.data + bh * Nk * d, d, 0.0f,
                  dq.data + bh * N * d, d);
            gemm1(1, 0, Nk, d, N, scale, ds, Nk, q.data + bh * N * d, d, 0.0f,
                  dk.data + bh * Nk * d, d);
        }
    }
    if (dbias_all) {
        int64_t n = H * N * Nk;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) {
            float s = 0;
            for (int t = 0; t < threads; t++) s += dbias_all[(int64_t)t * n + i];
            dbias.data[i] += s;
        }
    }
    tal_arena_release(scratch, mark);
}

void tal_attention_backward(tal_tensor dq, tal_tensor dk, tal_tensor dv, tal_tensor dbias,
                            tal_tensor dout, tal_tensor q, tal_tensor k, tal_tensor v,
                            tal_tensor probs, float scale, tal_arena *scratch) {
    check_shapes(q, k, v, probs, dbias, tal_tensor_none());
    TAL_ASSERT_SAME_SHAPE(dq, q);
    TAL_ASSERT_SAME_SHAPE(dk, k);
    TAL_ASSERT_SAME_SHAPE(dv, v);
    TAL_ASSERT_SAME_SHAPE(dout, q);
    if (tal_arena_is_planner(scratch)) { /* planning: only the scratch it would take */
        int threads = 1;
#ifdef _OPENMP
        threads = omp_get_max_threads();
#endif
        size_t mark = tal_arena_mark(scratch);
        int64_t N = q.shape[2], Nk = k.shape[2], H = q.shape[1];
        tal_arena_floats(scratch, (int64_t)threads * N * Nk);
        if (dbias.data || dbias.ndim) tal_arena_floats(scratch, (int64_t)threads * H * N * Nk);
        tal_arena_release(scratch, mark);
        return;
    }
    attention_backward_cpu(dq, dk, dv, dbias, dout, q, k, v, probs, scale, scratch);
}
