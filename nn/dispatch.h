/* nn/dispatch.h: private to nn/'s .c files: which device an op runs on (STYLE.md §6). Every
 * present tensor of a call must be on one device (mixed devices are a bug); the op then runs
 * its CUDA twin (cuda_ops.h) or its CPU loop, and a CPU loop never sees a device tensor. */
#ifndef TAL_DISPATCH_H
#define TAL_DISPATCH_H

#include "nn.h"

static inline const char *device_name_of(tal_device d) {
    return d == TAL_DEV_CUDA ? "cuda" : "cpu";
}

/* The device of the present tensors of ts[0..n) (CPU when none is present); aborts naming the
 * op and both argument positions when two disagree. */
static inline tal_device op_device_of(const char *op, const char *file, int line,
                                      const tal_tensor *ts, int n) {
    int first = -1;
    for (int i = 0; i < n; i++) {
        if (!ts[i].data) continue;
        if (first < 0)
            first = i;
        else if (ts[i].device != ts[first].device)
            tal_assert_fail(file, line, "one device per op",
                            "%s: tensor argument %d is on %s, argument %d on %s", op, first,
                            device_name_of(ts[first].device), i, device_name_of(ts[i].device));
    }
    return first < 0 ? TAL_DEV_CPU : ts[first].device;
}

#define OP_DEVICE_AS(op, ...)                                                                 \
    op_device_of((op), __FILE__, __LINE__, (const tal_tensor[]){__VA_ARGS__},                  \
                 (int)(sizeof((const tal_tensor[]){__VA_ARGS__}) / sizeof(tal_tensor)))
#define OP_DEVICE(...) OP_DEVICE_AS(__func__, __VA_ARGS__)

/* The CPU path of an op whose tensors all sit on dev (OP_DEVICE checked that they agree). In a
 * build without CUDA a device tensor ends here, and aborts instead of being read as host
 * memory. */
#define ASSERT_CPU_PATH(dev)                                                                  \
    TAL_ASSERT_MSG((dev) == TAL_DEV_CPU, "%s: CUDA tensors, but this build has no CUDA", __func__)

#endif /* TAL_DISPATCH_H */
