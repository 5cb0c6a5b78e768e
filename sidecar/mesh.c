/* mesh: the sidecar's peer role. It keeps the registry connection (handshake path
 * = our identity, heartbeat push, reconnect at once and then every interval),
 * the one-connection-per-pair table shared by both directions, and serves
 * inbound REQUESTs: /-/health itself, registered routes by forwarding to the app,
 * ABORT by cancelling the forwarded request. */
#include "sidecar.h"

#include "log.h"
#include "url.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* An inbound REQUEST being served by the app. */
typedef struct inbound {
    struct inbound *next, *prev;  /* on its peer */
    struct peer    *peer;
    uint64_t        id;
    bool            twoway;
    app_req_t      *req;
} inbound_t;

/* Per peer connection: the inbound requests it has in flight (for ABORT). */
typedef struct peer {
    struct peer *next, *prev;     /* every peer connection */
    wsconn_t    *conn;
    hmap_t       inbound;         /* id → inbound */
    inbound_t   *list;
} peer_t;

static peer_t *peers_all;

static sidecar_t *sc(wsnet_t *n) { return n->user; }

static peer_t *peer_attach(wsconn_t *c)
{
    peer_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->conn = c;
    hmap_init(&p->inbound);
    p->next = peers_all;
    if (peers_all)
        peers_all->prev = p;
    peers_all = p;
    c->user = p;
    return p;
}

static void inbound_unlink(inbound_t *ib)
{
    peer_t *p = ib->peer;
    hmap_del_if(&p->inbound, &ib->id, sizeof(ib->id), ib);
    if (ib->prev)
        ib->prev->next = ib->next;
    else
        p->list = ib->next;
    if (ib->next)
        ib->next->prev = ib->prev;
}

/* Stops an inbound request: cancels the app request (the app sees its client
 * go) and, when status is non-zero and the caller waits, answers it. */
static void inbound_abort(sidecar_t *s, inbound_t *ib, int status, const char *msg)
{
    inbound_unlink(ib);
    appclient_cancel(ib->req);
    s->inbound_inflight--;
    s->stats.inbound_aborted++;
    if (status && ib->twoway)
        modem_respond_err(&ib->peer->conn->modem, ib->id, status, msg);
    free(ib);
}

static void peer_detach(sidecar_t *s, peer_t *p)
{
    /* the connection is gone: nobody can hear the answers any more */
    while (p->list)
        inbound_abort(s, p->list, 0, NULL);
    hmap_free(&p->inbound);
    if (p->prev)
        p->prev->next = p->next;
    else
        peers_all = p->next;
    if (p->next)
        p->next->prev = p->prev;
    free(p);
}

/* ---- the registry connection ---- */

static void dial_registry(sidecar_t *s);

static void heartbeat(loop_timer_t *t)
{
    sidecar_t *s = lws_container_of(t, sidecar_t, heartbeat_timer);
    if (!s->registry_up)
        return;
    s->stats.heartbeats++;
    modem_push(&s->registry->modem, "/-/heartbeat", 12, "{}", 2);
    loop_timer_schedule(s->ctx, &s->heartbeat_timer, heartbeat, s->cfg.heartbeat_interval_ms * LWS_US_PER_MS);
}

static void reconnect(loop_timer_t *t)
{
    sidecar_t *s = lws_container_of(t, sidecar_t, reconnect_timer);
    /* until the first registration we keep trying even for an unhealthy app:
     * /-/ready (and so a native pod's app) waits on that first registration */
    if (!s->draining && (s->app_healthy || !s->ever_registered) && !s->registry)
        dial_registry(s);
}

void mesh_app_health_changed(sidecar_t *s)
{
    if (s->draining)
        return;
    if (!s->app_healthy) {
        /* leave the registry: nobody should find an instance whose app is down.
         * A registration still in progress is let finish (registry_opened leaves
         * at once): aborting it would leave /-/ready waiting for good. */
        loop_timer_cancel(&s->reconnect_timer);
        loop_timer_cancel(&s->heartbeat_timer);
        if (s->registry && s->registry_up)
            wsconn_close(s->registry);
    } else if (!s->registry) {
        dial_registry(s);
    }
}

