/* registry: the micro registry (docs/PROTOCOL.md §4). Keeps namespace → instances from the
 * handshake paths of the connections it accepts, answers /-/find uniformly at
 * random, evicts instances that stop heartbeating, and serves health, the
 * namespace table and metrics over plain HTTP on the same port.
 * All state is owned by the loop thread. */
#ifndef MICRO_REGISTRY_H
#define MICRO_REGISTRY_H

#include "config.h"
#include "hmap.h"
#include "store.h"
#include "wsconn.h"

#include <stdbool.h>
#include <stdint.h>

/* The longest /-/find exclude list served; a longer one is answered 400. A caller
 * excludes the peers that just failed it, a handful; 1,024 leaves room for a
 * namespace-wide outage and keeps one find's cost bounded whatever the frame. */
#define REGISTRY_MAX_EXCLUDE 1024

typedef struct registry_config {
    long long port;
    char     *bind;
    long long heartbeat_timeout_ms;
    long long sweep_interval_ms;
    long long max_frame_bytes;
    long long max_connections;
    long long max_connections_per_address;
    long long handshake_timeout_ms;
    long long max_assembly_bytes;
    long long max_queued_bytes;
    long long frame_timeout_ms;
    long long send_stall_timeout_ms;
    char     *mesh_token;
    bool      verify_peer_address;
    char     *log_level;
    char     *log_format;
    /* the shared store (store.h) */
    char     *store;              /* "memory" | "etcd" */
    cfg_list_t etcd_endpoints;
    char     *etcd_prefix;
    long long etcd_lease_ttl_ms;
    long long etcd_dial_timeout_ms;
    char     *etcd_ca_file, *etcd_cert_file, *etcd_key_file;
} registry_config_t;

typedef struct registry {
    registry_config_t cfg;
    wsnet_t  net;
    hmap_t   by_key;   /* "host:port" → instance */
    hmap_t   by_ns;    /* namespace → nsentry */
    hmap_t   by_src;   /* source address → srcentry (connections from it) */
    uint64_t find_gen; /* stamps the instances one /-/find excludes */
    int64_t  started_ms;
    loop_timer_t sweep;
    uint64_t finds, find_misses, heartbeats, evictions, replaced;
    store_t *store;    /* NULL: memory (nothing shared) */
    size_t   nremote;  /* instances other replicas hold (in by_key/by_ns too) */
    uint64_t refused_per_address, refused_takeover, exclude_too_long;
} registry_t;

int  registry_start(registry_t *r, struct lws_context *ctx);
/* Closes every connection (the first step of a graceful stop). */
void registry_close_all(registry_t *r);
void registry_free(registry_t *r);

/* The store's side of the view (store.c calls these). A remote instance is one
 * another replica holds: it is found, listed and counted like a local one, but
 * it has no connection here, never heartbeats here and is never evicted here.
 * gen marks the resync that last saw it (registry_remote_sweep drops the rest). */
int    registry_remote_put(registry_t *r, const char *key, const char *ns, unsigned gen);
bool   registry_remote_del(registry_t *r, const char *key);
size_t registry_remote_sweep(registry_t *r, unsigned gen);
bool   registry_has_local(registry_t *r, const char *key);
/* The key registered on another replica after it registered here: close ours
 * (the newest registration wins, as with two connections to one replica). */
void   registry_drop_local(registry_t *r, const char *key);
void   registry_each_local(registry_t *r, void (*fn)(void *arg, const char *key, const char *ns),
                           void *arg);

#endif
