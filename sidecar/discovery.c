/* discovery: namespace → peer connection, as docs/PROTOCOL.md §5.2 describes. One entry per
 * namespace moves IDLE → PENDING (one /-/find shared by every caller) →
 * CONNECTING (dial, unless a connection to that host:port exists in either
 * direction) → READY. A READY entry is reused while its connection is open and
 * not excluded; when a lookup fails but the previous connection is still open,
 * that connection is used (cache degradation) — unless it is the peer that just
 * failed and another healthy one is known (degrade_to). */
#include "sidecar.h"

#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

enum { D_IDLE, D_PENDING, D_CONNECTING, D_READY };

typedef struct disc_entry {
    char           ns[ADDR_NS_MAX];
    int            state;
    bool           self;      /* READY and the peer is this sidecar */
    wsconn_t      *conn;      /* READY (or the previous one, kept for degradation) */
    wsconn_t      *dialing;   /* CONNECTING */
    char           key[ADDR_KEY_MAX];
    disc_waiter_t *waiters;
    /* The last few peers that served this namespace (allocated when the first one
     * does): where degradation looks when the cached peer is the one that failed. */
    char         (*known)[ADDR_KEY_MAX];
    unsigned       nknown;    /* entries written, ever; slot = nknown % DISC_KNOWN */
    int64_t        used_ms;   /* last asked for: unused entries expire (disc_sweep) */
} disc_entry_t;

#define DISC_KNOWN 4

static disc_entry_t *entry(sidecar_t *s, const char *ns)
{
    disc_entry_t *e = hmap_gets(&s->cache, ns);
    if (e)
        return e;
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    snprintf(e->ns, sizeof(e->ns), "%s", ns);
    int err;
    hmap_put(&s->cache, e->ns, strlen(e->ns), e, &err);
    if (err) {
        free(e);
        return NULL;
    }
    return e;
}

static bool usable(const wsconn_t *c) { return c && c->established && !c->closing; }

static bool excluded(const char *key, const char *const *exclude)
{
    for (; exclude && *exclude; exclude++)
        if (!strcmp(*exclude, key))
            return true;
    return false;
}

/* Hands the outcome to every waiter. Waiters may call disc_get again from their
 * callback (a retry), so the list is detached first. */
static void resolve(disc_entry_t *e, int err)
{
    disc_waiter_t *w = e->waiters;
    e->waiters = NULL;
    while (w) {
        disc_waiter_t *next = w->next;
        w->next = NULL;
        if (err)
            w->cb(w->arg, err, NULL, false);
        else
            w->cb(w->arg, 0, e->self ? NULL : e->conn, e->self);
        w = next;
    }
}

static void remember(disc_entry_t *e, const char *key)
{
    if (!e->known && !(e->known = calloc(DISC_KNOWN, sizeof(*e->known))))
        return;
    unsigned n = e->nknown < DISC_KNOWN ? e->nknown : DISC_KNOWN;
    for (unsigned i = 0; i < n; i++)
        if (!strcmp(e->known[i], key))
            return;
    snprintf(e->known[e->nknown++ % DISC_KNOWN], ADDR_KEY_MAX, "%s", key);
    if (e->nknown >= 2 * DISC_KNOWN)
        e->nknown -= DISC_KNOWN; /* same slot, no overflow */
}

static bool known(const disc_entry_t *e, const char *key)
{
    unsigned n = e->nknown < DISC_KNOWN ? e->nknown : DISC_KNOWN;
    for (unsigned i = 0; e->known && i < n; i++)
        if (!strcmp(e->known[i], key))
            return true;
    return false;
}

/* A peer calls may go to now: open, not excluded by the breaker. */
static bool healthy(sidecar_t *s, const disc_entry_t *e, const wsconn_t *c, const char *const *ex)
{
    return usable(c) && !excluded(c->key, ex) && breaker_allows(s, e->ns, c->key);
}

