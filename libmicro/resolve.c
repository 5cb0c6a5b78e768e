/* _GNU_SOURCE (pthread_timedjoin_np, EAI_NODATA) comes from the build */
#include "resolve.h"

#include "hmap.h"
#include "loop.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* One name handed to a thread. Who holds it: the queue while `queued`, then its
 * thread, then the done list, then the loop, which frees it. `lk` is touched
 * only by the loop thread: NULL once the lookup is over (deadline, free), so a
 * late answer is recognised and dropped. */
typedef struct job {
    struct job *next;
    struct resolve_lookup *lk;
    int   lane;
    bool  queued;          /* guarded by core.mu */
    int   err;             /* written by the thread before the job joins the done list */
    resolve_addrs_t addrs;
    char  host[RESOLVE_HOST_MAX];
} job_t;

/* What the loop and the threads share, under mu. Reference-counted: the
 * resolver holds one reference and every thread one, so a thread still stuck
 * in getaddrinfo when the resolver is freed frees it when it comes back. */
typedef struct core {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    job_t  *qhead[RESOLVE_LANES], *qtail[RESOLVE_LANES];
    size_t  qlen[RESOLVE_LANES];
    job_t  *dhead, *dtail;   /* finished, for the loop */
    bool    stop;
    int     refs;
    resolve_fn_t fn;
    void   *fn_arg;
    struct ev_loop *evl;     /* the wake-up, while !stop (NULL on the poll loop) */
    ev_async *wake;
} core_t;

/* A name being looked up, on the loop thread: its waiters and its deadline. */
typedef struct resolve_lookup {
    resolver_t *r;
    job_t      *job;         /* NULL once its answer came back */
    resolve_waiter_t *waiters;
    loop_timer_t deadline;
    char        key[RESOLVE_HOST_MAX + 2]; /* "<lane>:<lower-case name>" */
} lookup_t;

typedef struct cache_entry {
    int64_t         expires_ms;
    int             err;
    resolve_addrs_t addrs;
    char            key[RESOLVE_HOST_MAX + 2];
} cache_entry_t;

struct resolver {
    struct lws_context *ctx;
    resolver_opts_t o;
    core_t     *core;
    pthread_t  *tids;
    int         nthreads;
    hmap_t      inflight;    /* key → lookup_t */
    hmap_t      cache;       /* name (lower case) → cache_entry_t */
    ev_async    async;
    struct ev_loop *evl;
    loop_timer_t poll;       /* lws's poll() loop only */
    bool        polling;
    bool        closing;
    size_t      npending;
    resolver_stats_t stats;
};

typedef struct thread_arg {
    core_t *core;
    int     lane;
} thread_arg_t;

void resolver_opts_default(resolver_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->peer_threads = 4;
    o->reserved_threads = 2;
    o->max_queue[RESOLVE_LANE_PEER] = 64;
    o->max_queue[RESOLVE_LANE_RESERVED] = 8;
    o->timeout_ms = 2000;
    o->cache_ms = 10000;
    o->neg_cache_ms = 2000;
    o->max_cache = 1024;
}

bool resolve_numeric(const char *host, char *out, size_t outlen)
{
    unsigned char buf[sizeof(struct in6_addr)];
    char tmp[RESOLVE_ADDR_MAX];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        if (n - 2 >= sizeof(tmp))
            return false;
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        if (inet_pton(AF_INET6, tmp, buf) != 1)
            return false;
    } else {
        if (n >= sizeof(tmp))
            return false;
        memcpy(tmp, host, n + 1);
        if (inet_pton(AF_INET, tmp, buf) != 1 && inet_pton(AF_INET6, tmp, buf) != 1)
            return false;
    }
    if (strlen(tmp) >= outlen)
        return false;
    memcpy(out, tmp, strlen(tmp) + 1);
    return true;
}

const char *resolve_strerror(int err)
{
    switch (err) {
    case RESOLVE_OK: return "ok";
    case RESOLVE_E_NOTFOUND: return "the name has no address";
    case RESOLVE_E_TIMEOUT: return "DNS lookup timed out";
    case RESOLVE_E_BUSY: return "too many DNS lookups waiting";
    case RESOLVE_E_FAIL: return "DNS lookup failed";
    case RESOLVE_E_CLOSED: return "shutting down";
    case RESOLVE_E_NAME: return "empty or too long host name";
    }
    return "?";
}

