#include "registry.h"

#include "log.h"
#include "prom.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* One registered connection. The namespace keeps instances in an array so that a
 * uniform random choice is one index; `idx` makes removal O(1) (swap with last). */
typedef struct nsentry nsentry_t;
typedef struct srcentry srcentry_t;
typedef struct instance {
    wsconn_t   *conn;    /* NULL: a remote instance (another replica holds it) */
    nsentry_t  *ns;
    srcentry_t *src;     /* the address the connection comes from (NULL: remote) */
    size_t      idx;
    int64_t     last_heartbeat_ms;
    unsigned    gen;     /* remote: the resync that last saw it */
    uint64_t    excl_gen;/* == registry find_gen: excluded by the find being served */
    char        key[];   /* "host:port", allocated to size: 10,000 instances */
} instance_t;

/* Instances per source address, for --max-connections-per-address and for the
 * replacement rule (on_accept). Freed with its last instance. */
struct srcentry {
    size_t n;
    char   ip[];
};

struct nsentry {
    char         name[ADDR_NS_MAX];
    instance_t **v;
    size_t       n, cap;
};

static registry_t *reg_of(wsnet_t *n) { return n->user; }

static int ns_add(registry_t *r, instance_t *in, const char *name)
{
    nsentry_t *e = hmap_gets(&r->by_ns, name);
    if (!e) {
        int err;
        e = calloc(1, sizeof(*e));
        if (!e)
            return -1;
        snprintf(e->name, sizeof(e->name), "%s", name);
        hmap_put(&r->by_ns, e->name, strlen(e->name), e, &err);
        if (err) {
            free(e);
            return -1;
        }
    }
    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 4;
        instance_t **nv = realloc(e->v, ncap * sizeof(*nv));
        if (!nv)
            return -1;
        e->v = nv;
        e->cap = ncap;
    }
    in->ns = e;
    in->idx = e->n;
    e->v[e->n++] = in;
    return 0;
}

static void ns_remove(registry_t *r, instance_t *in)
{
    nsentry_t *e = in->ns;
    if (!e)
        return;
    e->v[in->idx] = e->v[--e->n];
    e->v[in->idx]->idx = in->idx;
    in->ns = NULL;
    if (!e->n) {
        hmap_del(&r->by_ns, e->name, strlen(e->name));
        free(e->v);
        free(e);
    }
}

/* Takes an instance out of membership; its connection may still be closing. */
static void instance_drop(registry_t *r, instance_t *in)
{
    ns_remove(r, in);
    hmap_del_if(&r->by_key, in->key, strlen(in->key), in);
}

static int src_attach(registry_t *r, instance_t *in, const char *ip)
{
    srcentry_t *se = hmap_gets(&r->by_src, ip);
    if (!se) {
        size_t len = strlen(ip);
        int err;
        se = calloc(1, sizeof(*se) + len + 1);
        if (!se)
            return -1;
        memcpy(se->ip, ip, len + 1);
        hmap_put(&r->by_src, se->ip, len, se, &err);
        if (err) {
            free(se);
            return -1;
        }
    }
    se->n++;
    in->src = se;
    return 0;
}

/* Out of membership (instance_drop) and its address count; frees it. */
static void instance_free(registry_t *r, instance_t *in)
{
    srcentry_t *se = in->src;
    if (se && --se->n == 0) {
        hmap_del_if(&r->by_src, se->ip, strlen(se->ip), se);
        free(se);
    }
    free(in);
}

/* A live registration is one whose connection is open and heartbeating; a newcomer
 * from another address may take over its key only once it has been silent for
 * half the heartbeat timeout (its pod is gone, the eviction is on its way). A
 * remote instance (--store etcd: another replica holds it) is not judged here: we
 * know neither its source nor its heartbeats, and the store decides which of two
 * registrations is newer. */
