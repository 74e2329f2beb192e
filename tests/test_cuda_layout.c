/* The CUDA twins of the layout ops (nn.h "ops: layout") against the CPU ops on the same random
 * inputs. Every output element is a copy, one addition, a double sum in the CPU's order or
 * the same float operations, so the results must agree bit for bit. Odd sizes: padding slots,
 * odd PatchMerging edges, lengths that are not multiples of the 256-thread block, a batch of 1.
 * Skipped without a GPU. */
#include "cuda_check.h"
#include "layout_check.h"

TestSuite(cuda_layout, .fini = cuda_test_cleanup);

/* A device copy of a host index (the host array is borrowed only for the copy). */
static tal_index dev_index(const int32_t *host, int64_t n) {
    tal_index ix = tal_arena_index(dev_arena(), n);
    tal_index_upload(ix, host);
    return ix;
}

Test(cuda_layout, rows_gather_scatter_zero_match_cpu_bits) {
    CUDA_ONLY();
    const int64_t sizes[][3] = {{1, 1, 1}, {37, 30, 5}, {392 * 4, 1000, 96}, {301, 250, 3}};
    for (int k = 0; k < 4; k++) {
        int64_t R = sizes[k][0], S = sizes[k][1], C = sizes[k][2];
        int32_t *map = make_map(R, S);
        tal_index hix = host_index(map, R), dix = dev_index(map, R);
        tal_tensor src = rand_host(2, (int64_t[]){S, C}, 1 + k);
        tal_tensor dst = rand_host(2, (int64_t[]){R, C}, 10 + k), d_dst = dev_copy(dst);
        tal_rows_gather(dst, src, hix);
        tal_rows_gather(d_dst, dev_copy(src), dix);
        expect_dev_bits(d_dst, dst);
        for (int acc = 0; acc < 2; acc++) {
            tal_tensor x = rand_host(2, (int64_t[]){S, C}, 20 + k), d_x = dev_copy(x);
            tal_rows_scatter(x, dst, hix, acc);
            tal_rows_scatter(d_x, d_dst, dix, acc);
            expect_dev_bits(d_x, x);
        }
        tal_tensor t = rand_host(2, (int64_t[]){R, C}, 30 + k), d_t = dev_copy(t);
        tal_rows_zero_unmapped(t, hix);
        tal_rows_zero_unmapped(d_t, dix);
        expect_dev_bits(d_t, t);
        free(map);
    }
}

Test(cuda_layout, bias_table_and_its_gradient_match_cpu_bits) {
    CUDA_ONLY();
    /* Swin-T's window (8, 7, 7) clamped to (2, 7, 7): 98 tokens, 3 heads */
    int64_t rows, heads = 3, n = 2 * 7 * 7, nn = n * n;
    int32_t *ix = rel_index(2, 7, 7, 8, 7, 7, &rows);
    int32_t *grouped = malloc(sizeof(int32_t) * (size_t)(rows + 1 + nn));
    tal_index_group_by(grouped, ix, nn, rows);
    tal_tensor table = rand_host(2, (int64_t[]){rows, heads}, 1);
    tal_tensor bias = test_tensor(3, (int64_t[]){heads, n, n});
    tal_tensor d_bias = dev_tensor(3, (int64_t[]){heads, n, n});
    tal_bias_gather(bias, table, host_index(ix, nn));
    tal_bias_gather(d_bias, dev_copy(table), dev_index(ix, nn));
    expect_dev_bits(d_bias, bias);
    tal_tensor dbias = rand_host(3, (int64_t[]){heads, n, n}, 2);
    tal_tensor dtable = rand_host(2, (int64_t[]){rows, heads}, 3), d_dtable = dev_copy(dtable);
    tal_bias_gather_backward(dtable, dbias, host_index(grouped, rows + 1 + nn));
    tal_bias_gather_backward(d_dtable, dev_copy(dbias), dev_index(grouped, rows + 1 + nn));
    expect_dev_bits(d_dtable, dtable); /* the same sums in the same order */
    free(ix);
    free(grouped);
}

Test(cuda_layout, merge2x2_forward_backward_match_cpu_bits) {
    CUDA_ONLY();
    const int64_t sizes[][4] = {{1, 1, 1, 1}, {2, 5, 7, 3}, {8, 28, 28, 96}, {3, 7, 2, 5}};
    for (int k = 0; k < 4; k++) {
        int64_t A = sizes[k][0], H = sizes[k][1], W = sizes[k][2], C = sizes[k][3];
        int64_t H2 = (H + 1) / 2, W2 = (W + 1) / 2;
        tal_tensor x = rand_host(4, (int64_t[]){A, H, W, C}, 1 + k);
        tal_tensor m4 = rand_host(4, (int64_t[]){A, H2, W2, 4 * C}, 10 + k), d_m4 = dev_copy(m4);
        tal_merge2x2_forward(m4, x);
        tal_merge2x2_forward(d_m4, dev_copy(x));
        expect_dev_bits(d_m4, m4);
        tal_tensor dm4 = rand_host(4, (int64_t[]){A, H2, W2, 4 * C}, 20 + k);
        tal_tensor dx = rand_host(4, (int64_t[]){A, H, W, C}, 30 + k), d_dx = dev_copy(dx);
        tal_merge2x2_backward(dx, dm4);
        tal_merge2x2_backward(d_dx, dev_copy(dm4));
        expect_dev_bits(d_dx, dx);
    }
}

