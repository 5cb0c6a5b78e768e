/* micro-sidecar: entry point. Reads the configuration, works out the address
 * peers will dial (flag, MICRO_ADVERTISE_HOST, POD_IP, else the first
 * non-loopback IPv4), starts the mesh port, the registry connection and the
 * local API on one loop, and runs the SIGTERM drain of docs/API.md ("Shutdown"). */
#include "sidecar.h"

#include "log.h"
#include "loop.h"
#include "url.h"
#include "util.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

static int check_ns(const char *v, char *err, size_t errlen)
{
    /* Peers see the namespace in the handshake path: ' ' would break the request
     * line, '#' and '?' end the path, and lws-based peers decode '%xx' while the
     * reference does not, so none of them can mean the same to every peer. */
    if (!addr_ns_valid(v, strlen(v)) || v[0] == '/' || v[strlen(v) - 1] == '/' || strpbrk(v, " ?#%")) {
        snprintf(err, errlen, "must be a non-empty UTF-8 name without control characters, "
                              "leading/trailing '/', ' ', '?', '#' or '%%'");
        return -1;
    }
    return 0;
}

static int check_addr(const char *v, char *err, size_t errlen)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, v, &a4) == 1 || inet_pton(AF_INET6, v, &a6) == 1)
        return 0;
    snprintf(err, errlen, "must be an IPv4 or IPv6 address");
    return -1;
}

static int check_host(const char *v, char *err, size_t errlen)
{
    char host[ADDR_HOST_MAX];
    /* "[::1]" is accepted as "::1": brackets around an IPv6 literal only; what
     * is announced must be something the acceptor's check takes (addr.h) */
    int n = addr_host_unbracket(v, strlen(v), host, sizeof(host));
    if (n < 0 || !addr_host_valid(host, (size_t)n)) {
        snprintf(err, errlen, "must be an IP address or a DNS name (an IPv6 address with or without [])");
        return -1;
    }
    return 0;
}

static int check_route(const char *v, char *err, size_t errlen)
{
    if (!strcmp(v, "*"))
        return 0;
    int rc = url_check(v, strlen(v));
    if (rc || strchr(v, '?')) {
        snprintf(err, errlen, "must be * or a path starting with / (%s)", rc ? url_strerror(rc) : "no query");
        return -1;
    }
    return 0;
}

static const char *const breaker_policies[] = {"reference", "consecutive", NULL};

#define T sidecar_config_t
#define INT(n, e, lo, hi, d, f, h) \
    {.name = n, .env = e, .type = CFG_INT, .min = lo, .max = hi, .def = d, .offset = offsetof(T, f), .help = h}