/* The --registry addresses are dialled round-robin. A sidecar starts at a random
 * entry (mesh_start), so a fleet given the same list spreads over the replicas. An
 * entry that is a host name stands for every address it resolves to (up to
 * RESOLVE_MAX_ADDRS, in the resolver's order): the name is looked up off the loop (the
 * reserved lane, so hanging peer names cannot hold this up) and its addresses are
 * dialled one after the other before the next entry. A registered connection that is
 * lost moves on to the next address at once: the replica it was on is likely going
 * away (rolling update, node loss) while DNS may still name it. A dial that does not
 * register (refused, handshake timeout, closed before the handshake, a name that does
 * not resolve) tries the next address at once too, until every entry has failed in a
 * row; the next round starts after the reconnect interval. With one address this is
 * what it always was: redial at once after a loss, every interval while unreachable. */
static void registry_resolved(void *arg, int err, const resolve_addrs_t *a);

static void registry_advance(sidecar_t *s)
{
    if (s->registry_sub + 1 < s->registry_got.n) { /* the name's next address */
        s->registry_sub++;
        return;
    }
    s->registry_sub = 0;
    s->registry_got.n = 0;
    s->registry_next = (s->registry_next + 1) % s->registry_addrs.n;
}

/* A dial did not register (resolve_err: its name did not resolve, RESOLVE_E_*, or 0).
 * True: dial the next address now; false: the round is over and the reconnect timer
 * is set. */
static bool registry_dial_failed(sidecar_t *s, int resolve_err)
{
    const char *why = resolve_err ? resolve_strerror(resolve_err) : "cannot connect";
    bool entry_done = s->registry_sub + 1 >= s->registry_got.n;
    registry_advance(s);
    if (!entry_done || ++s->registry_failed < s->registry_addrs.n) {
        const addr_t *n = &s->registry_addrs.v[s->registry_next];
        char next[ADDR_KEY_MAX];
        addr_format_key(entry_done ? n->host : s->registry_got.addr[s->registry_sub], n->port, next, sizeof(next));
        LOG_INFO("registry address failed, trying the next", LF_STR("failed", s->registry_key),
                 LF_STR("err", why), LF_STR("next", next));
        return true;
    }
    s->registry_failed = 0;
    LOG_WARN("registry unreachable, will retry", LF_STR("registry", s->cfg.registry),
             LF_INT("retry_ms", s->cfg.reconnect_interval_ms), LF_STR("err", why));
    loop_timer_schedule(s->ctx, &s->reconnect_timer, reconnect, s->cfg.reconnect_interval_ms * LWS_US_PER_MS);
    return false;
}

/* Dials address registry_sub of the current entry, whose addresses are in
 * registry_got. 0: under way; -1: failed at once (*err: RESOLVE_E_* or 0). */
static int registry_connect(sidecar_t *s, int *err)
{
    const addr_t *e = &s->registry_addrs.v[s->registry_next];
    addr_t target;
    if (s->registry_sub >= s->registry_got.n) /* the name has fewer addresses now */
        s->registry_sub = 0;
    snprintf(target.host, sizeof(target.host), "%s", s->registry_got.addr[s->registry_sub]);
    target.port = e->port;
    addr_format_key(target.host, target.port, s->registry_key, sizeof(s->registry_key));
    s->registry = wsconn_dial_lane(&s->net, &target, s->handshake, s->cfg.handshake_timeout_ms, NULL,
                                   RESOLVE_LANE_RESERVED);
    *err = s->registry ? 0 : s->net.last_dial_err;
    return s->registry ? 0 : -1;
}

/* Starts the dial of the current address: looks the entry's name up first (unless it
 * is numeric or cached). 0: under way (the dial, or the lookup); -1: failed at once. */
