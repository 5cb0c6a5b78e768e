/* sidecar: the application role of docs/PROTOCOL.md §5 on behalf of an HTTP app, plus the
 * local HTTP API of docs/API.md. This header is the one place that shows how the
 * pieces hang together; each .c owns one concern:
 *   mesh.c       registry connection, peer connections, inbound REQUESTs
 *   discovery.c  namespace → peer cache (IDLE → PENDING → READY), shared /-/find
 *   breaker.c    per-namespace exclusion of failed peers
 *   call.c       outbound call/push: correlation id, retries, timeouts, errors
 *   appclient.c  keep-alive HTTP/1.1 client that forwards inbound calls to the app
 *   routes.c     url → app target table
 *   api.c        the local HTTP API (libmicrohttpd, driven from the loop thread)
 *   probes.c     /-/health, /-/ready, /metrics bodies for the API and mesh ports
 * Threading: everything here runs on the one loop thread (see docs/ARCHITECTURE.md). */
#ifndef MICRO_SIDECAR_H
#define MICRO_SIDECAR_H

#include "addr.h"
#include "addrlist.h"
#include "config.h"
#include "hmap.h"
#include "wsconn.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sidecar_config {
    char      *ns;
    char      *registry;
    char      *advertise_host;
    long long  mesh_port;
    char      *mesh_bind;
    long long  api_port;
    char      *api_bind;
    char      *app_url;
    cfg_list_t routes;
    long long  request_timeout_ms;
    long long  retries;
    long long  lookup_timeout_ms;
    long long  heartbeat_interval_ms;
    long long  reconnect_interval_ms;
    long long  breaker_cooldown_ms;
    char      *breaker_policy;
    long long  breaker_failures;
    long long  breaker_reset_ms;
    long long  inbound_rps, inbound_burst;
    long long  outbound_rps, outbound_burst;
    long long  namespace_concurrency;
    long long  connection_inflight;
    char      *app_health_url;
    long long  app_health_interval_ms;
    long long  app_health_timeout_ms;
    long long  app_health_threshold;
    long long  shutdown_grace_ms;
    long long  dns_timeout_ms;
    long long  dns_cache_ms;
    long long  handshake_timeout_ms;
    long long  max_frame_bytes;
    long long  max_body_bytes;
    long long  max_connections;
    long long  max_inflight;
    long long  app_max_connections;
    long long  app_timeout_ms;
    long long  app_queue_bytes;
    long long  max_assembly_bytes;
    long long  max_queued_bytes;
    long long  frame_timeout_ms;
    long long  send_stall_timeout_ms;
    long long  idle_timeout_ms;
    long long  namespace_ttl_ms;
    long long  max_namespaces;
    char      *mesh_token;
    bool       verify_peer_address;
    char      *api_token;
    char      *app_token;
    char      *log_level;
    char      *log_format;
} sidecar_config_t;

/* Limits on numbers that come from callers and peers (docs/ARCHITECTURE.md). */
#define CALL_RETRIES_MAX 10        /* retries per call: X-Micro-Retries, "retries", --retries */
#define RETRY_AFTER_MAX_S 86400.0  /* a Retry-After we pass on is at most a day */
#define ROUTE_RATE_MAX 1e9         /* a route's rps and burst */
/* Headroom of the frame and app-answer limits over --max-body-bytes: a payload of
 * exactly the limit gains a correlation id (~60 bytes, at most ~800 escaped) on
 * the way, the app's answer to it is that plus whatever the app adds, and a
 * frame wraps either in an envelope (id, url up to 6 x 1023 escaped, status).
 * App answers may be 64 KiB over the body limit; frames 128 KiB, so an answer
 * at its own limit still fits in a RESPONSE. */
#define APP_ANSWER_HEADROOM 65536
#define FRAME_HEADROOM 131072

/* Outcome codes of outbound work, beside a peer's own numeric status. */
enum {
    CALL_OK = 200,
    CALL_E_NO_INSTANCE = -10,  /* registry has nobody (left) for the namespace → 503 */
    CALL_E_UNREACHABLE = -11,  /* could not dial the peer, or the connection dropped → 502 */
    CALL_E_TIMEOUT = -12,      /* no answer in time; ABORT sent → 504 */
    CALL_E_SHUTDOWN = -13,     /* aborted by the shutdown drain → 503 */
    CALL_E_OVERLOAD = -14,     /* a local limit (in-flight, queue) was hit → 503 */
    CALL_E_PEER = -15,         /* the peer failed with a non-HTTP status → 502 */
    CALL_E_RATE_LIMITED = -16, /* over the namespace's outbound rate → 429 */
    CALL_E_CIRCUIT_OPEN = -17, /* every instance's circuit is open → 503 */
    CALL_E_RESOLVE = -18,      /* the peer's host name did not resolve (in time) → 502 */
};