/* The lookup failed: which open connection to use instead (cache degradation)?
 * The cached peer, unless it is the one the breaker excludes right now (it just
 * failed: the lookup was made to get away from it) and a healthy one is known:
 * a peer that served this namespace before, or a peer of this namespace that
 * connected to us (both still open, both in the one-per-pair table, so verified
 * by the rules of mesh.c). With nothing else known the cached peer is used, as
 * the reference does. */
static wsconn_t *degrade_to(sidecar_t *s, disc_entry_t *e)
{
    const char *ex[65];
    breaker_excluded(s, e->ns, ex, 65);
    if (!usable(e->conn) || healthy(s, e, e->conn, ex))
        return usable(e->conn) ? e->conn : NULL;
    void *v;
    for (size_t it = 0; (it = hmap_next(&s->peers, it, &v)) != 0;) {
        wsconn_t *c = v;
        if (c != e->conn && healthy(s, e, c, ex) &&
            ((!c->outbound && !strcmp(c->ns, e->ns)) || known(e, c->key)))
            return c;
    }
    return e->conn;
}

static void lookup_failed(sidecar_t *s, disc_entry_t *e, int err)
{
    s->stats.find_failures++;
    wsconn_t *c = degrade_to(s, e);
    if (c) {
        s->stats.degraded++;
        if (c != e->conn)
            LOG_INFO("lookup failed, using another known peer than the one that failed",
                     LF_STR("ns", e->ns), LF_STR("peer", c->key), LF_STR("failed", e->conn->key));
        else
            LOG_DEBUG("lookup failed, using the cached peer", LF_STR("ns", e->ns), LF_STR("peer", c->key));
        e->conn = c;
        snprintf(e->key, sizeof(e->key), "%s", c->key);
        remember(e, c->key);
        e->state = D_READY;
        resolve(e, 0);
        return;
    }
    e->state = D_IDLE;
    e->conn = NULL;
    e->self = false;
    resolve(e, err);
}

static void ready(disc_entry_t *e, wsconn_t *c, bool self)
{
    e->state = D_READY;
    e->conn = c;
    e->self = self;
    e->dialing = NULL;
    if (c)
        remember(e, c->key);
    resolve(e, 0);
}

typedef struct find_ctx {
    sidecar_t *s;
    char       ns[ADDR_NS_MAX];
} find_ctx_t;

static void found(void *arg, int status, const frame_t *resp)
{
    find_ctx_t *fc = arg;
    sidecar_t *s = fc->s;
    disc_entry_t *e = hmap_gets(&s->cache, fc->ns);
    free(fc);
    if (!e || e->state != D_PENDING)
        return;
    jspan_t host, port;
    char hostbuf[ADDR_HOST_MAX];
    uint64_t portnum;
    if (status != 200) {
        LOG_DEBUG("registry lookup failed", LF_STR("ns", e->ns), LF_INT("status", status));
        lookup_failed(s, e, CALL_E_NO_INSTANCE);
        return;
    }
    if (resp->result.t != JT_OBJECT || !jobj_get(resp->result, "host", &host) ||
        !jobj_get(resp->result, "port", &port) ||
        jstr_get(host, hostbuf, sizeof(hostbuf), NULL) || jnum_u53(port, &portnum) ||
        portnum < 1 || portnum > 65535) {
        lookup_failed(s, e, CALL_E_NO_INSTANCE); /* no data: nobody (left) to call */
        return;
    }
    addr_t a;
    /* An IPv6 host may come bracketed ("[::1]") from another registry: dialed,
     * keyed and compared without the brackets, or getaddrinfo gets "[::1]". */
    if (addr_host_unbracket(hostbuf, strlen(hostbuf), a.host, sizeof(a.host)) < 0) {
        LOG_DEBUG("registry answered a bad host", LF_STR("ns", e->ns));
        lookup_failed(s, e, CALL_E_NO_INSTANCE);
        return;
    }
    a.port = (unsigned)portnum;
    addr_format_key(a.host, a.port, e->key, sizeof(e->key));
    if (!strcmp(e->key, s->self_key)) {
        ready(e, NULL, true);
        return;
    }
    wsconn_t *c = hmap_gets(&s->peers, e->key);
    if (usable(c)) {
        ready(e, c, false);
        return;
    }
    if (c && !c->closing && !c->established) { /* already being dialed for another ns */
        e->state = D_CONNECTING;
        e->dialing = c;
        return;
    }
    c = wsconn_dial(&s->net, &a, s->handshake, s->cfg.handshake_timeout_ms, NULL);
    if (!c) {
        lookup_failed(s, e, s->net.last_dial_err ? CALL_E_RESOLVE : CALL_E_UNREACHABLE);
        return;
    }
    int err;
    hmap_put(&s->peers, c->key, strlen(c->key), c, &err);
    e->state = D_CONNECTING;
    e->dialing = c;
}

