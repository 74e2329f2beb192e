/* nn/safetensors.c: the safetensors format (8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}}, then raw little-endian data), read into float32 and
 * written atomically. Reference: huggingface/safetensors format description. */
#include "nn.h"
#include "device_math.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_HEADER_BYTES (100u << 20) /* the format's own limit is 100 MB */

float tal_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float tal_bf16_to_f32(uint16_t h) { return bf16_bits_to_f32(h); }

/* device_math.h's rounding: the CUDA kernels' bf16 operands round the same way */
uint16_t tal_f32_to_bf16(float f) { return f32_to_bf16_bits(f); }

uint16_t tal_f32_to_f16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint32_t sign = (bits >> 16) & 0x8000;
    int32_t exp = (int32_t)((bits >> 23) & 0xff) - 127 + 15;
    uint32_t man = bits & 0x7fffff;
    if (((bits >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
}

static int dtype_size(const char *dt) {
    if (!strcmp(dt, "F32") || !strcmp(dt, "I32")) return 4;
    if (!strcmp(dt, "F16") || !strcmp(dt, "BF16")) return 2;
    if (!strcmp(dt, "F64") || !strcmp(dt, "I64")) return 8;
    return 0;
}

static void convert_to_f32(float *dst, const unsigned char *src, int64_t n, const char *dt) {
    for (int64_t i = 0; i < n; i++) {
        if (!strcmp(dt, "F32")) {
            memcpy(&dst[i], src + 4 * i, 4);
        } else if (!strcmp(dt, "F16") || !strcmp(dt, "BF16")) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = dt[0] == 'F' ? tal_f16_to_f32(h) : tal_bf16_to_f32(h);
        } else if (!strcmp(dt, "F64")) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        } else if (!strcmp(dt, "I64")) {
            int64_t v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        } else {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (float)v;
        }
    }
}

static int allow_nonfinite;

static void append(tal_err *err, const char *text) {
    if (!err) return;
    size_t len = strlen(err->msg);
    snprintf(err->msg + len, sizeof err->msg - len, "%s", text);
}

void tal_safetensors_allow_nonfinite(int allow) { allow_nonfinite = allow != 0; }
int tal_safetensors_nonfinite_allowed(void) { return allow_nonfinite; }

/* Non-finite values among x[0..n): their count, and the index of the first in *first. */
static int64_t count_nonfinite(const float *x, int64_t n, int64_t *first) {
    int64_t bad = 0;
    *first = -1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]) && bad++ == 0) *first = i;
    return bad;
}

tal_status tal_tensors_check_finite(const tal_named_tensor *items, int count, const char *what,
                                    tal_err *err) {
    int first_tensor = -1, n_tensors = 0;
    int64_t first_bad = -1, n_bad = 0;
    for (int i = 0; i < count; i++) {
        if (items[i].t.device != TAL_DEV_CPU || !items[i].t.data) continue;
        int64_t at, bad = count_nonfinite(items[i].t.data, tal_tensor_numel(items[i].t), &at);
        if (!bad) continue;
        if (n_tensors++ == 0) {
            first_tensor = i;
            first_bad = at;
            n_bad = bad;
        }
    }
    if (!n_tensors) return TAL_OK;
    const tal_named_tensor *it = &items[first_tensor];
    return tal_err_set(err, TAL_EFORMAT,
                       "%s: tensor '%s': %lld non-finite value%s (first at index %lld: %g); %d of "
                       "%d tensors have some (weights of a run that diverged?)",
                       what, it->name, (long long)n_bad, n_bad == 1 ? "" : "s",
                       (long long)first_bad, (double)it->t.data[first_bad], n_tensors, count);
}

const tal_named_tensor *tal_tensor_set_find(const tal_tensor_set *set, const char *name) {
    for (int i = 0; i < set->count; i++)
        if (!strcmp(set->items[i].name, name)) return &set->items[i];
    return NULL;
}