static bool instance_live(const registry_t *r, const instance_t *in)
{
    return in->conn && !in->conn->closing &&
           now_ms() - in->last_heartbeat_ms < r->cfg.heartbeat_timeout_ms / 2;
}

/* ---- connection events ---- */

static int on_accept(wsnet_t *n, struct lws *wsi, const addr_t *caller, const char *ns)
{
    registry_t *r = reg_of(n);
    if (r->cfg.mesh_token && *r->cfg.mesh_token) {
        if (!wsconn_token_ok(wsi, r->cfg.mesh_token)) {
            char who[ADDR_KEY_MAX];
            if (addr_format_key(caller->host, caller->port, who, sizeof(who)) < 0)
                who[0] = '\0';
            LOG_WARN("handshake refused: bad mesh token", LF_STR("caller", who), LF_STR("ns", ns));
            return -1;
        }
    }
    char src[64], key[ADDR_KEY_MAX];
    wsconn_peer_address(wsi, src, sizeof(src));
    if (r->cfg.verify_peer_address && strcmp(src, caller->host) != 0) {
        LOG_WARN("handshake refused: claimed host is not the source address",
                 LF_STR("claimed", caller->host), LF_STR("source", src), LF_STR("ns", ns));
        return -1;
    }
    /* The replacement rule: a key that is registered and live is taken over only by
     * a connection from the same source address (the same pod reconnecting or
     * restarted). Anyone else claiming it is refused, however often it tries, so a
     * flapping impostor never displaces the real instance. */
    addr_format_key(caller->host, caller->port, key, sizeof(key));
    instance_t *old = hmap_gets(&r->by_key, key);
    bool same_src = old && old->src && !strcmp(old->src->ip, src);
    if (old && !same_src && instance_live(r, old)) {
        r->refused_takeover++;
        LOG_WARN("handshake refused: the key is registered from another address", LF_STR("key", key),
                 LF_STR("source", src), LF_STR("registered_from", old->src ? old->src->ip : ""),
                 LF_STR("ns", ns));
        return -1;
    }
    /* One address may hold at most --max-connections-per-address registrations, so
     * it cannot take all of --max-connections. A same-address replacement does not
     * add one. */
    if (r->cfg.max_connections_per_address > 0 && !same_src) {
        srcentry_t *se = hmap_gets(&r->by_src, src);
        if (se && se->n >= (size_t)r->cfg.max_connections_per_address) {
            r->refused_per_address++;
            LOG_WARN("handshake refused: too many connections from this address", LF_STR("source", src),
                     LF_INT("limit", r->cfg.max_connections_per_address), LF_STR("ns", ns));
            return -1;
        }
    }
    return 0;
}

static void on_open(wsconn_t *c)
{
    registry_t *r = reg_of(c->net);
    size_t klen = strlen(c->key);
    instance_t *in = calloc(1, sizeof(*in) + klen + 1);
    if (!in) {
        wsconn_close(c);
        return;
    }
    memcpy(in->key, c->key, klen + 1);
    in->conn = c;
    in->last_heartbeat_ms = now_ms();
    char src[64];
    wsconn_peer_address(c->wsi, src, sizeof(src));
    if (src_attach(r, in, src)) {
        free(in);
        wsconn_close(c);
        return;
    }
    int err;
    instance_t *old = hmap_put(&r->by_key, in->key, strlen(in->key), in, &err);
    if (err || ns_add(r, in, c->ns)) {
        hmap_del_if(&r->by_key, in->key, strlen(in->key), in);
        if (old && !err) /* put back the registration we displaced */
            hmap_put(&r->by_key, old->key, strlen(old->key), old, &err);
        instance_free(r, in);
        wsconn_close(c);
        return;
    }
    c->user = in;
    if (old) {
        /* The same host:port registered again (a restarted pod, a reconnect that
         * beat the old socket's close): the newest connection wins. The old one is
         * detached first so that its close cannot remove the new registration. */
        r->replaced++;
        ns_remove(r, old);
        if (old->conn) {
            old->conn->user = NULL;
            LOG_INFO("instance replaced by a new connection", LF_STR("key", in->key),
                     LF_STR("ns", c->ns));
            wsconn_close(old->conn);
        } else {
            r->nremote--;
        }
        instance_free(r, old);
    }
    LOG_INFO("instance registered", LF_STR("key", in->key), LF_STR("ns", c->ns));
    store_publish(r->store, in->key, c->ns);
}

