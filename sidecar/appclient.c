/* appclient: forwards inbound calls to the app as HTTP/1.1 POSTs over keep-alive
 * connections. Connections are lws raw sockets on the loop thread, pooled per
 * target host:port; at most app-max-connections are open, and a bounded queue
 * holds requests beyond that. Cancelling a request closes its connection, which
 * is the only way HTTP/1.1 has to tell an app that nobody wants the answer. */
#include "sidecar.h"

#include "http1.h"
#include "log.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pool pool_t;
typedef struct appconn appconn_t;

struct app_req {
    app_req_t  *next;            /* in the pool's wait queue */
    appclient_t *a;
    pool_t     *pool;
    appconn_t  *conn;
    char       *out;             /* LWS_PRE + request bytes */
    size_t      outlen;
    app_done_t  done;
    void       *arg;
    bool        queued;
    loop_timer_t timer; /* app timeout, or a deferred failure */
    int         fail_status;     /* for the deferred path */
    const char *fail_error;
};

struct appconn {
    appconn_t  *next_idle;
    pool_t     *pool;
    struct lws *wsi;
    app_req_t  *req;
    bool        connected;
    bool        written;         /* the app has (some of) req's bytes */
    bool        closing;         /* closed by us: every later callback closes it */
    bool        dialing;         /* inside lws_client_connect_via_info */
    bool        dial_failed;     /* lws reported the failure synchronously */
    http1_resp_t resp;
};

struct pool {
    char       key[ADDR_KEY_MAX];
    addr_t     addr;
    appclient_t *a;
    bool       resolving;        /* the host name is being looked up (resolve.h) */
    resolve_waiter_t rw;
    char       fresh[RESOLVE_ADDR_MAX]; /* the address just looked up, while pool_next runs */
    appconn_t *idle;
    size_t     nconns;
    app_req_t *wait_head, *wait_tail;
    size_t     nwait;
};

struct appclient {
    sidecar_t *s;
    hmap_t     pools;
    size_t     nconns;
    size_t     bytes;     /* request bytes held (at or waiting for the app): --app-queue-bytes */
};

static const char *PROTO = "micro-app";

appclient_t *appclient_new(sidecar_t *s)
{
    appclient_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->s = s;
    hmap_init(&a->pools);
    return a;
}

size_t appclient_connections(appclient_t *a) { return a->nconns; }
size_t appclient_bytes(appclient_t *a) { return a->bytes; }

static void req_free(app_req_t *r)
{
    loop_timer_cancel(&r->timer);
    r->a->bytes -= r->outlen < r->a->bytes ? r->outlen : r->a->bytes;
    free(r->out);
    free(r);
}

static void finish(app_req_t *r, const app_result_t *res)
{
    app_done_t done = r->done;
    void *arg = r->arg;
    req_free(r);
    done(arg, res);
}

static void fail(app_req_t *r, int status, const char *error)
{
    app_result_t res = {.status = status, .error = error};
    finish(r, &res);
}

/* Closes from outside the connection's own callbacks. The flag matters: lws
 * clears a pending timeout (our kill) when a connect completes, so a connection
 * cancelled while dialing would otherwise stay open, counted and unused, for good. */
static void conn_close(appconn_t *c)
{
    c->closing = true;
    if (c->wsi)
        loop_kill_async(c->wsi);
}

static void conn_idle(appconn_t *c);

static void dequeue(pool_t *p, app_req_t *r)
{
    app_req_t **pp = &p->wait_head, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = r->next;
    if (p->wait_tail == r)
        p->wait_tail = prev;
    p->nwait--;
    r->queued = false;
}

/* Takes r off its wait queue or its connection. A connection the app has seen
 * the request on is closed (the only way HTTP/1.1 can tell the app that nobody
 * wants the answer); one that has not sent it yet stays for the next request:
 * once connected it goes idle (or serves a waiting request). */
static void detach(app_req_t *r)
{
    if (r->queued)
        dequeue(r->pool, r);
    appconn_t *c = r->conn;
    if (!c)
        return;
    c->req = NULL;
    r->conn = NULL;
    if (c->written)
        conn_close(c);
    else if (c->connected)
        conn_idle(c);
    /* else RAW_CONNECTED finds no request and makes it idle */
}

static void on_timeout(loop_timer_t *t)
{
    app_req_t *r = lws_container_of(t, app_req_t, timer);
    if (r->fail_error) { /* a failure deferred out of appclient_post */
        fail(r, r->fail_status, r->fail_error);
        return;
    }
    LOG_WARN("app request timed out", LF_INT("timeout_ms", r->a->s->cfg.app_timeout_ms));
    detach(r);
    fail(r, 504, "the app did not answer in time");
}