static int registry_dial_one(sidecar_t *s, int *err)
{
    const addr_t *e = &s->registry_addrs.v[s->registry_next];
    *err = 0;
    addr_format_key(e->host, e->port, s->registry_key, sizeof(s->registry_key));
    if (!s->net.resolver) { /* no resolver (unit tests): lws resolves, first address */
        s->registry_got.n = 0;
        s->registry = wsconn_dial_lane(&s->net, e, s->handshake, s->cfg.handshake_timeout_ms, NULL,
                                       RESOLVE_LANE_RESERVED);
        return s->registry ? 0 : -1;
    }
    if (s->registry_sub && s->registry_got.n > s->registry_sub) /* the name's next address */
        return registry_connect(s, err);
    int rc = resolver_lookup(s->net.resolver, e->host, RESOLVE_LANE_RESERVED, &s->registry_got, &s->registry_rw,
                             registry_resolved, s);
    if (rc == 0) {
        s->registry_resolving = true;
        return 0;
    }
    if (rc < 0) {
        s->registry_got.n = 0;
        *err = rc;
        return -1;
    }
    return registry_connect(s, err);
}

static void dial_registry(sidecar_t *s)
{
    int err;
    if (s->registry || s->registry_resolving)
        return; /* one dial at a time */
    while (registry_dial_one(s, &err) < 0 && registry_dial_failed(s, err))
        ;
}

/* The registry entry's name was looked up (on the loop, never inside dial_registry). */
static void registry_resolved(void *arg, int err, const resolve_addrs_t *a)
{
    sidecar_t *s = arg;
    s->registry_resolving = false;
    if (s->draining || err == RESOLVE_E_CLOSED || (!s->app_healthy && s->ever_registered))
        return;
    if (!err) {
        s->registry_got = *a;
        if (!registry_connect(s, &err))
            return;
    } else {
        s->registry_got.n = 0;
    }
    if (registry_dial_failed(s, err))
        dial_registry(s);
}

/* The listed check. A registry can hold our connection and still not list us: the
 * reference (1.0.5) removes a host:port when *any* connection for it closes, so if
 * our new registration reaches it before the close of our previous connection (a
 * re-dial after an eviction, a restarted pod), the old close removes the new entry
 * and we stay connected, heartbeating, and invisible to /-/find. So, a moment after
 * each registration, we look for ourselves: /-/find for our namespace, excluding
 * every other key it returns, until it returns our key (listed), nothing (not
 * listed), an error, or LISTED_MAX_FINDS keys (we cannot tell: assume listed). Two
 * rounds in a row that do not find us (a registry that is slow to show a new
 * instance gets a second chance) close the connection, and we register again after
 * the settle delay. Meanwhile /-/health says "registry": false and /-/ready is 503. */
#define LISTED_MAX_FINDS 32

static int64_t listed_delay_ms(const sidecar_t *s)
{
    return s->cfg.heartbeat_interval_ms < 1000 ? s->cfg.heartbeat_interval_ms : 1000;
}

/* The pause between losing the registry connection and dialing again: long enough
 * for the registry to have processed the old connection's close before the new
 * handshake arrives (the race above), short against a heartbeat timeout. */
static int64_t settle_ms(const sidecar_t *s)
{
    return s->cfg.reconnect_interval_ms < 500 ? s->cfg.reconnect_interval_ms : 500;
}

bool mesh_registry_listed(const sidecar_t *s) { return s->registry_up && !s->registry_unlisted; }

typedef struct listed_ctx {
    sidecar_t *s;
    uint64_t   gen; /* s->listed_gen when sent */
} listed_ctx_t;

static void listed_send(sidecar_t *s);

static void listed_round(loop_timer_t *t)
{
    sidecar_t *s = lws_container_of(t, sidecar_t, listed_timer);
    if (!s->registry_up || s->draining)
        return;
    s->listed_gen++;
    s->listed_finds = 0;
    sbuf_reset(&s->listed_exclude);
    listed_send(s);
}