static const cfg_opt_t options[] = {
    {.name = "namespace", .env = "MICRO_NAMESPACE", .type = CFG_STR, .required = 1, .check = check_ns,
     .offset = offsetof(T, ns), .help = "the app's service name"},
    {.name = "registry", .env = "MICRO_REGISTRY", .type = CFG_STR, .def = "127.0.0.1:9000",
     .check = cfg_check_hostport_list, .offset = offsetof(T, registry),
     .help = "registry host:port, or several comma-separated: dialled round-robin, the next one when one fails (a DNS name stands for each of its addresses)"},
    {.name = "advertise-host", .env = "MICRO_ADVERTISE_HOST,POD_IP", .type = CFG_STR, .check = check_host,
     .offset = offsetof(T, advertise_host), .help = "address peers dial (default: first non-loopback IPv4)"},
    INT("mesh-port", "MICRO_MESH_PORT", 1, 65535, "9100", mesh_port, "WebSocket port for peers; also serves the probes"),
    {.name = "mesh-bind", .env = "MICRO_MESH_BIND", .type = CFG_STR, .def = "::", .check = check_addr,
     .offset = offsetof(T, mesh_bind), .help = "mesh listen address (:: = dual stack, IPv4 only when the host has no IPv6)"},
    INT("api-port", "MICRO_API_PORT", 1, 65535, "3500", api_port, "local HTTP API port"),
    {.name = "api-bind", .env = "MICRO_API_BIND", .type = CFG_STR, .def = "127.0.0.1", .check = check_addr,
     .offset = offsetof(T, api_bind), .help = "local HTTP API address (loopback only by default)"},
    {.name = "app-url", .env = "MICRO_APP_URL", .type = CFG_STR, .def = "http://127.0.0.1:8080",
     .check = cfg_check_url, .offset = offsetof(T, app_url), .help = "where inbound calls are forwarded: {app-url}{url}"},
    {.name = "route", .env = "MICRO_ROUTES", .type = CFG_LIST, .check = check_route, .yaml = "routes",
     .offset = offsetof(T, routes), .help = "a route served from start-up (repeatable; * = every url)"},
    INT("request-timeout-ms", "MICRO_REQUEST_TIMEOUT_MS", 1, 86400000, "30000", request_timeout_ms, "default call timeout"),
    INT("retries", "MICRO_RETRIES", 0, CALL_RETRIES_MAX, "1", retries, "default call retries (at most 10)"),
    INT("registry-lookup-timeout-ms", "MICRO_REGISTRY_LOOKUP_TIMEOUT_MS", 1, 3600000, "10000", lookup_timeout_ms, "/-/find timeout"),
    INT("heartbeat-interval-ms", "MICRO_HEARTBEAT_INTERVAL_MS", 1, 3600000, "10000", heartbeat_interval_ms, "heartbeat push to the registry"),
    INT("reconnect-interval-ms", "MICRO_RECONNECT_INTERVAL_MS", 1, 3600000, "3000", reconnect_interval_ms, "registry reconnect period"),
    INT("breaker-cooldown-ms", "MICRO_BREAKER_COOLDOWN_MS", 0, 86400000, "30000", breaker_cooldown_ms, "how long a failed peer stays excluded"),
    {.name = "breaker-policy", .env = "MICRO_BREAKER_POLICY", .type = CFG_ENUM, .choices = breaker_policies,
     .def = "reference", .offset = offsetof(T, breaker_policy),
     .help = "reference: any failure excludes the peer for the cooldown; consecutive: open after N failures in a row"},
    INT("breaker-failures", "MICRO_BREAKER_FAILURES", 1, 1000, "5", breaker_failures, "consecutive policy: failures in a row that open a circuit"),
    INT("breaker-reset-ms", "MICRO_BREAKER_RESET_MS", 1, 86400000, "60000", breaker_reset_ms, "consecutive policy: open time before one trial call (half-open)"),
    INT("inbound-rps", "MICRO_INBOUND_RPS", 0, 10000000, "0", inbound_rps, "per-route inbound rate limit, requests/s (0 = none)"),
    INT("inbound-burst", "MICRO_INBOUND_BURST", 0, 10000000, "0", inbound_burst, "per-route inbound burst (0 = max(rps, 1))"),
    INT("outbound-rps", "MICRO_OUTBOUND_RPS", 0, 10000000, "0", outbound_rps, "per-namespace outbound rate limit, calls/s (0 = none)"),
    INT("outbound-burst", "MICRO_OUTBOUND_BURST", 0, 10000000, "0", outbound_burst, "per-namespace outbound burst (0 = max(rps, 1))"),
    INT("namespace-concurrency", "MICRO_NAMESPACE_CONCURRENCY", 0, 10000000, "0", namespace_concurrency, "outbound calls in flight per namespace before 503 (0 = no limit)"),
    INT("connection-inflight", "MICRO_CONNECTION_INFLIGHT", 0, 10000000, "0", connection_inflight, "requests in flight per peer connection, each way, before 503 (0 = no limit)"),
    {.name = "app-health-url", .env = "MICRO_APP_HEALTH_URL", .type = CFG_STR, .check = cfg_check_url,
     .offset = offsetof(T, app_health_url), .help = "GET this app URL to check its health (off when unset)"},
    INT("app-health-interval-ms", "MICRO_APP_HEALTH_INTERVAL_MS", 10, 3600000, "10000", app_health_interval_ms, "app health check period"),
    INT("app-health-timeout-ms", "MICRO_APP_HEALTH_TIMEOUT_MS", 1, 3600000, "5000", app_health_timeout_ms, "app health check timeout"),
    INT("app-health-threshold", "MICRO_APP_HEALTH_THRESHOLD", 1, 1000, "3", app_health_threshold, "failed checks in a row before the app counts as unhealthy"),
    INT("shutdown-grace-ms", "MICRO_SHUTDOWN_GRACE_MS", 0, 3600000, "5000", shutdown_grace_ms, "drain time on SIGTERM"),
    INT("dns-timeout-ms", "MICRO_DNS_TIMEOUT_MS", 1, 600000, "2000", dns_timeout_ms, "host name lookup deadline (registry, peers, app); the dial fails after it"),
    INT("dns-cache-ms", "MICRO_DNS_CACHE_MS", 0, 30000, "10000", dns_cache_ms, "how long a looked-up address is reused (failures: at most 2 s; 0 = no cache)"),
    INT("handshake-timeout-ms", "MICRO_HANDSHAKE_TIMEOUT_MS", 1, 600000, "5000", handshake_timeout_ms, "peer and registry connect timeout; an accepted mesh connection not a WebSocket by then is closed"),
    INT("max-body-bytes", "MICRO_MAX_BODY_BYTES", 1024, 268435456, "1048576", max_body_bytes, "largest payload (a bigger request gets 413); app answers may be 64 KiB more"),
    INT("max-connections", "MICRO_MAX_CONNECTIONS", 1, 1000000, "10000", max_connections, "peer connections (and API connections) accepted at once"),
    INT("max-inflight", "MICRO_MAX_INFLIGHT", 0, 10000000, "0", max_inflight, "calls in flight per direction before 503 (0 = no limit)"),
    INT("app-max-connections", "MICRO_APP_MAX_CONNECTIONS", 1, 100000, "1024", app_max_connections, "keep-alive connections to the app"),
    INT("app-timeout-ms", "MICRO_APP_TIMEOUT_MS", 1, 86400000, "60000", app_timeout_ms, "longest wait for the app's answer"),
    INT("app-queue-bytes", "MICRO_APP_QUEUE_BYTES", 65536, 4294967296LL, "16777216", app_queue_bytes, "bytes of requests at or waiting for the app, all together; more get 503"),
    INT("max-assembly-bytes", "MICRO_MAX_ASSEMBLY_BYTES", 65536, 4294967296LL, "16777216", max_assembly_bytes, "bytes of peer messages in assembly, all connections together; past it the connection is closed with 1013"),
    INT("max-queued-bytes", "MICRO_MAX_QUEUED_BYTES", 65536, 4294967296LL, "16777216", max_queued_bytes, "bytes waiting in peer send queues, all connections together; past it sends fail"),
    INT("frame-timeout-ms", "MICRO_FRAME_TIMEOUT_MS", 1, 3600000, "10000", frame_timeout_ms, "a peer message in assembly must be complete by then, or its connection is closed"),
    INT("send-stall-timeout-ms", "MICRO_SEND_STALL_TIMEOUT_MS", 1, 3600000, "10000", send_stall_timeout_ms, "a peer that does not read its queue for this long is closed"),
    INT("idle-timeout-ms", "MICRO_IDLE_TIMEOUT_MS", 0, 86400000, "300000", idle_timeout_ms, "a peer connection with no frame either way for this long is closed (0 = never)"),
    INT("namespace-ttl-ms", "MICRO_NAMESPACE_TTL_MS", 1000, 86400000, "300000", namespace_ttl_ms, "per-namespace state (discovery cache, limits, breaker) unused this long is dropped"),
    INT("max-namespaces", "MICRO_MAX_NAMESPACES", 1, 1000000, "10000", max_namespaces, "namespaces with state kept at once; at the bound the least recently used idle one is dropped (503 when none is idle)"),
    {.name = "mesh-token", .env = "MICRO_MESH_TOKEN", .type = CFG_STR, .offset = offsetof(T, mesh_token),
     .help = "shared token: sent on outbound handshakes (?token=), required on inbound ones"},
    {.name = "verify-peer-address", .env = "MICRO_VERIFY_PEER_ADDRESS", .type = CFG_BOOL, .def = "false",
     .offset = offsetof(T, verify_peer_address),
     .help = "refuse a peer handshake whose claimed host is not its source address"},
    {.name = "api-token", .env = "MICRO_API_TOKEN", .type = CFG_STR, .offset = offsetof(T, api_token),
     .help = "require X-Micro-Token on the local API (but /-/health, /-/ready)"},
    {.name = "app-token", .env = "MICRO_APP_TOKEN", .type = CFG_STR, .offset = offsetof(T, app_token),
     .help = "sent to the app as X-Micro-Token on forwarded calls"},
    CFG_LOG_OPTS(T, log_level, log_format),
    CFG_END
};
#undef INT
#undef T

