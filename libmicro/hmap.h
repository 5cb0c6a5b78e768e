/* hmap: an open-addressing hash map from byte-string keys to pointers.
 * Used for every table in both binaries (connections by "host:port", pending
 * requests by id, namespaces, routes). The map never copies keys: a key must live
 * as long as its entry, which is natural when the key is a field of the value. */
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
} hmap_t;

uint64_t hmap_hash(const void *key, size_t klen);

void  hmap_init(hmap_t *h);
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
