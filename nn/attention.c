/* nn/attention.c: scaled dot-product attention on [B, H, N, d] with an optional additive bias
 * [H, N, Nk] (relative position bias) and mask [M, N, Nk] (item b uses mask[b % M], as Swin's
 * shifted windows do). Work is split over the (b, h) pairs, each done in blocks of query rows
 * with 1-thread GEMMs (oneDNN: nn/gemm.c): a block's logits, softmax and products stay in L2,
 * and the probabilities a later backward needs are streamed out to memory without being read
 * first. */
#include "nn.h"
#include "attention_layout.h"
#include "cuda_ops.h"
#include "dispatch.h"
#include "sgemm.h"
#include "simd_math.h"

#include <math.h>
#include <stdlib.h>
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

/* Adds bias and mask rows (either may be NULL) to logits rows and exponentiates each after
 * subtracting its maximum: the rows are left unnormalised, inv[r] gets 1 / (row r's sum), so
 * the caller folds the normalisation into passes it makes anyway (the P V product's rows and
 * the copy out). A row that is all -inf becomes zeros with inv 0 (nothing to attend to). */
VECTOR_CLONES
static void bias_mask_exp(float *p, const float *bias, const float *mask, float *inv,
                          int64_t rows, int64_t n) {
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
            inv[r] = 0;
            continue;
        }
        /* one pass: exp and the sum in vector lanes (a few dozen float terms each: relative
         * error ~1e-6 at worst, well inside what the probabilities are checked to) */
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < n; j++) {
            float e = tal_exp_nonpos(row[j] - m);
            row[j] = e;
            s += e;
        }
        inv[r] = 1.0f / s; /* s >= 1: the maximum's own term is e^0 */
    }
}

/* Multiplies rows [rows, n] (row stride ld) by scale[r]. */
static void scale_rows(float *x, int64_t ld, const float *scale, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        float *restrict xr = x + r * ld;
        float sr = scale[r];
#pragma omp simd
        for (int64_t j = 0; j < n; j++) xr[j] *= sr;
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
        if (dbias) {
            float *restrict db = dbias + r * n;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) {
                float g = pr[j] * (dr[j] - sf);
                dr[j] = g;
                db[j] += g;
            }
        } else {
#pragma omp simd
            for (int64_t j = 0; j < n; j++) dr[j] = pr[j] * (dr[j] - sf);
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

/* Rows of queries per block: a block's [rows, Nk] logits (<= 96 KiB) stay in L2 between the
 * products and the softmax; a multiple of the kernel's 6-row tile. */
static int64_t row_block(int64_t N, int64_t Nk) {
    int64_t rb = 24576 / (Nk > 0 ? Nk : 1) / 6 * 6;
    rb = rb < 6 ? 6 : rb > 96 ? 96 : rb;
    return rb < N ? rb : N;
}

/* op(B) of a row-block product: B with row stride ldb, transposed or not. */
typedef struct prep_b {
    const float *b;
    int64_t ldb;
    int trans;
} prep_b;

static prep_b prep_b_make(int trans_b, const float *B, int64_t ldb) {
    prep_b p = {B, ldb, trans_b};
    return p;
}

/* C = alpha op(A) op(B) + beta C on this thread. */
static void gemm_prep(int ta, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, prep_b b, float beta, float *C, int64_t ldc) {
    tal_sgemm1(ta, b.trans, M, N, K, alpha, A, lda, b.b, b.ldb, beta, C, ldc);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* dst row r = src row r * scale[r] for rows [rows, n] (both contiguous), with streaming stores
 * (no read of dst's lines first) from each row's first 32-byte boundary on: for probabilities
 * written once and read much later by the backward. AVX (every x86-64 CPU this runs on fast). */
__attribute__((target("avx"))) static void scale_rows_streaming_avx(float *dst, const float *src,
                                                                    const float *scale,
                                                                    int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        float *d = dst + r * n;
        const float *sr = src + r * n;
        __m256 k = _mm256_set1_ps(scale[r]);
        int64_t j = 0;
        for (; j < n && ((uintptr_t)(d + j) & 31) != 0; j++) d[j] = sr[j] * scale[r];
        for (; j + 8 <= n; j += 8)
            _mm256_stream_ps(d + j, _mm256_mul_ps(_mm256_loadu_ps(sr + j), k));
        for (; j < n; j++) d[j] = sr[j] * scale[r];
    }
    _mm_sfence(); /* streaming stores are weakly ordered: done before anyone reads dst */
}
#endif

static void scale_rows_streaming(float *dst, const float *src, const float *scale, int64_t rows,
                                 int64_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("avx")) {
        scale_rows_streaming_avx(dst, src, scale, rows, n);
        return;
    }
#endif
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++) dst[r * n + j] = src[r * n + j] * scale[r];
}

