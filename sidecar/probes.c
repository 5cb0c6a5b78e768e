/* probes: the bodies of /-/health, /-/ready and /metrics, shared by the local API
 * and the mesh port (kubelet probes the pod IP, the app asks on loopback). */
#include "sidecar.h"

#include "prom.h"
#include "util.h"

#include <string.h>

bool sidecar_ready(sidecar_t *s, const char **reason)
{
    if (s->draining) {
        *reason = "shutting down";
        return false;
    }
    if (!s->app_healthy && s->app_seen_healthy) {
        *reason = "app unhealthy (health checks failing)";
        return false;
    }
    if (!s->ever_registered) {
        *reason = "not registered with the registry yet";
        return false;
    }
    if (s->registry_unlisted) {
        *reason = "the registry does not list us: registering again";
        return false;
    }
    *reason = NULL;
    return true;
}

void probe_health(sidecar_t *s, sbuf_t *b)
{
    const char *names[256];
    size_t n = disc_namespaces(s, names, 256);
    sbuf_printf(b, "{\"status\":\"ok\",\"registry\":%s,\"registryAddress\":",
                mesh_registry_listed(s) ? "true" : "false");
    if (s->registry_up)
        sbuf_add_json_str(b, s->registry_key, strlen(s->registry_key));
    else
        sbuf_adds(b, "null");
    sbuf_printf(b, ",\"uptime\":%.3f,\"namespaces\":[", (double)(now_ms() - s->started_ms) / 1000.0);
    for (size_t i = 0; i < n; i++) {
        if (i)
            sbuf_addc(b, ',');
        sbuf_add_json_str(b, names[i], strlen(names[i]));
    }
    sbuf_add(b, "]}", 2);
}

int probe_ready(sidecar_t *s, sbuf_t *b)
{
    const char *why;
    if (sidecar_ready(s, &why)) {
        sbuf_adds(b, "{\"status\":\"ready\"}");
        return 200;
    }
    sbuf_adds(b, "{\"status\":\"not-ready\",\"reason\":");
    sbuf_add_json_str(b, why, strlen(why));
    sbuf_addc(b, '}');
    return 503;
}

