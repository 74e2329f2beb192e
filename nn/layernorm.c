/* nn/layernorm.c: LayerNorm over the last dim ([N, C]) and over the channels of [B, C, T]
 * (ActionFormer's), forward and backward; biased variance and eps inside the root, as PyTorch.
 * Statistics and row sums in double, two passes (mean, then squared deviations): C is small
 * (32..1536) so it costs little, and the reversible backward recomputes these outputs and
 * subtracts them, where float cancellation (E[x^2] - E[x]^2 on offset inputs) would grow. */
#include "nn.h"
#include "cuda_ops.h"
#include "dispatch.h"
#include "simd_math.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define PAR_MIN 32768 /* elements; below this threads cost more than they save */
/* Largest C whose dgamma/dbeta partial sums live on each thread's stack (2 x 8 KiB). */
#define FUSE_MAX_C 1024
#define T_BLOCK 64    /* columns (b, t) of a [B, C, T] tensor handled together */

/* One row: y = (x - mean) * rstd * gamma + beta; returns mean and rstd. y may alias x: the
 * statistics are taken before anything is written. */
VECTOR_CLONES
static void forward_row(float *yr, float *mean_out, float *rstd_out, const float *xr,
                        const float *g, const float *bt, int64_t c, float eps) {
    double s = 0, ss = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < c; j++) s += xr[j];
    double mu = s / c;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < c; j++) ss += (xr[j] - mu) * (xr[j] - mu);
    double rs = 1.0 / sqrt(ss / c + eps);
    /* x - mu as (x - muf) - mu_lo: the float mean's rounding (up to half an ulp of the mean,
     * large next to the spread of offset rows) is taken back out. */
    float muf = (float)mu, mu_lo = (float)(mu - muf), rsf = (float)rs;
    if (g) {
#pragma omp simd
        for (int64_t j = 0; j < c; j++)
            yr[j] = ((xr[j] - muf) - mu_lo) * rsf * g[j] + (bt ? bt[j] : 0.0f);
    } else {
#pragma omp simd
        for (int64_t j = 0; j < c; j++) yr[j] = ((xr[j] - muf) - mu_lo) * rsf;
    }
    *mean_out = muf;
    *rstd_out = rsf;
}

static void layernorm_forward_cpu(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                                  tal_tensor gamma, tal_tensor beta, float eps) {
    int64_t n = tal_tensor_rows(x), c = tal_tensor_cols(x);
#pragma omp parallel for schedule(static) if (n * c > PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        float mu, rs;
        forward_row(y.data + r * c, &mu, &rs, x.data + r * c, gamma.data, beta.data, c, eps);
        if (mean.data) mean.data[r] = mu;
        if (rstd.data) rstd.data[r] = rs;
    }
}

void tal_layernorm_forward(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                           tal_tensor gamma, tal_tensor beta, float eps) {
    TAL_ASSERT(x.ndim >= 1);
    TAL_ASSERT_SAME_SHAPE(y, x);
    TAL_ASSERT_MSG(eps >= 0, "eps %g", eps);
    TAL_ASSERT(!gamma.data || tal_tensor_numel(gamma) == tal_tensor_cols(x));
    TAL_ASSERT(!beta.data || (gamma.data && tal_tensor_numel(beta) == tal_tensor_cols(x)));
    TAL_ASSERT(!mean.data || tal_tensor_numel(mean) == tal_tensor_rows(x));
    TAL_ASSERT(!rstd.data || tal_tensor_numel(rstd) == tal_tensor_rows(x));
    tal_device dev = OP_DEVICE(y, mean, rstd, x, gamma, beta);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        layernorm_forward_cuda(y, mean, rstd, x, gamma, beta, eps);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    layernorm_forward_cpu(y, mean, rstd, x, gamma, beta, eps);
}

/* One row's dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma; when pg/pb are
 * given, also adds dy * xhat and dy to them (the dgamma, dbeta partial sums). dx may alias dy:
 * dy is read in full before dx is written. */