/* The first up, non-loopback IPv4 address, as the reference picks it. */
static int first_ipv4(char *out, size_t len)
{
    struct ifaddrs *ifs, *i;
    int rc = -1;
    if (getifaddrs(&ifs))
        return -1;
    for (i = ifs; i && rc; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_UP) &&
            !(i->ifa_flags & IFF_LOOPBACK) &&
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, (socklen_t)len))
            rc = 0;
    freeifaddrs(ifs);
    return rc;
}

static void drain_step(loop_timer_t *t);

static void kicked(loop_timer_t *t)
{
    lws_container_of(t, sidecar_t, kick)->kick_armed = false; /* the wait is over: that was all */
}

void sidecar_kick(sidecar_t *s)
{
    if (!s->kick_armed) {
        s->kick_armed = true;
        loop_timer_schedule(s->ctx, &s->kick, kicked, 1);
    }
}

/* Work that waits for the end of a loop pass: outcomes of finished calls, then
 * one libmicrohttpd run for everything they resumed. Each may make more of the
 * other (an answer sent lets MHD read the next request, which may fail at once);
 * after a few rounds the rest waits for the next pass, which the kick keeps from
 * sleeping. */
static void after_pass(sidecar_t *s)
{
    for (int round = 0; round < 8; round++) {
        bool did = call_deliver_ripe();
        did = api_after_pass(s->api) || did;
        if (!did) {
            if (s->kick_armed) {
                loop_timer_cancel(&s->kick);
                s->kick_armed = false;
            }
            return;
        }
    }
    sidecar_kick(s);
}

