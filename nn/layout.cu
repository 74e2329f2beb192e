/* nn/layout.cu: CUDA twins of layout.c: one thread per output element (grid-stride), offsets
 * from device_math.h's layout helpers (the CPU tests check them against the CPU ops). Each
 * output element is written by one thread, once: no atomics, the same bits as the CPU. */
#include "cuda_common.cuh"

/* ---------------------------------------------------------------- rows by index map ----- */
__global__ void rows_gather_kernel(float *dst, const float *src, const int32_t *map, int64_t C,
                                   int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int32_t s = map[e / C];
        dst[e] = s < 0 ? 0.0f : src[(int64_t)s * C + e % C];
    }
}

void rows_gather_cuda(tal_tensor dst, tal_tensor src, tal_index map) {
    int64_t n = tal_tensor_numel(dst);
    if (!n) return;
    rows_gather_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(dst.data, src.data,
                                                                         map.data, dst.shape[1], n);
    TAL_LAUNCH_CHECK();
}

/* One thread per element of src: distinct map entries, so no two threads share a dst row. */
__global__ void rows_scatter_kernel(float *dst, const float *src, const int32_t *map, int64_t C,
                                    int accumulate, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int32_t s = map[e / C];
        if (s < 0) continue;
        float *d = dst + (int64_t)s * C + e % C;
        *d = accumulate ? __fadd_rn(*d, src[e]) : src[e];
    }
}

void rows_scatter_cuda(tal_tensor dst, tal_tensor src, tal_index map, int accumulate) {
    int64_t n = tal_tensor_numel(src);
    if (!n) return;
    rows_scatter_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dst.data, src.data, map.data, src.shape[1], accumulate, n);
    TAL_LAUNCH_CHECK();
}

__global__ void rows_zero_unmapped_kernel(float *t, const int32_t *map, int64_t C, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        if (map[e / C] < 0) t[e] = 0.0f;
    }
}

void rows_zero_unmapped_cuda(tal_tensor t, tal_index map) {
    int64_t n = tal_tensor_numel(t);
    if (!n) return;
    rows_zero_unmapped_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        t.data, map.data, t.shape[1], n);
    TAL_LAUNCH_CHECK();
}

/* ---------------------------------------------------------------- bias table ------------ */
/* bias [H, nn]: element e = h * nn + ij. */
__global__ void bias_gather_kernel(float *bias, const float *table, const int32_t *index,
                                   int64_t heads, int64_t nn, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t h = e / nn, ij = e % nn;
        bias[e] = table[(int64_t)index[ij] * heads + h];
    }
}

void bias_gather_cuda(tal_tensor bias, tal_tensor table, tal_index index) {
    int64_t n = tal_tensor_numel(bias);
    if (!n) return;
    bias_gather_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        bias.data, table.data, index.data, bias.shape[0], index.n, n);
    TAL_LAUNCH_CHECK();
}

/* One thread per table entry (r, h): its pairs, in the grouped index's increasing order, added
 * to it one by one (the CPU's order: the same bits, and no atomics). */
__global__ void bias_gather_backward_kernel(float *dtable, const float *dbias,
                                            const int32_t *start, const int32_t *members,
                                            int64_t heads, int64_t nn, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t r = e / heads, h = e % heads;
        float acc = dtable[e];
        for (int32_t k = start[r]; k < start[r + 1]; k++)
            acc = __fadd_rn(acc, dbias[h * nn + members[k]]);
        dtable[e] = acc;
    }
}

void bias_gather_backward_cuda(tal_tensor dtable, tal_tensor dbias, tal_index by_row) {
    int64_t n = tal_tensor_numel(dtable), rows = dtable.shape[0];
    if (!n) return;
    bias_gather_backward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dtable.data, dbias.data, by_row.data, by_row.data + rows + 1, dtable.shape[1],
        dbias.shape[1] * dbias.shape[2], n);
    TAL_LAUNCH_CHECK();
}

/* ---------------------------------------------------------------- PatchMerging ---------- */
__global__ void merge2x2_forward_kernel(float *m4, const float *x, int64_t H, int64_t W,
                                        int64_t C, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t s = merge2x2_source(e, H, W, C);
        m4[e] = s < 0 ? 0.0f : x[s];
    }
}

void merge2x2_forward_cuda(tal_tensor m4, tal_tensor x) {
    int64_t n = tal_tensor_numel(m4);
    if (!n) return;
    merge2x2_forward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        m4.data, x.data, x.shape[1], x.shape[2], x.shape[3], n);
    TAL_LAUNCH_CHECK();
}

__global__ void merge2x2_backward_kernel(float *dx, const float *dm4, int64_t H, int64_t W,
                                         int64_t C, int64_t n) {
    GRID_STRIDE_LOOP(e, n) dx[e] = dm4[merge2x2_slot(e, H, W, C)];
}

void merge2x2_backward_cuda(tal_tensor dx, tal_tensor dm4) {
    int64_t n = tal_tensor_numel(dx);
    if (!n) return;
    merge2x2_backward_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dx.data, dm4.data, dx.shape[1], dx.shape[2], dx.shape[3], n);
    TAL_LAUNCH_CHECK();
}

/* ---------------------------------------------------------------- transpose, pad, slice -- */
/* Writes coalesced, reads strided: simple first (a tiled transpose would read coalesced too). */
__global__ void transpose_last2_kernel(float *dst, const float *src, int64_t M, int64_t N,
                                       int64_t n) {
    GRID_STRIDE_LOOP(e, n) dst[e] = src[transpose_last2_source(e, M, N)];
}

void transpose_last2_cuda(tal_tensor dst, tal_tensor src) {
    int64_t n = tal_tensor_numel(dst);
    if (!n) return;
    transpose_last2_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dst.data, src.data, src.shape[1], src.shape[2], n);
    TAL_LAUNCH_CHECK();
}

__global__ void pad_end3_kernel(float *dst, const float *src, int64_t T, int64_t H, int64_t W,
                                int64_t T2, int64_t H2, int64_t W2, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t s = pad_end3_source(e, T, H, W, T2, H2, W2);
        dst[e] = s < 0 ? 0.0f : src[s];
    }
}

void pad_end3_cuda(tal_tensor dst, tal_tensor src) {
    int64_t n = tal_tensor_numel(dst);
    if (!n) return;
    pad_end3_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dst.data, src.data, src.shape[1], src.shape[2], src.shape[3], dst.shape[1], dst.shape[2],
        dst.shape[3], n);
    TAL_LAUNCH_CHECK();
}

__global__ void copy_slice1_kernel(float *dst, const float *src, int64_t len, int64_t I,
                                   int64_t Ld, int64_t d0, int64_t Ls, int64_t s0, int64_t n) {
    GRID_STRIDE_LOOP(e, n) {
        int64_t od, os;
        slice1_offsets(e, len, I, Ld, d0, Ls, s0, &od, &os);
        dst[od] = src[os];
    }
}

void copy_slice1_cuda(tal_tensor dst, int64_t d0, tal_tensor src, int64_t s0, int64_t len) {
    int64_t n = dst.shape[0] * len * dst.shape[2];
    if (!n) return;
    copy_slice1_kernel<<<grid_for(n), TAL_BLOCK, 0, tal_cuda_stream()>>>(
        dst.data, src.data, len, dst.shape[2], dst.shape[1], d0, src.shape[1], s0, n);
    TAL_LAUNCH_CHECK();
}