static void listed_answer(void *arg, int status, const frame_t *resp)
{
    listed_ctx_t *lc = arg;
    sidecar_t *s = lc->s;
    uint64_t gen = lc->gen;
    free(lc);
    if (gen != s->listed_gen || !s->registry_up || s->draining)
        return; /* an earlier registration's, or we are leaving anyway */
    jspan_t host, port;
    char hostbuf[ADDR_HOST_MAX], key[ADDR_KEY_MAX];
    uint64_t portnum;
    if (status != 200 || !resp)
        return; /* the registry could not answer: nothing learnt */
    if (resp->result.t == JT_OBJECT && jobj_get(resp->result, "host", &host) &&
        jobj_get(resp->result, "port", &port) && !jstr_get(host, hostbuf, sizeof(hostbuf), NULL) &&
        !jnum_u53(port, &portnum) && portnum >= 1 && portnum <= 65535 &&
        addr_format_key(hostbuf, (unsigned)portnum, key, sizeof(key)) > 0) {
        if (!strcmp(key, s->self_key)) {
            s->listed_misses = 0;
            return; /* listed */
        }
        if (s->listed_finds >= LISTED_MAX_FINDS)
            return; /* a big namespace: we cannot tell, assume listed */
        if (s->listed_exclude.len)
            sbuf_addc(&s->listed_exclude, ',');
        sbuf_add_json_str(&s->listed_exclude, key, strlen(key));
        listed_send(s);
        return;
    }
    /* no data: nobody left once the others are excluded, so not us either */
    if (++s->listed_misses < 2) {
        loop_timer_schedule(s->ctx, &s->listed_timer, listed_round, listed_delay_ms(s) * LWS_US_PER_MS);
        return;
    }
    s->listed_misses = 0;
    s->registry_unlisted = true;
    s->stats.registry_unlisted++;
    LOG_WARN("the registry does not list us although we are connected: registering again",
             LF_STR("registry", s->registry_key), LF_STR("as", s->self_key), LF_STR("ns", s->cfg.ns));
    wsconn_close(s->registry);
}

static void listed_send(sidecar_t *s)
{
    listed_ctx_t *lc = malloc(sizeof(*lc));
    if (!lc)
        return;
    lc->s = s;
    lc->gen = s->listed_gen;
    sbuf_t b;
    sbuf_init(&b, 0, 0);
    sbuf_adds(&b, "{\"namespace\":");
    sbuf_add_json_str(&b, s->cfg.ns, strlen(s->cfg.ns));
    if (s->listed_exclude.len) {
        sbuf_adds(&b, ",\"exclude\":[");
        sbuf_add(&b, sbuf_data(&s->listed_exclude), s->listed_exclude.len);
        sbuf_addc(&b, ']');
    }
    sbuf_addc(&b, '}');
    s->listed_finds++;
    if (modem_request(&s->registry->modem, "/-/find", 7, sbuf_data(&b), b.len, s->cfg.lookup_timeout_ms,
                      listed_answer, lc, NULL))
        free(lc);
    sbuf_free(&b);
}

static void registry_opened(sidecar_t *s)
{
    s->registry_up = true;
    s->registry_failed = 0;
    s->stats.registry_connects++;
    if (!s->ever_registered)
        LOG_INFO("registered with the registry", LF_STR("registry", s->registry_key),
                 LF_STR("as", s->self_key), LF_STR("ns", s->cfg.ns),
                 LF_INT("ms_since_start", (long long)(now_ms() - s->started_ms)));
    else
        LOG_INFO("registered with the registry again", LF_STR("registry", s->registry_key));
    s->ever_registered = true;
    if (!s->app_healthy) {
        /* the app went down while we were registering: we have reached the
         * registry (so /-/ready may pass and a native pod can start its app), but
         * nobody should find an app that is down — leave again at once */
        LOG_INFO("app not healthy: leaving the registry again", LF_STR("registry", s->registry_key));
        wsconn_close(s->registry);
        return;
    }
    loop_timer_schedule(s->ctx, &s->heartbeat_timer, heartbeat, s->cfg.heartbeat_interval_ms * LWS_US_PER_MS);
    s->registry_unlisted = false;
    s->listed_misses = 0;
    loop_timer_schedule(s->ctx, &s->listed_timer, listed_round, listed_delay_ms(s) * LWS_US_PER_MS);
}

