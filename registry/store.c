#include "store.h"

#include "etcd.h"
#include "etcdproto.h"
#include "log.h"
#include "prom.h"
#include "registry.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- memory: nothing is shared ---- */

static void mem_publish(store_t *s, const char *key, const char *ns) { (void)s, (void)key, (void)ns; }
static void mem_unpublish(store_t *s, const char *key) { (void)s, (void)key; }
static bool mem_ready(store_t *s) { (void)s; return true; }
static void mem_health(store_t *s, sbuf_t *b) { (void)s, (void)b; }
static void mem_metrics(store_t *s, sbuf_t *b) { (void)s, (void)b; }
static void mem_stop(store_t *s) { (void)s; }
static bool mem_busy(store_t *s) { (void)s; return false; }
static void mem_destroy(store_t *s) { (void)s; }

static const store_ops_t memory_ops = {mem_publish, mem_unpublish, mem_ready, mem_health,
                                       mem_metrics, mem_stop, mem_busy, mem_destroy};
/* Immutable: the memory store has no state at all. */
static const store_t memory_store = {&memory_ops};

store_t *store_create(registry_t *r, struct lws_context *ctx)
{
    if (r->cfg.store && !strcmp(r->cfg.store, "etcd"))
        return store_etcd_create(r, ctx);
    return (store_t *)&memory_store;
}

/* ---- etcd ----
 *
 * Writes. Each local registration is an `own_t` (key → what etcd should hold).
 * A change marks it dirty and queues it; one txn at a time carries up to
 * BATCH_OPS queued keys (a put on our lease, or a delete guarded by "its lease
 * is still ours"), so writes coalesce per key and never reorder. A failed txn
 * requeues its keys and retries with backoff.
 *
 * Lease. One per replica, kept alive every ttl/3. Not confirmed for a whole TTL
 * (etcd away), or reported gone (expired, or etcd lost its data): a new lease is
 * granted when etcd answers again, every local key is written again under it,
 * the old lease is revoked once that is done, and the view is resynced.
 *
 * View. A paginated range of the prefix at one revision (keys other replicas
 * hold become remote instances; the ones no longer there are swept), then a
 * watch from the next revision. The watch ending is resumed from the last
 * revision seen; a compacted revision, a revision that went backwards or a lost
 * lease start a full resync. Nothing here ever empties the view because etcd is
 * unreachable: the last view is served until etcd says otherwise. */

#define BATCH_OPS        64          /* etcd's --max-txn-ops default is 128 */
#define RANGE_PAGE       1000
#define WATCH_MSG_MAX    (8u << 20)
#define BACKOFF_MIN_MS   100
#define BACKOFF_MAX_MS   2000
#define ETCD_ENDPOINTS_MAX 32

typedef struct own {
    struct own *prev, *next;   /* the write queue */
    bool     queued, inflight, redo, want_put;
    uint64_t rev;              /* revision of our last put that etcd applied */
    char    *ns;
    char     key[];
} own_t;

typedef struct estore {
    store_t  base;
    registry_t *r;
    struct lws_context *ctx;
    etcd_client_t cli;
    char    *endpoints[ETCD_ENDPOINTS_MAX];
    size_t   nendpoints;
    char     replica[ETCD_REPLICA_MAX];
    char     iprefix[ETCD_PREFIX_MAX + 16]; /* "{prefix}/instances/" */
    sbuf_t   b64_prefix, b64_end;           /* the range, encoded once */

    etcd_lease_t lease;
    uint64_t old_lease;                     /* to revoke once republished */
    etcd_call_t *grant_call, *ka_call, *write_call, *sync_call, *watch_call, *revoke_call;
    loop_timer_t grant_t, ka_t, write_t, sync_t;
    int64_t  grant_backoff, write_backoff, sync_backoff;
    long     req_timeout_ms;   /* unary calls: half the TTL, 1-5 s */

    hmap_t   own;                           /* key → own_t */
    own_t   *qhead, *qtail;
    size_t   nqueued, ndeletes, max_deletes;
    own_t   *batch[BATCH_OPS];
    size_t   nbatch;

    /* the view */
    unsigned gen;
    uint64_t last_rev, range_rev, cluster_id;
    char     range_from[ETCD_KEY_MAX + 1];
    size_t   range_from_len;
    bool     syncing, watching, synced_once, up, stopping, write_wait;
    bool     need_resync;                   /* set inside the watch stream, acted on at its end */
    etcd_stream_t stream;

    uint64_t txns, ops_written, write_errors, watch_events, resyncs, grants, bad_answers,
             republished, replaced_remote;
} estore_t;

static void sync_start(estore_t *e);
static void watch_start(estore_t *e);
static void grant_start(estore_t *e);
static void write_kick(estore_t *e);
static void ka_schedule(estore_t *e, int64_t in_ms);
static void write_timer(loop_timer_t *t);
static void grant_timer(loop_timer_t *t);
static void sync_timer(loop_timer_t *t);

static int64_t backoff_next(int64_t *b)
{
    int64_t cur = *b ? *b : BACKOFF_MIN_MS;
    *b = cur * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : cur * 2;
    /* ±25 % so replicas that lost etcd together do not come back in lockstep */
    return cur * 3 / 4 + (int64_t)rng_below((uint64_t)cur / 2 + 1);
}

