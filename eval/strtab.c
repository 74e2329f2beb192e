/* eval/strtab.c: string interning (FNV-1a, linear probing); ids are insertion order. */
#include <stdlib.h>
#include <string.h>

#include "eval/internal.h"

static unsigned hash_str(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

void strtab_free(strtab *t) {
    for (int i = 0; i < t->n; i++) free(t->names[i]);
    free(t->names);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

int strtab_find(const strtab *t, const char *s) {
    if (!t->n_slots) return -1;
    unsigned mask = (unsigned)t->n_slots - 1;
    for (unsigned h = hash_str(s) & mask;; h = (h + 1) & mask) {
        int id = t->slots[h];
        if (id < 0) return -1;
        if (!strcmp(t->names[id], s)) return id;
    }
}

static int rehash(strtab *t, int n_slots) {
    int *slots = malloc(sizeof *slots * (size_t)n_slots);
    if (!slots) return -1;
    for (int i = 0; i < n_slots; i++) slots[i] = -1;
    unsigned mask = (unsigned)n_slots - 1;
    for (int id = 0; id < t->n; id++) {
        unsigned h = hash_str(t->names[id]) & mask;
        while (slots[h] >= 0) h = (h + 1) & mask;
        slots[h] = id;
    }
    free(t->slots);
    t->slots = slots;
    t->n_slots = n_slots;
    return 0;
}

int strtab_intern(strtab *t, const char *s) {
    int id = strtab_find(t, s);
    if (id >= 0) return id;
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 64;
        char **names = realloc(t->names, sizeof *names * (size_t)cap);
        if (!names) return -1;
        t->names = names;
        t->cap = cap;
    }
    if ((t->n + 1) * 2 > t->n_slots && rehash(t, t->n_slots ? t->n_slots * 2 : 128)) return -1;
    char *copy = strdup(s);
    if (!copy) return -1;
    id = t->n++;
    t->names[id] = copy;
    unsigned mask = (unsigned)t->n_slots - 1;
    unsigned h = hash_str(s) & mask;
    while (t->slots[h] >= 0) h = (h + 1) & mask;
    t->slots[h] = id;
    return id;
}
