/* The CUDA max-pools (1-D, 3-D), spatial mean and linear interpolation against the CPU ops on
 * the same inputs. Max-pool: ties (the first index wins), NaN (wins), padding, a stride; the
 * backward adds in the CPU's order, so both directions agree bit for bit. Mean: double sums on
 * both, 1e-6 relative. Interpolation: the same positions and weights (device_math.h) and the
 * same order of sums; a multiply-add may fuse on the device, so a few ulps. Skipped without a
 * GPU. */
#include "cuda_check.h"

TestSuite(cuda_pool, .fini = cuda_test_cleanup);

static void check_maxpool(int64_t B, int64_t C, int64_t T, int k, int stride, int pad) {
    int64_t To = tal_conv_out_len(T, k, stride, pad);
    tal_tensor x = rand_host(3, (int64_t[]){B, C, T}, 1);
    for (int64_t i = 0; i < tal_tensor_numel(x); i += 5) x.data[i] = 0.5f; /* ties */
    if (T > 3) x.data[3] = NAN;
    tal_tensor y = test_tensor(3, (int64_t[]){B, C, To}), am = test_tensor_like(y);
    tal_tensor gx = dev_copy(x), gy = dev_like(y), gam = dev_like(am);
    tal_maxpool1d_forward(y, am, x, k, stride, pad);
    tal_maxpool1d_forward(gy, gam, gx, k, stride, pad);
    expect_dev_bits(gy, y);
    expect_dev_bits(gam, am);
    tal_tensor dy = rand_host(3, y.shape, 2), dx = test_tensor_like(x), gdx = dev_copy(x);
    tal_maxpool1d_backward(dx, dy, am);
    tal_maxpool1d_backward(gdx, dev_copy(dy), gam);
    expect_dev_bits(gdx, dx);
}

Test(cuda_pool, maxpool1d) {
    CUDA_ONLY();
    check_maxpool(2, 3, 37, 3, 2, 1);
    check_maxpool(1, 1, 1, 1, 1, 0);
    check_maxpool(2, 5, 300, 3, 1, 1);
    check_maxpool(1, 4, 64, 2, 2, 0);
}

Test(cuda_pool, mean_hw) {
    CUDA_ONLY();
    const int64_t shapes[][5] = {{1, 1, 1, 1, 1}, {2, 3, 4, 7, 7}, {1, 2, 3, 56, 56}};
    for (int s = 0; s < 3; s++) {
        tal_tensor x = rand_host(5, shapes[s], 3 + s);
        int64_t ys[3] = {shapes[s][0], shapes[s][1], shapes[s][2]};
        tal_tensor y = test_tensor(3, ys), gx = dev_copy(x), gy = dev_like(y);
        tal_mean_hw_forward(y, x);
        tal_mean_hw_forward(gy, gx);
        expect_dev_close(gy, y, 1e-7, 1e-6);
        tal_tensor dy = rand_host(3, ys, 9), dx = test_tensor_like(x), gdx = dev_like(x);
        tal_mean_hw_backward(dx, dy);
        tal_mean_hw_backward(gdx, dev_copy(dy));
        expect_dev_bits(gdx, dx); /* one division each */
    }
}

Test(cuda_pool, interp1d_up_down_and_same) {
    CUDA_ONLY();
    const int64_t sizes[][2] = {{7, 20}, {20, 7}, {1, 5}, {5, 1}, {33, 33}, {2304, 192}};
    for (int s = 0; s < 6; s++) {
        int64_t tin = sizes[s][0], tout = sizes[s][1];
        tal_tensor x = rand_host(3, (int64_t[]){2, 3, tin}, 5 + s);
        tal_tensor y = test_tensor(3, (int64_t[]){2, 3, tout}), gx = dev_copy(x), gy = dev_like(y);
        tal_interp1d_forward(y, x);
        tal_interp1d_forward(gy, gx);
        expect_dev_close(gy, y, 1e-7, 1e-6);
        tal_tensor dy = rand_host(3, y.shape, 8), dx = test_tensor_like(x), gdx = dev_like(x);
        tal_interp1d_backward(dx, dy);
        tal_interp1d_backward(gdx, dev_copy(dy));
        expect_dev_close(gdx, dx, 1e-6, 1e-6);
    }
}

/* 3-D max-pool: the ResNet stem's (3x3x3 stride 2 padding 1), a kernel of 1 on one axis, ties
 * and a NaN; the backward gathers in the CPU's order: bit for bit both ways. */
static void check_maxpool3d(const int64_t xs[5], tal_pool3d_geom g, uint64_t seed) {
    int64_t ys[5] = {xs[0], xs[1], 0, 0, 0};
    for (int a = 0; a < 3; a++)
        ys[2 + a] = tal_pool3d_out_len(xs[2 + a], g.kernel[a], g.stride[a], g.padding[a]);
    tal_tensor x = rand_host(5, xs, seed);
    for (int64_t i = 0; i < tal_tensor_numel(x); i += 7) x.data[i] = 0.25f; /* ties */
    x.data[tal_tensor_numel(x) / 2] = NAN;
    tal_tensor y = test_tensor(5, ys), gx = dev_copy(x), gy = dev_like(y);
    tal_maxpool3d_forward(y, x, g);
    tal_maxpool3d_forward(gy, gx, g);
    expect_dev_bits(gy, y);
    tal_tensor dy = rand_host(5, ys, seed + 1), dx = test_tensor_like(x), gdx = dev_copy(x);
    tal_maxpool3d_backward(dx, dy, x, g);
    tal_maxpool3d_backward(gdx, dev_copy(dy), gx, g);
    expect_dev_bits(gdx, dx);
}

Test(cuda_pool, maxpool3d) {
    CUDA_ONLY();
    check_maxpool3d((int64_t[]){2, 3, 5, 9, 10}, (tal_pool3d_geom){{3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
                    1);
    check_maxpool3d((int64_t[]){1, 4, 4, 7, 7}, (tal_pool3d_geom){{1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
                    2);
    check_maxpool3d((int64_t[]){1, 1, 1, 1, 1}, (tal_pool3d_geom){{1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
                    3);
}