static void note_header(estore_t *e, const etcd_header_t *h)
{
    if (h->cluster_id && e->cluster_id && h->cluster_id != e->cluster_id && !e->need_resync) {
        LOG_WARN("etcd: cluster id changed: resyncing and publishing again", LF_UINT("was", e->cluster_id), LF_UINT("now", h->cluster_id));
        e->need_resync = true;
    }
    if (h->cluster_id)
        e->cluster_id = h->cluster_id;
}

/* ---- the write queue ---- */

static void q_remove(estore_t *e, own_t *o)
{
    if (!o->queued)
        return;
    if (o->prev)
        o->prev->next = o->next;
    else
        e->qhead = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        e->qtail = o->prev;
    o->prev = o->next = NULL;
    o->queued = false;
    e->nqueued--;
}

static void q_push(estore_t *e, own_t *o, bool front)
{
    if (o->queued)
        return;
    o->queued = true;
    e->nqueued++;
    if (front) {
        o->next = e->qhead;
        if (e->qhead)
            e->qhead->prev = o;
        else
            e->qtail = o;
        e->qhead = o;
    } else {
        o->prev = e->qtail;
        if (e->qtail)
            e->qtail->next = o;
        else
            e->qhead = o;
        e->qtail = o;
    }
}

static void own_free(estore_t *e, own_t *o)
{
    q_remove(e, o);
    if (!o->want_put)
        e->ndeletes--;
    hmap_del_if(&e->own, o->key, strlen(o->key), o);
    free(o->ns);
    free(o);
}

static void mark_dirty(estore_t *e, own_t *o)
{
    if (o->inflight)
        o->redo = true;
    else
        q_push(e, o, false);
}

/* Pending deletes are the one thing that could pile up while etcd is away (every
 * close of a random port adds one). Past the limit they are dropped, and a new
 * lease replaces the old one: republishing what is still local and revoking the
 * old lease removes everything else in one request. */
static void drop_deletes(estore_t *e)
{
    void *v;
    size_t n = 0;
    own_t **gone = malloc(e->ndeletes * sizeof(*gone) + 1);
    if (!gone)
        return;
    for (size_t it = 0; (it = hmap_next(&e->own, it, &v)) != 0;) {
        own_t *o = v;
        if (!o->want_put && !o->inflight && n < e->ndeletes)
            gone[n++] = o;
    }
    for (size_t i = 0; i < n; i++)
        own_free(e, gone[i]);
    free(gone);
}

/* resync: read the view again too (not when a resync is what found out). */
static void lease_lost(estore_t *e, const char *why, bool resync)
{
    if (e->lease.id && !e->old_lease)
        e->old_lease = e->lease.id;
    if (e->lease.id)
        LOG_WARN("etcd: lease lost: publishing again under a new one", LF_STR("reason", why));
    etcd_lease_drop(&e->lease);
    loop_timer_cancel(&e->ka_t);
    if (e->ka_call) {
        etcd_cancel(&e->cli, e->ka_call);
        e->ka_call = NULL;
    }
    grant_start(e);
    /* Our view may be as stale as our lease (a partition), or etcd lost its data:
     * read it again. */
    if (resync) {
        e->need_resync = true;
        if (!e->sync_call)
            sync_start(e);
    }
}

static void republish_one(void *arg, const char *key, const char *ns)
{
    estore_t *e = arg;
    own_t *o = hmap_gets(&e->own, key);
    (void)ns;
    if (o && o->want_put) {
        o->rev = 0;
        mark_dirty(e, o);
        e->republished++;
    }
}

static void write_done(void *arg, long status, const char *body, size_t n, const char *err)
{
    estore_t *e = arg;
    etcd_answer_t a;
    bool ok = false;
    e->write_call = NULL;
    if (status == 0) {
        LOG_WARN("etcd: write failed", LF_STR("error", err));
    } else if (etcd_parse_simple(body, n, &a)) {
        e->bad_answers++;
        LOG_WARN("etcd: bad txn answer", LF_INT("status", status), LF_STR("error", a.err));
    } else if (a.is_error || status != 200) {
        LOG_WARN("etcd: write refused", LF_INT("status", status), LF_INT("code", a.code), LF_STR("error", a.err));
        if (etcd_answer_lease_gone(&a)) {
            for (size_t i = 0; i < e->nbatch; i++) {
                e->batch[i]->inflight = false;
                e->batch[i]->redo = false;
                q_push(e, e->batch[i], true);
            }
            e->nbatch = 0;
            lease_lost(e, "lease not found on write", true);
            return;
        }
    } else {
        ok = true;
        note_header(e, &a.hdr);
    }
    e->txns++;
    if (!ok)
        e->write_errors++;
    /* Requeue failures at the front, in order (they are older than what queued
     * meanwhile); walk backwards so the first stays first. */
    for (size_t j = e->nbatch; j-- > 0;) {
        own_t *o = e->batch[j];
        o->inflight = false;
        if (ok && !o->redo) {
            e->ops_written++;
            if (o->want_put)
                o->rev = a.hdr.revision;
            else
                own_free(e, o);
            continue;
        }
        if (ok)
            e->ops_written++;
        o->redo = false;
        q_push(e, o, !ok);
    }
    e->nbatch = 0;
    if (ok) {
        e->up = true;
        e->write_backoff = 0;
        write_kick(e);
    } else {
        e->write_wait = true;
        loop_timer_schedule(e->ctx, &e->write_t, write_timer, backoff_next(&e->write_backoff) * 1000);
    }
}