typedef struct sidecar_stats {
    uint64_t calls, calls_ok, calls_failed, retries, timeouts, pushes;
    uint64_t inbound, inbound_ok, inbound_failed, inbound_aborted, inbound_no_route;
    uint64_t app_errors, app_unreachable;
    uint64_t finds, find_failures, cache_hits, degraded;
    uint64_t registry_connects, registry_disconnects, heartbeats, registry_unlisted;
    uint64_t peers_unverified, peers_kept;
    uint64_t self_calls, breaker_exclusions, breaker_resets;
    uint64_t api_requests, api_errors;
    uint64_t health_checks, health_check_failures;
    uint64_t rate_limited_in, rate_limited_out, concurrency_limited;
} sidecar_stats_t;

typedef struct routes routes_t;
typedef struct appclient appclient_t;
typedef struct api api_t;

typedef struct sidecar {
    sidecar_config_t cfg;
    struct lws_context *ctx;
    wsnet_t   net;             /* mesh port + every peer connection + the registry's */
    addr_t    self;            /* advertise host, mesh port */
    char      self_key[ADDR_KEY_MAX];
    char      handshake[1024]; /* "/{host}/{port}/{ns}[?token=..]" */
    addr_list_t registry_addrs;/* --registry, dialled round-robin (mesh.c) */
    size_t    registry_next;   /* index of the entry the next dial uses */
    size_t    registry_sub;    /* which of the entry's addresses (registry_got) */
    resolve_addrs_t registry_got; /* the current entry's addresses (n = 0: not known) */
    resolve_waiter_t registry_rw; /* the entry's name being looked up */
    bool      registry_resolving;
    size_t    registry_failed; /* entries in a row that did not register, this round */
    char      registry_key[ADDR_KEY_MAX]; /* the address of the current/last dial */
    wsconn_t *registry;        /* the current registry connection, open or opening */
    bool      registry_up;     /* handshake done on it */
    bool      ever_registered;
    bool      draining;
    bool      done;
    int64_t   started_ms;
    int64_t   drain_deadline_ms;
    loop_timer_t heartbeat_timer, reconnect_timer, drain_timer, health_timer;
    /* After each registration: are we really listed? (mesh.c, "the listed check") */
    loop_timer_t listed_timer;
    uint64_t  listed_gen;      /* bumped per registration and per check round */
    int       listed_finds;    /* finds in the current round */
    int       listed_misses;   /* rounds in a row that did not find us */
    bool      registry_unlisted; /* connected, but the registry does not list us */
    sbuf_t    listed_exclude;  /* keys seen in this round, a JSON array's items */
    loop_timer_t kick; /* armed while end-of-pass work waits (sidecar_kick) */
    loop_timer_t ns_sweep_timer; /* expiry of unused per-namespace state (call.c) */
    bool        kick_armed;
    bool      app_healthy;     /* true unless health checks say otherwise */
    bool      app_seen_healthy;/* a health check has passed since start */
    int       health_failures; /* in a row */
    struct app_req *health_req;
    hmap_t    peers;           /* "host:port" → wsconn (one per pair, either direction) */
    hmap_t    cache;           /* namespace → disc_entry */
    size_t    disc_cursor;     /* where disc_evict_one looks next */
    hmap_t    breakers;        /* namespace → breaker */
    hmap_t    nsstate;         /* namespace → outbound limits (call.c) */
    size_t    calls_inflight;
    size_t    inbound_inflight;
    routes_t    *routes;
    appclient_t *app;
    api_t       *api;
    resolver_t  *resolver;     /* host names → addresses off the loop (resolve.h) */
    sidecar_stats_t stats;
} sidecar_t;

/* mesh.c */
int  mesh_start(sidecar_t *s);
void mesh_begin_drain(sidecar_t *s);  /* closes the registry connection for good */
void mesh_abort_inbound(sidecar_t *s);/* answers what is left with 503 */
size_t mesh_queued_bytes(sidecar_t *s);
/* s->app_healthy changed: leave or rejoin the registry */
void mesh_app_health_changed(sidecar_t *s);
/* Connected to the registry and not known to be missing from its table. */
bool mesh_registry_listed(const sidecar_t *s);

