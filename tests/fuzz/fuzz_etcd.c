/* fuzz_etcd: everything the registry parses from etcd (registry/etcdproto.c).
 * The input is a watch stream: it is split into messages at once and in pieces
 * chosen by the first byte (the same messages must come out either way), and
 * every message goes through each answer parser (range, watch, lease grant,
 * keepalive, txn) and the value decoder. Nothing may crash, read out of bounds,
 * leak, or report more than it was given. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcdproto.h"

#include "fuzz_check.h"

#define MAXMSG 64

typedef struct msgs {
    size_t n;
    size_t len[MAXMSG];
    uint64_t hash[MAXMSG];
} msgs_t;

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static int on_kv(void *arg, etcd_ev_t type, const etcd_kv_t *kv)
{
    (void)arg;
    CHECK(type == ETCD_EV_PUT || type == ETCD_EV_DELETE);
    CHECK(kv->key_len < sizeof(kv->key));
    CHECK(kv->value_len < sizeof(kv->value));
    char rep[ETCD_REPLICA_MAX], ns[ADDR_NS_MAX], hp[ADDR_KEY_MAX];
    if (!etcd_value_decode(kv->value, kv->value_len, rep, sizeof(rep), ns, sizeof(ns)))
        CHECK(strlen(rep) < sizeof(rep) && strlen(ns) < sizeof(ns));
    etcd_key_instance(kv->key, kv->key_len, "/micro/instances/", hp, sizeof(hp));
    return 0;
}

static int on_msg(void *arg, const char *p, size_t n)
{
    msgs_t *m = arg;
    etcd_answer_t a;
    if (m->n < MAXMSG) {
        m->len[m->n] = n;
        m->hash[m->n] = fnv(p, n);
    }
    m->n++;
    /* The parsers read exactly [p, p+n): give them an exact-size copy. */
    char *c = malloc(n ? n : 1);
    memcpy(c, p, n);
    if (!etcd_parse_watch(c, n, &a, on_kv, NULL))
        CHECK(a.skipped <= a.nevents);
    if (!etcd_parse_range(c, n, &a, on_kv, NULL))
        CHECK(a.skipped <= a.nkvs && a.last_key_len < sizeof(a.last_key));
    if (!etcd_parse_lease_grant(c, n, &a) && !a.is_error)
        CHECK(a.lease_id && a.ttl > 0);
    etcd_parse_keepalive(c, n, &a);
    etcd_parse_simple(c, n, &a);
    CHECK(strlen(a.err) < sizeof(a.err));
    free(c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;

    msgs_t whole = {0}, parts = {0};
    etcd_stream_t s;
    etcd_stream_init(&s, 4096);
    int rc1 = etcd_stream_feed(&s, p, n, on_msg, &whole);
    etcd_stream_free(&s);

    etcd_stream_init(&s, 4096);
    int rc2 = 0;
    for (size_t off = 0; off < n && !rc2;) {
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % 17 + 1;
        if (len > n - off)
            len = n - off;
        rc2 = etcd_stream_feed(&s, p + off, len, on_msg, &parts);
        off += len;
    }
    etcd_stream_free(&s);
    CHECK(rc1 == rc2);
    if (!rc1) {
        CHECK(whole.n == parts.n);
        for (size_t i = 0; i < whole.n && i < MAXMSG; i++)
            CHECK(whole.len[i] == parts.len[i] && whole.hash[i] == parts.hash[i]);
    }

    /* base64 of the raw input, both ways */
    char out[256];
    size_t on;
    if (!etcd_b64_decode(p, n, out, sizeof(out), &on))
        CHECK(on <= sizeof(out) && on <= n);
    return 0;
}
