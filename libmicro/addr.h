/* addr: peer identity on the wire (PROTOCOL §2): "host:port" keys (IPv6 as
 * "[addr]:port", split at the last ':'), and the handshake path
 * "/{advertiseHost}/{listenPort}/{namespace}" built by dialers, parsed by acceptors. */
#ifndef MICRO_ADDR_H
#define MICRO_ADDR_H

#include <stddef.h>

#define ADDR_HOST_MAX 256
#define ADDR_KEY_MAX  (ADDR_HOST_MAX + 8)
#define ADDR_NS_MAX   512

typedef struct addr {
    char     host[ADDR_HOST_MAX]; /* without brackets */
    unsigned port;                /* 1..65535 */
} addr_t;

enum {
    ADDR_OK = 0,
    ADDR_E_SYNTAX = -1,   /* not host:port */
    ADDR_E_PORT = -2,     /* port missing, not an integer, or out of 1..65535 */
    ADDR_E_HOST = -3,     /* empty or too long host */
    ADDR_E_SEGMENTS = -4, /* handshake path with fewer than 3 segments */
    ADDR_E_NAMESPACE = -5 /* empty or too long namespace */
};

/* "host:port" or "[v6]:port" → addr. Returns ADDR_OK or a negative ADDR_E_*. */
int addr_parse_key(const char *key, size_t len, addr_t *out);
/* Parses a port string: all digits, 1..65535. Returns the port or 0. */
unsigned addr_parse_port(const char *s, size_t len);
/* Writes the canonical key; returns its length, or -1 if it does not fit. */
int addr_format_key(const char *host, unsigned port, char *out, size_t outlen);

/* Parses a handshake path (query string allowed, ignored): on success fills the
 * caller's address and points *ns and *nslen into `path` at the namespace
 * (extras joined by '/'). An empty namespace is refused (ADDR_E_NAMESPACE). */
int addr_parse_handshake(const char *path, size_t len, addr_t *caller,
                         const char **ns, size_t *nslen);
/* Builds "/{host}/{port}/{ns}" (+ "?query" when query is non-NULL); returns length or -1. */
int addr_build_handshake(const char *host, unsigned port, const char *ns,
                         const char *query, char *out, size_t outlen);

const char *addr_strerror(int err);

#endif