/* apphealth.c */
void apphealth_start(sidecar_t *s);
void apphealth_stop(sidecar_t *s);

/* discovery.c — resolve a namespace to a ready peer connection (or to ourselves). */
typedef void (*disc_cb_t)(void *arg, int err, wsconn_t *conn, bool self);
typedef struct disc_waiter {
    struct disc_waiter *next;
    disc_cb_t cb;
    void     *arg;
} disc_waiter_t;
/* Calls cb exactly once (possibly before returning) unless it fails to start. `exclude`
 * is a NULL-terminated list of keys, or NULL. The waiter is caller memory. */
void disc_get(sidecar_t *s, const char *ns, const char *const *exclude, disc_waiter_t *w,
              disc_cb_t cb, void *arg);
void disc_cancel(sidecar_t *s, const char *ns, disc_waiter_t *w);
void disc_conn_open(sidecar_t *s, wsconn_t *c);
void disc_conn_closed(sidecar_t *s, wsconn_t *c);
size_t disc_namespaces(sidecar_t *s, const char **out, size_t max);
/* Drops entries nobody asked for since unused_since_ms (none in flight); returns how many. */
size_t disc_sweep(sidecar_t *s, int64_t unused_since_ms);
bool disc_known(sidecar_t *s, const char *ns);
/* Drops the least recently used idle entry (approximately); false when none is idle. */
bool disc_evict_one(sidecar_t *s, char *ns_out, size_t ns_len);
void disc_free(sidecar_t *s);

/* breaker.c — which peers to avoid: the reference policy (docs/PROTOCOL.md §5.3: a failed
 * peer is left out for the cooldown) or the three-state "consecutive" policy. */
void breaker_failure(sidecar_t *s, const char *ns, const char *key);
void breaker_success(sidecar_t *s, const char *ns, const char *key);
/* Fills out with the keys still excluded (NULL-terminated); returns the count. */
size_t breaker_excluded(sidecar_t *s, const char *ns, const char **out, size_t max);
void breaker_reset(sidecar_t *s, const char *ns);
/* consecutive policy: false while the peer's circuit is open (or its trial is out) */
bool breaker_allows(sidecar_t *s, const char *ns, const char *key);
/* a call is being sent to key: in HALF_OPEN this is the one trial */
void breaker_attempt(sidecar_t *s, const char *ns, const char *key);
void breaker_counts(sidecar_t *s, size_t *open, size_t *half_open);
void breaker_free(sidecar_t *s);
/* Forgets expired exclusions (and emptied entries) of every namespace. */
void breaker_sweep(sidecar_t *s);

/* call.c — one outbound call or push. */
typedef struct call_result {
    int         status;      /* CALL_OK, a peer status, or CALL_E_* */
    const char *message;     /* error text, or NULL */
    const char *result;      /* raw JSON of the result, or NULL when the peer sent none */
    size_t      result_len;
    const char *cid;         /* the correlation id used */
    double      retry_after; /* seconds, for CALL_E_RATE_LIMITED */
} call_result_t;
typedef void (*call_done_t)(void *arg, const call_result_t *r);
typedef struct call call_t;
typedef struct call_opts {
    const char *ns;
    const char *url;
    const char *payload;     /* validated JSON text, or NULL for none */
    size_t      payload_len;
    jtype_t     payload_type;
    const jindex_t *ix;      /* the payload's members, if indexed (NULL: none) */
    int         ix_slot;     /* where: JIX_ROOT, a slot, or JIX_NONE */
    const char *cid;         /* X-Correlation-Id, used when the payload has none */
    int64_t     timeout_ms;
    int         retries;
    bool        push;
} call_opts_t;
/* Starts a call; `done` runs exactly once, always from the loop and never before
 * call_start returns. Returns NULL (and done never runs) only on a bad argument. */
call_t *call_start(sidecar_t *s, const call_opts_t *o, call_done_t done, void *arg);
/* The API side went away: the call finishes quietly (ABORT sent if in flight). */
void call_detach(call_t *c);
/* Shutdown: fail every outstanding call with CALL_E_SHUTDOWN (ABORTs sent). */
void call_abort_all(sidecar_t *s);
int  call_http_status(int status);   /* CALL_* → HTTP status for the local API */
void call_free_state(sidecar_t *s);
/* Starts the periodic expiry of unused per-namespace state (--namespace-ttl-ms). */
void call_sweep_start(sidecar_t *s);
/* Delivers the outcomes of calls finished during the last loop pass; false when
 * there were none. Run by the main loop after every pass. */
