/* call: one outbound call or push through the mesh, docs/PROTOCOL.md §5.3:
 * correlation id, breaker exclusion, discovery (with the all-excluded reset),
 * the REQUEST with its timeout (ABORT on expiry), and retries with the same
 * correlation id and timeout. The owner (the local API) hears the outcome once,
 * always from a loop timer, never from inside call_start. */
#include "sidecar.h"

#include "log.h"
#include "ratelimit.h"
#include "url.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define MAX_EXCLUDE 64

/* Per target namespace: outbound concurrency and rate limit. */
typedef struct nsstate {
    char      ns[ADDR_NS_MAX];
    size_t    inflight;
    tbucket_t limit;
    int64_t   used_ms;   /* last call: unused entries expire (ns_sweep) */
} nsstate_t;

struct call {
    call_t        *next, *prev;   /* every live call, for the shutdown abort */
    sidecar_t     *s;
    char           ns[ADDR_NS_MAX];
    char           url[1024];
    size_t         url_len;
    sbuf_t         payload;       /* the payload as sent, correlation id included */
    char           cid[128];
    int64_t        timeout_ms;
    int            retries_left;
    bool           push;
    bool           reset_done;    /* the all-excluded reset was tried this attempt */
    call_done_t    done;
    void          *arg;
    disc_waiter_t  waiter;
    bool           waiting;       /* in discovery */
    wsconn_t      *conn;          /* REQUEST in flight on it */
    uint64_t       req_id;
    app_req_t     *self_req;      /* served by our own app */
    char           peer[ADDR_KEY_MAX];
    /* the outcome, delivered from the loop */
    int            status;
    /* room for the longest namespace in our own messages ("more than N calls in
     * flight to <ns>") and for a peer's message (512, see on_response) */
    char           message[ADDR_NS_MAX + 128];
    sbuf_t         result;
    bool           has_result;
    bool           finished;
    double         retry_after;
    size_t         nexcluded;     /* peers the breaker left out of this attempt */
    nsstate_t     *nss;
    call_t        *ripe_next;     /* on the ripe list: finished, not yet delivered */
    loop_timer_t   backoff;       /* armed between a failed attempt and the retry */
    bool           backing_off;
    int            attempts;      /* made so far */
};

static call_t *live;
/* Finished calls wait here, in order, until the loop pass that finished them is
 * over (call_deliver_ripe): an outcome is never delivered from inside
 * call_start or an lws callback, so no caller sees its callback re-entered. */
static call_t *ripe_head, **ripe_tail = &ripe_head;

static nsstate_t *nsstate(sidecar_t *s, const char *ns)
{
    nsstate_t *n = hmap_gets(&s->nsstate, ns);
    if (n) {
        n->used_ms = now_ms();
        return n;
    }
    n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    snprintf(n->ns, sizeof(n->ns), "%s", ns);
    n->used_ms = now_ms();
    tb_init(&n->limit, (double)s->cfg.outbound_rps, (double)s->cfg.outbound_burst, now_us());
    int err;
    hmap_put(&s->nsstate, n->ns, strlen(n->ns), n, &err);
    if (err) {
        free(n);
        return NULL;
    }
    return n;
}

static void call_free(call_t *c);

void call_free_state(sidecar_t *s)
{
    while (ripe_head) { /* finished at exit: nobody is left to tell */
        call_t *c = ripe_head;
        ripe_head = c->ripe_next;
        call_free(c);
    }
    ripe_tail = &ripe_head;
    void *v;
    for (size_t it = 0; (it = hmap_next(&s->nsstate, it, &v)) != 0;)
        free(v);
    hmap_free(&s->nsstate);
}

static void attempt(call_t *c);