/* Item b uses mask[mask_of[b]] when mask_of is given, else mask[b % M]. */
static void attention_forward_cpu(attn_view out, float *probs, int stream, attn_view q,
                                  attn_view k, attn_view v, attn_dims s, tal_tensor bias,
                                  tal_tensor mask, const uint8_t *mask_of, float scale) {
    int64_t B = s.B, H = s.H, N = s.N, d = s.d, Nk = s.Nk, nn = N * Nk;
    int64_t M = mask.data ? mask.shape[0] : 1, rb = row_block(N, Nk);
    int threads = threads_here();
#pragma omp parallel num_threads(threads) if (B * H > 1)
    {
        /* a block's logits, then streamed to probs; without it (not streaming, or out of
         * memory) they are computed in probs */
        float *blk = stream || !probs ? malloc(sizeof(float) * (size_t)(rb * Nk > 0 ? rb * Nk : 1))
                                      : NULL;
        float inv[96]; /* 1 / row sums of a block (rb <= 96) */
        TAL_ASSERT_MSG(blk || probs, "attention: out of memory for a %lld x %lld block",
                       (long long)rb, (long long)Nk);
#pragma omp for schedule(static)
        for (int64_t bh = 0; bh < B * H; bh++) {
            int64_t b = bh / H, h = bh % H;
            float *p = probs ? probs + bh * nn : NULL;
            const float *qb = view_at(q, b, h);
            float *ob = view_at(out, b, h);
            const float *bias_h = bias.data ? bias.data + h * nn : NULL;
            const float *mask_b =
                mask.data ? mask.data + (mask_of ? mask_of[b] : b % M) * nn : NULL;
            prep_b kt = prep_b_make(1, view_at(k, b, h), k.ld);
            prep_b vv = prep_b_make(0, view_at(v, b, h), v.ld);
            for (int64_t r0 = 0; r0 < N; r0 += rb) {
                int64_t r = N - r0 < rb ? N - r0 : rb;
                float *sb = blk ? blk : p + r0 * Nk; /* no blk: p is there (asserted) */
                gemm_prep(0, r, Nk, d, scale, qb + r0 * q.ld, q.ld, kt, 0.0f, sb, Nk);
                bias_mask_exp(sb, bias_h ? bias_h + r0 * Nk : NULL,
                              mask_b ? mask_b + r0 * Nk : NULL, inv, r, Nk);
                /* softmax(l) v = (e^(l - max) v) / sum: the output rows take the 1 / sum */
                gemm_prep(0, r, d, Nk, 1.0f, sb, Nk, vv, 0.0f, ob + r0 * out.ld, out.ld);
                scale_rows(ob + r0 * out.ld, out.ld, inv, r, d);
                if (!p) continue; /* inference: nobody reads the probabilities */
                if (sb == blk) scale_rows_streaming(p + r0 * Nk, sb, inv, r, Nk);
                else scale_rows(sb, Nk, inv, r, Nk);
            }
        }
        free(blk);
    }
}

/* Either device; the CPU's mask_of is checked here (the device's is device memory). */
static void attention_forward_on(tal_device dev, attn_view out, tal_tensor probs, int stream,
                                 attn_view q, attn_view k, attn_view v, attn_dims s,
                                 tal_tensor bias, tal_tensor mask, const uint8_t *mask_of,
                                 float scale) {
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        attention_forward_cuda(out, probs.data, q, k, v, s, bias, mask, mask_of, scale);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    if (mask.data && mask_of)
        for (int64_t b = 0; b < s.B; b++)
            TAL_ASSERT_MSG(mask_of[b] < mask.shape[0], "item %lld: mask %d of %lld", (long long)b,
                           mask_of[b], (long long)mask.shape[0]);
    attention_forward_cpu(out, probs.data, stream, q, k, v, s, bias, mask, mask_of, scale);
}

void tal_attention_forward(tal_tensor out, tal_tensor probs, tal_tensor q, tal_tensor k,
                           tal_tensor v, tal_tensor bias, tal_tensor mask, float scale) {
    check_shapes(q, k, v, probs);
    TAL_ASSERT_SAME_SHAPE(out, q);
    if (bias.data) check_bias(bias, q, k);
    TAL_ASSERT(!mask.data || (mask.ndim == 3 && mask.shape[0] >= 1 &&
                              mask.shape[1] == q.shape[2] && mask.shape[2] == k.shape[2]));
    TAL_ASSERT(out.data != q.data || tal_tensor_numel(q) == 0); /* q is read after out written */
    tal_device dev = OP_DEVICE(out, probs, q, k, v, bias, mask);
    attn_dims s = {q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3]};
    attention_forward_on(dev, bhnd_view(out), probs, 1, bhnd_view(q), bhnd_view(k), bhnd_view(v),
                         s, bias, mask, NULL, scale);
}

