/* backbone/checkpoint.c: checkpoint names. The canonical parameter names are the ordinary
 * mmaction2 ones (spec-videoswin.md §10.1, ResNet3d, ResNet3dSlowFast's `slow_path.` /
 * `fast_path.`); the rewired OpenTAD names (`...blocks.{b}.inv_block.Fm.norm1...`,
 * `[slow_path.]layer1.blocks.{i}.inv_block.Fm...`, `layer1.blocks.0.Fm...`,
 * `layer1.blocks.0.downsample...`, §10.3 and re2tal-paper.md §2.4) map onto them on load,
 * and `re2tal rewire` writes them. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int starts(const char *s, const char *prefix) {
    return !strncmp(s, prefix, strlen(prefix));
}

/* Removes every occurrence of `what` in buf (in place). */
static void remove_all(char *buf, const char *what) {
    size_t n = strlen(what);
    char *at;
    while ((at = strstr(buf, what))) memmove(at, at + n, strlen(at + n) + 1);
}

/* A SlowFast name's part after its pathway ("slow_path.layer1..." -> "layer1..."); others
 * unchanged. */
static char *pathway_rest(char *name) {
    if (starts(name, "slow_path.") || starts(name, "fast_path.")) return name + 10;
    return name;
}

/* Strips "module." (DDP), "backbone.model." (OpenTAD's wrapper around mmaction2's recognizer)
 * and "backbone.", and maps rewired spellings to canonical ones; keeps buffers. */
static const char *canonical_any(const char *file_name, char *buf, size_t size) {
    const char *n = file_name;
    if (starts(n, "module.")) n += 7;
    if (starts(n, "backbone.model.")) n += 15;
    if (starts(n, "backbone.")) n += 9;
    if (strlen(n) + 1 > size) return NULL;
    strcpy(buf, n);
    if (!strcmp(buf, "norm.weight") || !strcmp(buf, "norm.bias")) { /* Video-Swin release */
        snprintf(buf, size, "norm3.%s", n + 5);
        return buf;
    }
    if (starts(buf, "layers.")) { /* Swin */
        remove_all(buf, "inv_block.Fm.");
        remove_all(buf, "inv_block.Gm.");
        return buf;
    }
    char *r = pathway_rest(buf);
    if (starts(r, "layer") && isdigit((unsigned char)r[5]) && r[6] == '.') { /* ResNet */
        char *b = strstr(r, ".blocks.");
        if (b) memmove(b, b + 7, strlen(b + 7) + 1); /* "layer1.blocks.2" -> "layer1.2" */
        remove_all(r, "inv_block.Fm.");
        remove_all(r, "inv_block.");
        remove_all(r, "Fm.");
    }
    return buf;
}

const char *tal_backbone_canonical_name(const char *file_name, char *buf, size_t size,
                                        void *ctx) {
    (void)ctx;
    if (strstr(file_name, "relative_position_index") || strstr(file_name, "num_batches_tracked"))
        return NULL; /* buffers: recomputed (index) or unused */
    return canonical_any(file_name, buf, size);
}

const char *tal_backbone_rewired_name(const char *name, char *buf, size_t size) {
    int s, b, len = 0;
    if (sscanf(name, "layers.%d.blocks.%d.%n", &s, &b, &len) == 2 && len > 0) {
        const char *rest = name + len;
        if (starts(rest, "inv_block.")) {
            snprintf(buf, size, "%s", name);
        } else {
            const char *part = (starts(rest, "norm1.") || starts(rest, "attn.")) ? "Fm" : "Gm";
            snprintf(buf, size, "layers.%d.blocks.%d.inv_block.%s.%s", s, b, part, rest);
        }
        return buf;
    }
    int plen = (int)(pathway_rest((char *)name) - name); /* not written through */
    if (sscanf(name + plen, "layer%d.%d.%n", &s, &b, &len) == 2 && len > 0) {
        const char *rest = name + plen + len;
        if (b == 0 && starts(rest, "downsample."))
            snprintf(buf, size, "%.*slayer%d.blocks.0.%s", plen, name, s, rest);
        else if (b == 0)
            snprintf(buf, size, "%.*slayer%d.blocks.0.Fm.%s", plen, name, s, rest);
        else
            snprintf(buf, size, "%.*slayer%d.blocks.%d.inv_block.Fm.%s", plen, name, s, b, rest);
        return buf;
    }
    snprintf(buf, size, "%s", name);
    return buf;
}