Test(cuda_layout, transpose_pad_slice_match_cpu_bits) {
    CUDA_ONLY();
    const int64_t tr[][3] = {{1, 1, 1}, {2, 96, 3137}, {3, 37, 5}};
    for (int k = 0; k < 3; k++) {
        int64_t A = tr[k][0], M = tr[k][1], N = tr[k][2];
        tal_tensor src = rand_host(3, (int64_t[]){A, M, N}, 1 + k);
        tal_tensor dst = test_tensor(3, (int64_t[]){A, N, M});
        tal_tensor d_dst = dev_tensor(3, (int64_t[]){A, N, M});
        tal_transpose_last2(dst, src);
        tal_transpose_last2(d_dst, dev_copy(src));
        expect_dev_bits(d_dst, dst);
    }
    tal_tensor v = rand_host(4, (int64_t[]){6, 9, 50, 71}, 4);
    tal_tensor p = rand_host(4, (int64_t[]){6, 10, 52, 72}, 5), d_p = dev_copy(p);
    tal_pad_end3(p, v);
    tal_pad_end3(d_p, dev_copy(v));
    expect_dev_bits(d_p, p);
    tal_tensor s = rand_host(3, (int64_t[]){6, 40, 1001}, 6);
    tal_tensor d = rand_host(3, (int64_t[]){6, 16, 1001}, 7), d_d = dev_copy(d);
    tal_copy_slice1(d, 3, s, 29, 11);
    tal_copy_slice1(d_d, 3, dev_copy(s), 29, 11);
    expect_dev_bits(d_d, d);
}

Test(cuda_layout, mean_hw_last_and_batchnorm_match_cpu_bits) {
    CUDA_ONLY();
    const int64_t B = 2, D = 3, S = 49, C = 97;
    tal_tensor x = rand_host(4, (int64_t[]){B, D, S, C}, 1);
    tal_tensor y = test_tensor(3, (int64_t[]){B, C, D}), d_y = dev_tensor(3, (int64_t[]){B, C, D});
    tal_mean_hw_last_forward(y, x);
    tal_mean_hw_last_forward(d_y, dev_copy(x));
    expect_dev_bits(d_y, y); /* double sums in token order on both */
    tal_tensor dy = rand_host(3, (int64_t[]){B, C, D}, 2);
    tal_tensor dx = test_tensor_like(x), d_dx = dev_tensor(4, x.shape);
    tal_mean_hw_last_backward(dx, dy);
    tal_mean_hw_last_backward(d_dx, dev_copy(dy));
    expect_dev_bits(d_dx, dx);
    const int64_t Cb = 5, Sb = 333;
    tal_tensor xb = rand_host(3, (int64_t[]){B, Cb, Sb}, 3), yb = test_tensor_like(xb);
    tal_tensor w = rand_host(1, (int64_t[]){Cb}, 4), b = rand_host(1, (int64_t[]){Cb}, 5);
    tal_tensor mean = rand_host(1, (int64_t[]){Cb}, 6), var = rand_host(1, (int64_t[]){Cb}, 7);
    for (int64_t c = 0; c < Cb; c++) var.data[c] = fabsf(var.data[c]) + 0.1f;
    tal_tensor d_w = dev_copy(w), d_var = dev_copy(var), d_xb = dev_copy(xb);
    tal_tensor d_yb = dev_tensor(3, xb.shape);
    tal_batchnorm_frozen_forward(yb, xb, w, b, mean, var, 1e-5f);
    tal_batchnorm_frozen_forward(d_yb, d_xb, d_w, dev_copy(b), dev_copy(mean), d_var, 1e-5f);
    expect_dev_bits(d_yb, yb); /* the same roundings, no fused multiply-add */
    tal_batchnorm_frozen_backward(yb, xb, w, var, 1e-5f);
    tal_batchnorm_frozen_backward(d_yb, d_xb, d_w, d_var, 1e-5f);
    expect_dev_bits(d_yb, yb);
}

Test(cuda_layout, max_abs_diff_matches_cpu) {
    CUDA_ONLY();
    const int64_t lengths[] = {1, 255, 1000003};
    for (int k = 0; k < 3; k++) {
        int64_t n = lengths[k];
        tal_tensor a = rand_host(1, &n, 1 + k), b = rand_host(1, &n, 10 + k);
        b.data[n / 2] = NAN; /* skipped on both devices */
        double want = tal_max_abs_diff(a, b);
        cr_assert_eq(tal_max_abs_diff(dev_copy(a), dev_copy(b)), want, "n %lld",
                     (long long)n);
        cr_assert_eq(tal_max_abs_diff(dev_copy(a), dev_copy(a)), 0.0);
    }
}
