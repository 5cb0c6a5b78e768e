/* registry: the micro registry (PROTOCOL §4). Keeps namespace → instances from the
 * handshake paths of the connections it accepts, answers /-/find uniformly at
 * random, evicts instances that stop heartbeating, and serves health, the
 * namespace table and metrics over plain HTTP on the same port.
 * All state is owned by the loop thread. */
#ifndef MICRO_REGISTRY_H
#define MICRO_REGISTRY_H

#include "hmap.h"
#include "wsconn.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct registry_config {
    long long port;
    char     *bind;
    long long heartbeat_timeout_ms;
    long long sweep_interval_ms;
    long long max_frame_bytes;
    long long max_connections;
    char     *mesh_token;
    bool      verify_peer_address;
    char     *log_level;
    char     *log_format;
} registry_config_t;

typedef struct registry {
    registry_config_t cfg;
    wsnet_t  net;
    hmap_t   by_key;   /* "host:port" → instance */
    hmap_t   by_ns;    /* namespace → nsentry */
    int64_t  started_ms;
    loop_timer_t sweep;
    uint64_t finds, find_misses, heartbeats, evictions, replaced;
} registry_t;

int  registry_start(registry_t *r, struct lws_context *ctx);
/* Closes every connection (the first step of a graceful stop). */
void registry_close_all(registry_t *r);
void registry_free(registry_t *r);

#endif