static void unlink_call(call_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (live == c)
        live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void call_free(call_t *c)
{
    loop_timer_cancel(&c->backoff);
    unlink_call(c);
    c->s->calls_inflight--;
    if (c->nss)
        c->nss->inflight--;
    sbuf_free(&c->payload);
    sbuf_free(&c->result);
    free(c);
}

static void deliver(call_t *c)
{
    sidecar_t *s = c->s;
    if (c->status == CALL_OK)
        s->stats.calls_ok++;
    else
        s->stats.calls_failed++;
    if (c->done) {
        call_result_t r = {
            .status = c->status,
            .message = c->message[0] ? c->message : NULL,
            .result = c->has_result ? sbuf_data(&c->result) : NULL,
            .result_len = c->result.len,
            .cid = c->cid,
            .retry_after = c->retry_after,
        };
        c->done(c->arg, &r);
    }
    call_free(c);
}

static void finish(call_t *c, int status, const char *msg)
{
    if (c->finished)
        return;
    c->finished = true;
    c->status = status;
    if (msg && msg != c->message)
        snprintf(c->message, sizeof(c->message), "%s", msg);
    c->ripe_next = NULL;
    *ripe_tail = c;
    ripe_tail = &c->ripe_next;
    sidecar_kick(c->s);
}

bool call_deliver_ripe(void)
{
    if (!ripe_head)
        return false;
    while (ripe_head) {
        call_t *c = ripe_head;
        ripe_head = c->ripe_next;
        if (!ripe_head)
            ripe_tail = &ripe_head;
        deliver(c); /* may finish more calls: they join the tail */
    }
    return true;
}

static const char *default_message(int status)
{
    switch (status) {
    case CALL_E_NO_INSTANCE: return "no instance of the namespace is available";
    case CALL_E_UNREACHABLE: return "the peer could not be reached or its connection dropped";
    case CALL_E_RESOLVE: return "the peer's host name could not be resolved (DNS lookup failed or timed out)";
    case CALL_E_TIMEOUT: return "Abort";
    case CALL_E_SHUTDOWN: return "the sidecar is shutting down";
    case CALL_E_OVERLOAD: return "too many calls in flight";
    case CALL_E_RATE_LIMITED: return "outbound rate limit exceeded";
    case CALL_E_CIRCUIT_OPEN: return "circuit open for every instance of the namespace";
    }
    return "peer error";
}

/* A retry waits a little, so a burst of failures does not turn into a burst of
 * attempts: 10 ms doubled per attempt up to 200 ms, each delay drawn from
 * [50 %, 100 %] of that (jitter, so callers that failed together do not retry
 * together). With at most CALL_RETRIES_MAX retries that is at most ~1.2 s. */
#define BACKOFF_BASE_US 10000
#define BACKOFF_MAX_US 200000

static void retry_now(loop_timer_t *t)
{
    call_t *c = lws_container_of(t, call_t, backoff);
    c->backing_off = false;
    attempt(c);
}

static void retry_later(call_t *c)
{
    int64_t d = BACKOFF_BASE_US;
    for (int i = 1; i < c->attempts && d < BACKOFF_MAX_US; i++)
        d *= 2;
    if (d > BACKOFF_MAX_US)
        d = BACKOFF_MAX_US;
    d = d / 2 + (int64_t)rng_below((uint64_t)d / 2 + 1);
    c->backing_off = true;
    loop_timer_schedule(c->s->ctx, &c->backoff, retry_now, d);
}

/* A failed attempt: remember it against the peer, then retry or give up. */
static void failed(call_t *c, int status, const char *msg)
{
    sidecar_t *s = c->s;
    /* A 429 is the provider asking us to slow down, not a sign it is broken: it
     * neither trips the breaker nor is retried at once; the app gets Retry-After. */
    bool backpressure = status == 429 || status == CALL_E_RATE_LIMITED;
    if (c->peer[0] && status != CALL_E_SHUTDOWN && !backpressure)
        breaker_failure(s, c->ns, c->peer);
    if (!msg || !*msg)
        msg = default_message(status);
    bool final = status == CALL_E_SHUTDOWN || status == CALL_E_CIRCUIT_OPEN || backpressure;
    if (c->retries_left > 0 && !final && !s->done) {
        c->retries_left--;
        s->stats.retries++;
        LOG_DEBUG("call failed, retrying", LF_STR("ns", c->ns), LF_STR("url", c->url),
                  LF_INT("status", status), LF_STR("cid", c->cid));
        retry_later(c);
        return;
    }
    if (status == CALL_E_TIMEOUT)
        s->stats.timeouts++;
    if (msg != c->message)
        snprintf(c->message, sizeof(c->message), "%s", msg);
    finish(c, status, c->message);
}

static void succeeded(call_t *c, const char *result, size_t len)
{
    if (c->peer[0])
        breaker_success(c->s, c->ns, c->peer);
    sbuf_reset(&c->result);
    c->has_result = result != NULL;
    if (result && sbuf_add(&c->result, result, len)) {
        finish(c, CALL_E_OVERLOAD, "result too large");
        return;
    }
    finish(c, CALL_OK, NULL);
}

static void on_response(void *arg, int status, const frame_t *f)
{
    call_t *c = arg;
    c->conn = NULL;
    if (status == 200) {
        succeeded(c, f->result.t != JT_NONE ? f->result.p : NULL, f->result.n);
        return;
    }
    char msg[512] = "";
    int st;
    if (status == MODEM_E_TIMEOUT) {
        st = CALL_E_TIMEOUT;
    } else if (status == MODEM_E_BADFRAME) {
        st = CALL_E_PEER; /* 502, at once */
        snprintf(msg, sizeof(msg), "%s", modem_strerror(status));
    } else if (status < 0) {
        st = CALL_E_UNREACHABLE;
    } else {
        st = f && f->status ? f->status : CALL_E_PEER;
        if (f && f->status == 429)
            c->retry_after = f->retry_after > 0 ? f->retry_after : 1;
        if (f && f->message.t == JT_STRING)
            jstr_get(f->message, msg, sizeof(msg), NULL);
        if (f && !f->status && f->status_raw.t == JT_STRING && !msg[0])
            jstr_get(f->status_raw, msg, sizeof(msg), NULL);
    }
    failed(c, st, msg);
}

static void on_self(void *arg, const app_result_t *r)
{
    call_t *c = arg;
    c->self_req = NULL;
    app_outcome_t o;
    app_outcome_from(r, &o);
    if (o.status == 200)
        succeeded(c, o.result, o.result_len);
    else
        failed(c, o.status, o.message);
    app_outcome_free(&o);
}

static void ignore_answer(void *arg, const app_result_t *r)
{
    (void)arg;
    (void)r;
}

static void serve_self(call_t *c)
{
    sidecar_t *s = c->s;
    char buf[2048];
    s->stats.self_calls++;
    const char *target = routes_match(s->routes, c->url, buf, sizeof(buf));
    if (!target) {
        snprintf(c->message, sizeof(c->message), "no route %.490s", c->url);
        failed(c, 404, c->message);
        return;
    }
    app_headers_t h = {.cid = c->cid, .caller = s->self_key, .token = s->cfg.app_token};
    if (c->push) {
        /* nobody waits for a push: forward and forget */
        finish(c, CALL_OK, NULL);
        c->self_req = NULL;
        appclient_post(s->app, target, sbuf_data(&c->payload), c->payload.len, &h,
                       ignore_answer, NULL);
        return;
    }
    c->self_req = appclient_post(s->app, target, sbuf_data(&c->payload), c->payload.len, &h, on_self, c);
    if (!c->self_req)
        failed(c, 500, "bad route target");
}

static void on_found(void *arg, int err, wsconn_t *conn, bool self)
{
    call_t *c = arg;
    sidecar_t *s = c->s;
    c->waiting = false;
    bool consecutive = s->cfg.breaker_policy && !strcmp(s->cfg.breaker_policy, "consecutive");
    if (err && consecutive && c->nexcluded && err == CALL_E_NO_INSTANCE) {
        /* every instance we know is open: fail fast, do not clear the breaker */
        c->peer[0] = '\0';
        failed(c, CALL_E_CIRCUIT_OPEN, NULL);
        return;
    }
    if (err) {
        if (!c->reset_done && err == CALL_E_NO_INSTANCE) {
            /* maybe everyone is excluded: forget the breaker and ask once more */
            c->reset_done = true;
            breaker_reset(s, c->ns);
            c->waiting = true;
            disc_get(s, c->ns, NULL, &c->waiter, on_found, c);
            return;
        }
        c->peer[0] = '\0';
        failed(c, err, NULL);
        return;
    }
    if (self) {
        snprintf(c->peer, sizeof(c->peer), "%s", s->self_key);
        serve_self(c);
        return;
    }
    if (!breaker_allows(s, c->ns, conn->key)) {
        /* only the cached peer is left (degradation) and its circuit is open */
        c->peer[0] = '\0';
        failed(c, CALL_E_CIRCUIT_OPEN, NULL);
        return;
    }
    snprintf(c->peer, sizeof(c->peer), "%s", conn->key);
    breaker_attempt(s, c->ns, c->peer);
    if (c->push) {
        int rc = modem_push(&conn->modem, c->url, c->url_len, sbuf_data(&c->payload), c->payload.len);
        if (rc)
            finish(c, CALL_E_UNREACHABLE, "could not send the push");
        else
            finish(c, CALL_OK, NULL);
        return;
    }
    int rc = modem_request(&conn->modem, c->url, c->url_len, sbuf_data(&c->payload), c->payload.len,
                           c->timeout_ms, on_response, c, &c->req_id);
    if (rc) {
        failed(c, rc == MODEM_E_FULL ? CALL_E_OVERLOAD : CALL_E_UNREACHABLE, modem_strerror(rc));
        return;
    }
    c->conn = conn;
}

static void attempt(call_t *c)
{
    const char *ex[MAX_EXCLUDE + 1];
    c->attempts++;
    c->nexcluded = breaker_excluded(c->s, c->ns, ex, MAX_EXCLUDE + 1);
    c->reset_done = false;
    c->peer[0] = '\0';
    c->waiting = true;
    disc_get(c->s, c->ns, ex, &c->waiter, on_found, c);
}

call_t *call_start(sidecar_t *s, const call_opts_t *o, call_done_t done, void *arg)
{
    if (!o->ns || !*o->ns || strlen(o->ns) >= ADDR_NS_MAX || !o->url ||
        url_check(o->url, strlen(o->url)) || o->retries < 0 || o->retries > CALL_RETRIES_MAX)
        return NULL;
    call_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->s = s;
    snprintf(c->ns, sizeof(c->ns), "%s", o->ns);
    c->url_len = strlen(o->url);
    memcpy(c->url, o->url, c->url_len + 1);
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : s->cfg.request_timeout_ms;
    c->retries_left = o->push ? 0 : o->retries;
    c->push = o->push;
    c->done = done;
    c->arg = arg;
    sbuf_init(&c->payload, 0, (size_t)s->cfg.max_frame_bytes);
    sbuf_init(&c->result, 0, 0);
    s->calls_inflight++;
    c->next = live;
    if (live)
        live->prev = c;
    live = c;
    if (o->push)
        s->stats.pushes++;
    else
        s->stats.calls++;
    if (frame_payload_with_cid_ix(&c->payload, o->payload, o->payload_len,
                                  o->payload ? o->payload_type : JT_NONE, o->ix,
                                  o->ix ? o->ix_slot : JIX_NONE, o->cid, c->cid, sizeof(c->cid))) {
        finish(c, CALL_E_OVERLOAD, "payload too large");
        return c;
    }
    if (s->cfg.max_inflight > 0 && s->calls_inflight > (size_t)s->cfg.max_inflight) {
        s->stats.concurrency_limited++;
        finish(c, CALL_E_OVERLOAD, "too many calls in flight");
        return c;
    }
    char gone[ADDR_NS_MAX];
    if (s->cfg.max_namespaces > 0 && !disc_known(s, c->ns) &&
        hmap_len(&s->cache) >= (size_t)s->cfg.max_namespaces && disc_evict_one(s, gone, sizeof(gone))) {
        /* at the bound, the least recently used idle namespace makes room */
        nsstate_t *old = hmap_gets(&s->nsstate, gone);
        if (old && !old->inflight) {
            hmap_del_if(&s->nsstate, old->ns, strlen(old->ns), old);
            free(old);
        }
    }
    if (s->cfg.max_namespaces > 0 && !disc_known(s, c->ns) &&
        hmap_len(&s->cache) >= (size_t)s->cfg.max_namespaces) {
        /* per-namespace state is bounded in count too, not only by its expiry:
         * all of it is in use */
        s->stats.concurrency_limited++;
        snprintf(c->message, sizeof(c->message), "too many namespaces in use (--max-namespaces %lld)",
                 s->cfg.max_namespaces);
        finish(c, CALL_E_OVERLOAD, c->message);
        return c;
    }
    c->nss = nsstate(s, c->ns);
    if (c->nss) {
        c->nss->inflight++;
        if (s->cfg.namespace_concurrency > 0 && c->nss->inflight > (size_t)s->cfg.namespace_concurrency) {
            s->stats.concurrency_limited++;
            snprintf(c->message, sizeof(c->message), "more than %lld calls in flight to %s",
                     s->cfg.namespace_concurrency, c->ns);
            finish(c, CALL_E_OVERLOAD, c->message);
            return c;
        }
        if (!tb_take(&c->nss->limit, now_us(), &c->retry_after)) {
            s->stats.rate_limited_out++;
            snprintf(c->message, sizeof(c->message), "outbound rate limit for %s exceeded (%lld/s)", c->ns,
                     s->cfg.outbound_rps);
            finish(c, CALL_E_RATE_LIMITED, c->message);
            return c;
        }
    }
    attempt(c);
    return c;
}

/* Stops whatever the call is doing right now, without telling anyone. */
static void stop_work(call_t *c)
{
    if (c->backing_off) {
        loop_timer_cancel(&c->backoff);
        c->backing_off = false;
    }
    if (c->waiting) {
        disc_cancel(c->s, c->ns, &c->waiter);
        c->waiting = false;
    }
    if (c->conn) {
        modem_cancel(&c->conn->modem, c->req_id); /* sends the ABORT */
        c->conn = NULL;
    }
    if (c->self_req) {
        appclient_cancel(c->self_req);
        c->self_req = NULL;
    }
}

void call_detach(call_t *c)
{
    c->done = NULL;
    if (!c->finished) {
        stop_work(c);
        finish(c, CALL_E_SHUTDOWN, NULL);
    }
}

void call_abort_all(sidecar_t *s)
{
    for (call_t *c = live; c; c = c->next)
        if (c->s == s && !c->finished) {
            stop_work(c);
            finish(c, CALL_E_SHUTDOWN, default_message(CALL_E_SHUTDOWN));
        }
}

int call_http_status(int status)
{
    switch (status) {
    case CALL_OK: return 200;
    case CALL_E_NO_INSTANCE: return 503;
    case CALL_E_UNREACHABLE: return 502;
    case CALL_E_RESOLVE: return 502;
    case CALL_E_TIMEOUT: return 504;
    case CALL_E_SHUTDOWN: return 503;
    case CALL_E_OVERLOAD: return 503;
    case CALL_E_RATE_LIMITED: return 429;
    case CALL_E_CIRCUIT_OPEN: return 503;
    }
    return status >= 400 && status <= 599 ? status : 502;
}

/* Per-namespace state nobody used for --namespace-ttl-ms goes: the outbound limits
 * here, the discovery cache entry, the breaker's expired exclusions. 50,000 calls
 * to namespaces that do not exist grew a sidecar by 87 MB for good. */
static void ns_sweep(loop_timer_t *t)
{
    sidecar_t *s = lws_container_of(t, sidecar_t, ns_sweep_timer);
    int64_t cutoff = now_ms() - s->cfg.namespace_ttl_ms;
    void *v;
    nsstate_t *old[256];
    size_t n;
    do {
        n = 0;
        for (size_t it = 0; (it = hmap_next(&s->nsstate, it, &v)) != 0 && n < 256;) {
            nsstate_t *e = v;
            if (!e->inflight && e->used_ms < cutoff)
                old[n++] = e;
        }
        for (size_t i = 0; i < n; i++) {
            hmap_del_if(&s->nsstate, old[i]->ns, strlen(old[i]->ns), old[i]);
            free(old[i]);
        }
    } while (n == 256);
    disc_sweep(s, cutoff);
    breaker_sweep(s);
    call_sweep_start(s);
}

void call_sweep_start(sidecar_t *s)
{
    int64_t every = s->cfg.namespace_ttl_ms / 4;
    if (every < 250)
        every = 250;
    if (every > 10000)
        every = 10000;
    loop_timer_schedule(s->ctx, &s->ns_sweep_timer, ns_sweep, every * LWS_US_PER_MS);
}