bool call_deliver_ripe(void);
/* There is end-of-pass work (a finished call, an MHD run): arms a zero-delay loop
 * timer so the loop's next wait cannot sleep while the work waits (work left over
 * after after_pass's rounds; on lws's poll() loop, work made by a timer that lws
 * ran just before its poll()). Cheap: cancelled when the work is done. */
void sidecar_kick(sidecar_t *s);

/* routes.c */
routes_t *routes_new(const char *app_url);
void routes_free(routes_t *r);
/* 201 created, 200 same exists, 409 exists with another target, 400 bad input */
int  routes_add(routes_t *r, const char *url, const char *target);
/* Same, with this route's inbound limit (requests/s, burst); -1 = the default. */
int  routes_add_limited(routes_t *r, const char *url, const char *target, double rps, double burst);
void routes_set_default_limit(routes_t *r, double rps, double burst);
/* routes_match plus the route's rate limit: NULL with *retry_after > 0 when the
 * route is over its limit, NULL with *retry_after == 0 when there is no route. */
const char *routes_admit(routes_t *r, const char *url, char *buf, size_t buflen, double *retry_after);
int  routes_del(routes_t *r, const char *url);       /* 204 or 404 */
/* The target for a url (exact match, else "*" → app_url + url); NULL = no route.
 * buf receives the composed target for wildcard routes. */
const char *routes_match(routes_t *r, const char *url, char *buf, size_t buflen);
void routes_json(routes_t *r, sbuf_t *out);
void routes_json_one(routes_t *r, const char *url, sbuf_t *out);
size_t routes_count(routes_t *r);

/* appclient.c — forwards to the app. */
typedef struct app_req app_req_t;
typedef struct app_result {
    int         status;       /* HTTP status, or 0 when the app could not be reached */
    const char *ctype;
    const char *body;
    size_t      body_len;
    const char *error;        /* transport error text when status is 0 */
} app_result_t;
typedef void (*app_done_t)(void *arg, const app_result_t *r);
typedef struct app_headers {
    const char *cid;
    const char *caller;
    const char *token;
} app_headers_t;
appclient_t *appclient_new(sidecar_t *s);
/* The lws protocol callback of the raw app connections ("micro-app"); its protocol
 * user is the appclient. */
int appclient_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len);
void appclient_free(appclient_t *a);
/* POSTs body to target ("http://host:port/path"). done runs exactly once, never
 * before this returns; returns NULL only on a bad target (done does not run). */
app_req_t *appclient_post(appclient_t *a, const char *target, const char *body, size_t len,
                          const app_headers_t *h, app_done_t done, void *arg);
/* Any method, with its own timeout (0 = --app-timeout-ms). */
app_req_t *appclient_request(appclient_t *a, const char *method, const char *target,
                             const char *body, size_t len, const app_headers_t *h,
                             int64_t timeout_ms, app_done_t done, void *arg);
/* Cancels (closes the app connection so the app sees the client go); done does not run. */
void appclient_cancel(app_req_t *r);
size_t appclient_connections(appclient_t *a);
size_t appclient_bytes(appclient_t *a); /* request bytes held, for --app-queue-bytes */

/* Turns an app answer into a protocol outcome: 200 + result, or status + message. */
typedef struct app_outcome {
    int         status;
    const char *result;
    size_t      result_len;
    char       *owned;      /* allocation behind result, freed by app_outcome_free */
    char        message[512];
} app_outcome_t;
void app_outcome_from(const app_result_t *r, app_outcome_t *o);
void app_outcome_free(app_outcome_t *o);

/* api.c */
api_t *api_start(sidecar_t *s);
/* The lws callback of the adopted MHD epoll descriptor ("micro-api"). */
int api_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);
void api_stop(api_t *a);
size_t api_inflight(api_t *a);
/* Runs libmicrohttpd if anything asked for it during the pass (its descriptor
 * was ready, a call resumed, its timer fired); false when nothing did. */
bool api_after_pass(api_t *a);

/* probes.c */
void probe_health(sidecar_t *s, sbuf_t *b);
int  probe_ready(sidecar_t *s, sbuf_t *b);   /* returns 200 or 503 */
void probe_metrics(sidecar_t *s, sbuf_t *b);
bool sidecar_ready(sidecar_t *s, const char **reason);

#endif