int resolve_getaddrinfo(void *arg, const char *host, resolve_addrs_t *out)
{
    (void)arg;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc) {
        switch (rc) {
        case EAI_NONAME:
        case EAI_NODATA:
        case EAI_ADDRFAMILY:
            return RESOLVE_E_NOTFOUND;
        default:
            return RESOLVE_E_FAIL; /* EAI_AGAIN: the servers did not answer */
        }
    }
    out->n = 0;
    for (struct addrinfo *a = res; a && out->n < RESOLVE_MAX_ADDRS; a = a->ai_next) {
        const void *p = NULL;
        if (a->ai_family == AF_INET)
            p = &((struct sockaddr_in *)a->ai_addr)->sin_addr;
        else if (a->ai_family == AF_INET6)
            p = &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if (p && inet_ntop(a->ai_family, p, out->addr[out->n], RESOLVE_ADDR_MAX))
            out->n++;
    }
    freeaddrinfo(res);
    return out->n ? RESOLVE_OK : RESOLVE_E_NOTFOUND;
}

/* ---- the threads ---- */

static void core_free(core_t *c)
{
    for (int l = 0; l < RESOLVE_LANES; l++)
        while (c->qhead[l]) {
            job_t *j = c->qhead[l];
            c->qhead[l] = j->next;
            free(j);
        }
    while (c->dhead) {
        job_t *j = c->dhead;
        c->dhead = j->next;
        free(j);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* Drops one reference; the last one frees. Called with mu held; unlocks. */
static void core_unref_unlock(core_t *c)
{
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last)
        core_free(c);
}

static void *thread_main(void *p)
{
    thread_arg_t *a = p;
    core_t *c = a->core;
    int lane = a->lane;
    free(a);
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && !c->qhead[lane])
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop)
            break;
        job_t *j = c->qhead[lane];
        c->qhead[lane] = j->next;
        if (!c->qhead[lane])
            c->qtail[lane] = NULL;
        c->qlen[lane]--;
        j->queued = false;
        j->next = NULL;
        pthread_mutex_unlock(&c->mu);

        resolve_addrs_t addrs;
        memset(&addrs, 0, sizeof(addrs));
        int err = c->fn(c->fn_arg, j->host, &addrs);
        if (!err && !addrs.n)
            err = RESOLVE_E_NOTFOUND;

        pthread_mutex_lock(&c->mu);
        if (c->stop) { /* the resolver is gone: nobody wants it */
            free(j);
            break;
        }
        j->err = err;
        j->addrs = addrs;
        if (c->dtail)
            c->dtail->next = j;
        else
            c->dhead = j;
        c->dtail = j;
        if (c->evl)
            ev_async_send(c->evl, c->wake); /* thread-safe; coalesces */
    }
    core_unref_unlock(c);
    return NULL;
}

/* ---- the loop side ---- */

static void cache_put(resolver_t *r, const char *key, int err, const resolve_addrs_t *addrs)
{
    int64_t ttl = err ? r->o.neg_cache_ms : r->o.cache_ms;
    if (ttl <= 0 || !r->o.max_cache || err == RESOLVE_E_CLOSED || err == RESOLVE_E_BUSY)
        return;
    int64_t now = now_ms();
    cache_entry_t *e = hmap_gets(&r->cache, key);
    if (!e && hmap_len(&r->cache) >= r->o.max_cache) {
        /* full: sweep what has expired; if nothing has, this answer is not kept */
        void *v;
        for (size_t it = 0; (it = hmap_next(&r->cache, it, &v)) != 0;) {
            cache_entry_t *x = v;
            if (x->expires_ms <= now) {
                hmap_del(&r->cache, x->key, strlen(x->key));
                free(x);
                it = 0; /* deleting moves entries: start over (bounded by max_cache) */
            }
        }
        if (hmap_len(&r->cache) >= r->o.max_cache)
            return;
    }
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return;
        snprintf(e->key, sizeof(e->key), "%s", key);
        int herr;
        hmap_put(&r->cache, e->key, strlen(e->key), e, &herr);
        if (herr) {
            free(e);
            return;
        }
    }
    e->expires_ms = now + ttl;
    e->err = err;
    if (addrs && !err)
        e->addrs = *addrs;
    else
        memset(&e->addrs, 0, sizeof(e->addrs));
}

/* Ends a lookup: every waiter hears the outcome, in order. A callback may
 * cancel another waiter of the same lookup (it is unlinked from the list we
 * walk) or start a new lookup of the same name (the cache answers it). */
static void finish(resolver_t *r, lookup_t *lk, int err, const resolve_addrs_t *addrs)
{
    loop_timer_cancel(&lk->deadline);
    hmap_del_if(&r->inflight, lk->key, strlen(lk->key), lk);
    r->npending--;
    cache_put(r, lk->key + 2, err, addrs);
    resolve_waiter_t *w;
    while ((w = lk->waiters)) {
        lk->waiters = w->next;
        w->next = NULL;
        w->lk = NULL;
        w->cb(w->arg, err, err ? NULL : addrs);
    }
    free(lk);
}