VECTOR_CLONES
static void backward_row(float *dxr, double *restrict pg, double *restrict pb, const float *dyr,
                         const float *restrict xr,
                         const float *restrict gamma, float mu, float rs, int64_t c) {
    double sg = 0, sgx = 0;
    if (pg) {
#pragma omp simd reduction(+ : sg, sgx)
        for (int64_t j = 0; j < c; j++) {
            float xh = (xr[j] - mu) * rs, gj = dyr[j] * (gamma ? gamma[j] : 1.0f);
            sg += gj;
            sgx += (double)gj * xh;
            pg[j] += (double)dyr[j] * xh;
            pb[j] += dyr[j];
        }
    } else {
#pragma omp simd reduction(+ : sg, sgx)
        for (int64_t j = 0; j < c; j++) {
            float gj = dyr[j] * (gamma ? gamma[j] : 1.0f);
            sg += gj;
            sgx += (double)gj * ((xr[j] - mu) * rs);
        }
    }
    if (dxr) {
        float mg = (float)(sg / c), mgx = (float)(sgx / c);
#pragma omp simd
        for (int64_t j = 0; j < c; j++) {
            float xh = (xr[j] - mu) * rs;
            dxr[j] = rs * (dyr[j] * (gamma ? gamma[j] : 1.0f) - mg - xh * mgx);
        }
    }
}

/* dgamma, dbeta for wide rows (C > FUSE_MAX_C): columns over threads; each reads x and dy once
 * per column, strided, which is slow but only taken by shapes re2tal does not use. */
static void param_grads_by_column(float *dgamma, float *dbeta, const float *dy, const float *x,
                                  const float *mean, const float *rstd, int64_t n, int64_t c) {
#pragma omp parallel for schedule(static) if (n * c > PAR_MIN)
    for (int64_t j = 0; j < c; j++) {
        double sg = 0, sb = 0;
        for (int64_t r = 0; r < n; r++) {
            float d = dy[r * c + j];
            sg += (double)d * ((x[r * c + j] - mean[r]) * rstd[r]);
            sb += d;
        }
        if (dgamma) dgamma[j] += (float)sg;
        if (dbeta) dbeta[j] += (float)sb;
    }
}

static void layernorm_backward_cpu(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta,
                                   tal_tensor dy, tal_tensor x, tal_tensor gamma, tal_tensor mean,
                                   tal_tensor rstd) {
    int64_t n = tal_tensor_rows(x), c = tal_tensor_cols(x);
    int want_params = dgamma.data || dbeta.data;
    int fuse = want_params && c <= FUSE_MAX_C;
    if (want_params && !fuse) /* before dx is written: dx may alias dy */
        param_grads_by_column(dgamma.data, dbeta.data, dy.data, x.data, mean.data, rstd.data, n,
                              c);
    if (dx.data || fuse) {
        /* Each thread takes a fixed range of rows and keeps its own dgamma/dbeta partial sums,
         * added to the outputs in thread order: no races and the same result every run. */
#pragma omp parallel if (n * c > PAR_MIN)
        {
#ifdef _OPENMP
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
            int t = 0, nt = 1;
#endif
            double pg[FUSE_MAX_C], pb[FUSE_MAX_C];
            if (fuse)
                for (int64_t j = 0; j < c; j++) pg[j] = pb[j] = 0;
            int64_t r0 = n * t / nt, r1 = n * (t + 1) / nt;
            for (int64_t r = r0; r < r1; r++)
                backward_row(dx.data ? dx.data + r * c : NULL, fuse ? pg : NULL,
                             fuse ? pb : NULL, dy.data + r * c, x.data + r * c, gamma.data,
                             mean.data[r], rstd.data[r], c);
            if (fuse) {
#pragma omp for ordered schedule(static, 1)
                for (int i = 0; i < nt; i++) {
#pragma omp ordered
                    for (int64_t j = 0; j < c; j++) {
                        if (dgamma.data) dgamma.data[j] += (float)pg[j];
                        if (dbeta.data) dbeta.data[j] += (float)pb[j];
                    }
                }
            }
        }
    }
}