/* resolve_err: the registry's name did not resolve (RESOLVE_E_*), or 0 */
static void registry_closed(sidecar_t *s, int resolve_err)
{
    bool was_up = s->registry_up;
    s->registry = NULL;
    s->registry_up = false;
    s->listed_gen++;
    loop_timer_cancel(&s->heartbeat_timer);
    loop_timer_cancel(&s->listed_timer);
    if (s->draining || (!s->app_healthy && s->ever_registered))
        return;
    if (was_up) {
        s->stats.registry_disconnects++;
        /* Not at once, as the reference does: a registration that reaches the registry
         * before it has processed this connection's close can be removed by that close
         * (see the listed check). */
        LOG_WARN("registry connection lost, reconnecting", LF_STR("registry", s->registry_key),
                 LF_INT("in_ms", settle_ms(s)));
        s->registry_failed = 0;
        registry_advance(s);
        loop_timer_schedule(s->ctx, &s->reconnect_timer, reconnect, settle_ms(s) * LWS_US_PER_MS);
    } else if (registry_dial_failed(s, resolve_err)) {
        dial_registry(s);
    }
}

/* ---- connection events ---- */

static int on_accept(wsnet_t *n, struct lws *wsi, const addr_t *caller, const char *ns)
{
    sidecar_t *s = sc(n);
    if (s->cfg.mesh_token && *s->cfg.mesh_token) {
        if (!wsconn_token_ok(wsi, s->cfg.mesh_token)) {
            char who[ADDR_KEY_MAX];
            if (addr_format_key(caller->host, caller->port, who, sizeof(who)) < 0)
                who[0] = '\0';
            LOG_WARN("peer refused: bad mesh token", LF_STR("caller", who), LF_STR("ns", ns));
            return -1;
        }
    }
    if (s->cfg.verify_peer_address) {
        char src[64];
        wsconn_peer_address(wsi, src, sizeof(src));
        if (strcmp(src, caller->host) != 0) {
            LOG_WARN("peer refused: claimed host is not the source address", LF_STR("claimed", caller->host),
                     LF_STR("source", src), LF_STR("ns", ns));
            return -1;
        }
    }
    return 0;
}

/* May an inbound connection become the way we reach its host:port (PROTOCOL.md §2.4: one
 * connection per pair, reused both ways)? The handshake path is only a claim, so:
 *  - only if it comes from the host it claims: a connection that claims another
 *    address is served (its requests answered) but never carries our calls, which
 *    dial the claimed address themselves. With --verify-peer-address every accepted
 *    connection passes; without it (NAT, proxies, Node peers advertising another
 *    interface) this is what keeps a neighbour from answering calls meant for
 *    someone else;
 *  - never in place of a connection we dialed ourselves (open or still dialing):
 *    we chose that address from the registry, the newcomer only names it;
 *  - in place of an earlier inbound one from the same host (the peer reconnected or
 *    restarted; newest wins, as in the reference). Both passed the first rule, so a
 *    flapping impostor elsewhere never gets here. */
