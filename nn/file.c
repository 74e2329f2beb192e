/* nn/file.c: opening and reading input files with two guards every reader shares: the path
 * must be a regular file (a folder, /dev/zero or a FIFO would be read forever, or sized as
 * 2^63 bytes), and no larger than a limit (1 GiB for JSON and text, RE2TAL_MAX_INPUT_BYTES). */
#include "nn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_LIMIT_BYTES ((size_t)1 << 30)

/* "1073741824", "512M", "2G", "64k": bytes; 0 for anything else. */
static size_t parse_bytes(const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno || s[0] == '-') return 0;
    int shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*end == 'i' && shift) end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end || v > (SIZE_MAX >> shift)) return 0;
    return (size_t)v << shift;
}

size_t tal_file_limit_bytes(void) {
    const char *env = getenv("RE2TAL_MAX_INPUT_BYTES");
    size_t v = env ? parse_bytes(env) : 0;
    return v ? v : DEFAULT_LIMIT_BYTES;
}

/* "1.5 GiB", "12.0 MiB", "800 bytes" */
static const char *human(size_t n, char *buf, size_t size) {
    if (n >= (size_t)1 << 30) snprintf(buf, size, "%.1f GiB", n / 1073741824.0);
    else if (n >= (size_t)1 << 20) snprintf(buf, size, "%.1f MiB", n / 1048576.0);
    else if (n >= (size_t)1 << 10) snprintf(buf, size, "%.1f KiB", n / 1024.0);
    else snprintf(buf, size, "%zu bytes", n);
    return buf;
}

static const char *kind_of(mode_t m) {
    if (S_ISDIR(m)) return "a folder";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISFIFO(m)) return "a pipe";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

tal_status tal_file_open(FILE **out, size_t *size_bytes, const char *path, size_t max_bytes,
                         tal_err *err) {
    *out = NULL;
    if (size_bytes) *size_bytes = 0;
    if (!max_bytes) max_bytes = tal_file_limit_bytes();
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return tal_err_set(err, TAL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return tal_err_set(err, TAL_EIO, "%s: cannot read its type: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return tal_err_set(err, TAL_EIO, "%s: is %s, not a file", path, kind_of(sb.st_mode));
    }
    if ((unsigned long long)sb.st_size > max_bytes) {
        char a[32], b[32];
        close(fd);
        return tal_err_set(err, TAL_EFORMAT,
                           "%s: %s, more than the %s limit for this input (RE2TAL_MAX_INPUT_BYTES "
                           "raises it)", path, human((size_t)sb.st_size, a, sizeof a),
                           human(max_bytes, b, sizeof b));
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        return tal_err_set(err, TAL_ENOMEM, "%s: cannot open: %s", path, strerror(e));
    }
    *out = f;
    if (size_bytes) *size_bytes = (size_t)sb.st_size;
    return TAL_OK;
}

tal_status tal_file_read(char **out, size_t *size_bytes, const char *path, size_t max_bytes,
                         tal_err *err) {
    *out = NULL;
    if (size_bytes) *size_bytes = 0;
    if (!max_bytes) max_bytes = tal_file_limit_bytes();
    FILE *f;
    size_t size;
    tal_status st = tal_file_open(&f, &size, path, max_bytes, err);
    if (st) return st;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory for %zu bytes", path, size + 1);
    }
    /* reads what fstat promised; a file that shrank meanwhile gives what is there */
    size_t n = size ? fread(buf, 1, size, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return tal_err_set(err, TAL_EIO, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (size_bytes) *size_bytes = n;
    return TAL_OK;
}