static void add_b64_str(sbuf_t *b, const char *p, size_t n)
{
    sbuf_addc(b, '"');
    etcd_b64_encode(b, p, n);
    sbuf_addc(b, '"');
}

static void write_flush(estore_t *e)
{
    if (e->stopping || e->write_call || !e->lease.id || !e->qhead)
        return;
    if (e->ndeletes > e->max_deletes) {
        LOG_WARN("etcd: too many deletes pending: dropping them for a new lease", LF_UINT("pending", e->ndeletes), LF_UINT("limit", e->max_deletes));
        drop_deletes(e);
        lease_lost(e, "pending deletes over the limit", false);
        return;
    }
    sbuf_t b, v;
    sbuf_init(&b, 0, 4u << 20);
    sbuf_init(&v, 0, ETCD_VALUE_MAX);
    char lease[24];
    snprintf(lease, sizeof(lease), "%llu", (unsigned long long)e->lease.id);
    sbuf_adds(&b, "{\"success\":[");
    e->nbatch = 0;
    while (e->qhead && e->nbatch < BATCH_OPS && b.len < (1u << 20)) {
        own_t *o = e->qhead;
        q_remove(e, o);
        o->inflight = true;
        o->redo = false;
        e->batch[e->nbatch++] = o;
        if (e->nbatch > 1)
            sbuf_addc(&b, ',');
        char key[ETCD_KEY_MAX + 32];
        int kl = snprintf(key, sizeof(key), "%s%s", e->iprefix, o->key);
        if (o->want_put) {
            sbuf_reset(&v);
            etcd_value_encode(&v, e->replica, o->ns);
            sbuf_adds(&b, "{\"request_put\":{\"key\":");
            add_b64_str(&b, key, (size_t)kl);
            sbuf_adds(&b, ",\"value\":");
            add_b64_str(&b, sbuf_data(&v), v.len);
            sbuf_printf(&b, ",\"lease\":\"%s\"}}", lease);
        } else {
            sbuf_adds(&b, "{\"request_txn\":{\"compare\":[{\"key\":");
            add_b64_str(&b, key, (size_t)kl);
            sbuf_printf(&b, ",\"target\":\"LEASE\",\"result\":\"EQUAL\",\"lease\":\"%s\"}],"
                            "\"success\":[{\"request_delete_range\":{\"key\":", lease);
            add_b64_str(&b, key, (size_t)kl);
            sbuf_adds(&b, "}}]}}");
        }
    }
    sbuf_adds(&b, "]}");
    sbuf_free(&v);
    if (!b.err)
        e->write_call = etcd_post(&e->cli, "/v3/kv/txn", sbuf_data(&b), b.len, e->req_timeout_ms,
                                  1u << 20, NULL, write_done, e);
    sbuf_free(&b);
    if (!e->write_call) {
        for (size_t j = e->nbatch; j-- > 0;) {
            e->batch[j]->inflight = false;
            q_push(e, e->batch[j], true);
        }
        e->nbatch = 0;
        LOG_ERROR("etcd: cannot build a write", LF_UINT("queued", e->nqueued));
    }
}

static void write_timer(loop_timer_t *t)
{
    estore_t *e = lws_container_of(t, estore_t, write_t);
    e->write_wait = false;
    write_flush(e);
}

static void revoke_done(void *arg, long status, const char *body, size_t n, const char *err)
{
    estore_t *e = arg;
    (void)body, (void)n;
    e->revoke_call = NULL;
    if (status != 200)
        LOG_INFO("etcd: revoking a lease failed (it expires by itself)", LF_INT("status", status), LF_STR("error", err));
}

static void lease_revoke(estore_t *e, uint64_t id)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"ID\":\"%llu\"}", (unsigned long long)id);
    if (e->revoke_call)
        etcd_cancel(&e->cli, e->revoke_call);
    e->revoke_call = etcd_post(&e->cli, "/v3/lease/revoke", body, (size_t)n, 1000, 64 << 10, NULL,
                               revoke_done, e);
}

/* Called whenever the queue may have work: write now unless a txn is in flight
 * or a backoff is running (the timer then flushes). */
static void write_kick(estore_t *e)
{
    if (e->write_call || e->stopping)
        return;
    if (!e->qhead) {
        if (e->old_lease && e->lease.id && !e->nbatch) {
            /* Everything local is on the new lease now: the old one's keys are
             * only the ones that should be gone. */
            lease_revoke(e, e->old_lease);
            e->old_lease = 0;
        }
        return;
    }
    if (e->write_wait)
        return;
    write_flush(e);
}

/* ---- publish / unpublish (the registry's calls) ---- */

static void etcd_publish(store_t *s, const char *key, const char *ns)
{
    estore_t *e = (estore_t *)s;
    if (e->stopping)
        return;
    own_t *o = hmap_gets(&e->own, key);
    if (!o) {
        size_t kl = strlen(key);
        o = calloc(1, sizeof(*o) + kl + 1);
        if (!o)
            goto oom;
        memcpy(o->key, key, kl + 1);
        o->want_put = true;
        int err;
        hmap_put(&e->own, o->key, kl, o, &err);
        if (err) {
            free(o);
            goto oom;
        }
    } else if (!o->want_put) {
        o->want_put = true;
        e->ndeletes--;
    }
    char *nns = strdup(ns);
    if (!nns)
        goto oom;
    free(o->ns);
    o->ns = nns;
    o->rev = 0;
    mark_dirty(e, o);
    write_kick(e);
    return;
oom:
    LOG_ERROR("etcd: out of memory publishing an instance", LF_STR("key", key));
}