static void on_close(wsconn_t *c)
{
    registry_t *r = reg_of(c->net);
    instance_t *in = c->user;
    if (!in)
        return;
    LOG_INFO("instance removed", LF_STR("key", in->key), LF_STR("ns", c->ns));
    store_unpublish(r->store, in->key);
    instance_drop(r, in);
    instance_free(r, in);
    c->user = NULL;
}

/* The instance an exclude entry names, looked up in canonical form ("[::1]:80"). */
static instance_t *excluded_instance(registry_t *r, jspan_t item)
{
    char raw[ADDR_KEY_MAX], canon[ADDR_KEY_MAX];
    addr_t a;
    if (item.t != JT_STRING || jstr_get(item, raw, sizeof(raw), NULL))
        return NULL;
    if (!addr_parse_key(raw, strlen(raw), &a) &&
        addr_format_key(a.host, a.port, canon, sizeof(canon)) > 0)
        return hmap_gets(&r->by_key, canon);
    return hmap_gets(&r->by_key, raw);
}

/* A uniform choice among the members of e not stamped with gen (nmarked are). */
static instance_t *pick_unmarked(const nsentry_t *e, uint64_t gen, size_t nmarked)
{
    if (nmarked >= e->n)
        return NULL;
    if (nmarked * 2 <= e->n) {
        /* at least half are candidates: a few random draws find one */
        for (int i = 0; i < 16; i++) {
            instance_t *in = e->v[rng_below(e->n)];
            if (in->excl_gen != gen)
                return in;
        }
    }
    size_t k = rng_below(e->n - nmarked);
    for (size_t i = 0; i < e->n; i++)
        if (e->v[i]->excl_gen != gen && k-- == 0)
            return e->v[i];
    return NULL;
}

/* /-/find {"namespace": ns, "exclude": ["host:port", ...]}. Linear in the list and
 * the namespace: each entry is one key lookup that stamps the instance, then one
 * choice among the unstamped ones. At most REGISTRY_MAX_EXCLUDE entries. */
static void handle_find(registry_t *r, wsconn_t *c, const frame_t *f)
{
    char ns[ADDR_NS_MAX];
    jspan_t v, ex = {0};
    r->finds++;
    if (f->payload.t != JT_OBJECT || !jobj_get(f->payload, "namespace", &v) ||
        jstr_get(v, ns, sizeof(ns), NULL)) {
        if (f->twoway)
            modem_respond_err(&c->modem, f->id, 400, "find needs {\"namespace\": string}");
        return;
    }
    if (!jobj_get(f->payload, "exclude", &ex) || ex.t != JT_ARRAY)
        ex.t = JT_NONE;
    nsentry_t *e = hmap_gets(&r->by_ns, ns);
    instance_t *pick = NULL;
    size_t nmarked = 0, nex = 0;
    uint64_t gen = ++r->find_gen;
    if (ex.t == JT_ARRAY) {
        jiter_t it;
        jspan_t item;
        jarr_iter(&it, ex);
        while (jarr_next(&it, &item)) {
            if (++nex > REGISTRY_MAX_EXCLUDE) {
                r->exclude_too_long++;
                if (f->twoway) {
                    char msg[64];
                    snprintf(msg, sizeof(msg), "exclude has more than %d entries", REGISTRY_MAX_EXCLUDE);
                    modem_respond_err(&c->modem, f->id, 400, msg);
                }
                return;
            }
            instance_t *x = e ? excluded_instance(r, item) : NULL;
            if (x && x->ns == e && x->excl_gen != gen) {
                x->excl_gen = gen;
                nmarked++;
            }
        }
    }
    if (e && e->n)
        pick = nmarked ? pick_unmarked(e, gen, nmarked) : e->v[rng_below(e->n)];
    if (!f->twoway)
        return;
    if (!pick) {
        r->find_misses++;
        modem_respond_ok(&c->modem, f->id, NULL, 0);
        return;
    }
    addr_t a;
    addr_parse_key(pick->key, strlen(pick->key), &a);
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    sbuf_adds(&b, "{\"host\":");
    sbuf_add_json_str(&b, a.host, strlen(a.host));
    sbuf_printf(&b, ",\"port\":%u}", a.port);
    modem_respond_ok(&c->modem, f->id, sbuf_data(&b), b.len);
    sbuf_free(&b);
}