static void assign(appconn_t *c, app_req_t *r)
{
    c->req = r;
    c->written = false;
    r->conn = c;
    http1_resp_reset(&c->resp);
    if (!c->connected)
        return; /* RAW_CONNECTED asks for WRITEABLE */
    if (lws_partial_buffered(c->wsi)) {
        lws_callback_on_writable(c->wsi);
        return;
    }
    /* An idle keep-alive connection: write now rather than a loop pass later. A
     * short write is finished by lws; a failed one closes the connection, and the
     * close fails or retries r as any dropped connection does. */
    c->written = true;
    if (lws_write(c->wsi, (unsigned char *)r->out + LWS_PRE, r->outlen, LWS_WRITE_RAW) < 0)
        conn_close(c);
}

/* Opens a connection to address (numeric) for r. Returns 0, or 1 when it
 * failed at once (r untouched). */
static int dial(appclient_t *a, pool_t *p, app_req_t *r, const char *address)
{
    appconn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return 1;
    c->pool = p;
    http1_resp_init(&c->resp, (size_t)a->s->cfg.max_body_bytes + APP_ANSWER_HEADROOM);
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof(i));
    i.context = a->s->ctx;
    i.vhost = wsnet_dial_vhost(&a->s->net); /* reaches an IPv6 app whatever the mesh bind */
    i.address = address;
    i.port = (int)p->addr.port;
    i.method = "RAW";
    i.local_protocol_name = PROTO;
    i.opaque_user_data = c;
    i.pwsi = &c->wsi;
    c->dialing = true;
    struct lws *wsi = lws_client_connect_via_info(&i);
    c->dialing = false;
    if (!wsi || c->dial_failed) {
        http1_resp_free(&c->resp);
        free(c);
        return 1;
    }
    p->nconns++;
    a->nconns++;
    assign(c, r);
    return 0;
}

/* Frees a connection lws has let go of, and hands its slot to a waiting request. */
static void conn_gone(appclient_t *a, appconn_t *c, const char *why)
{
    pool_t *p = c->pool;
    if (c->wsi)
        lws_set_opaque_user_data(c->wsi, NULL);
    for (appconn_t **pp = &p->idle; *pp; pp = &(*pp)->next_idle)
        if (*pp == c) {
            *pp = c->next_idle;
            break;
        }
    app_req_t *r = c->req;
    http1_resp_t resp = c->resp;
    free(c);
    p->nconns--;
    a->nconns--;
    if (r) {
        r->conn = NULL;
        if (http1_resp_eof(&resp) == HTTP1_DONE) {
            app_result_t res = {.status = resp.status, .ctype = resp.ctype,
                                .body = sbuf_data(&resp.body), .body_len = resp.body.len};
            finish(r, &res);
        } else {
            a->s->stats.app_unreachable++;
            fail(r, 0, why);
        }
    }
    http1_resp_free(&resp);
}

static void pool_next(appclient_t *a, pool_t *p);

/* c has no request: give it the first waiting one, or put it on the idle list. */
static void conn_idle(appconn_t *c)
{
    pool_t *p = c->pool;
    c->req = NULL;
    if (c->resp.body.cap > 65536) {
        /* a big answer's buffer is not kept for the next one: 64 idle connections
         * each holding their largest answer were tens of MB */
        size_t max = c->resp.body.limit;
        http1_resp_free(&c->resp);
        http1_resp_init(&c->resp, max);
    }
    if (p->wait_head) {
        app_req_t *r = p->wait_head;
        dequeue(p, r);
        assign(c, r);
        return;
    }
    c->next_idle = p->idle;
    p->idle = c;
}

static void pool_resolved(void *arg, int err, const resolve_addrs_t *ad);

/* The numeric address to dial for p. The app's host (from --app-url or a
 * route target) is looked up on the resolver's reserved lane: it is our own
 * configuration, not a name a peer chose. Returns 1 with out filled; 0 while a
 * lookup is under way (pool_next runs again when it ends); a RESOLVE_E_* code. */
static int pool_address(appclient_t *a, pool_t *p, char out[ADDR_HOST_MAX])
{
    if (p->fresh[0]) {
        memcpy(out, p->fresh, sizeof(p->fresh));
        return 1;
    }
    if (p->resolving)
        return 0;
    if (!a->s->resolver) {
        snprintf(out, ADDR_HOST_MAX, "%s", p->addr.host);
        return 1;
    }
    resolve_addrs_t ad;
    int rc = resolver_lookup(a->s->resolver, p->addr.host, RESOLVE_LANE_RESERVED, &ad, &p->rw,
                             pool_resolved, p);
    if (rc == 1) {
        memcpy(out, ad.addr[0], RESOLVE_ADDR_MAX);
        return 1;
    }
    if (rc == 0)
        p->resolving = true;
    else
        LOG_WARN("cannot resolve the app's host name", LF_STR("app", p->key), LF_STR("err", resolve_strerror(rc)));
    return rc;
}