static bool inbound_may_take_key(sidecar_t *s, wsconn_t *c)
{
    char src[64];
    addr_t claimed;
    wsconn_peer_address(c->wsi, src, sizeof(src));
    if (addr_parse_key(c->key, strlen(c->key), &claimed) || strcmp(claimed.host, src) != 0) {
        s->stats.peers_unverified++;
        LOG_INFO("peer claims another address than it connects from: served, not used for calls",
                 LF_STR("peer", c->key), LF_STR("source", src), LF_STR("ns", c->ns));
        return false;
    }
    wsconn_t *cur = hmap_gets(&s->peers, c->key);
    if (cur && cur != c && cur->outbound && !cur->closing) {
        s->stats.peers_kept++;
        LOG_DEBUG("peer connected while we have our own connection to it: keeping ours",
                  LF_STR("peer", c->key), LF_STR("ns", c->ns));
        return false;
    }
    return true;
}

static void on_open(wsconn_t *c)
{
    sidecar_t *s = sc(c->net);
    if (c == s->registry) {
        registry_opened(s);
        return;
    }
    if (!peer_attach(c)) {
        wsconn_close(c);
        return;
    }
    if (!c->outbound) {
        /* one connection per pair: an inbound one may become the way to reach it */
        int err;
        if (inbound_may_take_key(s, c))
            hmap_put(&s->peers, c->key, strlen(c->key), c, &err);
        LOG_DEBUG("peer connected", LF_STR("peer", c->key), LF_STR("ns", c->ns));
    } else {
        LOG_DEBUG("peer dialed", LF_STR("peer", c->key));
        disc_conn_open(s, c);
    }
}

static void on_close(wsconn_t *c)
{
    sidecar_t *s = sc(c->net);
    if (c == s->registry) {
        registry_closed(s, c->resolve_err);
        return;
    }
    hmap_del_if(&s->peers, c->key, strlen(c->key), c);
    disc_conn_closed(s, c);
    if (c->user)
        peer_detach(s, c->user);
    c->user = NULL;
}

static void respond(wsconn_t *c, uint64_t id, int status, const char *result, size_t len, const char *msg)
{
    if (status != 200) {
        modem_respond_err(&c->modem, id, status, msg);
        return;
    }
    /* An answer that does not fit in a frame (text escaped past the frame limit)
     * must still answer the caller, or it waits out its timeout. */
    if (modem_respond_ok(&c->modem, id, result, len))
        modem_respond_err(&c->modem, id, 502, "the app's answer does not fit in a frame (--max-body-bytes)");
}

static void on_app_answer(void *arg, const app_result_t *r)
{
    inbound_t *ib = arg;
    peer_t *p = ib->peer;
    sidecar_t *s = sc(p->conn->net);
    inbound_unlink(ib);
    s->inbound_inflight--;
    app_outcome_t o;
    app_outcome_from(r, &o);
    if (o.status == 200) {
        s->stats.inbound_ok++;
    } else {
        s->stats.inbound_failed++;
        if (r->status == 0)
            LOG_WARN("app unreachable", LF_STR("err", r->error ? r->error : "?"));
    }
    if (ib->twoway)
        respond(p->conn, ib->id, o.status, o.result, o.result_len, o.message);
    app_outcome_free(&o);
    free(ib);
}