static tal_named_tensor *set_push(tal_tensor_set *set, const char *name, tal_err *err) {
    if (set->count == set->capacity) {
        int cap = set->capacity ? set->capacity * 2 : 16;
        tal_named_tensor *items = realloc(set->items, (size_t)cap * sizeof *items);
        if (!items) return tal_err_set(err, TAL_ENOMEM, "tensor set: out of memory"), NULL;
        set->items = items;
        set->capacity = cap;
    }
    tal_named_tensor *it = &set->items[set->count];
    memset(it, 0, sizeof *it);
    it->name = strdup(name);
    if (!it->name) return tal_err_set(err, TAL_ENOMEM, "tensor set: out of memory"), NULL;
    set->count++;
    return it;
}

tal_status tal_tensor_set_add(tal_tensor_set *set, const char *name, tal_tensor t, tal_err *err) {
    tal_named_tensor *it = set_push(set, name, err);
    if (!it) return err ? err->code : TAL_ENOMEM;
    size_t bytes = tal_tensor_bytes(t);
    float *data = malloc(bytes ? bytes : 1);
    if (!data) return tal_err_set(err, TAL_ENOMEM, "tensor set: out of memory for %s", name);
    tal_status rc =
        bytes ? tal_copy_bytes(data, TAL_DEV_CPU, t.data, t.device, bytes, err) : TAL_OK;
    it->t = tal_tensor_of(data, t.ndim, t.shape); /* the set owns it, even after a failed copy */
    if (rc != TAL_OK) return tal_err_prefix(err, "tensor set: %s", name);
    strcpy(it->dtype, "F32");
    return TAL_OK;
}

void tal_tensor_set_free(tal_tensor_set *set) {
    for (int i = 0; i < set->count; i++) {
        free(set->items[i].name);
        free(set->items[i].t.data);
    }
    free(set->items);
    free(set->metadata_json);
    memset(set, 0, sizeof *set);
}

/* Parses one header entry into the set; the data lies at data + begin. */
static tal_status read_entry(tal_tensor_set *set, const char *path, const cJSON *entry,
                             const unsigned char *data, size_t data_bytes, tal_err *err) {
    const char *name = entry->string;
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2)
        return tal_err_set(err, TAL_EFORMAT,
                           "%s: tensor '%s': header entry needs dtype, shape and data_offsets",
                           path, name);
    int esize = dtype_size(dtype->valuestring);
    if (!esize)
        return tal_err_set(err, TAL_EFORMAT,
                           "%s: tensor '%s': dtype %s is not supported (expected F32, F16, BF16, "
                           "F64, I64 or I32)", path, name, dtype->valuestring);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > TAL_MAX_DIMS)
        return tal_err_set(err, TAL_EFORMAT, "%s: tensor '%s': %d dims (at most %d)", path, name,
                           ndim, TAL_MAX_DIMS);
    int64_t dims[TAL_MAX_DIMS];
    double numel = 1;
    for (int i = 0; i < ndim; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        /* bounded before the cast (a float-to-int overflow is undefined behaviour) */
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9007199254740992.0 ||
            d->valuedouble != floor(d->valuedouble))
            return tal_err_set(err, TAL_EFORMAT, "%s: tensor '%s': shape[%d] is not a size",
                               path, name, i);
        dims[i] = (int64_t)d->valuedouble;
        numel *= d->valuedouble;
    }
    const cJSON *o0 = cJSON_GetArrayItem(offs, 0), *o1 = cJSON_GetArrayItem(offs, 1);
    if (!cJSON_IsNumber(o0) || !cJSON_IsNumber(o1) || o0->valuedouble != floor(o0->valuedouble) ||
        o1->valuedouble != floor(o1->valuedouble))
        return tal_err_set(err, TAL_EFORMAT, "%s: tensor '%s': data_offsets are not two integers",
                           path, name);
    double b0 = o0->valuedouble, b1 = o1->valuedouble;
    if (!(b0 >= 0 && b1 >= b0 && b1 <= (double)data_bytes))
        return tal_err_set(err, TAL_EFORMAT,
                           "%s: tensor '%s': data_offsets [%.0f, %.0f] outside the %zu data bytes "
                           "(truncated file?)", path, name, b0, b1, data_bytes);
    if (b1 - b0 != numel * esize)
        return tal_err_set(err, TAL_EFORMAT,
                           "%s: tensor '%s': %.0f bytes stored but shape and %s need %.0f", path,
                           name, b1 - b0, dtype->valuestring, numel * esize);
    tal_named_tensor *it = set_push(set, name, err);
    if (!it) return err ? err->code : TAL_ENOMEM;
    float *f = malloc(numel ? (size_t)numel * sizeof(float) : 1);
    if (!f) return tal_err_set(err, TAL_ENOMEM, "%s: tensor '%s': out of memory", path, name);
    convert_to_f32(f, data + (size_t)b0, (int64_t)numel, dtype->valuestring);
    it->t = tal_tensor_of(f, ndim, dims);
    snprintf(it->dtype, sizeof it->dtype, "%s", dtype->valuestring);
    return TAL_OK;
}

