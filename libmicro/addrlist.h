/* addrlist: a list of "host:port" addresses, "a:9000,b:9000" — the sidecar's
 * --registry list, which it dials round-robin (sidecar/mesh.c). Parsing only; who
 * dials which entry next is the caller's business. */
#ifndef MICRO_ADDRLIST_H
#define MICRO_ADDRLIST_H

#include <stddef.h>

#include "addr.h"

#define ADDR_LIST_MAX 16 /* entries; more is refused (ADDR_LIST_E_TOO_MANY) */

typedef struct addr_list {
    addr_t v[ADDR_LIST_MAX];
    size_t n; /* 1..ADDR_LIST_MAX after a successful parse */
} addr_list_t;

enum {
    ADDR_LIST_E_EMPTY = -20,    /* no entry, or an empty one (",,", a trailing ',') */
    ADDR_LIST_E_TOO_MANY = -21, /* more than ADDR_LIST_MAX entries */
    ADDR_LIST_E_DUP = -22       /* the same host:port twice */
};

/* Parses s[0..len): entries separated by ',', each "host:port" or "[v6]:port"
 * (addr_parse_key), spaces and tabs around an entry ignored. Returns 0, a negative
 * ADDR_LIST_E_*, or the entry's negative ADDR_E_*; on error *bad (if not NULL) is the
 * 0-based index of the offending entry. *out is filled only on success. */
int addr_list_parse(const char *s, size_t len, addr_list_t *out, size_t *bad);

const char *addr_list_strerror(int err);

#endif