/* The lookup no longer wants its job: a queued job is taken back and freed; a
 * running one is left to its thread and its answer dropped when it comes. */
static void detach_job(resolver_t *r, lookup_t *lk)
{
    job_t *j = lk->job;
    if (!j)
        return;
    lk->job = NULL;
    core_t *c = r->core;
    bool take = false;
    pthread_mutex_lock(&c->mu);
    if (j->queued) {
        job_t **pp = &c->qhead[j->lane], *prev = NULL;
        while (*pp && *pp != j) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = j->next;
            if (c->qtail[j->lane] == j)
                c->qtail[j->lane] = prev;
            c->qlen[j->lane]--;
            take = true;
        }
    }
    j->lk = NULL;
    pthread_mutex_unlock(&c->mu);
    if (take)
        free(j);
}

static void on_deadline(loop_timer_t *t)
{
    lookup_t *lk = lws_container_of(t, lookup_t, deadline);
    resolver_t *r = lk->r;
    r->stats.timeouts++;
    detach_job(r, lk);
    finish(r, lk, RESOLVE_E_TIMEOUT, NULL);
}

static void drain(resolver_t *r)
{
    core_t *c = r->core;
    pthread_mutex_lock(&c->mu);
    job_t *d = c->dhead;
    c->dhead = c->dtail = NULL;
    pthread_mutex_unlock(&c->mu);
    while (d) {
        job_t *j = d;
        d = d->next;
        lookup_t *lk = j->lk;
        if (!lk) {
            r->stats.late++;
            free(j);
            continue;
        }
        lk->job = NULL;
        if (j->err)
            r->stats.failures++;
        finish(r, lk, j->err, &j->addrs);
        free(j);
    }
}

static void on_async(struct ev_loop *l, ev_async *w, int revents)
{
    (void)l;
    (void)revents;
    drain(lws_container_of(w, resolver_t, async));
}

static void on_poll(loop_timer_t *t)
{
    resolver_t *r = lws_container_of(t, resolver_t, poll);
    r->polling = false;
    drain(r);
    if (r->npending) {
        r->polling = true;
        loop_timer_schedule(r->ctx, &r->poll, on_poll, 2 * LWS_US_PER_MS);
    }
}

