/* micro-registry: entry point. Reads the configuration (flags > env > YAML file >
 * defaults), starts the registry on one lws loop, and on SIGTERM/SIGINT closes
 * every peer connection and exits 0. */
#include "config.h"
#include "etcdproto.h"
#include "log.h"
#include "loop.h"
#include "registry.h"
#include "util.h"

#include <stddef.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

static const char *const store_kinds[] = {"memory", "etcd", NULL};

/* One URL, or several separated by commas (--etcd-endpoints a,b,c). */
static int check_etcd_url(const char *v, char *err, size_t errlen)
{
    char one[520];
    for (const char *p = v;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n >= sizeof(one))
            goto bad;
        memcpy(one, p, n);
        one[n] = 0;
        const char *h = !strncmp(one, "http://", 7)    ? one + 7
                        : !strncmp(one, "https://", 8) ? one + 8
                                                       : NULL;
        if (!h || !*h || strchr(h, '/'))
            goto bad;
        if (!c)
            return 0;
        p = c + 1;
    }
bad:
    snprintf(err, errlen, "want http://host:port or https://host:port, comma-separated");
    return -1;
}

static int check_etcd_prefix(const char *v, char *err, size_t errlen)
{
    size_t n = strlen(v);
    if (v[0] != '/' || n > ETCD_PREFIX_MAX - 1 || strpbrk(v, " \t\r\n")) {
        snprintf(err, errlen, "want /name (a leading '/', no spaces, at most %d bytes)",
                 ETCD_PREFIX_MAX - 1);
        return -1;
    }
    return 0;
}

#define T registry_config_t
static const cfg_opt_t options[] = {
    {.name = "port", .env = "MICRO_REGISTRY_PORT", .type = CFG_INT, .min = 1, .max = 65535,
     .def = "9000", .offset = offsetof(T, port), .help = "WebSocket and HTTP port"},
    {.name = "bind", .env = "MICRO_REGISTRY_BIND", .type = CFG_STR, .def = "::",
     .offset = offsetof(T, bind), .help = "listen address (:: = dual stack, IPv4 only when the host has no IPv6)"},
    {.name = "heartbeat-timeout-ms", .env = "MICRO_HEARTBEAT_TIMEOUT_MS", .type = CFG_INT, .min = 1,
     .max = 86400000, .def = "20000", .offset = offsetof(T, heartbeat_timeout_ms),
     .help = "close a connection this long without a heartbeat"},
    {.name = "sweep-interval-ms", .env = "MICRO_SWEEP_INTERVAL_MS", .type = CFG_INT, .min = 1,
     .max = 3600000, .def = "1000", .offset = offsetof(T, sweep_interval_ms),
     .help = "how often to look for stale connections"},
    {.name = "max-frame-bytes", .env = "MICRO_MAX_FRAME_BYTES", .type = CFG_INT, .min = 1024,
     .max = 268435456, .def = "1048576", .offset = offsetof(T, max_frame_bytes),
     .help = "largest WebSocket message; a bigger one closes the connection with 1009"},
    {.name = "max-connections", .env = "MICRO_MAX_CONNECTIONS", .type = CFG_INT, .min = 1,
     .max = 1000000, .def = "10000", .offset = offsetof(T, max_connections),
     .help = "peer connections accepted at once; more are refused"},
    {.name = "max-connections-per-address", .env = "MICRO_MAX_CONNECTIONS_PER_ADDRESS",
     .type = CFG_INT, .min = 0, .max = 1000000, .def = "512",
     .offset = offsetof(T, max_connections_per_address),
     .help = "peer connections from one source address; more are refused (0 = no limit)"},
    {.name = "handshake-timeout-ms", .env = "MICRO_HANDSHAKE_TIMEOUT_MS", .type = CFG_INT, .min = 1,
     .max = 600000, .def = "5000", .offset = offsetof(T, handshake_timeout_ms),
     .help = "close an accepted connection that is not a WebSocket by then"},
    {.name = "max-assembly-bytes", .env = "MICRO_MAX_ASSEMBLY_BYTES", .type = CFG_INT, .min = 65536,
     .max = 4294967296LL, .def = "33554432", .offset = offsetof(T, max_assembly_bytes),
     .help = "bytes of messages in assembly, all connections together; past it the connection is closed with 1013"},
    {.name = "max-queued-bytes", .env = "MICRO_MAX_QUEUED_BYTES", .type = CFG_INT, .min = 65536,
     .max = 4294967296LL, .def = "33554432", .offset = offsetof(T, max_queued_bytes),
     .help = "bytes waiting in send queues, all connections together; past it sends fail"},
    {.name = "frame-timeout-ms", .env = "MICRO_FRAME_TIMEOUT_MS", .type = CFG_INT, .min = 1,
     .max = 3600000, .def = "10000", .offset = offsetof(T, frame_timeout_ms),
     .help = "a message in assembly must be complete by then, or its connection is closed"},
    {.name = "send-stall-timeout-ms", .env = "MICRO_SEND_STALL_TIMEOUT_MS", .type = CFG_INT, .min = 1,
     .max = 3600000, .def = "10000", .offset = offsetof(T, send_stall_timeout_ms),
     .help = "a peer that does not read its queue for this long is closed"},
    {.name = "mesh-token", .env = "MICRO_MESH_TOKEN", .type = CFG_STR,
     .offset = offsetof(T, mesh_token),
     .help = "require ?token=<this> on every peer handshake"},
    {.name = "verify-peer-address", .env = "MICRO_VERIFY_PEER_ADDRESS", .type = CFG_BOOL,
     .def = "false", .offset = offsetof(T, verify_peer_address),
     .help = "refuse a handshake whose claimed host is not its source address"},
    {.name = "store", .env = "MICRO_STORE", .type = CFG_ENUM, .choices = store_kinds,
     .def = "memory", .offset = offsetof(T, store),
     .help = "memory: one replica; etcd: replicas share one view through etcd"},
    {.name = "etcd-endpoints", .env = "MICRO_ETCD_ENDPOINTS", .type = CFG_LIST,
     .offset = offsetof(T, etcd_endpoints), .check = check_etcd_url,
     .help = "etcd client URLs (http:// or https://), repeatable or comma-separated"},
    {.name = "etcd-prefix", .env = "MICRO_ETCD_PREFIX", .type = CFG_STR, .def = "/micro",
     .offset = offsetof(T, etcd_prefix), .check = check_etcd_prefix,
     .help = "key prefix; replicas with the same prefix share one view"},
    {.name = "etcd-lease-ttl-ms", .env = "MICRO_ETCD_LEASE_TTL_MS", .type = CFG_INT, .min = 1000,
     .max = 3600000, .def = "10000", .offset = offsetof(T, etcd_lease_ttl_ms),
     .help = "a dead replica's instances vanish this long after it stops (whole seconds)"},
    {.name = "etcd-dial-timeout-ms", .env = "MICRO_ETCD_DIAL_TIMEOUT_MS", .type = CFG_INT, .min = 1,
     .max = 600000, .def = "5000", .offset = offsetof(T, etcd_dial_timeout_ms),
     .help = "connect timeout per etcd endpoint (then the next one is tried)"},
    {.name = "etcd-ca-file", .env = "MICRO_ETCD_CA_FILE", .type = CFG_STR,
     .offset = offsetof(T, etcd_ca_file), .help = "CA bundle that signs etcd's certificate (https)"},
    {.name = "etcd-cert-file", .env = "MICRO_ETCD_CERT_FILE", .type = CFG_STR,
     .offset = offsetof(T, etcd_cert_file), .help = "client certificate for etcd (mutual TLS)"},
    {.name = "etcd-key-file", .env = "MICRO_ETCD_KEY_FILE", .type = CFG_STR,
     .offset = offsetof(T, etcd_key_file), .help = "the client certificate's private key"},
    CFG_LOG_OPTS(T, log_level, log_format),
    CFG_END
};
#undef T