void probe_metrics(sidecar_t *s, sbuf_t *b)
{
    const sidecar_stats_t *st = &s->stats;
    const wsnet_stats_t *ws = &s->net.stats;
    const char *why;
#define C(name, help, v) prom_metric(b, "micro_sidecar_" name, "counter", help, (double)(v))
#define G(name, help, v) prom_metric(b, "micro_sidecar_" name, "gauge", help, (double)(v))
    G("ready", "1 when /-/ready answers 200.", sidecar_ready(s, &why));
    G("registry_connected", "1 while the registry connection is open.", s->registry_up);
    C("registry_connects_total", "Registrations with the registry (first and again).", st->registry_connects);
    C("registry_disconnects_total", "Registry connections lost.", st->registry_disconnects);
    C("heartbeats_total", "Heartbeats pushed to the registry.", st->heartbeats);
    G("registry_listed", "1 while registered and not found missing from the registry's table.", mesh_registry_listed(s));
    C("registry_unlisted_total", "Registrations the registry did not list (connection closed, registered again).", st->registry_unlisted);
    C("peers_unverified_total", "Inbound peer connections from another address than they claim (served, never used for calls).", st->peers_unverified);
    C("peers_kept_total", "Inbound peer connections that did not displace a connection we dialed to the same peer.", st->peers_kept);
    G("peer_connections", "Open peer connections (both directions).", s->net.nconns - (s->registry_up ? 1 : 0));
    C("calls_total", "Outbound calls started through the local API.", st->calls);
    C("calls_ok_total", "Outbound calls answered with status 200.", st->calls_ok);
    C("calls_failed_total", "Outbound calls and pushes that failed.", st->calls_failed);
    C("call_retries_total", "Retries of outbound calls.", st->retries);
    C("call_timeouts_total", "Outbound calls that timed out (ABORT sent).", st->timeouts);
    C("pushes_total", "Outbound pushes.", st->pushes);
    G("calls_in_flight", "Outbound calls in flight.", s->calls_inflight);
    C("self_calls_total", "Calls resolved to this sidecar and served by its own app.", st->self_calls);
    C("inbound_total", "Inbound requests for app routes.", st->inbound);
    C("inbound_ok_total", "Inbound requests the app answered with 2xx.", st->inbound_ok);
    C("inbound_failed_total", "Inbound requests that failed (app error or unreachable).", st->inbound_failed);
    C("inbound_aborted_total", "Inbound requests cancelled (ABORT, caller gone, shutdown).", st->inbound_aborted);
    C("inbound_no_route_total", "Inbound requests for a url with no route.", st->inbound_no_route);
    G("inbound_in_flight", "Inbound requests being served by the app.", s->inbound_inflight);
    C("app_unreachable_total", "Forwarded requests that could not reach the app.", st->app_unreachable);
    G("app_connections", "Open keep-alive connections to the app.", appclient_connections(s->app));
    G("namespaces_tracked", "Namespaces with discovery state (--max-namespaces, --namespace-ttl-ms).", hmap_len(&s->cache));
    G("app_queued_bytes", "Request bytes at or waiting for the app (--app-queue-bytes).", appclient_bytes(s->app));
    G("assembly_bytes", "Bytes of peer messages in assembly (--max-assembly-bytes).", s->net.rx_bytes);
    G("queued_bytes", "Bytes waiting in peer send queues (--max-queued-bytes).", s->net.queue_bytes);
    C("finds_total", "Registry lookups (/-/find).", st->finds);
    C("find_failures_total", "Registry lookups that found nobody or failed.", st->find_failures);
    C("discovery_cache_hits_total", "Calls that reused a cached peer without a lookup.", st->cache_hits);
    C("discovery_degraded_total", "Lookups that failed but fell back to the cached peer.", st->degraded);
    C("breaker_exclusions_total", "Peers excluded after a failure.", st->breaker_exclusions);
    C("breaker_resets_total", "Namespaces whose exclusions were cleared (all excluded).", st->breaker_resets);
    size_t bopen, bhalf;
    breaker_counts(s, &bopen, &bhalf);
    G("breaker_open", "Peers whose circuit is open (excluded from calls).", bopen);
    G("breaker_half_open", "Peers in half-open state (consecutive policy).", bhalf);
    G("app_healthy", "1 unless app health checks are failing.", s->app_healthy);
    C("app_health_checks_total", "App health checks run.", st->health_checks);
    C("app_health_check_failures_total", "App health checks that failed.", st->health_check_failures);
    C("rate_limited_inbound_total", "Inbound requests refused with 429 by a route's rate limit.", st->rate_limited_in);
    C("rate_limited_outbound_total", "Outbound calls refused with 429 by a namespace's rate limit.", st->rate_limited_out);
    C("concurrency_limited_total", "Calls refused with 503 by an in-flight limit.", st->concurrency_limited);
    C("frames_in_total", "WebSocket messages received.", ws->frames_in);
    C("frames_out_total", "WebSocket messages sent.", ws->frames_out);
    C("bad_frames_total", "Messages dropped as malformed.", ws->bad_frames);
    C("oversized_frames_total", "Connections closed (1009) for an oversized message.", ws->oversized);
    C("assembly_refused_total", "Connections closed (1013): --max-assembly-bytes was used up.", ws->assembly_refused);
    C("frame_timeouts_total", "Connections closed: a message not complete within --frame-timeout-ms.", ws->frame_timeouts);
    C("send_stalls_total", "Connections closed: the peer did not read for --send-stall-timeout-ms.", ws->send_stalls);
    C("idle_closes_total", "Peer connections closed after --idle-timeout-ms without a frame.", ws->idle_closes);
    C("handshake_timeouts_total", "Accepted sockets closed: not a WebSocket within --handshake-timeout-ms.", s->net.listener.handshake_timeouts);
    C("accept_refused_total", "Accepted sockets closed at once for want of file descriptors.", s->net.listener.refused);
    C("api_requests_total", "Local API requests.", st->api_requests);
    if (s->resolver) {
        const resolver_stats_t *rs = resolver_stats(s->resolver);
        C("dns_lookups_total", "Host-name lookups of dials (numeric hosts not counted).", rs->lookups);
        C("dns_cache_hits_total", "Lookups answered from the cache.", rs->cache_hits);
        C("dns_timeouts_total", "Lookups that failed at --dns-timeout-ms.", rs->timeouts);
        C("dns_failures_total", "Lookups the resolver answered with an error.", rs->failures);
        C("dns_busy_total", "Lookups refused: too many waiting for a resolver thread.", rs->busy);
        G("dns_in_flight", "Lookups waiting for or running on a resolver thread.", resolver_pending(s->resolver));
    }
    G("uptime_seconds", "Seconds since start.", (double)(now_ms() - s->started_ms) / 1000.0);
#undef C
#undef G
}
