#include "addr.h"
#include "utf8.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

unsigned addr_parse_port(const char *s, size_t len)
{
    if (len == 0 || len > 5)
        return 0;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v >= 1 && v <= 65535 ? v : 0;
}

/* Copies a host, removing one pair of brackets around an IPv6 literal. */
static int copy_host(const char *h, size_t n, addr_t *out)
{
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= ADDR_HOST_MAX)
        return ADDR_E_HOST;
    if (memchr(h, '[', n) || memchr(h, ']', n) || memchr(h, '/', n))
        return ADDR_E_HOST;
    memcpy(out->host, h, n);
    out->host[n] = '\0';
    return ADDR_OK;
}

/* An RFC 1123 label: 1-63 letters, digits and '-', not starting or ending with '-'. */
static bool dns_label_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

bool addr_host_valid(const char *h, size_t n)
{
    char buf[ADDR_HOST_MAX];
    struct in6_addr a6;
    struct in_addr a4;

    if (n == 0 || n >= sizeof(buf) || memchr(h, '\0', n))
        return false;
    memcpy(buf, h, n);
    buf[n] = '\0';
    if (memchr(buf, ':', n)) {
        /* IPv6, optionally with a zone: fe80::1%eth0 */
        char *zone = strchr(buf, '%');
        if (zone) {
            size_t zl = n - (size_t)(zone - buf) - 1;
            if (zl == 0 || zl > 15)
                return false;
            for (size_t i = 1; i <= zl; i++) {
                char c = zone[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '-'))
                    return false;
            }
            *zone = '\0';
        }
        return inet_pton(AF_INET6, buf, &a6) == 1;
    }
    if (inet_pton(AF_INET, buf, &a4) == 1)
        return true;
    /* A DNS name: labels split at '.', at most 253 bytes (one trailing '.' allowed);
     * a last label of digits only would be a malformed IPv4 address, not a name. */
    if (buf[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return false;
    const char *label = buf, *end = buf + n;
    for (;;) {
        const char *dot = memchr(label, '.', (size_t)(end - label));
        size_t ll = (size_t)((dot ? dot : end) - label);
        if (!dns_label_ok(label, ll))
            return false;
        if (!dot)
            return !all_digits(label, ll);
        label = dot + 1;
    }
}

bool addr_ns_valid(const char *ns, size_t n)
{
    return n > 0 && n < ADDR_NS_MAX && utf8_valid_text(ns, n);
}

bool addr_is_ipv6(const char *h, size_t n)
{
    char buf[64];
    struct in6_addr a6;
    const char *zone = memchr(h, '%', n);
    if (zone) { /* fe80::1%eth0: the zone names an interface */
        for (const char *z = zone + 1; z < h + n; z++)
            if (!((*z >= 'a' && *z <= 'z') || (*z >= 'A' && *z <= 'Z') || (*z >= '0' && *z <= '9') ||
                  *z == '.' || *z == '-' || *z == '_'))
                return false;
        if (zone + 1 == h + n)
            return false;
        n = (size_t)(zone - h);
    }
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, h, n);
    buf[n] = '\0';
    return inet_pton(AF_INET6, buf, &a6) == 1;
}

int addr_host_unbracket(const char *h, size_t n, char *out, size_t outlen)
{
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
        if (!addr_is_ipv6(h, n))
            return ADDR_E_HOST; /* brackets are for IPv6 literals only */
    }
    if (n == 0 || n >= outlen || memchr(h, '[', n) || memchr(h, ']', n))
        return ADDR_E_HOST;
    memcpy(out, h, n);
    out[n] = '\0';
    return (int)n;
}

int addr_parse_key(const char *key, size_t len, addr_t *out)
{
    const char *colon = NULL;
    for (size_t i = len; i-- > 0;)
        if (key[i] == ':') {
            colon = key + i;
            break;
        }
    if (!colon)
        return ADDR_E_SYNTAX;
    size_t hlen = (size_t)(colon - key);
    /* A host with a ':' is an IPv6 literal: "[::1]:80", or as the reference
     * writes it when a peer announced "::1", "::1:80" — split at the last ':'
     * (PROTOCOL §2), so only a valid address is accepted unbracketed. */
    if (memchr(key, ':', hlen) && !(hlen >= 2 && key[0] == '[' && key[hlen - 1] == ']') &&
        !addr_is_ipv6(key, hlen))
        return ADDR_E_SYNTAX;
    out->port = addr_parse_port(colon + 1, len - hlen - 1);
    if (!out->port)
        return ADDR_E_PORT;
    return copy_host(key, hlen, out);
}

int addr_format_key(const char *host, unsigned port, char *out, size_t outlen)
{
    int n = strchr(host, ':') ? snprintf(out, outlen, "[%s]:%u", host, port)
                              : snprintf(out, outlen, "%s:%u", host, port);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

int addr_key_reference_form(const char *key, char *out, size_t outlen)
{
    size_t n = strlen(key);
    const char *close = n && key[0] == '[' ? strchr(key, ']') : NULL;
    if (!close || close[1] != ':')
        return -1;
    int r = snprintf(out, outlen, "%.*s%s", (int)(close - key - 1), key + 1, close + 1);
    return r < 0 || (size_t)r >= outlen ? -1 : r;
}

int addr_parse_handshake(const char *path, size_t len, addr_t *caller,
                         const char **ns, size_t *nslen)
{
    const char *q = memchr(path, '?', len);
    if (q)
        len = (size_t)(q - path);
    if (len && path[0] == '/') {
        path++;
        len--;
    }
    if (len && path[len - 1] == '/')
        len--;
    const char *s1 = memchr(path, '/', len);
    if (!s1)
        return ADDR_E_SEGMENTS;
    const char *rest = s1 + 1;
    size_t rlen = len - (size_t)(rest - path);
    const char *s2 = memchr(rest, '/', rlen);
    if (!s2)
        return ADDR_E_SEGMENTS;
    int rc = copy_host(path, (size_t)(s1 - path), caller);
    if (rc)
        return rc;
    if (memchr(path, '\0', (size_t)(s1 - path)) || !addr_host_valid(caller->host, strlen(caller->host)))
        return ADDR_E_HOST;
    caller->port = addr_parse_port(rest, (size_t)(s2 - rest));
    if (!caller->port)
        return ADDR_E_PORT;
    *ns = s2 + 1;
    *nslen = len - (size_t)(*ns - path);
    if (!addr_ns_valid(*ns, *nslen))
        return ADDR_E_NAMESPACE;
    return ADDR_OK;
}

int addr_build_handshake(const char *host, unsigned port, const char *ns,
                         const char *query, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "/%s/%u/%s%s%s", host, port, ns, query ? "?" : "",
                     query ? query : "");
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

const char *addr_strerror(int err)
{
    switch (err) {
    case ADDR_OK: return "ok";
    case ADDR_E_SYNTAX: return "not host:port";
    case ADDR_E_PORT: return "port must be an integer 1-65535";
    case ADDR_E_HOST: return "host is not an IP address or a DNS name";
    case ADDR_E_SEGMENTS: return "handshake path needs /host/port/namespace";
    case ADDR_E_NAMESPACE: return "namespace empty, too long, not UTF-8 or with control characters";
    }
    return "unknown error";
}