static bool drained(sidecar_t *s)
{
    return !s->calls_inflight && !s->inbound_inflight && !api_inflight(s->api);
}

/* SIGTERM: 1. not ready; 2. leave the registry; 3. let in-flight work finish
 * for up to the grace; 4. abort the rest and exit. */
static void begin_drain(sidecar_t *s)
{
    s->draining = true;
    s->drain_deadline_ms = now_ms() + s->cfg.shutdown_grace_ms;
    LOG_INFO("draining: not ready, leaving the registry",
             LF_INT("grace_ms", s->cfg.shutdown_grace_ms), LF_UINT("calls", s->calls_inflight),
             LF_UINT("inbound", s->inbound_inflight));
    mesh_begin_drain(s);
    loop_timer_schedule(s->ctx, &s->drain_timer, drain_step, 1);
}

static void drain_step(loop_timer_t *t)
{
    sidecar_t *s = lws_container_of(t, sidecar_t, drain_timer);
    int64_t now = now_ms();
    if (drained(s) || now >= s->drain_deadline_ms) {
        if (!drained(s)) {
            LOG_WARN("grace over, aborting what is left", LF_UINT("calls", s->calls_inflight),
                     LF_UINT("inbound", s->inbound_inflight));
            call_abort_all(s);
            mesh_abort_inbound(s);
        }
        /* one more short pass lets answers and ABORTs reach the wire */
        if (!s->done) {
            s->done = true;
            s->drain_deadline_ms = now + 300;
        }
        if ((drained(s) && !mesh_queued_bytes(s)) || now >= s->drain_deadline_ms + 300) {
            s->done = true;
            lws_cancel_service(s->ctx);
            return;
        }
    }
    loop_timer_schedule(s->ctx, &s->drain_timer, drain_step, 10 * LWS_US_PER_MS);
}

