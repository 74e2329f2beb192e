/* nn/cuda_context.cu: the process' one CUDA context (device, compute stream, cuBLAS / cuBLASLt
 * handles, cuBLAS' fixed workspace and the grow-once op workspace), device memory for the
 * arenas, and copies across devices. */
#include "cuda_common.cuh"

#include <dlfcn.h>
#include <string.h>

#ifndef TAL_CUDA_LIBDIR
#define TAL_CUDA_LIBDIR "/usr/local/cuda/lib64"
#endif

/* cuBLAS' own workspace, fixed so its memory is known in advance and its choices (hence its
 * results) do not depend on what it could allocate; 32 MiB is NVIDIA's advice for Hopper. */
#define BLAS_WORKSPACE_BYTES ((size_t)32 << 20)
/* The op workspace grows in whole MiB. */
#define WORKSPACE_STEP ((size_t)1 << 20)

namespace {
struct context {
    int ready;
    int ordinal; /* chosen by tal_cuda_select, else 0 */
    cudaStream_t stream;
    cublasHandle_t cublas;
    cublasLtHandle_t lt;
    void *blas_ws;
    void *ws[TAL_WS_SLOTS];
    size_t ws_bytes[TAL_WS_SLOTS];
    char name[256];
};
context g;
/* libcublasLt and libcublas of the toolkit we were built with, once loaded (never unloaded) */
void *g_blas_libs[2];
} // namespace

/* dlopen by soname (LD_LIBRARY_PATH, the program's run path, the loader's cache), then from
 * the toolkit's folder as the build found it. */
static tal_status load_blas(tal_err *err) {
    static const char *const names[2] = {"libcublasLt.so." TAL_STR(CUBLAS_VER_MAJOR),
                                         "libcublas.so." TAL_STR(CUBLAS_VER_MAJOR)};
    for (int i = 0; i < 2; i++) {
        if (g_blas_libs[i]) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", TAL_CUDA_LIBDIR, names[i]);
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            return tal_err_set(err, TAL_EDEVICE, "CUDA device %d: cannot load %s (nor %s): %s",
                               g.ordinal, names[i], path, dlerror());
        g_blas_libs[i] = h;
    }
    return TAL_OK;
}

void *tal_cuda_blas_symbol(const char *name) {
    TAL_ASSERT_MSG(g_blas_libs[0] && g_blas_libs[1], "%s: cuBLAS is not loaded (no context)",
                   name);
    void *p = dlsym(g_blas_libs[1], name);
    if (!p) p = dlsym(g_blas_libs[0], name);
    TAL_ASSERT_MSG(p != NULL, "%s: not in libcublas / libcublasLt %d", name, CUBLAS_VER_MAJOR);
    return p;
}

/* The ordinal and count in a message, and why the count is what it is when CUDA said why. */
static tal_status no_such_device(tal_err *err, int ordinal) {
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        cudaGetLastError(); /* not sticky: clear it for later calls */
        return tal_err_set(err, TAL_EDEVICE, "CUDA device %d: no CUDA device on this machine (%s)",
                           ordinal, cudaGetErrorString(rc));
    }
    return tal_err_set(err, TAL_EDEVICE, "CUDA device %d: not present (this machine has %d)",
                       ordinal, n);
}

static void stop_partial(void) {
    if (g.lt) TAL_BLAS(cublasLtDestroy)(g.lt);
    if (g.cublas) TAL_BLAS(cublasDestroy)(g.cublas);
    if (g.blas_ws) cudaFree(g.blas_ws);
    if (g.stream) cudaStreamDestroy(g.stream);
    cudaGetLastError();
    int ordinal = g.ordinal;
    memset(&g, 0, sizeof g);
    g.ordinal = ordinal;
}