static void etcd_unpublish(store_t *s, const char *key)
{
    estore_t *e = (estore_t *)s;
    own_t *o = hmap_gets(&e->own, key);
    if (e->stopping || !o || !o->want_put)
        return;
    o->want_put = false;
    e->ndeletes++;
    mark_dirty(e, o);
    write_kick(e);
}

/* ---- lease ---- */

static void ka_done(void *arg, long status, const char *body, size_t n, const char *err)
{
    estore_t *e = arg;
    etcd_answer_t a;
    int64_t now = now_ms();
    e->ka_call = NULL;
    if (status == 200 && !etcd_parse_keepalive(body, n, &a) && !a.is_error) {
        note_header(e, &a.hdr);
        if (!etcd_lease_kept(&e->lease, a.ttl, now)) {
            lease_lost(e, "keepalive: lease not found", true);
            return;
        }
        if (!e->up)
            LOG_INFO("etcd: reachable again", LF_STR("endpoint", etcd_endpoint(&e->cli)));
        e->up = true;
        if (e->need_resync && !e->sync_call && !e->watch_call)
            sync_start(e);
        write_kick(e);
        ka_schedule(e, etcd_lease_next_keepalive(&e->lease) - now);
        return;
    }
    if (status && status != 200) {
        etcd_parse_keepalive(body, n, &a);
        if (etcd_answer_lease_gone(&a)) {
            lease_lost(e, "keepalive: lease not found", true);
            return;
        }
        etcd_next_endpoint(&e->cli, e->cli.cur); /* no leader, no quorum: try another */
    }
    if (e->up)
        LOG_WARN("etcd: keepalive failed: serving the last view", LF_INT("status", status), LF_STR("error", status ? "" : err));
    e->up = false;
    if (!etcd_lease_valid(&e->lease, now)) {
        lease_lost(e, "not confirmed for a whole TTL", true);
        return;
    }
    ka_schedule(e, e->lease.ttl_ms / 6 < 500 ? e->lease.ttl_ms / 6 : 500);
    /* A watch on a member that lost the quorum would wait silently: follow the
     * endpoint the keepalives moved to. */
    if (e->watch_call && etcd_call_endpoint(e->watch_call) != e->cli.cur) {
        etcd_cancel(&e->cli, e->watch_call);
        e->watch_call = NULL;
        e->watching = false;
        watch_start(e);
    }
}

static void ka_fire(loop_timer_t *t)
{
    estore_t *e = lws_container_of(t, estore_t, ka_t);
    char body[64];
    if (e->ka_call || !e->lease.id || e->stopping)
        return;
    int n = snprintf(body, sizeof(body), "{\"ID\":\"%llu\"}", (unsigned long long)e->lease.id);
    long to = e->lease.ttl_ms / 3 < 500 ? 500 : e->lease.ttl_ms / 3;
    e->ka_call = etcd_post(&e->cli, "/v3/lease/keepalive", body, (size_t)n, to, 64 << 10, NULL,
                           ka_done, e);
    if (!e->ka_call)
        ka_schedule(e, 500);
}

static void ka_schedule(estore_t *e, int64_t in_ms)
{
    loop_timer_schedule(e->ctx, &e->ka_t, ka_fire, (in_ms < 1 ? 1 : in_ms) * 1000);
}

static void grant_done(void *arg, long status, const char *body, size_t n, const char *err)
{
    estore_t *e = arg;
    etcd_answer_t a;
    e->grant_call = NULL;
    if (status == 200 && !etcd_parse_lease_grant(body, n, &a) && !a.is_error) {
        note_header(e, &a.hdr);
        etcd_lease_granted(&e->lease, a.lease_id, a.ttl, now_ms());
        e->grants++;
        e->grant_backoff = 0;
        if (!e->up)
            LOG_INFO("etcd: reachable again", LF_STR("endpoint", etcd_endpoint(&e->cli)));
        e->up = true;
        LOG_INFO("etcd: lease granted", LF_UINT("lease", a.lease_id), LF_INT("ttl_s", a.ttl), LF_STR("endpoint", etcd_endpoint(&e->cli)));
        /* Deletes were for keys on the old lease: revoking it removes them. */
        if (e->ndeletes)
            drop_deletes(e);
        registry_each_local(e->r, republish_one, e);
        ka_schedule(e, etcd_lease_next_keepalive(&e->lease) - now_ms());
        if (e->need_resync && !e->sync_call && !e->watch_call)
            sync_start(e);
        write_kick(e);
        return;
    }
    if (status) {
        etcd_parse_lease_grant(body, n, &a);
        LOG_WARN("etcd: lease grant refused", LF_INT("status", status), LF_STR("error", a.err));
        if (status == 200)
            e->bad_answers++;
        etcd_next_endpoint(&e->cli, e->cli.cur);
    } else if (e->up || !e->grant_backoff) {
        LOG_WARN("etcd: lease grant failed", LF_STR("error", err));
    }
    e->up = false;
    loop_timer_schedule(e->ctx, &e->grant_t, grant_timer, backoff_next(&e->grant_backoff) * 1000);
}