tal_status tal_safetensors_read(tal_tensor_set *out, const char *path, tal_err *err) {
    memset(out, 0, sizeof *out);
    tal_status rc = TAL_OK;
    unsigned char *buf = NULL;
    char *header = NULL;
    cJSON *root = NULL;
    FILE *f = NULL;
    size_t size = 0;
    /* checkpoints are as large as models get: no limit beyond the file's own size */
    if ((rc = tal_file_open(&f, &size, path, SIZE_MAX, err))) return rc;
    unsigned char len8[8];
    if (size < 8 || fread(len8, 1, 8, f) != 8) {
        rc = tal_err_set(err, TAL_EFORMAT, "%s: %zu bytes: too short for a safetensors header "
                         "(truncated or not a checkpoint)", path, size);
        goto done;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen > MAX_HEADER_BYTES || hlen > (uint64_t)size - 8) {
        rc = tal_err_set(err, TAL_EFORMAT,
                         "%s: header length %llu does not fit the %zu-byte file (truncated or "
                         "not a safetensors file)", path, (unsigned long long)hlen, size);
        goto done;
    }
    header = malloc(hlen + 1);
    size_t data_bytes = (size_t)size - 8 - hlen;
    buf = malloc(data_bytes ? data_bytes : 1);
    if (!header || !buf) {
        rc = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(header, 1, hlen, f) != hlen || fread(buf, 1, data_bytes, f) != data_bytes) {
        rc = tal_err_set(err, TAL_EIO, "%s: read failed", path);
        goto done;
    }
    header[hlen] = 0;
    const char *end = NULL;
    root = cJSON_ParseWithOpts(header, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = end ? (size_t)(end - header) : 0;
        rc = tal_err_set(err, TAL_EFORMAT, "%s: header is not a JSON object (byte %zu of %llu): "
                         "not a safetensors file", path, at, (unsigned long long)hlen);
        goto done;
    }
    for (cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (out->metadata_json) { /* the second one's text leaked over the first (fuzzer) */
                rc = tal_err_set(err, TAL_EFORMAT, "%s: '__metadata__' appears twice in the "
                                 "header", path);
                goto done;
            }
            out->metadata_json = cJSON_PrintUnformatted(e);
            continue;
        }
        if (tal_tensor_set_find(out, e->string)) {
            rc = tal_err_set(err, TAL_EFORMAT, "%s: tensor '%s' appears twice in the header",
                             path, e->string);
            goto done;
        }
        if (!cJSON_IsObject(e)) {
            rc = tal_err_set(err, TAL_EFORMAT, "%s: tensor '%s': header entry is not an object",
                             path, e->string);
            goto done;
        }
        rc = read_entry(out, path, e, buf, data_bytes, err);
        if (rc != TAL_OK) goto done;
    }
    if (!allow_nonfinite && (rc = tal_tensors_check_finite(out->items, out->count, path, err)))
        append(err, "; --allow-nonfinite loads it anyway");