static void on_request(wsconn_t *c, const frame_t *f)
{
    registry_t *r = reg_of(c->net);
    instance_t *in = c->user;
    if (f->stream) {
        if (f->twoway)
            modem_respond_err(&c->modem, f->id, 501, "streaming requests are not supported");
        return;
    }
    if (jstr_eq(f->url, "/-/heartbeat")) {
        r->heartbeats++;
        if (in)
            in->last_heartbeat_ms = now_ms();
        if (f->twoway)
            modem_respond_ok(&c->modem, f->id, NULL, 0);
    } else if (jstr_eq(f->url, "/-/find")) {
        handle_find(r, c, f);
    } else if (f->twoway) {
        char url[512], msg[600];
        jstr_get(f->url, url, sizeof(url), NULL);
        snprintf(msg, sizeof(msg), "no route %s", url);
        modem_respond_err(&c->modem, f->id, 404, msg);
    }
}

/* ---- plain HTTP ---- */

static void http_namespaces(registry_t *r, sbuf_t *b)
{
    void *v;
    bool first = true;
    sbuf_addc(b, '{');
    for (size_t it = 0; (it = hmap_next(&r->by_ns, it, &v)) != 0;) {
        nsentry_t *e = v;
        if (!first)
            sbuf_addc(b, ',');
        first = false;
        sbuf_add_json_str(b, e->name, strlen(e->name));
        sbuf_add(b, ":[", 2);
        for (size_t i = 0; i < e->n; i++) {
            if (i)
                sbuf_addc(b, ',');
            sbuf_add_json_str(b, e->v[i]->key, strlen(e->v[i]->key));
        }
        sbuf_addc(b, ']');
    }
    sbuf_addc(b, '}');
}

