/* etcd: the transport of the registry's etcd v3 client — HTTP POSTs of JSON to
 * etcd's gRPC gateway over libcurl's multi interface, driven by the registry's
 * libev loop (curl's sockets are ev_io watchers, its timer a loop_timer_t), so no
 * call ever blocks the loop thread and no thread is added. The store (store.c)
 * decides what to send; etcdproto.c parses what comes back.
 *
 * Endpoints are tried in turn: a call that fails to connect or gets a 5xx moves
 * the client to the next endpoint for the calls that follow. Owned by the loop
 * thread. */
#ifndef MICRO_ETCD_H
#define MICRO_ETCD_H

#include "loop.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct etcd_client_cfg {
    char **endpoints;   /* "http://host:port" or "https://...", without a trailing '/' */
    size_t nendpoints;
    long   dial_timeout_ms;
    const char *ca_file, *cert_file, *key_file; /* NULL or "" = unset */
} etcd_client_cfg_t;

typedef struct etcd_call etcd_call_t;
typedef struct sockw sockw_t;

/* The outcome of a call, delivered once (never from inside etcd_post, never
 * after etcd_cancel). status: the HTTP status, or 0 when there was no answer
 * (err says why: refused, timed out, too large, aborted by the data callback).
 * body: the whole answer of a unary call (NUL-terminated), empty for a stream. */
typedef void (*etcd_done_fn)(void *arg, long status, const char *body, size_t n, const char *err);
/* A streaming call's bytes as they arrive; non-zero aborts the call. */
typedef int (*etcd_data_fn)(void *arg, const char *p, size_t n);

typedef struct etcd_client {
    etcd_client_cfg_t cfg;
    struct lws_context *ctx;
    CURLM  *multi;
    loop_timer_t timer;      /* curl's timeout */
    size_t  cur;             /* the endpoint calls go to */
    size_t  ncalls;
    uint64_t calls, failures, switches;
    etcd_call_t *calls_head; /* every call in flight, for etcd_client_free */
    sockw_t *socks;          /* curl's sockets we watch */
} etcd_client_t;

int  etcd_client_init(etcd_client_t *c, struct lws_context *ctx, const etcd_client_cfg_t *cfg);
/* POSTs body to path ("/v3/kv/txn") on the current endpoint. timeout_ms 0 = no
 * overall limit (streams). data NULL: a unary call whose answer is buffered up to
 * max_body bytes. Returns NULL on OOM. */
etcd_call_t *etcd_post(etcd_client_t *c, const char *path, const char *body, size_t n,
                       long timeout_ms, size_t max_body, etcd_data_fn data, etcd_done_fn done,
                       void *arg);
/* Stops a call; its done callback never runs. */
void etcd_cancel(etcd_client_t *c, etcd_call_t *call);
/* Which endpoint a call went to. */
size_t etcd_call_endpoint(const etcd_call_t *call);
const char *etcd_endpoint(const etcd_client_t *c);
/* Moves to the next endpoint (when an answer shows this one cannot serve). */
void etcd_next_endpoint(etcd_client_t *c, size_t failed);
void etcd_client_free(etcd_client_t *c);

#endif