static void defer_fail(appclient_t *a, app_req_t *r, int status, const char *error)
{
    r->fail_status = status;
    r->fail_error = error;
    loop_timer_schedule(a->s->ctx, &r->timer, on_timeout, 1);
}

static void pool_next(appclient_t *a, pool_t *p)
{
    while (p->wait_head && p->nconns < (size_t)a->s->cfg.app_max_connections) {
        char address[ADDR_HOST_MAX];
        int rc = pool_address(a, p, address);
        if (rc == 0)
            return;
        app_req_t *r = p->wait_head;
        dequeue(p, r);
        if (rc < 0)
            defer_fail(a, r, 0, "cannot resolve the app's host name");
        else if (dial(a, p, r, address) > 0)
            defer_fail(a, r, 0, "cannot connect to the app");
    }
}

/* The lookup of the app's host ended (on the loop): dial for the waiting
 * requests, or fail those no open connection will take. */
static void pool_resolved(void *arg, int err, const resolve_addrs_t *ad)
{
    pool_t *p = arg;
    appclient_t *a = p->a;
    p->resolving = false;
    if (err) {
        LOG_WARN("cannot resolve the app's host name", LF_STR("app", p->key), LF_STR("err", resolve_strerror(err)));
        while (!p->nconns && p->wait_head) {
            app_req_t *r = p->wait_head;
            dequeue(p, r);
            defer_fail(a, r, 0, "cannot resolve the app's host name");
        }
        return;
    }
    memcpy(p->fresh, ad->addr[0], sizeof(p->fresh));
    pool_next(a, p);
    p->fresh[0] = '\0';
}

int appclient_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len)
{
    appconn_t *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    if (!c)
        return 0;
    appclient_t *a = lws_get_protocol(wsi)->user;
    pool_t *p = c->pool;
    if (c->dialing) { /* failure reported from inside lws_client_connect_via_info */
        if (reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR || reason == LWS_CALLBACK_RAW_CLOSE ||
            reason == LWS_CALLBACK_WSI_DESTROY) {
            c->dial_failed = true;
            lws_set_opaque_user_data(wsi, NULL);
        } else if (reason == LWS_CALLBACK_RAW_CONNECTED) {
            c->connected = true;
        }
        return 0;
    }
    if (c->closing && (reason == LWS_CALLBACK_RAW_CONNECTED || reason == LWS_CALLBACK_RAW_RX ||
                       reason == LWS_CALLBACK_RAW_WRITEABLE))
        return -1;
    switch (reason) {
    case LWS_CALLBACK_RAW_CONNECTED:
        c->connected = true;
        if (c->req)
            lws_callback_on_writable(wsi);
        else /* its request was cancelled or timed out while it dialed */
            conn_idle(c);
        break;
    case LWS_CALLBACK_RAW_WRITEABLE: {
        app_req_t *r = c->req;
        if (!r || c->written)
            break;
        c->written = true;
        if (lws_write(wsi, (unsigned char *)r->out + LWS_PRE, r->outlen, LWS_WRITE_RAW) < 0)
            return -1;
        break;
    }
    case LWS_CALLBACK_RAW_RX: {
        app_req_t *r = c->req;
        if (!r) /* bytes while idle: the app is confused; start afresh */
            return -1;
        size_t used;
        int rc = http1_resp_feed(&c->resp, in, len, &used);
        if (rc == HTTP1_ERROR) {
            LOG_WARN("bad response from the app", LF_STR("err", c->resp.error));
            r->a->s->stats.app_errors++;
            c->req = NULL;
            r->conn = NULL;
            fail(r, 0, c->resp.error);
            return -1;
        }
        if (rc == HTTP1_DONE) {
            bool keep = c->resp.keep_alive && used == len;
            c->req = NULL;
            r->conn = NULL;
            app_result_t res = {.status = c->resp.status, .ctype = c->resp.ctype,
                                .body = sbuf_data(&c->resp.body), .body_len = c->resp.body.len};
            finish(r, &res);
            if (!keep)
                return -1;
            conn_idle(c);
        }
        break;
    }
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_RAW_CLOSE:
    case LWS_CALLBACK_WSI_DESTROY: /* one that ended without either of the above */
        conn_gone(a, c, reason == LWS_CALLBACK_RAW_CLOSE ? "the app closed the connection"
                                                         : "cannot connect to the app");
        pool_next(a, p);
        break;
    default:
        break;
    }
    (void)user;
    (void)len;
    return 0;
}

