/* hmap: an open-addressing hash map from byte-string keys to pointers.
 * Used for every table in both binaries (connections by "host:port", pending
 * requests by id, namespaces, routes). The map never copies keys: a key must live
 * as long as its entry, which is natural when the key is a field of the value.
 * Keys are chosen by peers, so they are hashed with SipHash-2-4 under a random
 * key of each map's own (from getrandom): nobody outside the process can compute
 * keys that collide (hash flooding), and knowing one map's layout says nothing
 * about another's. */
#ifndef MICRO_HMAP_H
#define MICRO_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hmap_slot {
    uint64_t    hash;   /* 0 = empty */
    const void *key;
    size_t      klen;
    void       *val;
} hmap_slot_t;

typedef struct hmap {
    hmap_slot_t *slots;
    size_t       cap;   /* power of two, or 0 */
    size_t       len;
    uint64_t     k0, k1;/* the SipHash key; drawn at the first insert unless keyed */
    int          keyed; /* k0/k1 are set */
} hmap_t;

/* SipHash-2-4 (Aumasson & Bernstein) of data under the key (k0, k1) = the key's
 * bytes 0-7 and 8-15 read little-endian, as in the reference implementation. */
uint64_t hmap_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len);
/* The slot hash of a key in this map: SipHash under the map's key, never 0. */
uint64_t hmap_hash(const hmap_t *h, const void *key, size_t klen);

/* An empty map; its hash key is drawn from getrandom at the first insert. */
void  hmap_init(hmap_t *h);
/* An empty map with a given hash key (tests, reproducible layouts). */
void  hmap_init_keyed(hmap_t *h, uint64_t k0, uint64_t k1);
void  hmap_free(hmap_t *h);                    /* frees the table, not the values */
void *hmap_get(const hmap_t *h, const void *key, size_t klen);
/* Inserts or replaces; returns the previous value (or NULL). -1 on OOM via *err. */
void *hmap_put(hmap_t *h, const void *key, size_t klen, void *val, int *err);
void *hmap_del(hmap_t *h, const void *key, size_t klen); /* returns the removed value */
/* Removes the entry only if it still maps to val (the "same connection" rule). */
int   hmap_del_if(hmap_t *h, const void *key, size_t klen, const void *val);

static inline void *hmap_gets(const hmap_t *h, const char *key);
static inline size_t hmap_len(const hmap_t *h) { return h->len; }

/* Iteration: for (size_t i = 0; (i = hmap_next(h, i, &v)) != 0; ) ... (i is 1-based) */
size_t hmap_next(const hmap_t *h, size_t it, void **val);

#include <string.h>
static inline void *hmap_gets(const hmap_t *h, const char *key) { return hmap_get(h, key, strlen(key)); }

#endif
