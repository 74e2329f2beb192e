/* Feeding the device (nn.h): pinned host arenas, copies on a copy stream ordered against the
 * compute stream by events, from another host thread too, and the bus byte counters. Skipped
 * without a GPU (tests/test_nn_device.c checks the refusals there). */
#include "cuda_check.h"

#include <pthread.h>

TestSuite(cuda_stream, .fini = cuda_test_cleanup);

/* Pinned host tensors of n floats each. */
static tal_arena *pinned(size_t bytes) {
    tal_arena *a = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_arena_create_pinned(&a, bytes, &err), TAL_OK, "%s", err.msg);
    return a;
}

Test(cuda_stream, async_round_trip_through_the_copy_stream) {
    CUDA_ONLY();
    int64_t n = 1000003;
    tal_arena *a = pinned((size_t)n * 8 + 4096);
    tal_tensor src = tal_arena_tensor(a, 1, &n), back = tal_arena_tensor(a, 1, &n);
    cr_assert_eq(src.device, TAL_DEV_CPU, "a pinned tensor is a host tensor");
    test_fill_uniform(src, 5);
    tal_stream *s = NULL;
    tal_event *uploaded = NULL, *computed = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_stream_create(&s, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_event_create(&uploaded, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_event_create(&computed, &err), TAL_OK, "%s", err.msg);
    uint64_t up0, down0, up1, down1;
    tal_cuda_bus_bytes(&up0, &down0);
    tal_tensor d = dev_tensor(1, &n);
    tal_copy_async(d, src, s);            /* upload on the copy stream */
    tal_event_record(uploaded, s);
    tal_stream_wait_event(NULL, uploaded); /* the compute stream waits for it */
    tal_scale(d, d, 2.0f);                  /* on the compute stream */
    tal_event_record(computed, NULL);
    tal_stream_wait_event(s, computed);
    tal_copy_async(back, d, s);            /* download after the scale */
    tal_event_record(uploaded, s);
    tal_event_synchronize(uploaded);
    for (int64_t i = 0; i < n; i++)
        if (back.data[i] != 2.0f * src.data[i])
            cr_assert_fail("element %lld: %g, expected %g", (long long)i, back.data[i],
                           2.0f * src.data[i]);
    tal_cuda_bus_bytes(&up1, &down1);
    cr_expect_eq(up1 - up0, (uint64_t)n * 4);
    cr_expect_eq(down1 - down0, (uint64_t)n * 4);
    tal_event_destroy(uploaded);
    tal_event_destroy(computed);
    tal_stream_destroy(s);
    tal_arena_destroy(a);
}

typedef struct upload_job {
    tal_tensor host, dev;
    tal_stream *s;
    tal_event *done;
} upload_job;

static void *upload_thread(void *p) {
    upload_job *j = p;
    tal_copy_async(j->dev, j->host, j->s);
    tal_event_record(j->done, j->s);
    return NULL;
}

/* A decoder thread queues the upload; the compute stream waits for its event. */
Test(cuda_stream, upload_from_another_thread) {
    CUDA_ONLY();
    int64_t n = 4099;
    tal_arena *a = pinned((size_t)n * 8 + 4096);
    tal_tensor src = tal_arena_tensor(a, 1, &n), back = tal_arena_tensor(a, 1, &n);
    test_fill_uniform(src, 9);
    upload_job j = {src, dev_tensor(1, &n), NULL, NULL};
    tal_err err = {0};
    cr_assert_eq(tal_stream_create(&j.s, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_event_create(&j.done, &err), TAL_OK, "%s", err.msg);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, upload_thread, &j), 0);
    pthread_join(th, NULL);
    tal_stream_wait_event(NULL, j.done);
    tal_copy(back, j.dev); /* on the compute stream: after the upload */
    expect_close(back, src, 0, 0);
    tal_event_destroy(j.done);
    tal_stream_destroy(j.s);
    tal_arena_destroy(a);
}