static tal_status start(tal_err *err) {
    if (g.ready) return TAL_OK;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || g.ordinal < 0 || g.ordinal >= n)
        return no_such_device(err, g.ordinal);
    cudaError_t rc = cudaSetDevice(g.ordinal);
    /* a blocking stream: it also waits for anything a library issued on the legacy stream */
    if (rc == cudaSuccess) rc = cudaStreamCreate(&g.stream);
    if (rc == cudaSuccess) rc = cudaMalloc(&g.blas_ws, BLAS_WORKSPACE_BYTES);
    if (rc != cudaSuccess) {
        stop_partial();
        return tal_err_set(err, TAL_EDEVICE, "CUDA device %d: cannot start: %s", g.ordinal,
                           cudaGetErrorString(rc));
    }
    tal_status loaded = load_blas(err);
    if (loaded != TAL_OK) {
        stop_partial();
        return loaded;
    }
    cublasStatus_t st = TAL_BLAS(cublasCreate)(&g.cublas);
    if (st == CUBLAS_STATUS_SUCCESS) st = TAL_BLAS(cublasSetStream)(g.cublas, g.stream);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = TAL_BLAS(cublasSetWorkspace)(g.cublas, g.blas_ws, BLAS_WORKSPACE_BYTES);
    /* no atomics: the same product gives the same bits every run (the recompute relies on it) */
    if (st == CUBLAS_STATUS_SUCCESS)
        st = TAL_BLAS(cublasSetAtomicsMode)(g.cublas, CUBLAS_ATOMICS_NOT_ALLOWED);
    if (st != CUBLAS_STATUS_SUCCESS) {
        stop_partial();
        return tal_err_set(err, TAL_EDEVICE, "CUDA device %d: cuBLAS: %s", g.ordinal,
                           TAL_BLAS(cublasGetStatusString)(st));
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, g.ordinal) == cudaSuccess)
        snprintf(g.name, sizeof g.name, "%s", prop.name);
    g.ready = 1;
    return TAL_OK;
}

/* The accessors: ops only run on device tensors, which only come from started contexts. */
static context &started(void) {
    TAL_ASSERT_MSG(g.ready, "a CUDA op ran before any device memory existed");
    return g;
}

cudaStream_t tal_cuda_stream(void) { return started().stream; }
cublasHandle_t tal_cuda_cublas(void) { return started().cublas; }

cublasLtHandle_t tal_cuda_cublaslt(void) {
    context &c = started();
    if (!c.lt) TAL_CUBLAS_CHECK(TAL_BLAS(cublasLtCreate)(&c.lt));
    return c.lt;
}

void *tal_cuda_blas_workspace(size_t *bytes) {
    *bytes = BLAS_WORKSPACE_BYTES;
    return started().blas_ws;
}

static tal_status grow_workspace(tal_ws_slot slot, size_t bytes, tal_err *err) {
    if (bytes <= g.ws_bytes[slot]) return TAL_OK;
    size_t want = (bytes + WORKSPACE_STEP - 1) / WORKSPACE_STEP * WORKSPACE_STEP;
    void *p = NULL;
    /* queued kernels may still read the old block: wait for them before it goes */
    TAL_CUDA_CHECK(cudaStreamSynchronize(g.stream));
    cudaError_t rc = cudaMalloc(&p, want);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        return tal_err_set(err, TAL_EDEVICE, "CUDA workspace: cannot allocate %zu bytes: %s",
                           want, cudaGetErrorString(rc));
    }
    TAL_CUDA_CHECK(cudaFree(g.ws[slot]));
    g.ws[slot] = p;
    g.ws_bytes[slot] = want;
    return TAL_OK;
}

void *tal_cuda_workspace_slot(tal_ws_slot slot, size_t bytes) {
    started();
    TAL_ASSERT(slot >= 0 && slot < TAL_WS_SLOTS);
    tal_err err = {TAL_OK, ""};
    if (grow_workspace(slot, bytes, &err) != TAL_OK)
        tal_assert_fail(__FILE__, __LINE__, "workspace", "%s (reserve it before training with "
                        "tal_cuda_workspace_reserve)", err.msg);
    return g.ws[slot];
}

void *tal_cuda_workspace(size_t bytes) { return tal_cuda_workspace_slot(TAL_WS_OP, bytes); }

/* ---------------------------------------------------------------- public API ------------ */
int tal_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

tal_status tal_cuda_select(int ordinal, tal_err *err) {
    if (g.ready && ordinal == g.ordinal) return TAL_OK;
    if (g.ready)
        return tal_err_set(err, TAL_EINVAL, "CUDA device %d: the context already runs on device "
                           "%d (one device per process)", ordinal, g.ordinal);
    g.ordinal = ordinal;
    tal_status rc = start(err);
    if (rc != TAL_OK) g.ordinal = 0;
    return rc;
}

tal_status tal_cuda_synchronize(tal_err *err) {
    if (!g.ready) return TAL_OK;
    cudaError_t rc = cudaStreamSynchronize(g.stream);
    if (rc == cudaSuccess) rc = cudaGetLastError();
    if (rc != cudaSuccess)
        return tal_err_set(err, TAL_EDEVICE, "CUDA device %d (%s): %s (%s)", g.ordinal, g.name,
                           cudaGetErrorString(rc), cudaGetErrorName(rc));
    return TAL_OK;
}

