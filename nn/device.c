/* nn/device.c: the precision mode, copies across devices, and the GPU API's answers in a build
 * without CUDA (cuda_context.cu has the real ones). */
#include "nn.h"
#include "cuda_ops.h"

#include <string.h>

static tal_precision g_precision = TAL_PREC_FP32;

void tal_precision_set(tal_precision p) {
    TAL_ASSERT_MSG(p == TAL_PREC_FP32 || p == TAL_PREC_TF32 || p == TAL_PREC_BF16,
                   "precision %d", (int)p);
    g_precision = p;
}

tal_precision tal_precision_get(void) { return g_precision; }

const char *tal_precision_name(tal_precision p) {
    switch (p) {
    case TAL_PREC_FP32: return "fp32";
    case TAL_PREC_TF32: return "tf32";
    case TAL_PREC_BF16: return "bf16";
    }
    return "unknown";
}

tal_status tal_copy_bytes(void *dst, tal_device dst_dev, const void *src, tal_device src_dev,
                          size_t bytes, tal_err *err) {
    if (dst_dev == TAL_DEV_CPU && src_dev == TAL_DEV_CPU) {
        if (bytes) memmove(dst, src, bytes);
        return TAL_OK;
    }
#ifdef TAL_HAVE_CUDA
    return cuda_copy_bytes(dst, dst_dev, src, src_dev, bytes, err);
#else
    return tal_err_set(err, TAL_EDEVICE, "copy of %zu bytes to or from a CUDA device: this "
                       "build has no CUDA (RE2TAL_CUDA=OFF)", bytes);
#endif
}

#ifndef TAL_HAVE_CUDA
int tal_cuda_device_count(void) { return 0; }

tal_status tal_cuda_select(int ordinal, tal_err *err) {
    return tal_err_set(err, TAL_EDEVICE, "CUDA device %d: this build has no CUDA "
                       "(RE2TAL_CUDA=OFF), so it has 0 devices", ordinal);
}

tal_status tal_cuda_synchronize(tal_err *err) {
    (void)err;
    return TAL_OK; /* nothing can be queued */
}

tal_status tal_cuda_mem_info(size_t *free_bytes, size_t *total_bytes, tal_err *err) {
    *free_bytes = *total_bytes = 0;
    return tal_err_set(err, TAL_EDEVICE, "CUDA memory: this build has no CUDA (RE2TAL_CUDA=OFF)");
}

const char *tal_cuda_device_name(void) { return ""; }
size_t tal_cuda_workspace_bytes(void) { return 0; }

tal_status tal_cuda_workspace_reserve(size_t bytes, tal_err *err) {
    return tal_err_set(err, TAL_EDEVICE, "CUDA workspace of %zu bytes: this build has no CUDA "
                       "(RE2TAL_CUDA=OFF)", bytes);
}
#endif
