/* addr: peer identity on the wire (docs/PROTOCOL.md §2): "host:port" keys (IPv6 as
 * "[addr]:port", split at the last ':'), and the handshake path
 * "/{advertiseHost}/{listenPort}/{namespace}" built by dialers, parsed by acceptors. */
#ifndef MICRO_ADDR_H
#define MICRO_ADDR_H

#include <stdbool.h>
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
    ADDR_E_HOST = -3,     /* empty or too long host; in a handshake, not addr_host_valid() */
    ADDR_E_SEGMENTS = -4, /* handshake path with fewer than 3 segments */
    ADDR_E_NAMESPACE = -5 /* namespace not addr_ns_valid() */
};

/* "host:port" or "[v6]:port" → addr, split at the last ':'. An IPv6 host is
 * also accepted unbracketed when the part before the last ':' is a valid IPv6
 * address ("::1:9100" → ::1 port 9100): that is how the reference keys a peer
 * that announced "::1", and how a Node consumer writes its exclude list.
 * Returns ADDR_OK or a negative ADDR_E_*. */
int addr_parse_key(const char *key, size_t len, addr_t *out);
/* Parses a port string: all digits, 1..65535. Returns the port or 0. */
unsigned addr_parse_port(const char *s, size_t len);
/* Writes the canonical key ("[v6]:port" for an IPv6 host); returns its length,
 * or -1 if it does not fit. */
int addr_format_key(const char *host, unsigned port, char *out, size_t outlen);
/* The same key as the reference writes it for a peer that announced an
 * unbracketed IPv6 host: "[::1]:80" → "::1:80". Returns the length, or -1 when
 * the key is not a bracketed one (nothing to write) or does not fit. */
int addr_key_reference_form(const char *key, char *out, size_t outlen);

/* True when h[0..n) is an IPv6 literal (no brackets; "%zone" allowed). */
bool addr_is_ipv6(const char *h, size_t n);
/* Copies a host into out (NUL-terminated), removing one pair of brackets around
 * an IPv6 literal ("[::1]" → "::1"), so it can be dialed, keyed and announced.
 * Returns the host's length, or ADDR_E_HOST: empty, too long for outlen, stray
 * brackets, or brackets around something that is not an IPv6 address. */
int addr_host_unbracket(const char *h, size_t n, char *out, size_t outlen);

/* Whether h[0..n) (brackets already removed) is an IPv4 literal, an IPv6 literal
 * (optionally with a %zone) or a DNS name of RFC 1123 labels (letters, digits, '-';
 * <= 63 bytes each, <= 253 in all, one trailing '.' allowed; the last label not all
 * digits). Anything else (spaces, quotes, '=', controls, '_') is refused, so a
 * claimed identity is always something a resolver could answer for. */
bool addr_host_valid(const char *h, size_t n);

/* Whether ns[0..n) can be a namespace: 1..ADDR_NS_MAX-1 bytes of valid UTF-8 without
 * control characters (C0, DEL, C1, U+2028/2029, bidi controls: utf8_is_control()),
 * so it is safe as a JSON key, a Prometheus label and in a log line. */
bool addr_ns_valid(const char *ns, size_t n);

/* Parses a handshake path (query string allowed, ignored): on success fills the
 * caller's address and points *ns and *nslen into `path` at the namespace
 * (extras joined by '/'). The host must pass addr_host_valid() (ADDR_E_HOST) and
 * the namespace addr_ns_valid() (ADDR_E_NAMESPACE: an empty one too). */
int addr_parse_handshake(const char *path, size_t len, addr_t *caller,
                         const char **ns, size_t *nslen);
/* Builds "/{host}/{port}/{ns}" (+ "?query" when query is non-NULL); returns length or -1.
 * host is written as given: an IPv6 host goes unbracketed ("/::1/9100/ns"),
 * exactly as a reference Application with advertiseHost "::1" announces itself,
 * so a Node registry keys us "::1:9100" — the key its consumers exclude and reuse
 * connections by (they build keys from the unbracketed /-/find host). */
int addr_build_handshake(const char *host, unsigned port, const char *ns,
                         const char *query, char *out, size_t outlen);

const char *addr_strerror(int err);

#endif