tal_status tal_cuda_mem_info(size_t *free_bytes, size_t *total_bytes, tal_err *err) {
    tal_status st = start(err);
    if (st != TAL_OK) return st;
    cudaError_t rc = cudaMemGetInfo(free_bytes, total_bytes);
    if (rc != cudaSuccess)
        return tal_err_set(err, TAL_EDEVICE, "CUDA device %d: cudaMemGetInfo: %s", g.ordinal,
                           cudaGetErrorString(rc));
    return TAL_OK;
}

const char *tal_cuda_device_name(void) { return g.name; }

size_t tal_cuda_workspace_bytes(void) {
    if (!g.ready) return 0;
    size_t n = BLAS_WORKSPACE_BYTES;
    for (int s = 0; s < TAL_WS_SLOTS; s++) n += g.ws_bytes[s];
    return n;
}

tal_status tal_cuda_workspace_reserve(size_t bytes, tal_err *err) {
    tal_status st = start(err);
    return st != TAL_OK ? st : grow_workspace(TAL_WS_OP, bytes, err);
}

tal_status cuda_make_current(tal_err *err) {
    tal_status st = start(err);
    if (st != TAL_OK) return st;
    TAL_CUDA_CHECK(cudaSetDevice(g.ordinal));
    return TAL_OK;
}

/* ---------------------------------------------------------------- memory ---------------- */
tal_status cuda_malloc_bytes(void **out, size_t bytes, tal_err *err) {
    *out = NULL;
    tal_status st = start(err);
    if (st != TAL_OK) return st;
    if (!bytes) return TAL_OK;
    cudaError_t rc = cudaMalloc(out, bytes);
    if (rc != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure is not sticky */
        *out = NULL;
        return tal_err_set(err, TAL_EDEVICE, "cudaMalloc(%zu bytes) on device %d: %s", bytes,
                           g.ordinal, cudaGetErrorString(rc));
    }
    return TAL_OK;
}

void cuda_free_bytes(void *p) {
    if (p) TAL_CUDA_CHECK(cudaFree(p));
}

void cuda_memset_bytes(void *p, int byte, size_t bytes) {
    if (bytes) TAL_CUDA_CHECK(cudaMemsetAsync(p, byte, bytes, tal_cuda_stream()));
}

tal_status cuda_copy_bytes(void *dst, tal_device dst_dev, const void *src, tal_device src_dev,
                           size_t bytes, tal_err *err) {
    if (dst_dev == TAL_DEV_CPU && src_dev == TAL_DEV_CPU) {
        if (bytes) memmove(dst, src, bytes);
        return TAL_OK;
    }
    tal_status st = start(err);
    if (st != TAL_OK || !bytes || dst == src) return st;
    cudaMemcpyKind kind = dst_dev == TAL_DEV_CUDA
                              ? (src_dev == TAL_DEV_CUDA ? cudaMemcpyDeviceToDevice
                                                         : cudaMemcpyHostToDevice)
                              : cudaMemcpyDeviceToHost;
    const char *s = (const char *)src;
    char *d = (char *)dst;
    cudaError_t rc;
    if (kind == cudaMemcpyDeviceToDevice && d < s + bytes && s < d + bytes) {
        /* overlapping ranges (a memmove): CUDA's copies leave that undefined, so stage */
        void *tmp = tal_cuda_workspace(bytes);
        rc = cudaMemcpyAsync(tmp, src, bytes, kind, g.stream);
        if (rc == cudaSuccess) rc = cudaMemcpyAsync(dst, tmp, bytes, kind, g.stream);
    } else {
        rc = cudaMemcpyAsync(dst, src, bytes, kind, g.stream);
    }
    /* host memory is the caller's again on return (a source may be freed, a destination read) */
    if (rc == cudaSuccess && kind != cudaMemcpyDeviceToDevice) rc = cudaStreamSynchronize(g.stream);
    if (rc == cudaSuccess) cuda_count_bus(dst_dev, src_dev, bytes);
    if (rc != cudaSuccess)
        return tal_err_set(err, TAL_EDEVICE, "CUDA copy of %zu bytes (%s): %s", bytes,
                           kind == cudaMemcpyHostToDevice   ? "host to device"
                           : kind == cudaMemcpyDeviceToHost ? "device to host"
                                                            : "device to device",
                           cudaGetErrorString(rc));
    return TAL_OK;
}