static void on_request(wsconn_t *c, const frame_t *f)
{
    sidecar_t *s = sc(c->net);
    peer_t *p = c->user;
    char url[1024], buf[2048], msg[1100];
    if (c == s->registry || !p) {
        if (f->twoway)
            modem_respond_err(&c->modem, f->id, 404, "no routes on this connection");
        return;
    }
    /* The url goes into the app's request line: it passes the url check or the
     * caller gets a 400 (never forwarded, whatever the route). */
    size_t ulen = 0;
    int urc = jstr_get(f->url, url, sizeof(url), &ulen) ? URL_E_LONG : url_check(url, ulen);
    if (urc) {
        if (f->twoway) {
            snprintf(msg, sizeof(msg), "bad url: %s", url_strerror(urc));
            modem_respond_err(&c->modem, f->id, 400, msg);
        }
        return;
    }
    if (f->stream) {
        if (f->twoway)
            modem_respond_err(&c->modem, f->id, 501, "streaming requests are not supported");
        return;
    }
    if (!strcmp(url, "/-/health")) {
        if (f->twoway) {
            sbuf_t b;
            sbuf_init(&b, 0, 0);
            probe_health(s, &b);
            modem_respond_ok(&c->modem, f->id, sbuf_data(&b), b.len);
            sbuf_free(&b);
        }
        return;
    }
    s->stats.inbound++;
    if (s->draining || !s->app_healthy) {
        /* Not in flight yet, so not ours to finish: with a native sidecar the app
         * may already be gone, or health checks say it is down (callers that hold
         * a connection still send to us after we left the registry). A 503 sends
         * the caller's retry to another instance and its breaker away from us. */
        if (f->twoway)
            modem_respond_err(&c->modem, f->id, 503,
                              s->draining ? "the provider is shutting down" : "the provider's app is unhealthy");
        return;
    }
    double retry_after = 0;
    const char *target = routes_admit(s->routes, url, buf, sizeof(buf), &retry_after);
    if (!target && retry_after > 0) {
        s->stats.rate_limited_in++;
        if (f->twoway) {
            snprintf(msg, sizeof(msg), "rate limit exceeded for %.900s (retry after %.3fs)", url, retry_after);
            modem_respond_limited(&c->modem, f->id, msg, retry_after);
        }
        return;
    }
    if (!target) {
        s->stats.inbound_no_route++;
        if (f->twoway) {
            snprintf(msg, sizeof(msg), "no route %s", url);
            modem_respond_err(&c->modem, f->id, 404, msg);
        }
        return;
    }
    if ((s->cfg.max_inflight > 0 && s->inbound_inflight >= (size_t)s->cfg.max_inflight) ||
        (s->cfg.connection_inflight > 0 && hmap_len(&p->inbound) >= (size_t)s->cfg.connection_inflight)) {
        s->stats.concurrency_limited++;
        if (f->twoway)
            modem_respond_err(&c->modem, f->id, 503, "too many calls in flight");
        return;
    }
    /* the correlation id travels inside the payload; the app gets it as a header */
    char cid[128] = "";
    jspan_t v;
    if (f->payload.t == JT_OBJECT &&
        jmembers_get(&f->ix, f->payload_slot, f->payload, "_correlationId", &v, NULL)) {
        if (v.t != JT_STRING || jstr_get(v, cid, sizeof(cid), NULL))
            snprintf(cid, sizeof(cid), "%.*s", (int)(v.n < 120 ? v.n : 120), v.p);
    }
    inbound_t *ib = calloc(1, sizeof(*ib));
    if (!ib) {
        if (f->twoway)
            modem_respond_err(&c->modem, f->id, 503, "out of memory");
        return;
    }
    ib->peer = p;
    ib->id = f->id;
    ib->twoway = f->twoway;
    app_headers_t h = {.cid = cid, .caller = c->key, .token = s->cfg.app_token};
    const char *body = f->payload.t != JT_NONE ? f->payload.p : "";
    size_t blen = f->payload.t != JT_NONE ? f->payload.n : 0;
    ib->req = appclient_post(s->app, target, body, blen, &h, on_app_answer, ib);
    if (!ib->req) {
        free(ib);
        if (f->twoway)
            modem_respond_err(&c->modem, f->id, 500, "bad route target");
        return;
    }
    int err;
    inbound_t *old = hmap_put(&p->inbound, &ib->id, sizeof(ib->id), ib, &err);
    (void)old; /* a peer reusing a pending id: the older one stays reachable by list only */
    ib->next = p->list;
    if (p->list)
        p->list->prev = ib;
    p->list = ib;
    s->inbound_inflight++;
}

static void on_abort(wsconn_t *c, uint64_t target)
{
    sidecar_t *s = sc(c->net);
    peer_t *p = c->user;
    if (!p)
        return;
    inbound_t *ib = hmap_get(&p->inbound, &target, sizeof(target));
    if (!ib)
        return;
    LOG_DEBUG("inbound call aborted by the caller", LF_STR("peer", c->key),
              LF_UINT("id", (unsigned long long)target));
    inbound_abort(s, ib, 0, NULL); /* no answer after an ABORT */
}