static void grant_start(estore_t *e)
{
    char body[64];
    if (e->grant_call || e->stopping)
        return;
    long long ttl_s = (e->r->cfg.etcd_lease_ttl_ms + 999) / 1000;
    int n = snprintf(body, sizeof(body), "{\"TTL\":\"%lld\"}", ttl_s);
    etcd_lease_init(&e->lease, e->r->cfg.etcd_lease_ttl_ms);
    e->grant_call = etcd_post(&e->cli, "/v3/lease/grant", body, (size_t)n, e->req_timeout_ms,
                              64 << 10, NULL, grant_done, e);
}

static void grant_timer(loop_timer_t *t)
{
    grant_start(lws_container_of(t, estore_t, grant_t));
}

/* ---- the view ---- */

/* A put seen in a range or the watch. */
static int apply_put(estore_t *e, const etcd_kv_t *kv)
{
    char hp[ADDR_KEY_MAX], replica[ETCD_REPLICA_MAX], ns[ADDR_NS_MAX];
    if (etcd_key_instance(kv->key, kv->key_len, e->iprefix, hp, sizeof(hp))) {
        e->bad_answers++;
        return 0;
    }
    if (etcd_value_decode(kv->value, kv->value_len, replica, sizeof(replica), ns, sizeof(ns))) {
        /* Not a registration (someone else's data under our prefix): not an instance. */
        e->bad_answers++;
        registry_remote_del(e->r, hp);
        return 0;
    }
    if (!strcmp(replica, e->replica))
        return 0; /* ours: we know it already */
    own_t *o = hmap_gets(&e->own, hp);
    if (o && o->want_put) {
        if (o->queued || o->inflight || o->rev >= kv->mod_revision)
            return 0; /* our registration is the newer one; our put wins */
        /* It registered on another replica after it registered here. */
        own_free(e, o);
        registry_drop_local(e->r, hp);
        e->replaced_remote++;
    } else if (o && !o->inflight) {
        own_free(e, o); /* a pending delete: the key is not ours any more */
    }
    if (registry_remote_put(e->r, hp, ns, e->gen))
        LOG_ERROR("etcd: out of memory adding a remote instance", LF_STR("key", hp));
    return 0;
}

static int apply_delete(estore_t *e, const etcd_kv_t *kv)
{
    char hp[ADDR_KEY_MAX];
    if (etcd_key_instance(kv->key, kv->key_len, e->iprefix, hp, sizeof(hp)))
        return 0;
    own_t *o = hmap_gets(&e->own, hp);
    if (o && o->want_put && !o->queued && !o->inflight && o->rev && o->rev < kv->mod_revision) {
        /* Our key went (our lease expired while etcd could not hear us, or an
         * operator deleted it) while the instance is still connected here. */
        o->rev = 0;
        mark_dirty(e, o);
        write_kick(e);
    }
    registry_remote_del(e->r, hp);
    return 0;
}

static int on_kv(void *arg, etcd_ev_t type, const etcd_kv_t *kv)
{
    estore_t *e = arg;
    if (kv->mod_revision > e->last_rev && !e->syncing)
        e->last_rev = kv->mod_revision;
    if (!e->syncing)
        e->watch_events++;
    return type == ETCD_EV_PUT ? apply_put(e, kv) : apply_delete(e, kv);
}

static void sync_retry(estore_t *e)
{
    loop_timer_schedule(e->ctx, &e->sync_t, sync_timer, backoff_next(&e->sync_backoff) * 1000);
}

static void range_page(estore_t *e);

static void range_done(void *arg, long status, const char *body, size_t n, const char *err)
{
    estore_t *e = arg;
    etcd_answer_t a;
    e->sync_call = NULL;
    if (status == 0) {
        LOG_WARN("etcd: resync failed", LF_STR("error", err));
        e->syncing = false;
        sync_retry(e);
        return;
    }
    if (etcd_parse_range(body, n, &a, on_kv, e)) {
        e->bad_answers++;
        LOG_WARN("etcd: bad range answer", LF_INT("status", status), LF_STR("error", a.err));
        e->syncing = false;
        sync_retry(e);
        return;
    }
    if (a.is_error || status != 200) {
        LOG_WARN("etcd: range refused", LF_INT("status", status), LF_INT("code", a.code), LF_STR("error", a.err));
        e->syncing = false;
        if (etcd_answer_compacted(&a))
            e->range_rev = 0; /* start again at the current revision */
        else
            etcd_next_endpoint(&e->cli, e->cli.cur);
        sync_retry(e);
        return;
    }
    note_header(e, &a.hdr);
    e->bad_answers += a.skipped;
    if (!e->range_rev) {
        e->range_rev = a.hdr.revision;
        if (e->last_rev && a.hdr.revision < e->last_rev) {
            LOG_WARN("etcd: revision went backwards (etcd lost its data?): publishing again", LF_UINT("was", e->last_rev), LF_UINT("now", a.hdr.revision));
            if (e->lease.id)
                lease_lost(e, "revision went backwards", false);
        }
    }
    if (a.more && a.nkvs && a.last_key_len < sizeof(e->range_from) - 1) {
        memcpy(e->range_from, a.last_key, a.last_key_len);
        e->range_from[a.last_key_len] = 0; /* the next key after last_key */
        e->range_from_len = a.last_key_len + 1;
        range_page(e);
        return;
    }
    size_t gone = registry_remote_sweep(e->r, e->gen);
    e->syncing = false;
    e->sync_backoff = 0;
    e->last_rev = e->range_rev;
    e->need_resync = false;
    e->resyncs++;
    if (!e->synced_once)
        LOG_INFO("etcd: synced", LF_UINT("revision", e->last_rev), LF_UINT("remote_instances", e->r->nremote));
    else
        LOG_INFO("etcd: resynced", LF_UINT("revision", e->last_rev), LF_UINT("remote_instances", e->r->nremote), LF_UINT("removed", gone));
    e->synced_once = true;
    watch_start(e);
}

