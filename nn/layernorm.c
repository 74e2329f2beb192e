/* nn/layernorm.c: LayerNorm over the last dim ([N, C]) and over channels of [B, C, T], forward
 * and backward. Statistics in double: C is small (32..1536) so it costs little, and the
 * reversible backward subtracts recomputed outputs, where float cancellation would grow. */
#include "nn.h"

#include <math.h>

static void layernorm_forward_cpu(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                                  tal_tensor gamma, tal_tensor beta, float eps) {
    int64_t n = tal_tensor_rows(x), c = tal_tensor_cols(x);
#pragma omp parallel for schedule(static) if (n * c > 32768)
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x.data + r * c;
        float *yr = y.data + r * c;
        double s = 0, ss = 0;
        for (int64_t j = 0; j < c; j++) s += xr[j];
        double mu = s / c;
        for (int64_t j = 0; j < c; j++) ss += (xr[j] - mu) * (xr[j] - mu);
        double rs = 1.0 / sqrt(ss / c + eps);
        for (int64_t j = 0; j < c; j++) {
            float v = (float)((xr[j] - mu) * rs);
            if (gamma.data) v = v * gamma.data[j] + (beta.data ? beta.data[j] : 0.0f);
            yr[j] = v;
        }
        if (mean.data) mean.data[r] = (float)mu;
        if (rstd.data) rstd.data[r] = (float)rs;
    }
}

void tal_layernorm_forward(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                           tal_tensor gamma, tal_tensor beta, float eps) {
    TAL_ASSERT_SAME_SHAPE(y, x);
    TAL_ASSERT_SAME_DEVICE(y, x);
    TAL_ASSERT(!gamma.data || tal_tensor_numel(gamma) == tal_tensor_cols(x));
    TAL_ASSERT(!mean.data || tal_tensor_numel(mean) == tal_tensor_rows(x));
    layernorm_forward_cpu(y, mean, rstd, x, gamma, beta, eps);
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma. */
static void layernorm_backward_cpu(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta,
                                   tal_tensor dy, tal_tensor x, tal_tensor gamma, tal_tensor mean,
                                   tal_tensor rstd) {
    int64_t n = tal_tensor_rows(x), c = tal_tensor_cols(x);
    if (dx.data) {
#pragma omp parallel for schedule(static) if (n * c > 32768)
        for (int64_t r = 0; r < n; r++) {
            const float *xr = x.data + r * c, *dyr = dy.data + r * c;
            float mu = mean.data[r], rs = rstd.data[r];
            double sg = 0, sgx = 0;
            for (int64_t j = 0; j < c; j++) {
                double g = dyr[j] * (gamma.data ? gamma.data[j] : 1.0f);
                sg += g;
                sgx += g * (xr[j] - mu) * rs;
            }
            double mg = sg / c, mgx = sgx / c;
            float *dxr = dx.data + r * c;
            for (int64_t j = 0; j < c; j++) {
                double g = dyr[j] * (gamma.data ? gamma.data[j] : 1.0f);
                dxr[j] = (float)(rs * (g - mg - (xr[j] - mu) * rs * mgx));
            }
        }
    }
    if (dgamma.data || dbeta.data) {
#pragma omp parallel for schedule(static) if (n * c > 32768)
        for (int64_t j = 0; j < c; j++) {
            double sg = 0, sb = 0;
            for (int64_t r = 0; r < n; r++) {
                float d = dy.data[r * c + j];
                sg += d * (x.data[r * c + j] - mean.data[r]) * rstd.data[r];
                sb += d;
            }
            if (dgamma.data) dgamma.data[j] += (float)sg;
            if (dbeta.data) dbeta.data[j] += (float)sb;
        }
    }
}

void tal_layernorm_backward(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta, tal_tensor dy,
                            tal_tensor x, tal_tensor gamma, tal_tensor mean, tal_tensor rstd) {
    TAL_ASSERT_SAME_SHAPE(dy, x);
    TAL_ASSERT(!dx.data || tal_tensor_same_shape(dx, x));
    TAL_ASSERT(mean.data && rstd.data);
    layernorm_backward_cpu(dx, dgamma, dbeta, dy, x, gamma, mean, rstd);
}

/* ---- channels of [B, C, T]: column (b, t) normalised over C (stride T) ---- */
static void layernorm_ct_forward_cpu(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                                     tal_tensor gamma, tal_tensor beta, float eps) {
    int64_t B = x.shape[0], C = x.shape[1], T = x.shape[2];
#pragma omp parallel for collapse(2) schedule(static) if (B * C * T > 32768)
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            const float *xc = x.data + b * C * T + t;
            float *yc = y.data + b * C * T + t;
            double s = 0, ss = 0;
            for (int64_t c = 0; c < C; c++) s += xc[c * T];
            double mu = s / C;
            for (int64_t c = 0; c < C; c++) ss += (xc[c * T] - mu) * (xc[c * T] - mu);
            double rs = 1.0 / sqrt(ss / C + eps);
            for (int64_t c = 0; c < C; c++) {
                float v = (float)((xc[c * T] - mu) * rs);
                if (gamma.data) v = v * gamma.data[c] + (beta.data ? beta.data[c] : 0.0f);
                yc[c * T] = v;
            }
            if (mean.data) mean.data[b * T + t] = (float)mu;
            if (rstd.data) rstd.data[b * T + t] = (float)rs;
        }
}