/* "http://host[:port]/path" → host, port, path (pointer into target). The
 * request line and the Host header are built from these parts only, so each is
 * checked here: the path is a url (url.h: visible ASCII, checked escapes, no dot
 * segments; a wildcard route's target + the call's url may be up to twice a url
 * long), the host is visible ASCII without '@', '/', '?' or '#' and not empty,
 * the port is 1..65535. */
static int parse_target(const char *t, addr_t *addr, const char **path)
{
    if (strncmp(t, "http://", 7))
        return -1;
    const char *h = t + 7, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    *path = slash ? slash : "/";
    if (url_check_max(*path, strlen(*path), 2 * URL_MAX + 1))
        return -1;
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)h[i] <= 0x20 || (unsigned char)h[i] >= 0x7f || strchr("@?#\\", h[i]))
            return -1;
    char hp[ADDR_KEY_MAX];
    if (hl == 0 || hl >= sizeof(hp))
        return -1;
    memcpy(hp, h, hl);
    hp[hl] = '\0';
    const char *colon = strrchr(hp, ':');
    if (colon && (hp[0] != '[' || colon > strchr(hp, ']')))
        return addr_parse_key(hp, hl, addr) ? -1 : 0;
    size_t n = hl;
    const char *host = hp;
    if (hp[0] == '[' && hp[hl - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(addr->host))
        return -1;
    memcpy(addr->host, host, n);
    addr->host[n] = '\0';
    addr->port = 80;
    return 0;
}

/* Header values come from peers: keep only printable bytes so nobody can
 * inject a header line. */
static void add_header(sbuf_t *b, const char *name, const char *v)
{
    if (!v || !*v)
        return;
    sbuf_adds(b, name);
    sbuf_add(b, ": ", 2);
    for (const char *p = v; *p && p - v < 512; p++)
        if ((unsigned char)*p >= 0x20 && *p != 0x7f)
            sbuf_addc(b, *p);
    sbuf_add(b, "\r\n", 2);
}

app_req_t *appclient_post(appclient_t *a, const char *target, const char *body, size_t len,
                          const app_headers_t *h, app_done_t done, void *arg)
{
    return appclient_request(a, "POST", target, body, len, h, 0, done, arg);
}

app_req_t *appclient_request(appclient_t *a, const char *method, const char *target,
                             const char *body, size_t len, const app_headers_t *h,
                             int64_t timeout_ms, app_done_t done, void *arg)
{
    addr_t addr;
    const char *path;
    if (parse_target(target, &addr, &path))
        return NULL;
    char key[ADDR_KEY_MAX];
    addr_format_key(addr.host, addr.port, key, sizeof(key));
    pool_t *p = hmap_gets(&a->pools, key);
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return NULL;
        snprintf(p->key, sizeof(p->key), "%s", key);
        p->addr = addr;
        p->a = a;
        int err;
        hmap_put(&a->pools, p->key, strlen(p->key), p, &err);
        if (err) {
            free(p);
            return NULL;
        }
    }
    app_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->a = a;
    r->pool = p;
    r->done = done;
    r->arg = arg;

    sbuf_t b;
    sbuf_init(&b, LWS_PRE, 0);
    sbuf_adds(&b, method);
    sbuf_addc(&b, ' ');
    sbuf_adds(&b, path);
    sbuf_adds(&b, " HTTP/1.1\r\nHost: ");
    sbuf_adds(&b, key);
    if (len || strcmp(method, "GET")) {
        sbuf_adds(&b, "\r\nContent-Type: application/json\r\nContent-Length: ");
        sbuf_add_u64(&b, len);
    }
    sbuf_add(&b, "\r\n", 2);
    if (h) {
        add_header(&b, "X-Correlation-Id", h->cid);
        add_header(&b, "X-Micro-Caller", h->caller);
        add_header(&b, "X-Micro-Token", h->token);
    }
    sbuf_add(&b, "\r\n", 2);
    sbuf_add(&b, body, len);
    if (b.err) {
        sbuf_free(&b);
        free(r);
        return NULL;
    }
    r->outlen = b.len;
    r->out = sbuf_steal(&b);
    a->bytes += r->outlen;

    int64_t tmo = timeout_ms > 0 ? timeout_ms : a->s->cfg.app_timeout_ms;
    char address[ADDR_HOST_MAX];
    int rc = 1;
    size_t budget = (size_t)a->s->cfg.app_queue_bytes;
    /* counted by bytes, not only by requests: 1,500 queued 500 KB bodies were 730 MB.
     * A small request (64 KiB or less) may use an eighth more, so big ones filling
     * the budget do not shut out ordinary calls. */
    if (budget && a->bytes > budget && (r->outlen > 65536 || a->bytes > budget + budget / 8)) {
        r->fail_status = 503;
        r->fail_error = "too many request bytes waiting for the app";
        tmo = 0;
    } else if (p->idle) {
        appconn_t *c = p->idle;
        p->idle = c->next_idle;
        assign(c, r);
    } else if (p->nconns < (size_t)a->s->cfg.app_max_connections &&
               (rc = pool_address(a, p, address)) != 0) {
        if (rc < 0) {
            r->fail_status = 0;
            r->fail_error = "cannot resolve the app's host name";
            tmo = 0;
        } else if (dial(a, p, r, address) > 0) {
            r->fail_status = 0;
            r->fail_error = "cannot connect to the app";
            tmo = 0;
        }
    } else if (p->nwait < 4 * (size_t)a->s->cfg.app_max_connections) {
        /* waits for a connection, or for the app's address (pool_resolved) */
        r->queued = true;
        if (p->wait_tail)
            p->wait_tail->next = r;
        else
            p->wait_head = r;
        p->wait_tail = r;
        p->nwait++;
    } else {
        r->fail_status = 503;
        r->fail_error = "too many requests waiting for the app";
        tmo = 0;
    }
    /* A deferred failure fires at once; otherwise the app timeout. */
    loop_timer_schedule(a->s->ctx, &r->timer, on_timeout, tmo > 0 ? tmo * LWS_US_PER_MS : 1);
    return r;
}

