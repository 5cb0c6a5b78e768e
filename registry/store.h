/* store: where a registry replica keeps the registrations it shares. Two
 * implementations behind one small interface:
 *   memory — nothing is shared (one replica; the default). Every call is a no-op
 *            and the registry behaves exactly as it always has.
 *   etcd   — each local registration is a key under --etcd-prefix on one lease
 *            per replica; every replica watches the prefix and adds the others'
 *            instances to its own view (registry_remote_*), so /-/find stays an
 *            in-memory lookup. Heartbeats never reach etcd.
 * The registry calls store_publish/store_unpublish on connect and close; the
 * store calls back into the registry for the remote part of the view. Owned by
 * the loop thread. */
#ifndef MICRO_STORE_H
#define MICRO_STORE_H

#include "sbuf.h"

#include <stdbool.h>

struct registry;
struct lws_context;
typedef struct store store_t;

typedef struct store_ops {
    void (*publish)(store_t *s, const char *key, const char *ns);
    void (*unpublish)(store_t *s, const char *key);
    bool (*ready)(store_t *s);
    /* Appends ,"store":{...} to the health object (memory: nothing). */
    void (*health)(store_t *s, sbuf_t *b);
    void (*metrics)(store_t *s, sbuf_t *b);
    /* Shutdown: stop writing, give our keys up (etcd: revoke the lease). */
    void (*stop)(store_t *s);
    /* True while stop still has a request in flight. */
    bool (*busy)(store_t *s);
    void (*destroy)(store_t *s);
} store_ops_t;

struct store {
    const store_ops_t *ops;
};

/* The store --store names. NULL (logged) when it cannot start. */
store_t *store_create(struct registry *r, struct lws_context *ctx);
store_t *store_etcd_create(struct registry *r, struct lws_context *ctx);

static inline void store_publish(store_t *s, const char *key, const char *ns) { if (s) s->ops->publish(s, key, ns); }
static inline void store_unpublish(store_t *s, const char *key) { if (s) s->ops->unpublish(s, key); }
static inline bool store_ready(store_t *s) { return !s || s->ops->ready(s); }
static inline void store_health(store_t *s, sbuf_t *b) { if (s) s->ops->health(s, b); }
static inline void store_metrics(store_t *s, sbuf_t *b) { if (s) s->ops->metrics(s, b); }
static inline void store_stop(store_t *s) { if (s) s->ops->stop(s); }
static inline bool store_busy(store_t *s) { return s && s->ops->busy(s); }
static inline void store_destroy(store_t *s) { if (s) s->ops->destroy(s); }

#endif
