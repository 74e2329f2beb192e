/* nn/layout.c: data movement of the backbone as ops (nn.h "ops: layout"): index views, row
 * gathers and scatters through an index map (Swin's pad + shift + window partition), the
 * relative-position bias table, PatchMerging's 2x2 gather, transposes, end padding and slices
 * along time. Every output element is a copy (or one addition for an accumulating scatter),
 * so both devices give the same bits. CUDA twins in layout.cu (element offsets shared through
 * device_math.h). */
#include "nn.h"
#include "cuda_ops.h"
#include "dispatch.h"

#include <string.h>

/* ---------------------------------------------------------------- index views ----------- */
tal_index tal_arena_index(tal_arena *a, int64_t n) {
    TAL_ASSERT(n >= 0);
    tal_index ix = {(int32_t *)tal_arena_bytes(a, sizeof(int32_t) * (size_t)n), n,
                    tal_arena_device(a)};
    return ix;
}

tal_index tal_index_slice(tal_index ix, int64_t start, int64_t count) {
    TAL_ASSERT_MSG(start >= 0 && count >= 0 && start + count <= ix.n, "[%lld, %lld) of %lld",
                   (long long)start, (long long)(start + count), (long long)ix.n);
    tal_index r = ix;
    if (r.data) r.data += start;
    r.n = count;
    return r;
}

void tal_index_upload(tal_index ix, const int32_t *host) {
    if (!ix.n) return;
    tal_err err = {TAL_OK, ""};
    tal_status rc = tal_copy_bytes(ix.data, ix.device, host, TAL_DEV_CPU,
                                   sizeof(int32_t) * (size_t)ix.n, &err);
    TAL_ASSERT_MSG(rc == TAL_OK, "tal_index_upload: %s", err.msg);
}

int64_t tal_index_group_by(int32_t *out, const int32_t *index, int64_t n, int64_t rows) {
    int32_t *start = out, *members = out + rows + 1;
    memset(start, 0, sizeof(int32_t) * (size_t)(rows + 1));
    for (int64_t i = 0; i < n; i++) {
        TAL_ASSERT_MSG(index[i] >= 0 && index[i] < rows, "index[%lld] = %d of %lld rows",
                       (long long)i, index[i], (long long)rows);
        start[index[i] + 1]++;
    }
    for (int64_t r = 0; r < rows; r++) start[r + 1] += start[r];
    for (int64_t i = 0; i < n; i++) members[start[index[i]]++] = (int32_t)i; /* fill: moves */
    for (int64_t r = rows; r > 0; r--) start[r] = start[r - 1];               /* back to starts */
    start[0] = 0;
    return rows + 1 + n;
}

/* An index map's device must be its tensors'. */
static void check_index_device(const char *op, tal_index ix, tal_device dev) {
    TAL_ASSERT_MSG(!ix.data || ix.device == dev, "%s: index map on %s, tensors on %s", op,
                   device_name_of(ix.device), device_name_of(dev));
}

/* ---------------------------------------------------------------- rows by index map ----- */
static void check_rows(tal_tensor rows_t, tal_tensor other, tal_index map) {
    TAL_ASSERT(rows_t.ndim == 2 && other.ndim == 2 && rows_t.shape[1] == other.shape[1]);
    TAL_ASSERT_MSG(map.n == rows_t.shape[0], "map of %lld for %lld rows", (long long)map.n,
                   (long long)rows_t.shape[0]);
}

void tal_rows_gather(tal_tensor dst, tal_tensor src, tal_index map) {
    check_rows(dst, src, map);
    tal_device dev = OP_DEVICE(dst, src);
    check_index_device(__func__, map, dev);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        rows_gather_cuda(dst, src, map);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t R = dst.shape[0], C = dst.shape[1], S = src.shape[0];
    const int32_t *mp = map.data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        float *d = dst.data + r * C;
        TAL_ASSERT_MSG(mp[r] < S, "map[%lld] = %d of %lld rows", (long long)r, mp[r],
                       (long long)S);
        if (mp[r] < 0)
            memset(d, 0, sizeof(float) * (size_t)C);
        else
            memcpy(d, src.data + (int64_t)mp[r] * C, sizeof(float) * (size_t)C);
    }
}