static void http_metrics(registry_t *r, sbuf_t *b)
{
    const wsnet_stats_t *s = &r->net.stats;
    void *v;
    prom_head(b, "micro_registry_instances", "gauge", "Registered instances per namespace.");
    for (size_t it = 0; (it = hmap_next(&r->by_ns, it, &v)) != 0;) {
        nsentry_t *e = v;
        prom_labeled(b, "micro_registry_instances", "namespace", e->name, (double)e->n);
    }
    prom_metric(b, "micro_registry_namespaces", "gauge", "Namespaces with at least one instance.", (double)hmap_len(&r->by_ns));
    prom_metric(b, "micro_registry_connections", "gauge", "Open peer connections.", (double)r->net.nconns);
    prom_metric(b, "micro_registry_connections_accepted_total", "counter", "Peer connections accepted.", (double)s->conns_accepted);
    prom_metric(b, "micro_registry_connections_rejected_total", "counter", "Handshakes refused (bad path, limit, token, address).", (double)s->conns_rejected);
    prom_metric(b, "micro_registry_finds_total", "counter", "/-/find requests.", (double)r->finds);
    prom_metric(b, "micro_registry_find_misses_total", "counter", "/-/find answered with no instance.", (double)r->find_misses);
    prom_metric(b, "micro_registry_heartbeats_total", "counter", "Heartbeats received.", (double)r->heartbeats);
    prom_metric(b, "micro_registry_evictions_total", "counter", "Instances closed for missing heartbeats.", (double)r->evictions);
    prom_metric(b, "micro_registry_refused_per_address_total", "counter", "Handshakes refused by --max-connections-per-address.", (double)r->refused_per_address);
    prom_metric(b, "micro_registry_refused_takeover_total", "counter", "Handshakes refused for claiming a live key registered from another address.", (double)r->refused_takeover);
    prom_metric(b, "micro_registry_exclude_too_long_total", "counter", "/-/find requests refused for an exclude list over the limit.", (double)r->exclude_too_long);
    prom_metric(b, "micro_registry_replaced_total", "counter", "Registrations replaced by a newer connection for the same host:port.", (double)r->replaced);
    prom_metric(b, "micro_registry_frames_in_total", "counter", "WebSocket messages received.", (double)s->frames_in);
    prom_metric(b, "micro_registry_frames_out_total", "counter", "WebSocket messages sent.", (double)s->frames_out);
    prom_metric(b, "micro_registry_bad_frames_total", "counter", "Messages dropped as malformed (not JSON, not a frame).", (double)s->bad_frames);
    prom_metric(b, "micro_registry_oversized_frames_total", "counter", "Connections closed (1009) for a message over --max-frame-bytes.", (double)s->oversized);
    prom_metric(b, "micro_registry_assembly_bytes", "gauge", "Bytes of messages in assembly (--max-assembly-bytes).", (double)r->net.rx_bytes);
    prom_metric(b, "micro_registry_queued_bytes", "gauge", "Bytes waiting in send queues (--max-queued-bytes).", (double)r->net.queue_bytes);
    prom_metric(b, "micro_registry_assembly_refused_total", "counter", "Connections closed (1013): --max-assembly-bytes was used up.", (double)s->assembly_refused);
    prom_metric(b, "micro_registry_frame_timeouts_total", "counter", "Connections closed: a message not complete within --frame-timeout-ms.", (double)s->frame_timeouts);
    prom_metric(b, "micro_registry_send_stalls_total", "counter", "Connections closed: the peer did not read for --send-stall-timeout-ms.", (double)s->send_stalls);
    prom_metric(b, "micro_registry_handshake_timeouts_total", "counter", "Accepted sockets closed: not a WebSocket within --handshake-timeout-ms.", (double)r->net.listener.handshake_timeouts);
    prom_metric(b, "micro_registry_accept_refused_total", "counter", "Accepted sockets closed at once for want of file descriptors.", (double)r->net.listener.refused);
    prom_metric(b, "micro_registry_uptime_seconds", "gauge", "Seconds since start.", (double)(now_ms() - r->started_ms) / 1000.0);
    store_metrics(r->store, b);
}

static void on_http(wsnet_t *n, const char *path, http_reply_t *rep)
{
    registry_t *r = reg_of(n);
    if (!strcmp(path, "/-/health")) {
        rep->status = 200;
        sbuf_printf(&rep->body, "{\"status\":\"ok\",\"uptime\":%.3f,\"namespaces\":%zu,\"instances\":%zu",
                    (double)(now_ms() - r->started_ms) / 1000.0, hmap_len(&r->by_ns), hmap_len(&r->by_key));
        store_health(r->store, &rep->body);
        sbuf_addc(&rep->body, '}');
    } else if (!strcmp(path, "/-/ready")) {
        /* Readiness: a replica that never synced with its store has an empty view
         * and should get no traffic yet; once synced it stays ready (it keeps
         * serving its last view while the store is away). */
        bool ok = store_ready(r->store);
        rep->status = ok ? 200 : 503;
        sbuf_printf(&rep->body, "{\"ready\":%s}", ok ? "true" : "false");
    } else if (!strcmp(path, "/v1/namespaces")) {
        rep->status = 200;
        http_namespaces(r, &rep->body);
    } else if (!strcmp(path, "/metrics")) {
        rep->status = 200;
        rep->ctype = "text/plain; version=0.0.4";
        http_metrics(r, &rep->body);
    }
}