resolver_t *resolver_new(struct lws_context *ctx, const resolver_opts_t *o)
{
    resolver_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->ctx = ctx;
    r->o = *o;
    if (!r->o.fn)
        r->o.fn = resolve_getaddrinfo;
    if (r->o.peer_threads < 1)
        r->o.peer_threads = 1;
    if (r->o.reserved_threads < 1)
        r->o.reserved_threads = 1;
    hmap_init(&r->inflight);
    hmap_init(&r->cache);
    core_t *c = calloc(1, sizeof(*c));
    int n = r->o.peer_threads + r->o.reserved_threads;
    r->tids = calloc((size_t)n, sizeof(*r->tids));
    if (!c || !r->tids) {
        free(c);
        free(r->tids);
        free(r);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->fn = r->o.fn;
    c->fn_arg = r->o.fn_arg;
    c->refs = 1;
    r->core = c;
    r->evl = loop_ev();
    if (r->evl) {
        ev_async_init(&r->async, on_async);
        ev_async_start(r->evl, &r->async);
        c->evl = r->evl;
        c->wake = &r->async;
    }
    /* the threads need little stack: getaddrinfo and its NSS modules, not our frames */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    /* signals stay with the loop thread: the threads start with all blocked */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < n; i++) {
        thread_arg_t *a = malloc(sizeof(*a));
        if (!a)
            break;
        a->core = c;
        a->lane = i < r->o.reserved_threads ? RESOLVE_LANE_RESERVED : RESOLVE_LANE_PEER;
        pthread_mutex_lock(&c->mu);
        c->refs++;
        pthread_mutex_unlock(&c->mu);
        if (pthread_create(&r->tids[i], &attr, thread_main, a)) {
            free(a);
            pthread_mutex_lock(&c->mu);
            c->refs--;
            pthread_mutex_unlock(&c->mu);
            break;
        }
        r->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (r->nthreads < n) {
        resolver_free(r);
        return NULL;
    }
    return r;
}

int resolver_lookup(resolver_t *r, const char *host, int lane, resolve_addrs_t *out,
                    resolve_waiter_t *w, resolve_cb_t cb, void *arg)
{
    if (resolve_numeric(host, out->addr[0], sizeof(out->addr[0]))) {
        out->n = 1;
        r->stats.numeric++;
        return 1;
    }
    size_t len = strlen(host);
    if (!len || len >= RESOLVE_HOST_MAX)
        return RESOLVE_E_NAME;
    if (r->closing)
        return RESOLVE_E_CLOSED;
    if (lane < 0 || lane >= RESOLVE_LANES)
        lane = RESOLVE_LANE_PEER;
    r->stats.lookups++;
    /* names are case-insensitive: one cache entry, one job per spelling of a name */
    char key[RESOLVE_HOST_MAX + 2];
    key[0] = (char)('0' + lane);
    key[1] = ':';
    for (size_t i = 0; i <= len; i++)
        key[2 + i] = (char)tolower((unsigned char)host[i]);
    cache_entry_t *ce = hmap_gets(&r->cache, key + 2);
    if (ce) {
        if (now_ms() < ce->expires_ms) {
            r->stats.cache_hits++;
            if (ce->err)
                return ce->err;
            *out = ce->addrs;
            return 1;
        }
        hmap_del(&r->cache, ce->key, strlen(ce->key));
        free(ce);
    }
    w->cb = cb;
    w->arg = arg;
    w->next = NULL;
    /* one job per name and lane: a registry lookup never waits behind a peer-lane
     * job for the same name that is stuck on a busy thread */
    lookup_t *lk = hmap_gets(&r->inflight, key);
    if (lk) {
        resolve_waiter_t **pp = &lk->waiters;
        while (*pp)
            pp = &(*pp)->next;
        *pp = w;
        w->lk = lk;
        r->stats.shared++;
        return 0;
    }
    lk = calloc(1, sizeof(*lk));
    job_t *j = calloc(1, sizeof(*j));
    if (!lk || !j) {
        free(lk);
        free(j);
        r->stats.failures++;
        return RESOLVE_E_FAIL;
    }
    lk->r = r;
    memcpy(lk->key, key, len + 3);
    memcpy(j->host, key + 2, len + 1);
    j->lane = lane;
    j->lk = lk;
    int herr;
    hmap_put(&r->inflight, lk->key, strlen(lk->key), lk, &herr);
    if (herr) {
        free(lk);
        free(j);
        r->stats.failures++;
        return RESOLVE_E_FAIL;
    }
    core_t *c = r->core;
    pthread_mutex_lock(&c->mu);
    if (c->qlen[lane] >= r->o.max_queue[lane]) {
        pthread_mutex_unlock(&c->mu);
        hmap_del(&r->inflight, lk->key, strlen(lk->key));
        free(lk);
        free(j);
        r->stats.busy++;
        return RESOLVE_E_BUSY;
    }
    j->queued = true;
    if (c->qtail[lane])
        c->qtail[lane]->next = j;
    else
        c->qhead[lane] = j;
    c->qtail[lane] = j;
    c->qlen[lane]++;
    pthread_cond_broadcast(&c->cv); /* both lanes wait on one condition */
    pthread_mutex_unlock(&c->mu);
    lk->job = j;
    lk->waiters = w;
    w->lk = lk;
    r->npending++;
    r->stats.jobs++;
    loop_timer_schedule(r->ctx, &lk->deadline, on_deadline, r->o.timeout_ms * LWS_US_PER_MS);
    if (!r->evl && !r->polling) {
        r->polling = true;
        loop_timer_schedule(r->ctx, &r->poll, on_poll, 2 * LWS_US_PER_MS);
    }
    return 0;
}

void resolver_cancel(resolver_t *r, resolve_waiter_t *w)
{
    (void)r;
    lookup_t *lk = w->lk;
    if (!lk)
        return;
    for (resolve_waiter_t **pp = &lk->waiters; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    w->next = NULL;
    w->lk = NULL;
}

void resolver_free(resolver_t *r)
{
    if (!r)
        return;
    r->closing = true;
    void *v;
    size_t it;
    while ((it = hmap_next(&r->inflight, 0, &v)) != 0) {
        lookup_t *lk = v;
        detach_job(r, lk);
        finish(r, lk, RESOLVE_E_CLOSED, NULL);
    }
    if (r->polling)
        loop_timer_cancel(&r->poll);
    core_t *c = r->core;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    c->evl = NULL;
    c->wake = NULL;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (r->evl)
        ev_async_stop(r->evl, &r->async);
    /* idle threads leave at once; one inside getaddrinfo cannot be interrupted:
     * after ~100 ms it is detached and frees the core itself when it returns */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 100 * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    for (int i = 0; i < r->nthreads; i++)
        if (pthread_timedjoin_np(r->tids[i], NULL, &until))
            pthread_detach(r->tids[i]);
    pthread_mutex_lock(&c->mu);
    core_unref_unlock(c);
    for (it = 0; (it = hmap_next(&r->cache, it, &v)) != 0;)
        free(v);
    hmap_free(&r->cache);
    hmap_free(&r->inflight);
    free(r->tids);
    free(r);
}

const resolver_stats_t *resolver_stats(const resolver_t *r) { return &r->stats; }
size_t resolver_pending(const resolver_t *r) { return r->npending; }