void tal_layernorm_backward(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta, tal_tensor dy,
                            tal_tensor x, tal_tensor gamma, tal_tensor mean, tal_tensor rstd) {
    TAL_ASSERT(x.ndim >= 1);
    TAL_ASSERT_SAME_SHAPE(dy, x);
    TAL_ASSERT(!dx.data || tal_tensor_same_shape(dx, x));
    TAL_ASSERT(!gamma.data || tal_tensor_numel(gamma) == tal_tensor_cols(x));
    TAL_ASSERT(!dgamma.data || tal_tensor_numel(dgamma) == tal_tensor_cols(x));
    TAL_ASSERT(!dbeta.data || tal_tensor_numel(dbeta) == tal_tensor_cols(x));
    TAL_ASSERT(tal_tensor_numel(x) == 0 ||
               (mean.data && rstd.data && tal_tensor_numel(mean) == tal_tensor_rows(x) &&
                tal_tensor_numel(rstd) == tal_tensor_rows(x)));
    tal_device dev = OP_DEVICE(dx, dgamma, dbeta, dy, x, gamma, mean, rstd);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        layernorm_backward_cuda(dx, dgamma, dbeta, dy, x, gamma, mean, rstd);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    layernorm_backward_cpu(dx, dgamma, dbeta, dy, x, gamma, mean, rstd);
}

/* ---- channels of [B, C, T]: column (b, t) normalised over C (stride T). Work goes by blocks
 * of T_BLOCK columns so every read is a contiguous run along T. ---- */
static void layernorm_ct_forward_cpu(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                                     tal_tensor gamma, tal_tensor beta, float eps) {
    int64_t B = x.shape[0], C = x.shape[1], T = x.shape[2];
    int64_t nblk = (T + T_BLOCK - 1) / T_BLOCK;
#pragma omp parallel for collapse(2) schedule(static) if (B * C * T > PAR_MIN)
    for (int64_t b = 0; b < B; b++)
        for (int64_t blk = 0; blk < nblk; blk++) {
            int64_t t0 = blk * T_BLOCK, nt = T - t0 < T_BLOCK ? T - t0 : T_BLOCK;
            const float *xb = x.data + b * C * T + t0;
            float *yb = y.data + b * C * T + t0;
            double s[T_BLOCK] = {0}, ss[T_BLOCK] = {0};
            float mu[T_BLOCK], mu_lo[T_BLOCK], rs[T_BLOCK];
            for (int64_t c = 0; c < C; c++)
#pragma omp simd
                for (int64_t t = 0; t < nt; t++) s[t] += xb[c * T + t];
            for (int64_t t = 0; t < nt; t++) s[t] /= C;
            for (int64_t c = 0; c < C; c++)
#pragma omp simd
                for (int64_t t = 0; t < nt; t++) {
                    double dv = xb[c * T + t] - s[t];
                    ss[t] += dv * dv;
                }
            for (int64_t t = 0; t < nt; t++) {
                mu[t] = (float)s[t];
                mu_lo[t] = (float)(s[t] - mu[t]); /* as in the last-dim forward */
                rs[t] = (float)(1.0 / sqrt(ss[t] / C + eps));
                if (mean.data) mean.data[b * T + t0 + t] = mu[t];
                if (rstd.data) rstd.data[b * T + t0 + t] = rs[t];
            }
            for (int64_t c = 0; c < C; c++) {
                float gc = gamma.data ? gamma.data[c] : 1.0f, bc = beta.data ? beta.data[c] : 0.0f;
#pragma omp simd
                for (int64_t t = 0; t < nt; t++)
                    yb[c * T + t] = ((xb[c * T + t] - mu[t]) - mu_lo[t]) * rs[t] * gc + bc;
            }
        }
}

void tal_layernorm_ct_forward(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                              tal_tensor gamma, tal_tensor beta, float eps) {
    TAL_ASSERT(x.ndim == 3);
    TAL_ASSERT_SAME_SHAPE(y, x);
    TAL_ASSERT_MSG(eps >= 0, "eps %g", eps);
    TAL_ASSERT(!gamma.data || tal_tensor_numel(gamma) == x.shape[1]);
    TAL_ASSERT(!beta.data || (gamma.data && tal_tensor_numel(beta) == x.shape[1]));
    TAL_ASSERT(!mean.data || tal_tensor_numel(mean) == x.shape[0] * x.shape[2]);
    TAL_ASSERT(!rstd.data || tal_tensor_numel(rstd) == x.shape[0] * x.shape[2]);
    tal_device dev = OP_DEVICE(y, mean, rstd, x, gamma, beta);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        layernorm_ct_forward_cuda(y, mean, rstd, x, gamma, beta, eps);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    layernorm_ct_forward_cpu(y, mean, rstd, x, gamma, beta, eps);
}

