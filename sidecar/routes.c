/* routes: which urls this sidecar serves for its app, and where each goes.
 * Small (tens of entries), read on every inbound call, written by the local API. */
#include "sidecar.h"

#include "config.h"
#include "ratelimit.h"
#include "url.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

typedef struct route {
    char     *url;
    char     *target;
    tbucket_t limit;   /* inbound rate limit of this route (rate 0 = none) */
} route_t;

struct routes {
    hmap_t  map;     /* url → route */
    char   *app_url; /* without a trailing '/' */
    double  rps, burst; /* default inbound limit for new routes */
};

void routes_set_default_limit(routes_t *r, double rps, double burst)
{
    r->rps = rps;
    r->burst = burst;
}

routes_t *routes_new(const char *app_url)
{
    routes_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    hmap_init(&r->map);
    r->app_url = strdup(app_url);
    size_t n = strlen(r->app_url);
    while (n && r->app_url[n - 1] == '/')
        r->app_url[--n] = '\0';
    return r;
}

static void route_free(route_t *rt)
{
    free(rt->url);
    free(rt->target);
    free(rt);
}

void routes_free(routes_t *r)
{
    void *v;
    if (!r)
        return;
    for (size_t it = 0; (it = hmap_next(&r->map, it, &v)) != 0;)
        route_free(v);
    hmap_free(&r->map);
    free(r->app_url);
    free(r);
}

/* A route url is "*" or a path that passes the url check, without a query (a
 * route is matched on the path a call names, exactly). */
static bool valid_url(const char *url)
{
    if (!strcmp(url, "*"))
        return true;
    return url_check(url, strlen(url)) == URL_OK && !strchr(url, '?');
}

int routes_add(routes_t *r, const char *url, const char *target)
{
    return routes_add_limited(r, url, target, -1, -1);
}

int routes_add_limited(routes_t *r, const char *url, const char *target, double rps, double burst)
{
    char def[2048];
    if (!valid_url(url))
        return 400;
    if (!target || !*target) {
        if (!strcmp(url, "*"))
            target = r->app_url; /* the wildcard forwards to app_url + the call's url */
        else {
            snprintf(def, sizeof(def), "%s%s", r->app_url, url);
            target = def;
        }
    } else if (cfg_check_url(target, NULL, 0)) {
        return 400; /* http://host[:port][/path]: no CR/LF, a host, a port 1..65535 */
    }
    route_t *old = hmap_gets(&r->map, url);
    if (old) {
        /* the limit this request asks for, resolved the way a new route would be */
        tbucket_t want;
        tb_init(&want, rps >= 0 ? rps : r->rps, burst >= 0 ? burst : r->burst, 0);
        bool same_limit = want.rate == old->limit.rate && (want.rate <= 0 || want.burst == old->limit.burst);
        return strcmp(old->target, target) || !same_limit ? 409 : 200;
    }
    route_t *rt = calloc(1, sizeof(*rt));
    if (!rt || !(rt->url = strdup(url)) || !(rt->target = strdup(target))) {
        if (rt)
            route_free(rt);
        return 500;
    }
    tb_init(&rt->limit, rps >= 0 ? rps : r->rps, burst >= 0 ? burst : r->burst, now_us());
    int err;
    hmap_put(&r->map, rt->url, strlen(rt->url), rt, &err);
    if (err) {
        route_free(rt);
        return 500;
    }
    return 201;
}

int routes_del(routes_t *r, const char *url)
{
    route_t *rt = hmap_del(&r->map, url, strlen(url));
    if (!rt)
        return 404;
    route_free(rt);
    return 204;
}

const char *routes_match(routes_t *r, const char *url, char *buf, size_t buflen)
{
    return routes_admit(r, url, buf, buflen, NULL);
}

const char *routes_admit(routes_t *r, const char *url, char *buf, size_t buflen, double *retry_after)
{
    if (retry_after)
        *retry_after = 0; /* also when there is no route, as routes_admit promises */
    route_t *rt = hmap_gets(&r->map, url);
    bool exact = rt != NULL;
    if (!rt)
        rt = hmap_gets(&r->map, "*");
    if (!rt)
        return NULL;
    if (retry_after) {
        if (!tb_take(&rt->limit, now_us(), retry_after)) {
            if (*retry_after <= 0)
                *retry_after = 0.001;
            return NULL;
        }
    }
    if (exact)
        return rt->target;
    int n = snprintf(buf, buflen, "%s%s", rt->target, url);
    return n > 0 && (size_t)n < buflen ? buf : NULL;
}

static void route_json(const route_t *rt, sbuf_t *out)
{
    sbuf_adds(out, "{\"url\":");
    sbuf_add_json_str(out, rt->url, strlen(rt->url));
    sbuf_adds(out, ",\"target\":");
    sbuf_add_json_str(out, rt->target, strlen(rt->target));
    if (rt->limit.rate > 0) {
        /* finite by construction (the API bounds both); sbuf_add_json_num prints
         * null for anything else, so the list is valid JSON whatever happens */
        sbuf_adds(out, ",\"rps\":");
        sbuf_add_json_num(out, rt->limit.rate);
        sbuf_adds(out, ",\"burst\":");
        sbuf_add_json_num(out, rt->limit.burst);
    }
    sbuf_addc(out, '}');
}

void routes_json(routes_t *r, sbuf_t *out)
{
    void *v;
    bool first = true;
    sbuf_addc(out, '[');
    for (size_t it = 0; (it = hmap_next(&r->map, it, &v)) != 0;) {
        if (!first)
            sbuf_addc(out, ',');
        first = false;
        route_json(v, out);
    }
    sbuf_addc(out, ']');
}

void routes_json_one(routes_t *r, const char *url, sbuf_t *out)
{
    route_t *rt = hmap_gets(&r->map, url);
    if (rt)
        route_json(rt, out);
    else
        sbuf_adds(out, "null");
}

size_t routes_count(routes_t *r) { return hmap_len(&r->map); }