void tal_rows_scatter(tal_tensor dst, tal_tensor src, tal_index map, int accumulate) {
    check_rows(src, dst, map);
    tal_device dev = OP_DEVICE(dst, src);
    check_index_device(__func__, map, dev);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        rows_scatter_cuda(dst, src, map, accumulate);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t R = src.shape[0], C = src.shape[1], S = dst.shape[0];
    const int32_t *mp = map.data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        if (mp[r] < 0) continue;
        TAL_ASSERT_MSG(mp[r] < S, "map[%lld] = %d of %lld rows", (long long)r, mp[r],
                       (long long)S);
        float *d = dst.data + (int64_t)mp[r] * C;
        const float *s = src.data + r * C;
        if (accumulate)
            for (int64_t c = 0; c < C; c++) d[c] += s[c];
        else
            memcpy(d, s, sizeof(float) * (size_t)C);
    }
}

void tal_rows_zero_unmapped(tal_tensor t, tal_index map) {
    check_rows(t, t, map);
    tal_device dev = OP_DEVICE(t);
    check_index_device(__func__, map, dev);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        rows_zero_unmapped_cuda(t, map);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t R = t.shape[0], C = t.shape[1];
    for (int64_t r = 0; r < R; r++)
        if (map.data[r] < 0) memset(t.data + r * C, 0, sizeof(float) * (size_t)C);
}

/* ---------------------------------------------------------------- bias table ------------ */
void tal_bias_gather(tal_tensor bias, tal_tensor table, tal_index index) {
    TAL_ASSERT(bias.ndim == 3 && bias.shape[1] == bias.shape[2] && table.ndim == 2);
    TAL_ASSERT(table.shape[1] == bias.shape[0] && index.n == bias.shape[1] * bias.shape[2]);
    tal_device dev = OP_DEVICE(bias, table);
    check_index_device(__func__, index, dev);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        bias_gather_cuda(bias, table, index);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t heads = bias.shape[0], nn = index.n, rows = table.shape[0];
#pragma omp parallel for schedule(static)
    for (int64_t ij = 0; ij < nn; ij++) {
        TAL_ASSERT(index.data[ij] >= 0 && index.data[ij] < rows);
        const float *row = table.data + (int64_t)index.data[ij] * heads;
        for (int64_t h = 0; h < heads; h++) bias.data[h * nn + ij] = row[h];
    }
}

void tal_bias_gather_backward(tal_tensor dtable, tal_tensor dbias, tal_index by_row) {
    TAL_ASSERT(dbias.ndim == 3 && dtable.ndim == 2 && dtable.shape[1] == dbias.shape[0]);
    int64_t heads = dbias.shape[0], nn = dbias.shape[1] * dbias.shape[2], rows = dtable.shape[0];
    TAL_ASSERT_MSG(by_row.n == rows + 1 + nn, "grouped index of %lld for %lld rows, %lld pairs",
                   (long long)by_row.n, (long long)rows, (long long)nn);
    tal_device dev = OP_DEVICE(dtable, dbias);
    check_index_device(__func__, by_row, dev);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        bias_gather_backward_cuda(dtable, dbias, by_row);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    const int32_t *start = by_row.data, *members = by_row.data + rows + 1;
    /* each table row is summed by one thread, over its pairs in increasing order */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t h = 0; h < heads; h++) {
            float acc = dtable.data[r * heads + h];
            for (int32_t k = start[r]; k < start[r + 1]; k++)
                acc += dbias.data[h * nn + members[k]];
            dtable.data[r * heads + h] = acc;
        }
}

/* ---------------------------------------------------------------- PatchMerging ---------- */
static void check_merge(tal_tensor m4, tal_tensor x) {
    TAL_ASSERT(x.ndim == 4 && m4.ndim == 4);
    TAL_ASSERT_MSG(m4.shape[0] == x.shape[0] && m4.shape[1] == (x.shape[1] + 1) / 2 &&
                       m4.shape[2] == (x.shape[2] + 1) / 2 && m4.shape[3] == 4 * x.shape[3],
                   "merge2x2: m4 [%lld, %lld, %lld, %lld] for x [%lld, %lld, %lld, %lld]",
                   (long long)m4.shape[0], (long long)m4.shape[1], (long long)m4.shape[2],
                   (long long)m4.shape[3], (long long)x.shape[0], (long long)x.shape[1],
                   (long long)x.shape[2], (long long)x.shape[3]);
}

void tal_merge2x2_forward(tal_tensor m4, tal_tensor x) {
    check_merge(m4, x);
    tal_device dev = OP_DEVICE(m4, x);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        merge2x2_forward_cuda(m4, x);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t A = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3];
    int64_t H2 = m4.shape[1], W2 = m4.shape[2];
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t a = 0; a < A; a++)
        for (int64_t i = 0; i < H2; i++)
            for (int64_t j = 0; j < W2; j++)
                for (int part = 0; part < 4; part++) {
                    int64_t h = 2 * i + (part & 1), w = 2 * j + (part >> 1);
                    float *dst = m4.data + ((a * H2 + i) * W2 + j) * 4 * C + part * C;
                    if (h < H && w < W)
                        memcpy(dst, x.data + ((a * H + h) * W + w) * C, sizeof(float) * C);
                    else
                        memset(dst, 0, sizeof(float) * C);
                }
}

