/* nn/stream.cu: the CUDA side of stream.c: page-locked host memory, copy streams and events on
 * the context's device, and the counters of the bytes that cross the bus. Every entry point
 * may run on another host thread than the one that started the context (a decoder thread), so
 * each makes the context's device current first (the current device is per thread). */
#include "cuda_common.cuh"

#include <atomic>

namespace {
std::atomic<unsigned long long> g_to_device{0}, g_to_host{0};
}

void cuda_count_bus(tal_device dst_dev, tal_device src_dev, size_t bytes) {
    if (dst_dev == src_dev) return;
    (dst_dev == TAL_DEV_CUDA ? g_to_device : g_to_host) += bytes;
}

void tal_cuda_bus_bytes(uint64_t *to_device, uint64_t *to_host) {
    *to_device = g_to_device.load();
    *to_host = g_to_host.load();
}

/* The context (started if needed) and its device current on this thread. */
static tal_status on_device(tal_err *err) { return cuda_make_current(err); }

tal_status cuda_host_alloc(void **out, size_t bytes, tal_err *err) {
    *out = NULL;
    tal_status st = on_device(err);
    if (st != TAL_OK) return st;
    if (!bytes) return TAL_OK;
    cudaError_t rc = cudaMallocHost(out, bytes);
    if (rc != cudaSuccess) {
        cudaGetLastError(); /* not sticky */
        *out = NULL;
        return tal_err_set(err, TAL_ENOMEM, "cudaMallocHost(%zu bytes): %s", bytes,
                           cudaGetErrorString(rc));
    }
    return TAL_OK;
}

void cuda_host_free(void *p) {
    if (p) TAL_CUDA_CHECK(cudaFreeHost(p));
}

tal_status cuda_stream_create(void **out, tal_err *err) {
    *out = NULL;
    tal_status st = on_device(err);
    if (st != TAL_OK) return st;
    cudaStream_t s;
    /* non-blocking: it must not wait for the compute stream (a blocking stream would) */
    cudaError_t rc = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        return tal_err_set(err, TAL_EDEVICE, "copy stream: %s", cudaGetErrorString(rc));
    }
    *out = s;
    return TAL_OK;
}

void cuda_stream_destroy(void *s) {
    tal_err err = {TAL_OK, ""};
    TAL_ASSERT_MSG(on_device(&err) == TAL_OK, "%s", err.msg);
    TAL_CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)s));
    TAL_CUDA_CHECK(cudaStreamDestroy((cudaStream_t)s));
}

tal_status cuda_event_create(void **out, tal_err *err) {
    *out = NULL;
    tal_status st = on_device(err);
    if (st != TAL_OK) return st;
    cudaEvent_t e;
    cudaError_t rc = cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        return tal_err_set(err, TAL_EDEVICE, "event: %s", cudaGetErrorString(rc));
    }
    *out = e;
    return TAL_OK;
}

void cuda_event_destroy(void *e) {
    tal_err err = {TAL_OK, ""};
    TAL_ASSERT_MSG(on_device(&err) == TAL_OK, "%s", err.msg);
    TAL_CUDA_CHECK(cudaEventDestroy((cudaEvent_t)e));
}

static cudaStream_t stream_of(void *s) { return s ? (cudaStream_t)s : tal_cuda_stream(); }

/* The functions below run on handles made by the ones above, so the context runs: making its
 * device current cannot fail but for a bug. */
static void current(void) {
    tal_err err = {TAL_OK, ""};
    TAL_ASSERT_MSG(on_device(&err) == TAL_OK, "%s", err.msg);
}

void cuda_copy_async(void *dst, tal_device dst_dev, const void *src, size_t bytes, void *s) {
    current();
    if (!bytes) return;
    cudaMemcpyKind kind = dst_dev == TAL_DEV_CUDA ? cudaMemcpyHostToDevice
                                                  : cudaMemcpyDeviceToHost;
    TAL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream_of(s)));
    cuda_count_bus(dst_dev, dst_dev == TAL_DEV_CUDA ? TAL_DEV_CPU : TAL_DEV_CUDA, bytes);
}

void cuda_event_record(void *e, void *s) {
    current();
    TAL_CUDA_CHECK(cudaEventRecord((cudaEvent_t)e, stream_of(s)));
}

void cuda_stream_wait_event(void *s, void *e) {
    current();
    TAL_CUDA_CHECK(cudaStreamWaitEvent(stream_of(s), (cudaEvent_t)e, 0));
}

void cuda_event_synchronize(void *e) {
    current();
    TAL_CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)e));
}