static void on_http(wsnet_t *n, const char *path, http_reply_t *rep)
{
    sidecar_t *s = sc(n);
    if (!strcmp(path, "/-/health")) {
        rep->status = 200;
        probe_health(s, &rep->body);
    } else if (!strcmp(path, "/-/ready")) {
        rep->status = probe_ready(s, &rep->body);
    } else if (!strcmp(path, "/metrics")) {
        rep->status = 200;
        rep->ctype = "text/plain; version=0.0.4";
        probe_metrics(s, &rep->body);
    }
}

static bool on_busy(wsconn_t *c)
{
    peer_t *p = c->user;
    return p && p->list; /* inbound requests still at the app */
}

static const wsnet_ops_t mesh_ops = {
    .busy = on_busy,
    .accept = on_accept,
    .on_open = on_open,
    .on_request = on_request,
    .on_abort = on_abort,
    .on_close = on_close,
    .http = on_http,
};

static struct lws_protocols protocols[] = {
    {"micro", wsconn_lws_callback, 64, 16384, 0, NULL, 0},
    {"micro-app", appclient_lws_callback, 0, 16384, 0, NULL, 0},
    {"micro-api", api_lws_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}
};

int mesh_start(sidecar_t *s)
{
    s->net.ctx = s->ctx;
    s->net.ops = &mesh_ops;
    s->net.user = s;
    s->net.max_frame = (size_t)s->cfg.max_frame_bytes;
    s->net.max_queue = 16 * (size_t)s->cfg.max_frame_bytes;
    s->net.max_conns = (size_t)s->cfg.max_connections;
    s->net.max_pending = s->cfg.connection_inflight > 0 ? (size_t)s->cfg.connection_inflight : 100000;
    s->net.handshake_timeout_ms = s->cfg.handshake_timeout_ms;
    s->net.rx_budget = (size_t)s->cfg.max_assembly_bytes;
    s->net.queue_budget = (size_t)s->cfg.max_queued_bytes;
    s->net.frame_timeout_ms = s->cfg.frame_timeout_ms;
    s->net.stall_timeout_ms = s->cfg.send_stall_timeout_ms;
    s->net.idle_timeout_ms = s->cfg.idle_timeout_ms;
    protocols[0].user = &s->net;
    protocols[1].user = s->app;
    if (wsnet_listen(&s->net, "mesh", s->cfg.mesh_bind, (int)s->cfg.mesh_port, protocols))
        return -1;
    if (s->registry_addrs.n > 1) {
        uint32_t r = 0;
        lws_get_random(s->ctx, &r, sizeof(r));
        s->registry_next = r % s->registry_addrs.n;
    }
    dial_registry(s);
    apphealth_start(s);
    call_sweep_start(s);
    return 0;
}

void mesh_begin_drain(sidecar_t *s)
{
    apphealth_stop(s);
    loop_timer_cancel(&s->reconnect_timer);
    loop_timer_cancel(&s->heartbeat_timer);
    loop_timer_cancel(&s->listed_timer);
    if (s->registry_resolving) {
        resolver_cancel(s->net.resolver, &s->registry_rw);
        s->registry_resolving = false;
    }
    if (s->registry) {
        LOG_INFO("leaving the registry", LF_STR("registry", s->registry_key));
        wsconn_close(s->registry);
    }
}

void mesh_abort_inbound(sidecar_t *s)
{
    for (peer_t *p = peers_all; p; p = p->next) {
        while (p->list)
            inbound_abort(s, p->list, 503, "the provider is shutting down");
    }
}

size_t mesh_queued_bytes(sidecar_t *s)
{
    size_t n = 0;
    (void)s;
    for (peer_t *p = peers_all; p; p = p->next)
        n += p->conn->qbytes;
    return n;
}
