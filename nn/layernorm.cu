/* nn/layernorm.cu: CUDA twin of layernorm.c, the same arithmetic: statistics and row sums in
 * double, two passes (mean, then squared deviations), the float mean's rounding taken back out
 * (mu_lo). Last dim: one warp per row (a fixed butterfly sum: the same bits every run, as the
 * recompute needs). Channels of [B, C, T]: one thread per column (b, t), reading along t.
 * dgamma / dbeta: per-channel sums in two deterministic passes (cuda_reduce.cuh), launched
 * before dx is written, so dx may alias dy as on the CPU. */
#include "cuda_reduce.cuh"

#define WARPS_PER_BLOCK 8

static unsigned row_blocks(int64_t rows) {
    return (unsigned)((rows + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK);
}

__global__ void layernorm_rows_per_warp(float *y, float *mean, float *rstd, const float *x,
                                        const float *g, const float *bt, int64_t rows,
                                        int64_t c, float eps) {
    int64_t r = (int64_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const float *xr = x + r * c;
    double s = 0;
    for (int64_t j = lane; j < c; j += 32) s += xr[j];
    double mu = warp_sum_double(s) / (double)c;
    double ss = 0;
    for (int64_t j = lane; j < c; j += 32) ss += ((double)xr[j] - mu) * ((double)xr[j] - mu);
    double rs = 1.0 / sqrt(warp_sum_double(ss) / (double)c + eps);
    float muf = (float)mu, mu_lo = (float)(mu - muf), rsf = (float)rs;
    float *yr = y + r * c; /* may be xr: every lane read its elements above */
    for (int64_t j = lane; j < c; j += 32) {
        float v = ((xr[j] - muf) - mu_lo) * rsf;
        yr[j] = g ? v * g[j] + (bt ? bt[j] : 0.0f) : v;
    }
    if (lane == 0) {
        if (mean) mean[r] = muf;
        if (rstd) rstd[r] = rsf;
    }
}

void layernorm_forward_cuda(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                            tal_tensor gamma, tal_tensor beta, float eps) {
    int64_t rows = tal_tensor_rows(x), c = tal_tensor_cols(x);
    if (rows == 0 || c == 0) return;
    layernorm_rows_per_warp<<<row_blocks(rows), 32 * WARPS_PER_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, mean.data, rstd.data, x.data, gamma.data, beta.data, rows, c, eps);
    TAL_LAUNCH_CHECK();
}

/* dy * xhat (dgamma) or dy (dbeta) of element (row o, channel c) of [rows, C]. */
struct ln_param_value {
    const float *dy, *x, *mean, *rstd;
    int64_t C;
    int want_gamma;
    __device__ double operator()(int64_t c, int64_t o, int64_t) const {
        float d = dy[o * C + c];
        if (!want_gamma) return d;
        return (double)d * ((x[o * C + c] - mean[o]) * rstd[o]);
    }
};

__global__ void layernorm_backward_rows_per_warp(float *dx, const float *dy, const float *x,
                                                 const float *gamma, const float *mean,
                                                 const float *rstd, int64_t rows, int64_t c) {
    int64_t r = (int64_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const float *xr = x + r * c, *dyr = dy + r * c;
    float mu = mean[r], rs = rstd[r];
    double sg = 0, sgx = 0;
    for (int64_t j = lane; j < c; j += 32) {
        float gj = dyr[j] * (gamma ? gamma[j] : 1.0f);
        sg += gj;
        sgx += (double)gj * ((xr[j] - mu) * rs);
    }
    float mg = (float)(warp_sum_double(sg) / (double)c);
    float mgx = (float)(warp_sum_double(sgx) / (double)c);
    float *dxr = dx + r * c; /* may be dyr: every lane read its elements above */
    for (int64_t j = lane; j < c; j += 32) {
        float xh = (xr[j] - mu) * rs;
        dxr[j] = rs * (dyr[j] * (gamma ? gamma[j] : 1.0f) - mg - xh * mgx);
    }
}

void layernorm_backward_cuda(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta, tal_tensor dy,
                             tal_tensor x, tal_tensor gamma, tal_tensor mean, tal_tensor rstd) {
    int64_t rows = tal_tensor_rows(x), c = tal_tensor_cols(x);
    if (rows == 0 || c == 0) return;
    ln_param_value v = {dy.data, x.data, mean.data, rstd.data, c, 1};
    if (dgamma.data) channel_sum(dgamma.data, c, rows, 1, v);
    v.want_gamma = 0;
    if (dbeta.data) channel_sum(dbeta.data, c, rows, 1, v);
    if (!dx.data) return;
    layernorm_backward_rows_per_warp<<<row_blocks(rows), 32 * WARPS_PER_BLOCK, 0,
                                       tal_cuda_stream()>>>(dx.data, dy.data, x.data, gamma.data,
                                                            mean.data, rstd.data, rows, c);
    TAL_LAUNCH_CHECK();
}

/* ---- channels of [B, C, T]: thread per column (b, t), elements C apart by T ---- */
__global__ void layernorm_ct_columns(float *y, float *mean, float *rstd, const float *x,
                                     const float *g, const float *bt, int64_t B, int64_t C,
                                     int64_t T, float eps) {
    GRID_STRIDE_LOOP(col, B * T) {
        int64_t b = col / T, t = col % T;
        const float *xc = x + b * C * T + t;
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += xc[c * T];
        double mu = s / (double)C, ss = 0;
        for (int64_t c = 0; c < C; c++) ss += ((double)xc[c * T] - mu) * ((double)xc[c * T] - mu);
        float muf = (float)mu, mu_lo = (float)(mu - muf), rs = (float)(1.0 / sqrt(ss / C + eps));
        if (mean) mean[col] = muf;
        if (rstd) rstd[col] = rs;
        float *yc = y + b * C * T + t;
        for (int64_t c = 0; c < C; c++) {
            float gc = g ? g[c] : 1.0f, bc = bt ? bt[c] : 0.0f;
            yc[c * T] = ((xc[c * T] - muf) - mu_lo) * rs * gc + bc;
        }
    }
}

void layernorm_ct_forward_cuda(tal_tensor y, tal_tensor mean, tal_tensor rstd, tal_tensor x,
                               tal_tensor gamma, tal_tensor beta, float eps) {
    int64_t B = x.shape[0], C = x.shape[1], T = x.shape[2];
    if (B * C * T == 0) return;
    layernorm_ct_columns<<<grid_for(B * T), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        y.data, mean.data, rstd.data, x.data, gamma.data, beta.data, B, C, T, eps);
    TAL_LAUNCH_CHECK();
}

/* dy * xhat or dy of element (b = o, channel c, t = i) of [B, C, T]. */
struct ln_ct_param_value {
    const float *dy, *x, *mean, *rstd;
    int64_t C, T;
    int want_gamma;
    __device__ double operator()(int64_t c, int64_t b, int64_t t) const {
        int64_t at = (b * C + c) * T + t;
        if (!want_gamma) return dy[at];
        return (double)dy[at] * ((x[at] - mean[b * T + t]) * rstd[b * T + t]);
    }
};

__global__ void layernorm_ct_backward_columns(float *dx, const float *dy, const float *x,
                                              const float *g, const float *mean,
                                              const float *rstd, int64_t B, int64_t C,
                                              int64_t T) {
    GRID_STRIDE_LOOP(col, B * T) {
        int64_t b = col / T, t = col % T, o = b * C * T + t;
        float mu = mean[col], rs = rstd[col];
        double sg = 0, sgx = 0;
        for (int64_t c = 0; c < C; c++) {
            float gv = dy[o + c * T] * (g ? g[c] : 1.0f);
            sg += gv;
            sgx += (double)gv * ((x[o + c * T] - mu) * rs);
        }
        float mg = (float)(sg / C), mgx = (float)(sgx / C);
        for (int64_t c = 0; c < C; c++) {
            float gc = g ? g[c] : 1.0f;
            dx[o + c * T] = rs * (dy[o + c * T] * gc - mg - (x[o + c * T] - mu) * rs * mgx);
        }
    }
}

void layernorm_ct_backward_cuda(tal_tensor dx, tal_tensor dgamma, tal_tensor dbeta,
                                tal_tensor dy, tal_tensor x, tal_tensor gamma, tal_tensor mean,
                                tal_tensor rstd) {
    int64_t B = x.shape[0], C = x.shape[1], T = x.shape[2];
    if (B * C * T == 0) return;
    ln_ct_param_value v = {dy.data, x.data, mean.data, rstd.data, C, T, 1};
    if (dgamma.data) channel_sum(dgamma.data, C, B, T, v);
    v.want_gamma = 0;
    if (dbeta.data) channel_sum(dbeta.data, C, B, T, v);
    if (!dx.data) return;
    layernorm_ct_backward_columns<<<grid_for(B * T), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dx.data, dy.data, x.data, gamma.data, mean.data, rstd.data, B, C, T);
    TAL_LAUNCH_CHECK();
}
