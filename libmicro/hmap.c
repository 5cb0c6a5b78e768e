#include "hmap.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a folded with a final mix; keys are short (addresses, ids, urls). */
uint64_t hmap_hash(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

void hmap_init(hmap_t *h) { memset(h, 0, sizeof(*h)); }

void hmap_free(hmap_t *h)
{
    free(h->slots);
    memset(h, 0, sizeof(*h));
}

static size_t find_slot(const hmap_t *h, uint64_t hash, const void *key, size_t klen)
{
    size_t mask = h->cap - 1, i = hash & mask;
    for (;;) {
        const hmap_slot_t *s = &h->slots[i];
        if (!s->hash)
            return i;
        if (s->hash == hash && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

static int grow(hmap_t *h)
{
    size_t ncap = h->cap ? h->cap * 2 : 16;
    hmap_slot_t *old = h->slots;
    size_t ocap = h->cap;
    hmap_slot_t *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -1;
    h->slots = ns;
    h->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].hash)
            h->slots[find_slot(h, old[i].hash, old[i].key, old[i].klen)] = old[i];
    free(old);
    return 0;
}

void *hmap_get(const hmap_t *h, const void *key, size_t klen)
{
    if (!h->len)
        return NULL;
    const hmap_slot_t *s = &h->slots[find_slot(h, hmap_hash(key, klen), key, klen)];
    return s->hash ? s->val : NULL;
}

void *hmap_put(hmap_t *h, const void *key, size_t klen, void *val, int *err)
{
    if (err)
        *err = 0;
    if ((h->len + 1) * 4 > h->cap * 3 && grow(h)) {
        if (err)
            *err = -1;
        return NULL;
    }
    uint64_t hash = hmap_hash(key, klen);
    hmap_slot_t *s = &h->slots[find_slot(h, hash, key, klen)];
    void *prev = NULL;
    if (s->hash)
        prev = s->val;
    else
        h->len++;
    s->hash = hash;
    s->key = key;  /* the new value's key: the old value may be freed next */
    s->klen = klen;
    s->val = val;
    return prev;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void remove_at(hmap_t *h, size_t i)
{
    size_t mask = h->cap - 1, j = i;
    h->slots[i].hash = 0;
    for (;;) {
        j = (j + 1) & mask;
        hmap_slot_t *s = &h->slots[j];
        if (!s->hash)
            break;
        size_t home = s->hash & mask;
        /* can s move into the hole at i? only if i lies cyclically in [home, j) */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            h->slots[i] = *s;
            s->hash = 0;
            i = j;
        }
    }
    h->len--;
}

void *hmap_del(hmap_t *h, const void *key, size_t klen)
{
    if (!h->len)
        return NULL;
    size_t i = find_slot(h, hmap_hash(key, klen), key, klen);
    if (!h->slots[i].hash)
        return NULL;
    void *v = h->slots[i].val;
    remove_at(h, i);
    return v;
}

int hmap_del_if(hmap_t *h, const void *key, size_t klen, const void *val)
{
    if (!h->len)
        return 0;
    size_t i = find_slot(h, hmap_hash(key, klen), key, klen);
    if (!h->slots[i].hash || h->slots[i].val != val)
        return 0;
    remove_at(h, i);
    return 1;
}

size_t hmap_next(const hmap_t *h, size_t it, void **val)
{
    for (size_t i = it; i < h->cap; i++)
        if (h->slots[i].hash) {
            *val = h->slots[i].val;
            return i + 1;
        }
    return 0;
}
