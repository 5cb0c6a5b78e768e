#include "hmap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                   \
    do {                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                  \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

/* SipHash-2-4, after the reference implementation: 2 rounds per 8-byte word, 4 to
 * finish. Keys here are short (addresses, ids, urls), so this is a few dozen ns. */
uint64_t hmap_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t hmap_hash(const hmap_t *h, const void *key, size_t klen)
{
    uint64_t v = hmap_siphash(h->k0, h->k1, key, klen);
    return v ? v : 1; /* 0 marks an empty slot */
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A fresh key for one map. getrandom does not block once the kernel's pool is
 * initialised (it always is by the time a container runs); should it fail anyway,
 * the key comes from the clock, the pid and the map's address: not secret, but
 * different in every process, which is what an offline collision search needs. */
static void draw_key(hmap_t *h)
{
    uint64_t k[2];
    if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 48 ^
                     (uint64_t)(uintptr_t)h;
        k[0] = splitmix64(&x);
        k[1] = splitmix64(&x);
    }
    h->k0 = k[0];
    h->k1 = k[1];
    h->keyed = 1;
}

void hmap_init(hmap_t *h) { memset(h, 0, sizeof(*h)); }

void hmap_init_keyed(hmap_t *h, uint64_t k0, uint64_t k1)
{
    memset(h, 0, sizeof(*h));
    h->k0 = k0;
    h->k1 = k1;
    h->keyed = 1;
}

/* Frees the table; the map keeps its hash key (a map reused after a free hashes
 * the same way). */
void hmap_free(hmap_t *h)
{
    free(h->slots);
    h->slots = NULL;
    h->cap = 0;
    h->len = 0;
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
    if (!h->keyed)
        draw_key(h); /* the first insert: maps that stay empty cost no syscall */
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
    const hmap_slot_t *s = &h->slots[find_slot(h, hmap_hash(h, key, klen), key, klen)];
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
    uint64_t hash = hmap_hash(h, key, klen);
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
    size_t i = find_slot(h, hmap_hash(h, key, klen), key, klen);
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
    size_t i = find_slot(h, hmap_hash(h, key, klen), key, klen);
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