static void layernorm_ct_backward_cpu(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta,
                                      tal_tensor dy, tal_tensor x, tal_tensor gamma,
                                      tal_tensor mean, tal_tensor rstd) {
    int64_t B = x.shape[0], C = x.shape[1], T = x.shape[2];
    int64_t nblk = (T + T_BLOCK - 1) / T_BLOCK;
    if (dgamma.data || dbeta.data) {
        /* Channel c sums over (b, t), each (b, c) row of length T contiguous; done before dx is
         * written, so dx may alias dy. */
#pragma omp parallel for schedule(static) if (B * C * T > PAR_MIN)
        for (int64_t c = 0; c < C; c++) {
            double sg = 0, sb = 0;
            for (int64_t b = 0; b < B; b++) {
                const float *dyc = dy.data + b * C * T + c * T, *xc = x.data + b * C * T + c * T;
                const float *mu = mean.data + b * T, *rs = rstd.data + b * T;
#pragma omp simd reduction(+ : sg, sb)
                for (int64_t t = 0; t < T; t++) {
                    sg += (double)dyc[t] * ((xc[t] - mu[t]) * rs[t]);
                    sb += dyc[t];
                }
            }
            if (dgamma.data) dgamma.data[c] += (float)sg;
            if (dbeta.data) dbeta.data[c] += (float)sb;
        }
    }
    if (dx.data) {
#pragma omp parallel for collapse(2) schedule(static) if (B * C * T > PAR_MIN)
        for (int64_t b = 0; b < B; b++)
            for (int64_t blk = 0; blk < nblk; blk++) {
                int64_t t0 = blk * T_BLOCK, nt = T - t0 < T_BLOCK ? T - t0 : T_BLOCK;
                int64_t o = b * C * T + t0;
                const float *mu = mean.data + b * T + t0, *rs = rstd.data + b * T + t0;
                double sg[T_BLOCK] = {0}, sgx[T_BLOCK] = {0};
                for (int64_t c = 0; c < C; c++) {
                    float gc = gamma.data ? gamma.data[c] : 1.0f;
                    const float *dyc = dy.data + o + c * T, *xc = x.data + o + c * T;
#pragma omp simd
                    for (int64_t t = 0; t < nt; t++) {
                        float g = dyc[t] * gc;
                        sg[t] += g;
                        sgx[t] += (double)g * ((xc[t] - mu[t]) * rs[t]);
                    }
                }
                float mg[T_BLOCK], mgx[T_BLOCK];
                for (int64_t t = 0; t < nt; t++) {
                    mg[t] = (float)(sg[t] / C);
                    mgx[t] = (float)(sgx[t] / C);
                }
                for (int64_t c = 0; c < C; c++) {
                    float gc = gamma.data ? gamma.data[c] : 1.0f;
                    const float *dyc = dy.data + o + c * T, *xc = x.data + o + c * T;
                    float *dxc = dx.data + o + c * T;
#pragma omp simd
                    for (int64_t t = 0; t < nt; t++)
                        dxc[t] = rs[t] * (dyc[t] * gc - mg[t] - (xc[t] - mu[t]) * rs[t] * mgx[t]);
                }
            }
    }
}

void tal_layernorm_ct_backward(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta,
                               tal_tensor dy, tal_tensor x, tal_tensor gamma, tal_tensor mean,
                               tal_tensor rstd) {
    TAL_ASSERT(x.ndim == 3);
    TAL_ASSERT_SAME_SHAPE(dy, x);
    TAL_ASSERT(!dx.data || tal_tensor_same_shape(dx, x));
    TAL_ASSERT(!gamma.data || tal_tensor_numel(gamma) == x.shape[1]);
    TAL_ASSERT(!dgamma.data || tal_tensor_numel(dgamma) == x.shape[1]);
    TAL_ASSERT(!dbeta.data || tal_tensor_numel(dbeta) == x.shape[1]);
    TAL_ASSERT(tal_tensor_numel(x) == 0 ||
               (mean.data && rstd.data && tal_tensor_numel(mean) == x.shape[0] * x.shape[2] &&
                tal_tensor_numel(rstd) == x.shape[0] * x.shape[2]));
    tal_device dev = OP_DEVICE(dx, dgamma, dbeta, dy, x, gamma, mean, rstd);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        layernorm_ct_backward_cuda(dx, dgamma, dbeta, dy, x, gamma, mean, rstd);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    layernorm_ct_backward_cpu(dx, dgamma, dbeta, dy, x, gamma, mean, rstd);
}