static void start_lookup(sidecar_t *s, disc_entry_t *e, const char *const *exclude)
{
    e->state = D_PENDING;
    s->stats.finds++;
    if (!s->registry_up) {
        lookup_failed(s, e, CALL_E_NO_INSTANCE);
        return;
    }
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    sbuf_adds(&b, "{\"namespace\":");
    sbuf_add_json_str(&b, e->ns, strlen(e->ns));
    if (exclude && *exclude) {
        sbuf_adds(&b, ",\"exclude\":[");
        for (const char *const *x = exclude; *x; x++) {
            if (x != exclude)
                sbuf_addc(&b, ',');
            sbuf_add_json_str(&b, *x, strlen(*x));
            /* An IPv6 peer also under the key a Node registry files it by when
             * it announced "::1" ("::1:9100"): that registry compares exclude
             * entries as plain strings. Ours compares them canonically. */
            char alt[ADDR_KEY_MAX];
            int an = addr_key_reference_form(*x, alt, sizeof(alt));
            if (an > 0) {
                sbuf_addc(&b, ',');
                sbuf_add_json_str(&b, alt, (size_t)an);
            }
        }
        sbuf_addc(&b, ']');
    }
    sbuf_addc(&b, '}');
    find_ctx_t *fc = malloc(sizeof(*fc));
    int rc = fc ? 0 : -1;
    if (fc) {
        fc->s = s;
        snprintf(fc->ns, sizeof(fc->ns), "%s", e->ns);
        rc = modem_request(&s->registry->modem, "/-/find", 7, sbuf_data(&b), b.len,
                           s->cfg.lookup_timeout_ms, found, fc, NULL);
    }
    sbuf_free(&b);
    if (rc) {
        free(fc);
        lookup_failed(s, e, CALL_E_NO_INSTANCE);
    }
}

void disc_get(sidecar_t *s, const char *ns, const char *const *exclude, disc_waiter_t *w,
              disc_cb_t cb, void *arg)
{
    disc_entry_t *e = entry(s, ns);
    if (!e) {
        cb(arg, CALL_E_OVERLOAD, NULL, false);
        return;
    }
    e->used_ms = now_ms();
    if (e->state == D_READY && (e->self || usable(e->conn)) && !excluded(e->key, exclude)) {
        s->stats.cache_hits++;
        cb(arg, 0, e->self ? NULL : e->conn, e->self);
        return;
    }
    w->cb = cb;
    w->arg = arg;
    w->next = e->waiters;
    e->waiters = w;
    if (e->state == D_PENDING || e->state == D_CONNECTING)
        return; /* join the lookup in progress */
    start_lookup(s, e, exclude);
}

void disc_cancel(sidecar_t *s, const char *ns, disc_waiter_t *w)
{
    disc_entry_t *e = hmap_gets(&s->cache, ns);
    if (!e)
        return;
    for (disc_waiter_t **pp = &e->waiters; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            return;
        }
}