void tal_merge2x2_backward(tal_tensor dx, tal_tensor dm4) {
    check_merge(dm4, dx);
    tal_device dev = OP_DEVICE(dx, dm4);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        merge2x2_backward_cuda(dx, dm4);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t A = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3];
    int64_t H2 = dm4.shape[1], W2 = dm4.shape[2];
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t a = 0; a < A; a++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                int part = (int)(h & 1) + 2 * (int)(w & 1);
                memcpy(dx.data + ((a * H + h) * W + w) * C,
                       dm4.data + ((a * H2 + h / 2) * W2 + w / 2) * 4 * C + part * C,
                       sizeof(float) * C);
            }
}

/* ---------------------------------------------------------------- transpose, pad, slice -- */
void tal_transpose_last2(tal_tensor dst, tal_tensor src) {
    TAL_ASSERT(dst.ndim == 3 && src.ndim == 3 && dst.shape[0] == src.shape[0] &&
               dst.shape[1] == src.shape[2] && dst.shape[2] == src.shape[1]);
    tal_device dev = OP_DEVICE(dst, src);
    TAL_ASSERT(dst.data != src.data || tal_tensor_numel(src) == 0); /* not in place */
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        transpose_last2_cuda(dst, src);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t A = src.shape[0], M = src.shape[1], N = src.shape[2];
    const int64_t TILE = 32; /* cache blocking: both sides stay within a few lines */
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t a = 0; a < A; a++)
        for (int64_t n0 = 0; n0 < N; n0 += TILE) {
            int64_t n1 = n0 + TILE < N ? n0 + TILE : N;
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = n0; n < n1; n++)
                    dst.data[(a * N + n) * M + m] = src.data[(a * M + m) * N + n];
        }
}

void tal_pad_end3(tal_tensor dst, tal_tensor src) {
    TAL_ASSERT(dst.ndim == 4 && src.ndim == 4 && dst.shape[0] == src.shape[0]);
    for (int a = 1; a < 4; a++) TAL_ASSERT(dst.shape[a] >= src.shape[a]);
    tal_device dev = OP_DEVICE(dst, src);
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        pad_end3_cuda(dst, src);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t A = src.shape[0], T = src.shape[1], H = src.shape[2], W = src.shape[3];
    int64_t T2 = dst.shape[1], H2 = dst.shape[2], W2 = dst.shape[3];
    memset(dst.data, 0, tal_tensor_bytes(dst));
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t a = 0; a < A; a++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++)
                memcpy(dst.data + ((a * T2 + t) * H2 + h) * W2,
                       src.data + ((a * T + t) * H + h) * W, sizeof(float) * W);
}

void tal_copy_slice1(tal_tensor dst, int64_t d0, tal_tensor src, int64_t s0, int64_t len) {
    TAL_ASSERT(dst.ndim == 3 && src.ndim == 3 && dst.shape[0] == src.shape[0] &&
               dst.shape[2] == src.shape[2]);
    TAL_ASSERT_MSG(len >= 0 && d0 >= 0 && s0 >= 0 && d0 + len <= dst.shape[1] &&
                       s0 + len <= src.shape[1],
                   "slice of %lld at %lld (dst %lld long) from %lld (src %lld long)",
                   (long long)len, (long long)d0, (long long)dst.shape[1], (long long)s0,
                   (long long)src.shape[1]);
    tal_device dev = OP_DEVICE(dst, src);
    TAL_ASSERT(dst.data != src.data || tal_tensor_numel(src) == 0 || len == 0);
    if (len == 0) return;
#ifdef TAL_HAVE_CUDA
    if (dev == TAL_DEV_CUDA) {
        copy_slice1_cuda(dst, d0, src, s0, len);
        return;
    }
#endif
    ASSERT_CPU_PATH(dev);
    int64_t A = dst.shape[0], I = dst.shape[2], Ld = dst.shape[1], Ls = src.shape[1];
    for (int64_t a = 0; a < A; a++)
        memcpy(dst.data + (a * Ld + d0) * I, src.data + (a * Ls + s0) * I,
               sizeof(float) * (size_t)(len * I));
}