static void range_page(estore_t *e)
{
    sbuf_t b;
    sbuf_init(&b, 0, 64 << 10);
    sbuf_adds(&b, "{\"key\":");
    if (e->range_from_len)
        add_b64_str(&b, e->range_from, e->range_from_len);
    else
        sbuf_add(&b, sbuf_data(&e->b64_prefix), e->b64_prefix.len);
    sbuf_adds(&b, ",\"range_end\":");
    sbuf_add(&b, sbuf_data(&e->b64_end), e->b64_end.len);
    sbuf_printf(&b, ",\"limit\":\"%d\"", RANGE_PAGE);
    if (e->range_rev)
        sbuf_printf(&b, ",\"revision\":\"%llu\"", (unsigned long long)e->range_rev);
    sbuf_addc(&b, '}');
    e->sync_call = etcd_post(&e->cli, "/v3/kv/range", sbuf_data(&b), b.len, e->req_timeout_ms * 2,
                             ETCD_MSG_MAX, NULL, range_done, e);
    sbuf_free(&b);
    if (!e->sync_call) {
        e->syncing = false;
        sync_retry(e);
    }
}

static void sync_start(estore_t *e)
{
    if (e->stopping || e->sync_call)
        return;
    if (e->watch_call) {
        etcd_cancel(&e->cli, e->watch_call);
        e->watch_call = NULL;
    }
    e->watching = false;
    e->syncing = true;
    e->gen++;
    e->range_rev = 0;
    e->range_from_len = 0;
    range_page(e);
}

static int on_watch_msg(void *arg, const char *p, size_t n)
{
    estore_t *e = arg;
    etcd_answer_t a;
    if (etcd_parse_watch(p, n, &a, on_kv, e)) {
        e->bad_answers++;
        LOG_WARN("etcd: bad watch message", LF_STR("error", a.err));
        return -1;
    }
    if (a.is_error) {
        LOG_WARN("etcd: watch error", LF_INT("code", a.code), LF_STR("error", a.err));
        return -1;
    }
    note_header(e, &a.hdr);
    e->bad_answers += a.skipped;
    if (a.created) {
        LOG_DEBUG("etcd: watch created", LF_UINT("revision", a.hdr.revision), LF_UINT("last", e->last_rev));
        if (a.hdr.revision && a.hdr.revision < e->last_rev) {
            LOG_WARN("etcd: revision went backwards (etcd lost its data?): resyncing", LF_UINT("was", e->last_rev), LF_UINT("now", a.hdr.revision));
            e->need_resync = true;
            return -1;
        }
        e->watching = true;
        e->sync_backoff = 0;
    }
    if (a.canceled) {
        if (a.compact_revision) {
            LOG_INFO("etcd: watch revision compacted: resyncing", LF_UINT("compact_revision", a.compact_revision));
        } else {
            LOG_WARN("etcd: watch canceled", LF_STR("reason", a.err));
        }
        e->need_resync = true;
        return -1;
    }
    if (e->need_resync)
        return -1;
    if (a.hdr.revision > e->last_rev && !a.nevents && !a.created)
        e->last_rev = a.hdr.revision; /* a progress notification */
    return 0;
}

static int on_watch_data(void *arg, const char *p, size_t n)
{
    estore_t *e = arg;
    return etcd_stream_feed(&e->stream, p, n, on_watch_msg, e);
}

static void watch_done(void *arg, long status, const char *body, size_t n, const char *err)
{
    estore_t *e = arg;
    (void)body, (void)n;
    e->watch_call = NULL;
    e->watching = false;
    if (e->stopping)
        return;
    if (e->need_resync) {
        sync_start(e);
        return;
    }
    LOG_WARN("etcd: watch ended: resuming", LF_INT("status", status), LF_STR("error", err), LF_UINT("revision", e->last_rev));
    if (status && status != 200)
        etcd_next_endpoint(&e->cli, e->cli.cur);
    sync_retry(e);
}

static void watch_start(estore_t *e)
{
    if (e->stopping || e->watch_call || e->sync_call)
        return;
    sbuf_t b;
    sbuf_init(&b, 0, 64 << 10);
    sbuf_adds(&b, "{\"create_request\":{\"key\":");
    sbuf_add(&b, sbuf_data(&e->b64_prefix), e->b64_prefix.len);
    sbuf_adds(&b, ",\"range_end\":");
    sbuf_add(&b, sbuf_data(&e->b64_end), e->b64_end.len);
    /* From last_rev itself, not the one after: events at last_rev come again (they
     * apply idempotently), but a compaction at exactly last_rev + 1 — which drops
     * the tombstones at that revision, so a watch from there would silently miss
     * those deletes — now cancels the watch (start < compact revision) and we
     * resync in full. */
    uint64_t from = e->last_rev ? e->last_rev : 1;
    sbuf_printf(&b, ",\"start_revision\":\"%llu\"}}", (unsigned long long)from);
    etcd_stream_reset(&e->stream);
    LOG_DEBUG("etcd: watching", LF_UINT("from", from), LF_STR("endpoint", etcd_endpoint(&e->cli)));
    e->watch_call = etcd_post(&e->cli, "/v3/watch", sbuf_data(&b), b.len, 0, 0, on_watch_data,
                              watch_done, e);
    sbuf_free(&b);
    if (!e->watch_call)
        sync_retry(e);
}