void disc_conn_open(sidecar_t *s, wsconn_t *c)
{
    void *v;
    /* collect first: resolving may start new lookups that touch the map */
    disc_entry_t *hits[64];
    size_t n = 0;
    for (size_t it = 0; (it = hmap_next(&s->cache, it, &v)) != 0 && n < 64;)
        if (((disc_entry_t *)v)->dialing == c)
            hits[n++] = v;
    for (size_t i = 0; i < n; i++)
        ready(hits[i], c, false);
}

void disc_conn_closed(sidecar_t *s, wsconn_t *c)
{
    void *v;
    disc_entry_t *failed[64];
    size_t n = 0;
    for (size_t it = 0; (it = hmap_next(&s->cache, it, &v)) != 0;) {
        disc_entry_t *e = v;
        if (e->conn == c) {
            e->conn = NULL;
            if (e->state == D_READY)
                e->state = D_IDLE;
        }
        if (e->dialing == c && n < 64)
            failed[n++] = e;
    }
    for (size_t i = 0; i < n; i++) {
        failed[i]->dialing = NULL;
        failed[i]->state = D_IDLE;
        resolve(failed[i], c->resolve_err ? CALL_E_RESOLVE : CALL_E_UNREACHABLE);
    }
}

size_t disc_namespaces(sidecar_t *s, const char **out, size_t max)
{
    void *v;
    size_t n = 0;
    for (size_t it = 0; (it = hmap_next(&s->cache, it, &v)) != 0 && n < max;) {
        disc_entry_t *e = v;
        if (e->state == D_READY && (e->self || usable(e->conn)))
            out[n++] = e->ns;
    }
    return n;
}

size_t disc_sweep(sidecar_t *s, int64_t unused_since_ms)
{
    void *v;
    disc_entry_t *old[256];
    size_t n = 0, total = 0;
    do {
        /* collected first: removing while iterating an open-addressing map skips */
        n = 0;
        for (size_t it = 0; (it = hmap_next(&s->cache, it, &v)) != 0 && n < 256;) {
            disc_entry_t *e = v;
            if ((e->state == D_IDLE || e->state == D_READY) && !e->waiters && !e->dialing &&
                e->used_ms < unused_since_ms)
                old[n++] = e;
        }
        for (size_t i = 0; i < n; i++) {
            hmap_del_if(&s->cache, old[i]->ns, strlen(old[i]->ns), old[i]);
            free(old[i]->known);
            free(old[i]);
        }
        total += n;
    } while (n == 256);
    return total;
}

bool disc_known(sidecar_t *s, const char *ns) { return hmap_gets(&s->cache, ns) != NULL; }

bool disc_evict_one(sidecar_t *s, char *ns_out, size_t ns_len)
{
    /* approximately the least recently used, as redis does it: the oldest of up
     * to 64 entries that nothing waits on, from where the last look stopped */
    size_t cap = s->cache.cap;
    if (!cap)
        return false;
    disc_entry_t *best = NULL;
    size_t seen = 0;
    for (size_t k = 0; k < cap && seen < 64; k++) {
        size_t i = (s->disc_cursor + k) % cap;
        if (!s->cache.slots[i].hash)
            continue;
        seen++;
        disc_entry_t *e = s->cache.slots[i].val;
        if ((e->state == D_IDLE || e->state == D_READY) && !e->waiters && !e->dialing &&
            (!best || e->used_ms < best->used_ms))
            best = e;
    }
    s->disc_cursor += 64;
    if (!best)
        return false;
    snprintf(ns_out, ns_len, "%s", best->ns);
    hmap_del_if(&s->cache, best->ns, strlen(best->ns), best);
    free(best->known);
    free(best);
    return true;
}

void disc_free(sidecar_t *s)
{
    void *v;
    for (size_t it = 0; (it = hmap_next(&s->cache, it, &v)) != 0;) {
        free(((disc_entry_t *)v)->known);
        free(v);
    }
    hmap_free(&s->cache);
}