int main(int argc, char **argv)
{
    static sidecar_t s;
    /* Big buffers (frames in assembly, queued frames, app bodies) from mmap, always:
     * glibc's threshold otherwise rises after the first big free, later big buffers
     * come from the heap, and memory a burst used stays in RSS after the budgets
     * have given it back. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    int rc = cfg_load(options, &s.cfg, argc, argv, "micro-sidecar", MICRO_VERSION,
                      "The micro sidecar: registers an HTTP app with the micro registry and calls other namespaces for it.",
                      "MICRO_CONFIG");
    if (rc)
        return rc == 1 ? 0 : 2;
    s.started_ms = now_ms();
    log_t log = {0}; /* the process's logger, named to the LOG_* macros by log_init */
    log_init(&log, s.cfg.log_level, s.cfg.log_format, "micro-sidecar");
    log_route_lws();

    char host[ADDR_HOST_MAX];
    if (s.cfg.advertise_host) {
        /* announced unbracketed, like a reference Application (addr.h) */
        addr_host_unbracket(s.cfg.advertise_host, strlen(s.cfg.advertise_host), host, sizeof(host));
    } else if (first_ipv4(host, sizeof(host))) {
        fprintf(stderr, "micro-sidecar: --advertise-host: no non-loopback IPv4 address found; set --advertise-host, MICRO_ADVERTISE_HOST or POD_IP\n");
        cfg_free(options, &s.cfg);
        return 2;
    }
    snprintf(s.self.host, sizeof(s.self.host), "%s", host);
    s.self.port = (unsigned)s.cfg.mesh_port;
    addr_format_key(s.self.host, s.self.port, s.self_key, sizeof(s.self_key));
    if (addr_list_parse(s.cfg.registry, strlen(s.cfg.registry), &s.registry_addrs, NULL)) {
        fprintf(stderr, "micro-sidecar: --registry: must be host:port[,host:port...] (got \"%s\")\n", s.cfg.registry);
        cfg_free(options, &s.cfg);
        return 2;
    }
    /* the handshake path is our identity; the token rides in the query string,
     * which reference peers ignore */
    char query[800] = "";
    if (s.cfg.mesh_token && *s.cfg.mesh_token && wsconn_token_query(s.cfg.mesh_token, query, sizeof(query)) < 0) {
        fprintf(stderr, "micro-sidecar: --mesh-token: too long\n");
        cfg_free(options, &s.cfg);
        return 2;
    }
    if (addr_build_handshake(s.self.host, s.self.port, s.cfg.ns, query[0] ? query : NULL, s.handshake,
                             sizeof(s.handshake)) < 0) {
        fprintf(stderr, "micro-sidecar: --namespace: too long\n");
        cfg_free(options, &s.cfg);
        return 2;
    }
    /* a payload plus the frame around it must fit in one message */
    s.cfg.max_frame_bytes = s.cfg.max_body_bytes + FRAME_HEADROOM;
    raise_nofile_limit();
    hmap_init(&s.peers);
    hmap_init(&s.cache);
    hmap_init(&s.breakers);
    hmap_init(&s.nsstate);
    s.app_healthy = true;

    s.routes = routes_new(s.cfg.app_url);
    routes_set_default_limit(s.routes, (double)s.cfg.inbound_rps, (double)s.cfg.inbound_burst);
    for (size_t i = 0; i < s.cfg.routes.n; i++)
        routes_add(s.routes, s.cfg.routes.v[i], NULL);

    s.ctx = loop_create(true);
    if (!s.ctx) {
        LOG_ERROR("cannot create the event loop");
        return 1;
    }
    loop_install_signals(s.ctx);
    /* Host names (the registry's, peers' from /-/find) are looked up on
     * resolver threads, never on the loop (resolve.h). */
    resolver_opts_t ro;
    resolver_opts_default(&ro);
    ro.timeout_ms = s.cfg.dns_timeout_ms;
    ro.cache_ms = s.cfg.dns_cache_ms;
    ro.neg_cache_ms = s.cfg.dns_cache_ms < 2000 ? s.cfg.dns_cache_ms : 2000;
    s.resolver = resolver_new(s.ctx, &ro);
    if (!s.resolver) {
        LOG_ERROR("cannot start the resolver threads");
        return 1;
    }
    s.net.resolver = s.resolver;
    s.app = appclient_new(&s);
    if (mesh_start(&s)) {
        LOG_ERROR("cannot listen on the mesh port", LF_STR("bind", s.cfg.mesh_bind),
                  LF_INT("port", s.cfg.mesh_port));
        return 1;
    }
    s.api = api_start(&s);
    if (!s.api) {
        LOG_ERROR("cannot listen on the API port", LF_STR("bind", s.cfg.api_bind),
                  LF_INT("port", s.cfg.api_port));
        return 1;
    }
    LOG_INFO("micro-sidecar started", LF_STR("ns", s.cfg.ns), LF_STR("advertise", s.self_key),
             LF_STR("mesh_bind", s.net.bound), LF_INT("mesh_port", s.cfg.mesh_port),
             LF_STR("api_bind", s.cfg.api_bind), LF_INT("api_port", s.cfg.api_port),
             LF_STR("registry", s.cfg.registry), LF_STR("app", s.cfg.app_url),
             LF_UINT("routes", routes_count(s.routes)), LF_STR("version", MICRO_VERSION));

    while (!s.done || s.draining) {
        loop_run_once(s.ctx);
        after_pass(&s);
        log_flush(&log);
        if (loop_signal() && !s.draining)
            begin_drain(&s);
        if (s.done && s.draining && (drained(&s) || now_ms() >= s.drain_deadline_ms + 300) &&
            (!mesh_queued_bytes(&s) || now_ms() >= s.drain_deadline_ms + 300))
            break;
    }
    LOG_INFO("stopped", LF_UINT("calls", (unsigned long long)s.stats.calls),
             LF_UINT("inbound", (unsigned long long)s.stats.inbound));
    /* dials still waiting for an address end here (their on_close runs) */
    resolver_free(s.resolver);
    s.net.resolver = NULL;
    api_stop(s.api);
    wsnet_stop_listening(&s.net);
    loop_destroy(s.ctx);
    appclient_free(s.app);
    routes_free(s.routes);
    disc_free(&s);
    breaker_free(&s);
    call_free_state(&s);
    sbuf_free(&s.listed_exclude);
    hmap_free(&s.peers);
    cfg_free(options, &s.cfg);
    log_close(&log);
    return 0;
}
