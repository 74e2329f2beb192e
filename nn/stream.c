/* nn/stream.c: feeding the device while it computes (nn.h): pinned host arenas, a copy stream
 * beside the compute stream, and the events that order them. The CUDA side is stream.cu; a
 * build without CUDA answers TAL_EDEVICE at creation, so nothing else is ever reached. */
#include "nn.h"
#include "cuda_ops.h"

#include <stdlib.h>

struct tal_stream {
    void *handle; /* cudaStream_t */
};
struct tal_event {
    void *handle; /* cudaEvent_t */
};

#ifdef TAL_HAVE_CUDA
tal_status tal_stream_create(tal_stream **out, tal_err *err) {
    *out = NULL;
    tal_stream *s = calloc(1, sizeof *s);
    if (!s) return tal_err_set(err, TAL_ENOMEM, "copy stream: out of memory");
    tal_status st = cuda_stream_create(&s->handle, err);
    if (st) {
        free(s);
        return st;
    }
    *out = s;
    return TAL_OK;
}

void tal_stream_destroy(tal_stream *s) {
    if (!s) return;
    cuda_stream_destroy(s->handle);
    free(s);
}

tal_status tal_event_create(tal_event **out, tal_err *err) {
    *out = NULL;
    tal_event *e = calloc(1, sizeof *e);
    if (!e) return tal_err_set(err, TAL_ENOMEM, "event: out of memory");
    tal_status st = cuda_event_create(&e->handle, err);
    if (st) {
        free(e);
        return st;
    }
    *out = e;
    return TAL_OK;
}

void tal_event_destroy(tal_event *e) {
    if (!e) return;
    cuda_event_destroy(e->handle);
    free(e);
}

void tal_copy_async(tal_tensor dst, tal_tensor src, tal_stream *s) {
    TAL_ASSERT_MSG(tal_tensor_numel(dst) == tal_tensor_numel(src), "%lld vs %lld elements",
                   (long long)tal_tensor_numel(dst), (long long)tal_tensor_numel(src));
    TAL_ASSERT_MSG(dst.device != src.device, "tal_copy_async goes across the bus (host <-> "
                   "device); tal_copy copies on one device");
    cuda_copy_async(dst.data, dst.device, src.data, tal_tensor_bytes(src), s ? s->handle : NULL);
}

void tal_event_record(tal_event *e, tal_stream *s) {
    cuda_event_record(e->handle, s ? s->handle : NULL);
}

void tal_stream_wait_event(tal_stream *s, tal_event *e) {
    cuda_stream_wait_event(s ? s->handle : NULL, e->handle);
}

void tal_event_synchronize(tal_event *e) { cuda_event_synchronize(e->handle); }

#else /* no CUDA: nothing to feed */
static tal_status no_cuda(tal_err *err, const char *what) {
    return tal_err_set(err, TAL_EDEVICE, "%s: this build has no CUDA (RE2TAL_CUDA=OFF)", what);
}
tal_status tal_stream_create(tal_stream **out, tal_err *err) {
    *out = NULL;
    return no_cuda(err, "copy stream");
}
void tal_stream_destroy(tal_stream *s) { TAL_ASSERT(s == NULL); }
tal_status tal_event_create(tal_event **out, tal_err *err) {
    *out = NULL;
    return no_cuda(err, "event");
}
void tal_event_destroy(tal_event *e) { TAL_ASSERT(e == NULL); }
void tal_copy_async(tal_tensor dst, tal_tensor src, tal_stream *s) {
    (void)dst, (void)src, (void)s;
    TAL_ASSERT_MSG(0, "tal_copy_async: this build has no CUDA");
}
void tal_event_record(tal_event *e, tal_stream *s) {
    (void)e, (void)s;
    TAL_ASSERT_MSG(0, "tal_event_record: this build has no CUDA");
}
void tal_stream_wait_event(tal_stream *s, tal_event *e) {
    (void)e, (void)s;
    TAL_ASSERT_MSG(0, "tal_stream_wait_event: this build has no CUDA");
}
void tal_event_synchronize(tal_event *e) {
    (void)e;
    TAL_ASSERT_MSG(0, "tal_event_synchronize: this build has no CUDA");
}
void tal_cuda_bus_bytes(uint64_t *to_device, uint64_t *to_host) {
    *to_device = *to_host = 0;
}
#endif