void tal_layernorm_ct_forward(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                              tal_tensor gamma, tal_tensor beta, float eps) {
    TAL_ASSERT(x.ndim == 3);
    TAL_ASSERT_SAME_SHAPE(y, x);
    TAL_ASSERT(!gamma.data || tal_tensor_numel(gamma) == x.shape[1]);
    TAL_ASSERT(!mean.data || tal_tensor_numel(mean) == x.shape[0] * x.shape[2]);
    layernorm_ct_forward_cpu(y, mean, rstd, x, gamma, beta, eps);
}

static void layernorm_ct_backward_cpu(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta,
                                      tal_tensor dy, tal_tensor x, tal_tensor gamma,
                                      tal_tensor mean, tal_tensor rstd) {
    int64_t B = x.shape[0], C = x.shape[1], T = x.shape[2];
    if (dx.data) {
#pragma omp parallel for collapse(2) schedule(static) if (B * C * T > 32768)
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++) {
                int64_t o = b * C * T + t;
                float mu = mean.data[b * T + t], rs = rstd.data[b * T + t];
                double sg = 0, sgx = 0;
                for (int64_t c = 0; c < C; c++) {
                    double g = dy.data[o + c * T] * (gamma.data ? gamma.data[c] : 1.0f);
                    sg += g;
                    sgx += g * (x.data[o + c * T] - mu) * rs;
                }
                double mg = sg / C, mgx = sgx / C;
                for (int64_t c = 0; c < C; c++) {
                    double g = dy.data[o + c * T] * (gamma.data ? gamma.data[c] : 1.0f);
                    dx.data[o + c * T] = (float)(rs * (g - mg - (x.data[o + c * T] - mu) * rs * mgx));
                }
            }
    }
    if (dgamma.data || dbeta.data) {
#pragma omp parallel for schedule(static) if (B * C * T > 32768)
        for (int64_t c = 0; c < C; c++) {
            double sg = 0, sb = 0;
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < T; t++) {
                    int64_t i = b * C * T + c * T + t;
                    sg += dy.data[i] * (x.data[i] - mean.data[b * T + t]) * rstd.data[b * T + t];
                    sb += dy.data[i];
                }
            if (dgamma.data) dgamma.data[c] += (float)sg;
            if (dbeta.data) dbeta.data[c] += (float)sb;
        }
    }
}

void tal_layernorm_ct_backward(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta,
                               tal_tensor dy, tal_tensor x, tal_tensor gamma, tal_tensor mean,
                               tal_tensor rstd) {
    TAL_ASSERT(x.ndim == 3);
    TAL_ASSERT_SAME_SHAPE(dy, x);
    TAL_ASSERT(mean.data && rstd.data);
    layernorm_ct_backward_cpu(dx, dgamma, dbeta, dy, x, gamma, mean, rstd);
}