tal_status tal_backbone_load(tal_backbone *bb, tal_params *p, const char *path, int *n_unused,
                             tal_err *err) {
    tal_tensor_set set = {0};
    tal_status rc = tal_safetensors_read(&set, path, err);
    if (rc) return rc;
    char **canon = calloc((size_t)(set.count ? set.count : 1), sizeof *canon);
    char *used = calloc((size_t)(set.count ? set.count : 1), 1);
    if (!canon || !used) {
        rc = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < set.count; i++) {
        char buf[256];
        const char *c = tal_backbone_canonical_name(set.items[i].name, buf, sizeof buf, NULL);
        canon[i] = c ? strdup(c) : NULL;
    }
    for (int k = bb->first_param; k < bb->first_param + bb->n_params; k++) {
        tal_param *q = tal_params_at(p, k);
        int found = -1;
        for (int i = 0; i < set.count && found < 0; i++)
            if (canon[i] && !strcmp(canon[i], q->name)) found = i;
        if (found < 0) {
            rc = tal_err_set(err, TAL_EFORMAT,
                             "%s: no tensor for backbone parameter '%s' (looked for it, "
                             "'backbone.%s' and the rewired spelling)",
                             path, q->name, q->name);
            goto done;
        }
        tal_tensor t = set.items[found].t;
        if (!tal_tensor_same_shape(t, q->value)) {
            char a[96], b2[96];
            rc = tal_err_set(err, TAL_EFORMAT, "%s: '%s': shape %s, parameter '%s' needs %s",
                             path, set.items[found].name, tal_tensor_shape_str(t, a, 96), q->name,
                             tal_tensor_shape_str(q->value, b2, 96));
            goto done;
        }
        tal_copy(q->value, t);
        used[found] = 1;
    }
    if (n_unused) {
        *n_unused = 0;
        for (int i = 0; i < set.count; i++) *n_unused += !used[i];
    }
done:
    if (canon)
        for (int i = 0; i < set.count; i++) free(canon[i]);
    free(canon);
    free(used);
    tal_tensor_set_free(&set);
    return rc;
}

tal_status tal_backbone_rewire_file(const char *in_path, const char *out_path, int *n_renamed,
                                    tal_err *err) {
    tal_tensor_set set = {0};
    tal_status rc = tal_safetensors_read(&set, in_path, err);
    if (rc) return rc;
    tal_named_tensor *items = calloc((size_t)(set.count ? set.count : 1), sizeof *items);
    if (!items) {
        tal_tensor_set_free(&set);
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", in_path);
    }
    int renamed = 0;
    for (int i = 0; i < set.count; i++) {
        const char *name = set.items[i].name;
        int prefixed = starts(name, "backbone.");
        char canon[256], rew[256], full[300];
        canonical_any(name, canon, sizeof canon);
        tal_backbone_rewired_name(canon, rew, sizeof rew);
        snprintf(full, sizeof full, "%s%s", prefixed ? "backbone." : "", rew);
        if (strcmp(full, name)) renamed++;
        items[i] = set.items[i];
        items[i].name = strdup(full);
        if (!items[i].name) {
            rc = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", in_path);
            goto done;
        }
    }
    rc = tal_safetensors_write(out_path, items, set.count, set.metadata_json, err);
    if (n_renamed) *n_renamed = renamed;
done:
    for (int i = 0; i < set.count; i++) free(items[i].name);
    free(items);
    tal_tensor_set_free(&set);
    return rc;
}