/* The (b, h) pairs run in h-major order (i = h * B + b) over fixed ranges per thread, so every
 * dbias[h] gets its sum over b in a fixed order. A thread whose range starts inside some h's run
 * (shared with the thread before it) sums that h into its private `edge` buffer, added after
 * the loop in thread order; every other h it has is its alone and is summed in place.
 * Each pair goes in blocks of query rows: a block's probabilities are read from memory once
 * and its dP / dS stay in L2 for all four products; dV and dK add up over the blocks. */
static void attention_backward_cpu(attn_view dq, attn_view dk, attn_view dv, tal_tensor dbias,
                                   attn_view dout, attn_view q, attn_view k, attn_view v,
                                   const float *probs, attn_dims sz, float scale,
                                   tal_arena *scratch, int threads) {
    int64_t B = sz.B, H = sz.H, N = sz.N, d = sz.d, Nk = sz.Nk;
    int64_t pairs = B * H, nn = N * Nk, rb = row_block(N, Nk);
    size_t mark = tal_arena_mark(scratch);
    /* ds is written by a beta = 0 product, edge zeroed where used: neither needs zero fill */
    float *ds_all = tal_arena_floats_uninit(scratch, (int64_t)threads * rb * Nk);
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
        float *ds = ds_all + (int64_t)t * rb * Nk;
        float *edge = edge_all ? edge_all + (int64_t)t * nn : NULL;
        int64_t i0 = pairs * t / nt, i1 = pairs * (t + 1) / nt;
        int64_t shared_h = i0 < i1 && i0 % B != 0 ? i0 / B : -1;
        if (edge && shared_h >= 0) memset(edge, 0, (size_t)nn * sizeof(float));
        for (int64_t i = i0; i < i1; i++) {
            int64_t h = i / B, b = i % B, bh = b * H + h;
            const float *p = probs + bh * nn, *go = view_at(dout, b, h), *qb = view_at(q, b, h);
            float *dqb = view_at(dq, b, h), *dkb = view_at(dk, b, h), *dvb = view_at(dv, b, h);
            float *db = !dbias.data ? NULL : h == shared_h ? edge : dbias.data + h * nn;
            prep_b vt = prep_b_make(1, view_at(v, b, h), v.ld);
            prep_b kk = prep_b_make(0, view_at(k, b, h), k.ld);
            for (int64_t r0 = 0; r0 < N; r0 += rb) {
                int64_t r = N - r0 < rb ? N - r0 : rb;
                const float *pb = p + r0 * Nk, *gob = go + r0 * dout.ld;
                float beta = r0 ? 1.0f : 0.0f; /* dV, dK: sums over the blocks */
                gemm_prep(0, r, Nk, d, 1.0f, gob, dout.ld, vt, 0.0f, ds, Nk); /* dO v^T */
                /* the softmax gradient first: its row-wise pass brings the block of P from
                 * memory into L2 for P^T dO, whose column-wise reads would stall on it */
                softmax_grad_rows(ds, pb, db ? db + r0 * Nk : NULL, r, Nk);
                gemm_prep(1, Nk, d, r, 1.0f, pb, Nk, prep_b_make(0, gob, dout.ld), beta, dvb,
                          dv.ld); /* P^T dO */
                gemm_prep(0, r, d, Nk, scale, ds, Nk, kk, 0.0f, dqb + r0 * dq.ld,
                          dq.ld); /* dS k */
                gemm_prep(1, Nk, d, r, scale, ds, Nk, prep_b_make(0, qb + r0 * q.ld, q.ld), beta,
                          dkb, dk.ld); /* dS^T q */
            }
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

/* Planning (a planner arena): counts exactly the scratch the backward of the planner's device
 * takes (CPU: one [rows, Nk] block per thread, and one [N, Nk] edge per thread with dbias;
 * CUDA: attention_backward_cuda_floats) and returns 1: nothing to compute. */
static int counted_backward_scratch(tal_arena *scratch, int threads, attn_dims s,
                                    int want_dbias) {
    if (!tal_arena_is_planner(scratch)) return 0;
    size_t mark = tal_arena_mark(scratch);
    if (tal_arena_device(scratch) == TAL_DEV_CUDA) {
        tal_arena_floats(scratch, attention_backward_cuda_floats(s));
    } else {
        tal_arena_floats(scratch, (int64_t)threads * row_block(s.N, s.Nk) * s.Nk);
        if (want_dbias) tal_arena_floats(scratch, (int64_t)threads * s.N * s.Nk);
    }
    tal_arena_release(scratch, mark);
    return 1;
}

static void attention_backward_on(tal_device dev, attn_view dq, attn_view dk, attn_view dv,
                                  tal_tensor dbias, attn_view dout, attn_view q, attn_view k,
                                  attn_view v, tal_tensor probs, attn_dims s, float scale,
                                  tal_arena *scratch, int threads) {
    TAL_ASSERT_MSG(tal_arena_device(scratch) == dev, "attention backward: scratch on %s, tensors "
                   "on %s", device_name_of(tal_arena_device(scratch)), device_name_of(dev));
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        attention_backward_cuda(dq, dk, dv, dbias, dout, q, k, v, probs.data, s, scale, scratch);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    attention_backward_cpu(dq, dk, dv, dbias, dout, q, k, v, probs.data, s, scale, scratch,
                           threads);
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
    attn_dims sz = {q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3]};
    if (counted_backward_scratch(scratch, threads, sz, want_dbias)) return;
    tal_device dev = OP_DEVICE(dq, dk, dv, dbias, dout, q, k, v, probs);
    attention_backward_on(dev, bhnd_view(dq), bhnd_view(dk), bhnd_view(dv), dbias,
                          bhnd_view(dout), bhnd_view(q), bhnd_view(k), bhnd_view(v), probs, sz,
                          scale, scratch, threads);
}

/* ---------------------------------------------------------------- Swin's packed layouts -- */
static attn_dims qkv_dims(tal_tensor qkv, int64_t heads) {
    TAL_ASSERT(qkv.ndim == 3 && heads >= 1 && qkv.shape[2] % (3 * heads) == 0);
    attn_dims s = {qkv.shape[0], heads, qkv.shape[1], qkv.shape[1], qkv.shape[2] / (3 * heads)};
    return s;
}

void tal_attention_qkv_forward(tal_tensor out, tal_tensor probs, int probs_read_soon,
                               tal_tensor qkv, int64_t heads, tal_tensor bias, tal_tensor mask,
                               const uint8_t *mask_of, float scale) {
    attn_dims s = qkv_dims(qkv, heads);
    int64_t C = s.H * s.d;
    TAL_ASSERT(out.ndim == 3 && out.shape[0] == s.B && out.shape[1] == s.N && out.shape[2] == C);
    TAL_ASSERT_MSG(!probs.data || tal_tensor_numel(probs) == s.B * s.H * s.N * s.N,
                   "probs has %lld elements, not %lld", (long long)tal_tensor_numel(probs),
                   (long long)(s.B * s.H * s.N * s.N));
    TAL_ASSERT(!bias.data || (bias.ndim == 3 && bias.shape[0] == s.H && bias.shape[1] == s.N &&
                              bias.shape[2] == s.N));
    TAL_ASSERT(!mask.data || (mask.ndim == 3 && mask.shape[0] >= 1 && mask.shape[1] == s.N &&
                              mask.shape[2] == s.N));
    tal_device dev = OP_DEVICE(out, probs, qkv, bias, mask);
    attention_forward_on(dev, tokens_view(out, s.N, C, s.d), probs, !probs_read_soon,
                         qkv_view(qkv, 0, s.N, C, s.d), qkv_view(qkv, 1, s.N, C, s.d),
                         qkv_view(qkv, 2, s.N, C, s.d), s, bias, mask, mask_of, scale);
}

void tal_attention_qkv_backward(tal_tensor dqkv, tal_tensor dbias, tal_tensor dout,
                                tal_tensor qkv, tal_tensor probs, int64_t heads, float scale,
                                tal_arena *scratch) {
    attn_dims s = qkv_dims(qkv, heads);
    int64_t C = s.H * s.d;
    TAL_ASSERT_SAME_SHAPE(dqkv, qkv);
    TAL_ASSERT(dout.ndim == 3 && dout.shape[0] == s.B && dout.shape[1] == s.N &&
               dout.shape[2] == C);
    TAL_ASSERT(tal_tensor_numel(probs) == s.B * s.H * s.N * s.N);
    TAL_ASSERT(scratch != NULL);
    int want_dbias = dbias.data || dbias.ndim;
    if (want_dbias)
        TAL_ASSERT(dbias.ndim == 3 && dbias.shape[0] == s.H && dbias.shape[1] == s.N &&
                   dbias.shape[2] == s.N);
    int threads = threads_here();
    if (counted_backward_scratch(scratch, threads, s, want_dbias)) return;
    tal_device dev = OP_DEVICE(dqkv, dbias, dout, qkv, probs);
    attention_backward_on(dev, qkv_view(dqkv, 0, s.N, C, s.d), qkv_view(dqkv, 1, s.N, C, s.d),
                          qkv_view(dqkv, 2, s.N, C, s.d), dbias, tokens_view(dout, s.N, C, s.d),
                          qkv_view(qkv, 0, s.N, C, s.d), qkv_view(qkv, 1, s.N, C, s.d),
                          qkv_view(qkv, 2, s.N, C, s.d), probs, s, scale, scratch, threads);
}
