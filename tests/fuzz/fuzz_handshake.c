/* fuzz_handshake: addr_parse_handshake, addr_parse_key and addr_host_unbracket
 * on arbitrary bytes.
 * Whatever parses must be well formed (host 1..255 bytes without brackets or '/',
 * an IP or DNS name, port 1..65535, namespace inside the input, valid UTF-8 without
 * control characters) and, for inputs without NUL bytes,
 * must survive a build/format → parse round trip unchanged. A bracketed key
 * written as the reference writes it ("::1:80") parses to the same peer. A host
 * that unbrackets has no brackets left, and had them only around an IPv6 address. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

#include "fuzz_check.h"

static void check_addr(const addr_t *a)
{
    size_t hl = strnlen(a->host, sizeof(a->host));
    CHECK(hl < sizeof(a->host));
    CHECK(a->port >= 1 && a->port <= 65535);
    CHECK(!strchr(a->host, '[') && !strchr(a->host, ']') && !strchr(a->host, '/'));
}

static void fuzz_handshake(const char *p, size_t n, int has_nul)
{
    addr_t a;
    const char *ns = NULL;
    size_t nslen = 0;
    int rc = addr_parse_handshake(p, n, &a, &ns, &nslen);
    CHECK(rc <= 0 && rc >= ADDR_E_NAMESPACE);
    if (rc)
        return;
    check_addr(&a);
    CHECK(has_nul || a.host[0]);
    CHECK(nslen > 0 && nslen < ADDR_NS_MAX);
    CHECK(ns > p && ns + nslen <= p + n);
    CHECK(!memchr(ns, '?', nslen));
    /* a claimed identity is an IP or DNS name, a namespace clean UTF-8 */
    CHECK(addr_host_valid(a.host, strlen(a.host)) && addr_ns_valid(ns, nslen));
    /* "/h/1/ns/" parses as namespace "ns": a namespace ending in '/' cannot
     * survive the round trip, by the rules of docs/PROTOCOL.md §2.2. */
    if (has_nul || ns[nslen - 1] == '/')
        return;
    char nsbuf[ADDR_NS_MAX], path[ADDR_HOST_MAX + ADDR_NS_MAX + 16];
    memcpy(nsbuf, ns, nslen);
    nsbuf[nslen] = '\0';
    int len = addr_build_handshake(a.host, a.port, nsbuf, "q=1", path, sizeof(path));
    CHECK(len > 0);
    addr_t b;
    const char *ns2;
    size_t nslen2;
    CHECK(addr_parse_handshake(path, (size_t)len, &b, &ns2, &nslen2) == ADDR_OK);
    CHECK(!strcmp(a.host, b.host) && a.port == b.port);
    CHECK(nslen2 == nslen && !memcmp(ns2, nsbuf, nslen));
}

static void fuzz_key(const char *p, size_t n, int has_nul)
{
    addr_t a;
    int rc = addr_parse_key(p, n, &a);
    CHECK(rc == ADDR_OK || rc == ADDR_E_SYNTAX || rc == ADDR_E_PORT || rc == ADDR_E_HOST);
    if (rc)
        return;
    check_addr(&a);
    if (has_nul)
        return;
    CHECK(a.host[0]);
    char key[ADDR_KEY_MAX];
    int len = addr_format_key(a.host, a.port, key, sizeof(key));
    CHECK(len > 0);
    addr_t b;
    CHECK(addr_parse_key(key, (size_t)len, &b) == ADDR_OK);
    CHECK(!strcmp(a.host, b.host) && a.port == b.port);
    char ref[ADDR_KEY_MAX];
    int rl = addr_key_reference_form(key, ref, sizeof(ref));
    CHECK((rl > 0) == (key[0] == '['));
    if (rl > 0 && addr_is_ipv6(a.host, strlen(a.host))) {
        addr_t c;
        CHECK(addr_parse_key(ref, (size_t)rl, &c) == ADDR_OK);
        CHECK(!strcmp(a.host, c.host) && a.port == c.port);
    }
}

static void fuzz_unbracket(const char *p, size_t n, int has_nul)
{
    char out[ADDR_HOST_MAX];
    int rc = addr_host_unbracket(p, n, out, sizeof(out));
    CHECK(rc == ADDR_E_HOST || (rc > 0 && (size_t)rc < sizeof(out)));
    if (rc < 0)
        return;
    CHECK(!memchr(out, '[', (size_t)rc) && !memchr(out, ']', (size_t)rc));
    CHECK((size_t)rc == n || (size_t)rc == n - 2);
    if ((size_t)rc == n - 2)
        CHECK(p[0] == '[' && addr_is_ipv6(out, (size_t)rc));
    if (!has_nul)
        CHECK(strlen(out) == (size_t)rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    int has_nul = memchr(p, '\0', size) != NULL;
    fuzz_handshake(p, size, has_nul);
    fuzz_key(p, size, has_nul);
    fuzz_unbracket(p, size, has_nul);
    free(p);
    return 0;
}
