/* decode/memory.c: a video held in memory, opened through a custom AVIOContext (read + seek over
 * a borrowed buffer): the same decoder as for files, for the fuzzer and for callers that have
 * the bytes already. */
#include "decode/decode.h"
#include "decode/internal.h"

#include <stdlib.h>
#include <string.h>

#define IO_BUFFER_BYTES 4096

typedef struct memory_source {
    const uint8_t *data;
    size_t size, pos;
} memory_source;

static int memory_read(void *opaque, uint8_t *buf, int n) {
    memory_source *m = opaque;
    if (m->pos >= m->size) return AVERROR_EOF;
    size_t left = m->size - m->pos, k = (size_t)n < left ? (size_t)n : left;
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return (int)k;
}

static int64_t memory_seek(void *opaque, int64_t offset, int whence) {
    memory_source *m = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE: return (int64_t)m->size;
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = (int64_t)m->pos; break;
    case SEEK_END: base = (int64_t)m->size; break;
    default: return AVERROR(EINVAL);
    }
    if (offset > INT64_MAX - base || base + offset < 0 || (uint64_t)(base + offset) > m->size)
        return AVERROR(EINVAL);
    m->pos = (size_t)(base + offset);
    return (int64_t)m->pos;
}

static void release_memory_io(AVIOContext *io) {
    free(io->opaque);
    av_freep(&io->buffer);
    avio_context_free(&io);
}

tal_status tal_decoder_open_memory(tal_decoder **out, const char *name, const void *data,
                                   size_t size, const tal_decode_opts *opts, tal_err *err) {
    *out = NULL;
    memory_source *m = calloc(1, sizeof *m);
    uint8_t *buf = av_malloc(IO_BUFFER_BYTES);
    AVIOContext *io = m && buf ? avio_alloc_context(buf, IO_BUFFER_BYTES, 0, m, memory_read, NULL,
                                                    memory_seek)
                               : NULL;
    if (!io) {
        free(m);
        av_free(buf);
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", name);
    }
    m->data = data;
    m->size = size;
    return tal_decoder_open_io(out, name, io, release_memory_io, opts, err);
}