/* The retry timer: a full resync when one is owed, else the watch resumed. */
static void sync_timer(loop_timer_t *t)
{
    estore_t *e = lws_container_of(t, estore_t, sync_t);
    if (e->need_resync || !e->synced_once || e->syncing)
        sync_start(e);
    else
        watch_start(e);
}

/* ---- health, metrics, lifecycle ---- */

static const char *state_of(estore_t *e)
{
    if (!e->synced_once)
        return "syncing";
    if (e->up && e->watching && etcd_lease_valid(&e->lease, now_ms()))
        return "synced";
    return "degraded";
}

static bool etcd_ready(store_t *s) { return ((estore_t *)s)->synced_once; }

static void etcd_health(store_t *s, sbuf_t *b)
{
    estore_t *e = (estore_t *)s;
    sbuf_printf(b, ",\"store\":{\"kind\":\"etcd\",\"state\":\"%s\",\"ready\":%s,\"replica\":",
                state_of(e), e->synced_once ? "true" : "false");
    sbuf_add_json_str(b, e->replica, strlen(e->replica));
    sbuf_adds(b, ",\"endpoint\":");
    sbuf_add_json_str(b, etcd_endpoint(&e->cli), strlen(etcd_endpoint(&e->cli)));
    sbuf_printf(b, ",\"revision\":%llu,\"lease\":\"%llx\",\"remote_instances\":%zu,"
                   "\"pending_writes\":%zu}",
                (unsigned long long)e->last_rev, (unsigned long long)e->lease.id, e->r->nremote,
                e->nqueued + e->nbatch);
}

static void etcd_metrics(store_t *s, sbuf_t *b)
{
    estore_t *e = (estore_t *)s;
    const char *st = state_of(e);
    prom_metric(b, "micro_registry_store_up", "gauge", "1 while etcd answers this replica.", e->up ? 1 : 0);
    prom_metric(b, "micro_registry_store_synced", "gauge", "1 while the view is live (lease held, watch running).", !strcmp(st, "synced") ? 1 : 0);
    prom_metric(b, "micro_registry_store_ready", "gauge", "1 once the view was synced at least once.", e->synced_once ? 1 : 0);
    prom_metric(b, "micro_registry_store_revision", "gauge", "Last etcd revision applied to the view.", (double)e->last_rev);
    prom_metric(b, "micro_registry_store_remote_instances", "gauge", "Instances other replicas hold.", (double)e->r->nremote);
    prom_metric(b, "micro_registry_store_pending_writes", "gauge", "Registrations and removals not yet written to etcd.", (double)(e->nqueued + e->nbatch));
    prom_metric(b, "micro_registry_store_txns_total", "counter", "Write transactions sent to etcd.", (double)e->txns);
    prom_metric(b, "micro_registry_store_writes_total", "counter", "Keys written or deleted in etcd.", (double)e->ops_written);
    prom_metric(b, "micro_registry_store_write_errors_total", "counter", "Write transactions that failed (retried).", (double)e->write_errors);
    prom_metric(b, "micro_registry_store_watch_events_total", "counter", "Watch events applied.", (double)e->watch_events);
    prom_metric(b, "micro_registry_store_resyncs_total", "counter", "Full reads of the prefix.", (double)e->resyncs);
    prom_metric(b, "micro_registry_store_lease_grants_total", "counter", "Leases granted to this replica.", (double)e->grants);
    prom_metric(b, "micro_registry_store_republished_total", "counter", "Local keys written again under a new lease.", (double)e->republished);
    prom_metric(b, "micro_registry_store_bad_answers_total", "counter", "etcd answers or entries refused as malformed.", (double)e->bad_answers);
    prom_metric(b, "micro_registry_store_endpoint_switches_total", "counter", "Moves to the next etcd endpoint.", (double)e->cli.switches);
}

static void etcd_stop(store_t *s)
{
    estore_t *e = (estore_t *)s;
    if (e->stopping)
        return;
    e->stopping = true;
    loop_timer_cancel(&e->grant_t);
    loop_timer_cancel(&e->ka_t);
    loop_timer_cancel(&e->write_t);
    loop_timer_cancel(&e->sync_t);
    etcd_call_t **calls[] = {&e->grant_call, &e->ka_call, &e->sync_call, &e->watch_call,
                             &e->write_call};
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        if (*calls[i])
            etcd_cancel(&e->cli, *calls[i]);
        *calls[i] = NULL;
    }
    for (size_t i = 0; i < e->nbatch; i++)
        e->batch[i]->inflight = false;
    e->nbatch = 0;
    /* One request removes every key of ours at once. */
    if (e->lease.id)
        lease_revoke(e, e->lease.id);
    if (e->old_lease)
        LOG_INFO("etcd: an old lease is left to expire", LF_UINT("lease", e->old_lease));
}

