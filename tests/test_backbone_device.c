/* Planning a model for the GPU, which needs no GPU (planners allocate nothing): the device plan
 * differs from the CPU's only in the attention backward's scratch (one [heads, n, n] buffer per
 * call on the device, row blocks per thread on the CPU), and that part is what the device
 * path takes (tests/test_cuda_backbone.c compares it with the arenas on a GPU). Runs here. */
#include "testlib.h"

#include "backbone/backbone.h"

TestSuite(backbone_device, .fini = test_free_all);

static void plans(const char *preset, int n_stages, tal_backbone_plan *cpu,
                  tal_backbone_plan *dev, int T, int HW) {
    tal_backbone_config c;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_preset(&c, preset, &err), TAL_OK);
    c.n_stages = n_stages;
    cr_assert_eq(tal_backbone_plan_memory(cpu, &c, 1, T, HW, HW, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_backbone_plan_memory_on(dev, &c, TAL_DEV_CUDA, 1, T, HW, HW, &err), TAL_OK,
                 "%s", err.msg);
}

Test(backbone_device, device_plan_differs_only_in_attention_scratch) {
    tal_threads_set(1);
    tal_backbone_plan cpu, dev;
    plans("swin_small_test", 4, &cpu, &dev, 16, 64);
    cr_assert_eq(dev.params_bytes, cpu.params_bytes);
    cr_assert_eq(dev.consts_bytes, cpu.consts_bytes);
    cr_assert_eq(dev.keep_bytes, cpu.keep_bytes);
    cr_assert_eq(dev.infer_bytes, cpu.infer_bytes);
    cr_assert_gt(dev.scratch_bytes, 0);
    /* Swin-T's first stage at 16 frames of 112: the device backward's [3, 392, 392] buffer
     * (1.8 MB) outweighs one thread's 60-row block and [392, 392] dbias edge (1.3 MB) */
    plans("swin_t", 1, &cpu, &dev, 16, 112);
    cr_assert_eq(dev.keep_bytes, cpu.keep_bytes);
    size_t head_buffer = (size_t)3 * 392 * 392 * sizeof(float);
    size_t thread_buffers = ((size_t)60 * 392 + (size_t)392 * 392) * sizeof(float);
    cr_assert_eq(dev.scratch_bytes - cpu.scratch_bytes,
                 tal_arena_round(head_buffer) - tal_arena_round(thread_buffers),
                 "scratch: cpu %zu, cuda %zu", cpu.scratch_bytes, dev.scratch_bytes);
}