/* ---- the sweep ---- */

static void sweep(loop_timer_t *t)
{
    registry_t *r = lws_container_of(t, registry_t, sweep);
    int64_t now = now_ms();
    void *v;
    /* Collect first: dropping entries while iterating would move slots. */
    size_t nstale = 0, cap = 0;
    instance_t **stale = NULL;
    for (size_t it = 0; (it = hmap_next(&r->by_key, it, &v)) != 0;) {
        instance_t *in = v;
        if (in->conn && now - in->last_heartbeat_ms >= r->cfg.heartbeat_timeout_ms) {
            if (nstale == cap) {
                cap = cap ? cap * 2 : 16;
                instance_t **ns = realloc(stale, cap * sizeof(*ns));
                if (!ns)
                    break;
                stale = ns;
            }
            stale[nstale++] = in;
        }
    }
    for (size_t i = 0; i < nstale; i++) {
        instance_t *in = stale[i];
        r->evictions++;
        LOG_INFO("instance evicted: no heartbeat", LF_STR("key", in->key),
                 LF_STR("ns", in->ns ? in->ns->name : ""),
                 LF_INT("silent_ms", (long long)(now - in->last_heartbeat_ms)));
        /* Out of membership now, so no /-/find returns it while the socket closes. */
        store_unpublish(r->store, in->key);
        instance_drop(r, in);
        in->conn->user = NULL;
        wsconn_close(in->conn);
        instance_free(r, in);
    }
    free(stale);
    loop_timer_schedule(r->net.ctx, &r->sweep, sweep, r->cfg.sweep_interval_ms * LWS_US_PER_MS);
}

static const wsnet_ops_t registry_ops = {
    .accept = on_accept,
    .on_open = on_open,
    .on_request = on_request,
    .on_close = on_close,
    .http = on_http,
};

static struct lws_protocols protocols[] = {
    /* frames to a registry are small; a bigger one arrives in pieces that wsconn
     * reassembles. 64 KiB here would be 640 MB of buffers at 10,000 instances. */
    {"micro", wsconn_lws_callback, 64, 512, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}
};

int registry_start(registry_t *r, struct lws_context *ctx)
{
    hmap_init(&r->by_key);
    hmap_init(&r->by_ns);
    hmap_init(&r->by_src);
    r->started_ms = now_ms();
    r->net.ctx = ctx;
    r->net.ops = &registry_ops;
    r->net.user = r;
    r->net.max_frame = (size_t)r->cfg.max_frame_bytes;
    r->net.max_queue = 8 * (size_t)r->cfg.max_frame_bytes;
    r->net.max_conns = (size_t)r->cfg.max_connections;
    r->net.max_pending = 1024;
    r->net.handshake_timeout_ms = r->cfg.handshake_timeout_ms;
    r->net.rx_budget = (size_t)r->cfg.max_assembly_bytes;
    r->net.queue_budget = (size_t)r->cfg.max_queued_bytes;
    r->net.frame_timeout_ms = r->cfg.frame_timeout_ms;
    r->net.stall_timeout_ms = r->cfg.send_stall_timeout_ms;
    protocols[0].user = &r->net;
    if (wsnet_listen(&r->net, "registry", r->cfg.bind, (int)r->cfg.port, protocols))
        return -1;
    loop_timer_schedule(ctx, &r->sweep, sweep, r->cfg.sweep_interval_ms * LWS_US_PER_MS);
    return 0;
}

void registry_close_all(registry_t *r)
{
    void *v;
    loop_timer_cancel(&r->sweep);
    wsnet_stop_listening(&r->net);
    for (size_t it = 0; (it = hmap_next(&r->by_key, it, &v)) != 0;)
        if (((instance_t *)v)->conn)
            wsconn_close(((instance_t *)v)->conn);
}