static bool etcd_busy(store_t *s) { return ((estore_t *)s)->revoke_call != NULL; }

static void etcd_destroy(store_t *s)
{
    estore_t *e = (estore_t *)s;
    void *v;
    loop_timer_cancel(&e->grant_t);
    loop_timer_cancel(&e->ka_t);
    loop_timer_cancel(&e->write_t);
    loop_timer_cancel(&e->sync_t);
    etcd_client_free(&e->cli);
    for (size_t it = 0; (it = hmap_next(&e->own, it, &v)) != 0;) {
        own_t *o = v;
        free(o->ns);
        free(o);
    }
    hmap_free(&e->own);
    etcd_stream_free(&e->stream);
    sbuf_free(&e->b64_prefix);
    sbuf_free(&e->b64_end);
    for (size_t i = 0; i < e->nendpoints; i++)
        free(e->endpoints[i]);
    free(e);
    curl_global_cleanup();
}

static const store_ops_t etcd_ops = {etcd_publish, etcd_unpublish, etcd_ready, etcd_health,
                                     etcd_metrics, etcd_stop, etcd_busy, etcd_destroy};

store_t *store_etcd_create(registry_t *r, struct lws_context *ctx)
{
    const registry_config_t *cfg = &r->cfg;
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        LOG_ERROR("etcd: cannot initialise libcurl");
        return NULL;
    }
    estore_t *e = calloc(1, sizeof(*e));
    if (!e)
        goto fail;
    e->base.ops = &etcd_ops;
    e->r = r;
    e->ctx = ctx;
    hmap_init(&e->own);
    etcd_stream_init(&e->stream, WATCH_MSG_MAX);
    sbuf_init(&e->b64_prefix, 0, 0);
    sbuf_init(&e->b64_end, 0, 0);
    e->max_deletes = (size_t)cfg->max_connections > 1024 ? (size_t)cfg->max_connections : 1024;
    etcd_lease_init(&e->lease, cfg->etcd_lease_ttl_ms);
    /* A write forwarded to a leader that just died waits for etcd's own request
     * timeout (5 s + 2 elections); giving up sooner and trying the next member
     * gets it through once a new leader is elected. */
    e->req_timeout_ms = (long)(cfg->etcd_lease_ttl_ms / 2);
    if (e->req_timeout_ms < 1000)
        e->req_timeout_ms = 1000;
    if (e->req_timeout_ms > 5000)
        e->req_timeout_ms = 5000;

    char host[40] = "replica", id[37];
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = 0;
    uuid4(id);
    snprintf(e->replica, sizeof(e->replica), "%s-%.8s", host, id);

    char end[ETCD_PREFIX_MAX + 16], prefix[ETCD_PREFIX_MAX];
    snprintf(prefix, sizeof(prefix), "%s", cfg->etcd_prefix);
    for (size_t n = strlen(prefix); n && prefix[n - 1] == '/'; n--)
        prefix[n - 1] = 0; /* "/micro/" is "/micro" */
    int pl = etcd_instances_prefix(e->iprefix, sizeof(e->iprefix), prefix);
    int el = pl > 0 ? etcd_range_end(e->iprefix, (size_t)pl, end, sizeof(end)) : -1;
    if (el < 0) {
        LOG_ERROR("etcd: prefix too long", LF_STR("prefix", cfg->etcd_prefix));
        goto fail;
    }
    add_b64_str(&e->b64_prefix, e->iprefix, (size_t)pl);
    add_b64_str(&e->b64_end, end, (size_t)el);

    /* Each list item may itself be "a,b,c" (one flag); flatten. */
    for (size_t i = 0; i < cfg->etcd_endpoints.n; i++) {
        for (char *p = cfg->etcd_endpoints.v[i]; *p;) {
            size_t n = strcspn(p, ",");
            if (n && e->nendpoints < ETCD_ENDPOINTS_MAX) {
                char *one = strndup(p, n);
                if (!one)
                    goto fail;
                e->endpoints[e->nendpoints++] = one;
            }
            p += n + (p[n] == ',');
        }
    }
    etcd_client_cfg_t cc = {
        .endpoints = e->endpoints,
        .nendpoints = e->nendpoints,
        .dial_timeout_ms = (long)cfg->etcd_dial_timeout_ms,
        .ca_file = cfg->etcd_ca_file,
        .cert_file = cfg->etcd_cert_file,
        .key_file = cfg->etcd_key_file,
    };
    if (etcd_client_init(&e->cli, ctx, &cc)) {
        LOG_ERROR("etcd: cannot start the client (needs the libev loop and an endpoint)");
        goto fail;
    }
    LOG_INFO("etcd store", LF_STR("replica", e->replica), LF_UINT("endpoints", cc.nendpoints), LF_STR("prefix", cfg->etcd_prefix), LF_INT("lease_ttl_ms", cfg->etcd_lease_ttl_ms));
    grant_start(e);
    sync_start(e);
    return &e->base;
fail:
    if (e) {
        for (size_t i = 0; i < e->nendpoints; i++)
            free(e->endpoints[i]);
        etcd_stream_free(&e->stream);
        sbuf_free(&e->b64_prefix);
        sbuf_free(&e->b64_end);
        hmap_free(&e->own);
        free(e);
    }
    curl_global_cleanup();
    return NULL;
}
