/* decode/checksum.c: SHA-256 of a whole file with libavutil's hash (FFmpeg is this folder's
 * library): feature sidecars and imported run folders name the checkpoint they came from. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/mem.h>
#include <libavutil/sha.h>

#include "decode/decode.h"

tal_status tal_file_sha256(const char *path, char hex[65], tal_err *err) {
    hex[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return tal_err_set(err, TAL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct AVSHA *sha = av_sha_alloc();
    unsigned char *buf = malloc(1 << 20);
    tal_status st = TAL_OK;
    if (!sha || !buf || av_sha_init(sha, 256) < 0) {
        st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory for its checksum", path);
    } else {
        size_t n;
        while ((n = fread(buf, 1, 1 << 20, f)) > 0) av_sha_update(sha, buf, n);
        if (ferror(f)) st = tal_err_set(err, TAL_EIO, "%s: read error", path);
        uint8_t digest[32];
        av_sha_final(sha, digest);
        for (int i = 0; i < 32 && !st; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    }
    free(buf);
    av_free(sha);
    fclose(f);
    return st;
}