int main(int argc, char **argv)
{
    registry_t r = {0};
    /* Big buffers (frames in assembly, queued frames, app bodies) from mmap, always:
     * glibc's threshold otherwise rises after the first big free, later big buffers
     * come from the heap, and memory a burst used stays in RSS after the budgets
     * have given it back. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    int rc = cfg_load(options, &r.cfg, argc, argv, "micro-registry", MICRO_VERSION,
                      "The micro registry: namespace -> instances over WebSocket (docs/PROTOCOL.md).",
                      "MICRO_CONFIG");
    if (rc)
        return rc == 1 ? 0 : 2;
    log_t log = {0}; /* the process's logger, named to the LOG_* macros by log_init */
    log_init(&log, r.cfg.log_level, r.cfg.log_format, "micro-registry");
    if (!strcmp(r.cfg.store, "etcd") && !r.cfg.etcd_endpoints.n) {
        fprintf(stderr, "micro-registry: --store etcd needs --etcd-endpoints\n");
        log_close(&log);
        cfg_free(options, &r.cfg);
        return 2;
    }
    log_route_lws();
    long nofile = raise_nofile_limit();

    struct lws_context *ctx = loop_create(true);
    if (!ctx) {
        LOG_ERROR("cannot create the event loop");
        return 1;
    }
    loop_install_signals(ctx);
    if (registry_start(&r, ctx)) {
        LOG_ERROR("cannot listen", LF_STR("bind", r.cfg.bind), LF_INT("port", r.cfg.port));
        loop_destroy(ctx);
        cfg_free(options, &r.cfg);
        return 1;
    }
    if (!strcmp(r.cfg.store, "etcd")) {
        r.store = store_create(&r, ctx);
        if (!r.store) {
            registry_close_all(&r);
            loop_destroy(ctx);
            registry_free(&r);
            log_close(&log);
            cfg_free(options, &r.cfg);
            return 1;
        }
    }
    LOG_INFO("micro-registry listening", LF_STR("bind", r.net.bound), LF_INT("port", r.cfg.port),
             LF_STR("version", MICRO_VERSION), LF_INT("nofile", nofile));

    while (!loop_signal()) {
        loop_run_once(ctx);
        log_flush(&log);
    }

    LOG_INFO("shutting down", LF_INT("signal", loop_signal()),
             LF_UINT("instances", hmap_len(&r.by_key)));
    /* etcd: our keys go in one lease revoke, before the closes would delete them
     * one by one. */
    store_stop(r.store);
    registry_close_all(&r);
    /* Let the close frames go out, but never wait long for a peer. */
    int64_t deadline = now_ms() + 1000;
    while ((r.net.nconns || store_busy(r.store)) && now_ms() < deadline)
        loop_run_once(ctx);
    store_destroy(r.store);
    r.store = NULL;
    loop_destroy(ctx);
    registry_free(&r);
    cfg_free(options, &r.cfg);
    log_close(&log);
    return 0;
}