void appclient_cancel(app_req_t *r)
{
    detach(r);
    req_free(r);
}

void appclient_free(appclient_t *a)
{
    void *v;
    if (!a)
        return;
    for (size_t it = 0; (it = hmap_next(&a->pools, it, &v)) != 0;) {
        pool_t *p = v;
        if (p->resolving && a->s->resolver)
            resolver_cancel(a->s->resolver, &p->rw);
        while (p->wait_head) {
            app_req_t *r = p->wait_head;
            p->wait_head = r->next;
            req_free(r);
        }
        free(p);
    }
    hmap_free(&a->pools);
    free(a);
}

/* ---- app answer → protocol outcome (docs/API.md, "Inbound calls") ---- */

void app_outcome_from(const app_result_t *r, app_outcome_t *o)
{
    memset(o, 0, sizeof(*o));
    if (r->status == 0) {
        o->status = 502;
        snprintf(o->message, sizeof(o->message), "app unreachable: %s", r->error ? r->error : "?");
        return;
    }
    jspan_t root;
    int jrc = r->body_len ? jscan_validate(r->body, r->body_len, &root, NULL) : JSCAN_E_SYNTAX;
    bool json = jrc == JSCAN_OK;
    if (jrc == JSCAN_E_DEPTH) {
        /* JSON, but deeper than a frame may carry: said at once, not sent as a
         * string or left for the caller to time out on */
        o->status = 502;
        snprintf(o->message, sizeof(o->message), "app answer is nested deeper than %d levels",
                 JSCAN_MAX_DEPTH);
        return;
    }
    if (r->status >= 200 && r->status < 300) {
        o->status = 200;
        if (!r->body_len)
            return;
        if (json) {
            o->result = root.p;
            o->result_len = root.n;
            return;
        }
        /* non-JSON text becomes a JSON string */
        sbuf_t b;
        sbuf_init(&b, 0, 0);
        sbuf_add_json_str(&b, r->body, r->body_len);
        o->result_len = b.len;
        o->owned = sbuf_steal(&b);
        o->result = o->owned;
        return;
    }
    o->status = r->status;
    jspan_t v;
    if (json && root.t == JT_OBJECT && ((jobj_get(root, "error", &v) && v.t == JT_STRING) ||
                                        (jobj_get(root, "message", &v) && v.t == JT_STRING))) {
        jstr_get(v, o->message, sizeof(o->message), NULL);
    } else if (r->body_len) {
        size_t n = r->body_len < sizeof(o->message) - 1 ? r->body_len : sizeof(o->message) - 1;
        memcpy(o->message, r->body, n);
        o->message[n] = '\0';
    } else if (r->error) {
        snprintf(o->message, sizeof(o->message), "%s", r->error);
    } else {
        snprintf(o->message, sizeof(o->message), "app answered %d", r->status);
    }
}

void app_outcome_free(app_outcome_t *o)
{
    free(o->owned);
    o->owned = NULL;
}