void registry_free(registry_t *r)
{
    void *v;
    for (size_t it = 0; (it = hmap_next(&r->by_key, it, &v)) != 0;) {
        instance_t *in = v;
        if (in->conn)
            in->conn->user = NULL;
        free(in);
    }
    for (size_t it = 0; (it = hmap_next(&r->by_src, it, &v)) != 0;)
        free(v);
    hmap_free(&r->by_src);
    for (size_t it = 0; (it = hmap_next(&r->by_ns, it, &v)) != 0;) {
        nsentry_t *e = v;
        free(e->v);
        free(e);
    }
    hmap_free(&r->by_key);
    hmap_free(&r->by_ns);
}

/* ---- remote instances: the part of the view other replicas hold ---- */

int registry_remote_put(registry_t *r, const char *key, const char *ns, unsigned gen)
{
    instance_t *in = hmap_gets(&r->by_key, key);
    if (in && in->conn)
        return 0; /* ours: the store decides which registration is newer */
    if (in) {
        in->gen = gen;
        if (!strcmp(in->ns->name, ns))
            return 0;
        ns_remove(r, in);
        if (ns_add(r, in, ns)) {
            hmap_del_if(&r->by_key, in->key, strlen(in->key), in);
            r->nremote--;
            free(in);
            return -1;
        }
        return 0;
    }
    size_t klen = strlen(key);
    in = calloc(1, sizeof(*in) + klen + 1);
    if (!in)
        return -1;
    memcpy(in->key, key, klen + 1);
    in->gen = gen;
    int err;
    hmap_put(&r->by_key, in->key, klen, in, &err);
    if (err || ns_add(r, in, ns)) {
        hmap_del_if(&r->by_key, in->key, klen, in);
        free(in);
        return -1;
    }
    r->nremote++;
    return 0;
}

bool registry_remote_del(registry_t *r, const char *key)
{
    instance_t *in = hmap_gets(&r->by_key, key);
    if (!in || in->conn)
        return false;
    instance_drop(r, in);
    r->nremote--;
    free(in);
    return true;
}

size_t registry_remote_sweep(registry_t *r, unsigned gen)
{
    void *v;
    size_t n = 0, cap = 0, dropped = 0;
    instance_t **gone = NULL;
    for (size_t it = 0; (it = hmap_next(&r->by_key, it, &v)) != 0;) {
        instance_t *in = v;
        if (in->conn || in->gen == gen)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            instance_t **ng = realloc(gone, cap * sizeof(*ng));
            if (!ng)
                break;
            gone = ng;
        }
        gone[n++] = in;
    }
    for (size_t i = 0; i < n; i++) {
        instance_drop(r, gone[i]);
        r->nremote--;
        free(gone[i]);
        dropped++;
    }
    free(gone);
    return dropped;
}

bool registry_has_local(registry_t *r, const char *key)
{
    instance_t *in = hmap_gets(&r->by_key, key);
    return in && in->conn;
}

void registry_drop_local(registry_t *r, const char *key)
{
    instance_t *in = hmap_gets(&r->by_key, key);
    if (!in || !in->conn)
        return;
    r->replaced++;
    LOG_INFO("instance replaced by a registration on another replica", LF_STR("key", in->key), LF_STR("ns", in->ns ? in->ns->name : ""));
    instance_drop(r, in);
    in->conn->user = NULL;
    wsconn_close(in->conn);
    instance_free(r, in);
}

void registry_each_local(registry_t *r, void (*fn)(void *arg, const char *key, const char *ns),
                         void *arg)
{
    void *v;
    for (size_t it = 0; (it = hmap_next(&r->by_key, it, &v)) != 0;) {
        instance_t *in = v;
        if (in->conn && in->ns)
            fn(arg, in->key, in->ns->name);
    }
}