done:
    if (rc != TAL_OK) tal_tensor_set_free(out);
    cJSON_Delete(root);
    free(header);
    free(buf);
    if (f) fclose(f);
    return rc;
}

tal_status tal_safetensors_write(const char *path, const tal_named_tensor *items, int count,
                                 const char *metadata_json, tal_err *err) {
    cJSON *root = cJSON_CreateObject();
    char *header = NULL, *tmp = NULL;
    float *staged = NULL; /* host copy of one device tensor */
    size_t staged_n = 0;
    FILE *f = NULL;
    tal_status rc = TAL_OK;
    if (!root) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    if (!allow_nonfinite && (rc = tal_tensors_check_finite(items, count, path, err))) {
        append(err, "; not written");
        goto done;
    }
    if (metadata_json) {
        cJSON *meta = cJSON_Parse(metadata_json);
        if (!meta || !cJSON_IsObject(meta)) {
            cJSON_Delete(meta);
            rc = tal_err_set(err, TAL_EINVAL, "%s: metadata is not a JSON object", path);
            goto done;
        }
        cJSON_AddItemToObject(root, "__metadata__", meta);
    }
    size_t offset = 0;
    for (int i = 0; i < count; i++) {
        if (!strcmp(items[i].name, "__metadata__")) {
            rc = tal_err_set(err, TAL_EINVAL, "%s: '__metadata__' is reserved, not a tensor name",
                             path);
            goto done;
        }
        TAL_ASSERT_MSG(items[i].t.data || tal_tensor_numel(items[i].t) == 0,
                       "tensor '%s' has no data", items[i].name);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < items[i].t.ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)items[i].t.shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        size_t bytes = tal_tensor_bytes(items[i].t);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
        if (cJSON_GetObjectItemCaseSensitive(root, items[i].name)) {
            cJSON_Delete(e);
            rc = tal_err_set(err, TAL_EINVAL, "%s: tensor '%s' given twice", path, items[i].name);
            goto done;
        }
        cJSON_AddItemToObject(root, items[i].name, e);
    }
    header = cJSON_PrintUnformatted(root);
    if (!header) {
        rc = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8; /* keep the data 8-aligned */
    size_t tmp_len = strlen(path) + 32;
    tmp = malloc(tmp_len);
    snprintf(tmp, tmp_len, "%s.tmp.%d", path, (int)getpid());
    f = fopen(tmp, "wb");
    if (!f) {
        rc = tal_err_set(err, TAL_EIO, "%s: cannot write: %s", tmp, strerror(errno));
        goto done;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(header, 1, hlen, f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && rc == TAL_OK && i < count; i++) {
        size_t n = (size_t)tal_tensor_numel(items[i].t);
        const float *src = items[i].t.data;
        if (items[i].t.device != TAL_DEV_CPU && n) { /* device tensors pass through the host */
            if (n > staged_n) {
                free(staged);
                staged = malloc(n * sizeof(float));
                staged_n = staged ? n : 0;
            }
            if (!staged)
                rc = tal_err_set(err, TAL_ENOMEM, "%s: tensor '%s': out of memory", path,
                                 items[i].name);
            else if (tal_copy_bytes(staged, TAL_DEV_CPU, src, items[i].t.device,
                                    n * sizeof(float), err) != TAL_OK)
                rc = tal_err_prefix(err, "%s: tensor '%s'", path, items[i].name);
            src = staged;
        }
        ok = rc == TAL_OK && fwrite(src, sizeof(float), n, f) == n;
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    f = NULL;
    if (rc != TAL_OK) {
        remove(tmp);
    } else if (!ok || rename(tmp, path) != 0) {
        rc = tal_err_set(err, TAL_EIO, "%s: write failed: %s", path, strerror(errno));
        remove(tmp);
    }
done:
    if (f) fclose(f);
    free(staged);
    free(tmp);
    free(header);
    cJSON_Delete(root);
    return rc;
}
