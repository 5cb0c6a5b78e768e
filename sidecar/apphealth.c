/* apphealth: the registry-with-health-checks behaviour. When --app-health-url is
 * set, the sidecar GETs it every interval (with a timeout); after
 * --app-health-threshold failures in a row the app counts as unhealthy: the
 * sidecar leaves the registry (nobody finds it) and /-/ready turns 503. The first
 * success after that registers it again. Off when no URL is configured. */
#include "sidecar.h"

#include "log.h"

#include <string.h>

static void schedule(sidecar_t *s, int64_t ms);

/* Until the app has answered healthy once it is "starting": checked again after
 * 50 ms, doubling up to 1 s (or the interval, if shorter), and one failure keeps
 * it out of the registry. /-/ready does not wait for it then — a native sidecar's
 * startup probe gates the app's own start, so waiting would deadlock — but nobody
 * is sent to an app that is not up, and it joins soon after the app is. */
static int64_t interval(sidecar_t *s)
{
    if (s->app_seen_healthy)
        return s->cfg.app_health_interval_ms;
    int64_t ms = 50LL << (s->health_failures < 5 ? s->health_failures : 5);
    if (ms > 1000)
        ms = 1000;
    return ms < s->cfg.app_health_interval_ms ? ms : s->cfg.app_health_interval_ms;
}

static void checked(void *arg, const app_result_t *r)
{
    sidecar_t *s = arg;
    s->health_req = NULL;
    bool ok = r->status >= 200 && r->status < 300;
    long long threshold = s->app_seen_healthy ? s->cfg.app_health_threshold : 1;
    s->stats.health_checks++;
    if (ok) {
        s->health_failures = 0;
        if (!s->app_seen_healthy)
            LOG_INFO("app is up", LF_STR("url", s->cfg.app_health_url));
        s->app_seen_healthy = true;
        if (!s->app_healthy) {
            s->app_healthy = true;
            LOG_INFO("app healthy, registering", LF_STR("url", s->cfg.app_health_url));
            mesh_app_health_changed(s);
        }
    } else {
        s->stats.health_check_failures++;
        s->health_failures++;
        LOG_DEBUG("app health check failed", LF_STR("url", s->cfg.app_health_url),
                  LF_INT("status", r->status), LF_STR("err", r->error ? r->error : ""),
                  LF_INT("failures", s->health_failures));
        if (s->app_healthy && s->health_failures >= threshold) {
            s->app_healthy = false;
            LOG_WARN("app unhealthy, leaving the registry", LF_STR("url", s->cfg.app_health_url),
                     LF_INT("status", r->status),
                     LF_INT("failures", s->health_failures));
            mesh_app_health_changed(s);
        }
    }
    if (!s->draining)
        schedule(s, interval(s));
}

static void tick(loop_timer_t *t)
{
    sidecar_t *s = lws_container_of(t, sidecar_t, health_timer);
    if (s->draining || s->health_req)
        return;
    app_headers_t h = {.token = s->cfg.app_token};
    s->health_req = appclient_request(s->app, "GET", s->cfg.app_health_url, NULL, 0, &h,
                                      s->cfg.app_health_timeout_ms, checked, s);
    if (!s->health_req)
        schedule(s, interval(s));
}

static void schedule(sidecar_t *s, int64_t ms)
{
    loop_timer_schedule(s->ctx, &s->health_timer, tick, ms * LWS_US_PER_MS);
}

void apphealth_start(sidecar_t *s)
{
    s->app_healthy = true;
    if (!s->cfg.app_health_url || !*s->cfg.app_health_url)
        return;
    schedule(s, 1); /* check at once: an app that is not up yet leaves at the first failure */
}

void apphealth_stop(sidecar_t *s)
{
    loop_timer_cancel(&s->health_timer);
    if (s->health_req) {
        appclient_cancel(s->health_req);
        s->health_req = NULL;
    }
}
