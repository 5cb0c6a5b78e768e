/* api: the local HTTP API of docs/API.md on libmicrohttpd. MHD runs without a
 * thread of its own: its epoll descriptor is adopted into the lws loop, so MHD's
 * handlers run on the loop thread and touch call state directly. A call suspends
 * its MHD connection and resumes it when the mesh answers; no thread ever blocks
 * and no request crosses a thread (docs/ARCHITECTURE.md explains the choice). */
#include "sidecar.h"

#include "log.h"
#include "url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct api {
    sidecar_t          *s;
    struct MHD_Daemon  *d;
    struct lws         *wsi;
    loop_timer_t run_timer;
    size_t              suspended;
    size_t              live;      /* requests not yet completed (answer not yet sent) */
    bool                in_run;    /* inside MHD_run: MHD is not re-entrant */
    bool                run_pending; /* run MHD once the loop pass is over */
};

typedef struct apireq {
    api_t                 *a;
    struct MHD_Connection *conn;
    sbuf_t                 body;
    bool                   too_large;
    bool                   suspended;
    bool                   answered;
    int                    status;
    sbuf_t                 out;
    const char            *ctype;
    char                   cid[128];
    double                 retry_after;
    call_t                *call;
    bool                   push;
    bool                   close;  /* answer with Connection: close (ambiguous framing) */
    bool                   queued; /* the answer is with MHD */
    bool                   started; /* the handler has seen it */
    char                  *query;  /* "?..." of the request target as sent, or NULL */
    bool                   query_too_long;
    const jindex_t        *ix;   /* the body's member index: during the handler only */
    loop_io_t              hup;  /* while suspended: watches for the client going away */
} apireq_t;

static void run_soon(api_t *a);
static void run(loop_timer_t *t);

/* ---- answers ---- */

static void answer(apireq_t *r, int status)
{
    r->status = status;
    r->answered = true;
}

static void answer_error(apireq_t *r, int http, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void answer_error(apireq_t *r, int http, int status, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sbuf_reset(&r->out);
    sbuf_adds(&r->out, "{\"error\":");
    sbuf_add_json_str(&r->out, msg, strlen(msg));
    sbuf_printf(&r->out, ",\"status\":%d}", status);
    r->a->s->stats.api_errors++;
    answer(r, http);
}

static enum MHD_Result queue(apireq_t *r)
{
    size_t len = r->out.len;
    char *data = len ? sbuf_steal(&r->out) : NULL;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data ? data : (void *)"",
                                                                data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    if (len)
        MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/json");
    if (r->cid[0])
        MHD_add_response_header(resp, "X-Correlation-Id", r->cid);
    if (r->retry_after > 0) {
        /* whole seconds, rounded up, at most a day: the value came from a peer */
        char ra[32];
        double sec = r->retry_after < RETRY_AFTER_MAX_S ? r->retry_after + 0.999 : RETRY_AFTER_MAX_S;
        snprintf(ra, sizeof(ra), "%lld", (long long)sec);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    if (r->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->queued = true;
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void resume(apireq_t *r)
{
    loop_io_stop(&r->hup); /* before MHD may close the socket */
    if (r->suspended) {
        r->suspended = false;
        r->a->suspended--;
        MHD_resume_connection(r->conn);
        run_soon(r->a);
    }
}

/* ---- call / push ---- */

static void call_done(void *arg, const call_result_t *res)
{
    apireq_t *r = arg;
    r->call = NULL;
    if (res->cid)
        snprintf(r->cid, sizeof(r->cid), "%s", res->cid);
    if (res->status == CALL_OK) {
        sbuf_reset(&r->out);
        if (r->push) {
            answer(r, 202);
        } else {
            if (res->result)
                sbuf_add(&r->out, res->result, res->result_len);
            else
                sbuf_adds(&r->out, "null");
            answer(r, 200);
        }
    } else {
        int http = call_http_status(res->status);
        r->retry_after = res->retry_after;
        answer_error(r, http, res->status > 0 ? res->status : http, "%s",
                     res->message ? res->message : "call failed");
    }
    resume(r);
}

/* A suspended MHD connection is not polled, so MHD would only notice a client
 * that went away once the call is over: its completion callback (and so the
 * ABORT to the provider) waited for the whole call or its timeout. We watch the
 * socket ourselves meanwhile. Readable with nothing to read (EOF) or an error
 * means the client is gone: the call is detached (ABORT sent, state freed) and
 * the connection resumed, so MHD finds the dead socket and completes it. Bytes
 * to read (a pipelined request) end the watch: we cannot tell more then. */
static void on_hangup(loop_io_t *w)
{
    apireq_t *r = lws_container_of(w, apireq_t, hup);
    char b;
    ssize_t n = recv(w->ev.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    loop_io_stop(w);
    if (n > 0)
        return;
    LOG_DEBUG("API client went away mid-call", LF_STR("cid", r->cid));
    if (r->call) {
        call_t *c = r->call;
        r->call = NULL;
        call_detach(c);
    }
    answer_error(r, 503, 503, "the client went away");
    resume(r);
}

static void watch_hangup(apireq_t *r)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci)
        loop_io_start(&r->hup, ci->connect_fd, on_hangup);
}

static bool header_int(struct MHD_Connection *c, const char *name, long long min, long long max,
                       long long *out, apireq_t *r)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    if (!v)
        return true;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (end == v || *end || n < min || n > max) {
        answer_error(r, 400, 400, "header %s must be an integer between %lld and %lld", name, min, max);
        return false;
    }
    *out = n;
    return true;
}

static void start_call(apireq_t *r, const char *ns, const char *url, jspan_t payload, int slot,
                       long long timeout, long long retries, bool push)
{
    sidecar_t *s = r->a->s;
    const char *hcid = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Correlation-Id");
    if (!header_int(r->conn, "X-Micro-Timeout-Ms", 1, 86400000, &timeout, r) ||
        !header_int(r->conn, "X-Micro-Retries", 0, CALL_RETRIES_MAX, &retries, r))
        return;
    int urc = url_check(url, strlen(url));
    if (urc) {
        answer_error(r, 400, 400, "bad url: %s", url_strerror(urc));
        return;
    }
    call_opts_t o = {
        .ns = ns,
        .url = url,
        .payload = payload.t != JT_NONE ? payload.p : NULL,
        .payload_len = payload.n,
        .payload_type = payload.t,
        .ix = r->ix,
        .ix_slot = slot,
        .cid = hcid,
        .timeout_ms = timeout,
        .retries = (int)retries,
        .push = push,
    };
    r->push = push;
    r->call = call_start(s, &o, call_done, r);
    if (!r->call) {
        answer_error(r, 400, 400, "bad namespace or url");
        return;
    }
    r->suspended = true;
    r->a->suspended++;
    MHD_suspend_connection(r->conn);
    watch_hangup(r);
}

/* POST /v1/call/{ns}/{url...} and /v1/push/{ns}/{url...} */
static void call_by_path(apireq_t *r, const char *rest, jspan_t payload, bool push)
{
    sidecar_t *s = r->a->s;
    char ns[ADDR_NS_MAX];
    const char *slash = strchr(rest, '/');
    if (!slash || slash == rest || (size_t)(slash - rest) >= sizeof(ns) || !slash[1]) {
        answer_error(r, 400, 400, "use /v1/%s/{namespace}/{url}", push ? "push" : "call");
        return;
    }
    memcpy(ns, rest, (size_t)(slash - rest));
    ns[slash - rest] = '\0';
    /* the call's url is the rest of the path and the query, both as sent */
    char full[URL_MAX + 1];
    size_t pl = strlen(slash), ql = r->query ? strlen(r->query) : 0;
    if (r->query_too_long || pl + ql > URL_MAX) {
        answer_error(r, 400, 400, "bad url: %s", url_strerror(URL_E_LONG));
        return;
    }
    memcpy(full, slash, pl);
    if (ql)
        memcpy(full + pl, r->query, ql);
    full[pl + ql] = '\0';
    start_call(r, ns, full, payload, JIX_ROOT, s->cfg.request_timeout_ms, s->cfg.retries, push);
}

/* POST /v1/call {"namespace","url","data","timeout","retries"} */
static void call_by_body(apireq_t *r, jspan_t body, bool push)
{
    sidecar_t *s = r->a->s;
    jspan_t v, data = {0};
    char ns[ADDR_NS_MAX], url[1024];
    long long timeout = s->cfg.request_timeout_ms, retries = s->cfg.retries;
    uint64_t n;
    if (body.t != JT_OBJECT) {
        answer_error(r, 400, 400, "body must be {\"namespace\",\"url\",\"data\"}");
        return;
    }
    if (!jobj_get(body, "namespace", &v) || jstr_get(v, ns, sizeof(ns), NULL) || !ns[0]) {
        answer_error(r, 400, 400, "missing field: namespace (a string)");
        return;
    }
    size_t ulen = 0;
    if (!jobj_get(body, "url", &v) || v.t != JT_STRING) {
        answer_error(r, 400, 400, "missing field: url (a string starting with /)");
        return;
    }
    int urc = jstr_get(v, url, sizeof(url), &ulen) ? URL_E_LONG : url_check(url, ulen);
    if (urc) {
        answer_error(r, 400, 400, "bad url: %s", url_strerror(urc));
        return;
    }
    int slot = JIX_NONE;
    if (!jmembers_get(r->ix, JIX_ROOT, body, "data", &data, &slot))
        data.t = JT_NONE;
    if (jobj_get(body, "timeout", &v) && v.t != JT_NULL) {
        if (jnum_u53(v, &n) || n < 1 || n > 86400000) {
            answer_error(r, 400, 400, "timeout must be an integer number of milliseconds");
            return;
        }
        timeout = (long long)n;
    }
    if (jobj_get(body, "retries", &v) && v.t != JT_NULL) {
        if (jnum_u53(v, &n) || n > CALL_RETRIES_MAX) {
            answer_error(r, 400, 400, "retries must be an integer between 0 and %d", CALL_RETRIES_MAX);
            return;
        }
        retries = (long long)n;
    }
    start_call(r, ns, url, data, slot, timeout, retries, push);
}

/* ---- routes ---- */

static void routes_post(apireq_t *r, jspan_t body)
{
    sidecar_t *s = r->a->s;
    jspan_t v;
    char url[1100], target[2048] = "";
    double rps = -1, burst = -1;
    if (body.t != JT_OBJECT || !jobj_get(body, "url", &v) || jstr_get(v, url, sizeof(url), NULL)) {
        answer_error(r, 400, 400, "body must be {\"url\": \"/path\", \"target\": \"http://...\" (optional)}");
        return;
    }
    if (jobj_get(body, "target", &v) && v.t != JT_NULL && jstr_get(v, target, sizeof(target), NULL)) {
        answer_error(r, 400, 400, "target must be a string");
        return;
    }
    /* jnum_double refuses what does not fit a double (1e400); the bounds keep
     * every value a finite number GET /v1/routes can print */
    if (jobj_get(body, "rps", &v) && v.t != JT_NULL &&
        (jnum_double(v, &rps) || !(rps >= 0 && rps <= ROUTE_RATE_MAX))) {
        answer_error(r, 400, 400, "rps must be a number between 0 and %g", ROUTE_RATE_MAX);
        return;
    }
    if (jobj_get(body, "burst", &v) && v.t != JT_NULL &&
        (jnum_double(v, &burst) || !(burst >= 1 && burst <= ROUTE_RATE_MAX))) {
        answer_error(r, 400, 400, "burst must be a number between 1 (a bucket must hold a whole request) and %g",
                     ROUTE_RATE_MAX);
        return;
    }
    int rc = routes_add_limited(s->routes, url, target[0] ? target : NULL, rps, burst);
    if (rc == 400) {
        answer_error(r, 400, 400, "url must be \"*\" or a path starting with / (visible ASCII, no ?, #, "
                     "encoded control bytes or dot segments); target must be http://host[:port][/path] "
                     "with a port between 1 and 65535");
        return;
    }
    if (rc == 409) {
        answer_error(r, 409, 409, "route %s exists with another target or rate limit", url);
        return;
    }
    if (rc == 500) {
        answer_error(r, 500, 500, "out of memory");
        return;
    }
    sbuf_reset(&r->out);
    routes_json_one(s->routes, url, &r->out);
    if (rc == 201)
        LOG_INFO("route added", LF_STR("url", url));
    answer(r, rc);
}

/* ---- dispatch ---- */

static bool token_ok(api_t *a, struct MHD_Connection *c)
{
    const char *want = a->s->cfg.api_token;
    if (!want || !*want)
        return true;
    const char *got = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Micro-Token");
    size_t wl = strlen(want), gl = got ? strlen(got) : 0;
    unsigned char diff = (unsigned char)(wl != gl);
    /* constant time in the length of the expected token */
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)(want[i] ^ (i < gl ? got[i] : 0));
    return diff == 0;
}

static void dispatch(apireq_t *r, const char *url, const char *method)
{
    api_t *a = r->a;
    sidecar_t *s = a->s;
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
    s->stats.api_requests++;

    if (!strcmp(url, "/-/health") || !strcmp(url, "/-/ready")) {
        if (!get)
            return answer_error(r, 405, 405, "use GET");
        if (!strcmp(url, "/-/health")) {
            probe_health(s, &r->out);
            return answer(r, 200);
        }
        return answer(r, probe_ready(s, &r->out));
    }
    if (!token_ok(a, r->conn))
        return answer_error(r, 401, 401, "missing or wrong X-Micro-Token");
    if (!strcmp(url, "/metrics")) {
        if (!get)
            return answer_error(r, 405, 405, "use GET");
        r->ctype = "text/plain; version=0.0.4";
        probe_metrics(s, &r->out);
        return answer(r, 200);
    }
    if (r->too_large)
        return answer_error(r, 413, 413, "body larger than %lld bytes", s->cfg.max_body_bytes);

    jspan_t body = {NULL, 0, JT_NONE};
    size_t errpos = 0;
    /* validated and indexed in one pass: the call's correlation id lookup uses
     * the index (depth 2: the body's members, and those of POST /v1/call's data) */
    jindex_t ix;
    int jrc = r->body.len ? jscan_validate_ix(sbuf_data(&r->body), r->body.len, &body, &errpos, &ix, 2)
                          : JSCAN_OK;
    if (jrc == JSCAN_E_DEPTH)
        return answer_error(r, 400, 400, "body is nested deeper than %d levels (at byte %zu)",
                            JSCAN_MAX_DEPTH, errpos);
    if (jrc)
        return answer_error(r, 400, 400, "body is not valid JSON (at byte %zu)", errpos);
    r->ix = r->body.len ? &ix : NULL;

    if (!strcmp(url, "/v1/routes")) {
        if (get) {
            routes_json(s->routes, &r->out);
            return answer(r, 200);
        }
        if (post)
            return routes_post(r, body);
        return answer_error(r, 405, 405, "use GET or POST");
    }
    if (!strncmp(url, "/v1/routes/", 11)) {
        if (!del)
            return answer_error(r, 405, 405, "use DELETE");
        const char *ru = url + 10; /* keeps the leading '/' */
        if (!strcmp(ru, "/*"))
            ru = "*";
        int rc = routes_del(s->routes, ru);
        if (rc == 404)
            return answer_error(r, 404, 404, "no route %s", ru);
        LOG_INFO("route removed", LF_STR("url", ru));
        return answer(r, 204);
    }
    bool is_call = !strncmp(url, "/v1/call", 8), is_push = !strncmp(url, "/v1/push", 8);
    if (is_call || is_push) {
        if (!post)
            return answer_error(r, 405, 405, "use POST");
        if (url[8] == '\0')
            return call_by_body(r, body, is_push);
        if (url[8] == '/')
            return call_by_path(r, url + 9, body, is_push);
    }
    answer_error(r, 404, 404, "no such endpoint: %s %s", method, url);
}

/* RFC 9112 §6.3: a request with Transfer-Encoding and Content-Length, or with
 * Content-Length values that disagree, has no single length. A proxy in front
 * of us may frame it one way and MHD the other, so the bytes MHD would read as
 * a second, pipelined request can be a request nobody sent on purpose. Such a
 * request is refused with 400 and its connection is closed: nothing after it
 * on that connection is served. */
typedef struct framing {
    int  n_cl, n_te;
    bool cl_bad;      /* not one decimal number, or values that differ */
    bool te_bad;      /* a coding other than chunked (RFC 9112 §6.3: 400) */
    char cl[32];
} framing_t;

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    framing_t *f = cls;
    (void)kind;
    if (!strcasecmp(key, "transfer-encoding")) {
        f->n_te++;
        if (strcasecmp(value, "chunked"))
            f->te_bad = true;
    } else if (!strcasecmp(key, "content-length")) {
        size_t n = strspn(value, "0123456789");
        if (n == 0 || value[n] || n >= sizeof(f->cl))
            f->cl_bad = true;
        else if (f->n_cl && strcmp(f->cl, value))
            f->cl_bad = true;
        else
            snprintf(f->cl, sizeof(f->cl), "%s", value);
        f->n_cl++;
    }
    return MHD_YES;
}

static const char *framing_error(struct MHD_Connection *conn)
{
    framing_t f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_header, &f);
    if (f.n_te && f.n_cl)
        return "a request with both Transfer-Encoding and Content-Length is refused (RFC 9112 section 6.3)";
    if (f.cl_bad)
        return "Content-Length must be one decimal number (conflicting or malformed values are refused)";
    if (f.n_te > 1 || f.te_bad)
        return "Transfer-Encoding must be one \"chunked\" (RFC 9112 section 6.3)";
    return NULL;
}

/* The url reaches us as it was sent (escapes kept): the url check sees
 * "%0d%0a" and dot segments as they are, and a call's url goes to the app
 * without being decoded and encoded again. */
static size_t keep_escapes(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static apireq_t *req_new(api_t *a, struct MHD_Connection *conn)
{
    apireq_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->a = a;
    r->conn = conn;
    a->live++;
    sbuf_init(&r->body, 0, (size_t)a->s->cfg.max_body_bytes);
    sbuf_init(&r->out, 0, 0);
    return r;
}

/* MHD's first look at a request, with the request target as sent: the only
 * place that still has the query (MHD parses it into arguments afterwards). A
 * request seen here always reaches `completed` (MHD marks it client-aware). */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *conn)
{
    apireq_t *r = req_new(cls, conn);
    const char *q = uri ? strchr(uri, '?') : NULL;
    if (r && q) {
        if (strlen(q) > URL_MAX)
            r->query_too_long = true;
        else if (!(r->query = strdup(q)))
            r->query_too_long = true; /* refused rather than silently dropped */
    }
    return r;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    api_t *a = cls;
    apireq_t *r = *con_cls;
    (void)version;
    if (!r) {
        if (!(r = req_new(a, conn)))
            return MHD_NO;
        *con_cls = r;
    }
    if (!r->started) {
        r->started = true;
        const char *bad = framing_error(conn);
        if (bad) {
            LOG_WARN("API request refused: ambiguous framing", LF_STR("err", bad));
            r->close = true;
            answer_error(r, 400, 400, "%s", bad);
            return queue(r);
        }
        return MHD_YES;
    }
    if (r->queued) { /* refused on its headers: nothing more to read or answer */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_large && sbuf_add(&r->body, upload, *upload_size))
            r->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r->answered && !r->call)
        dispatch(r, url, method);
    r->ix = NULL; /* it lived on dispatch's stack */
    if (r->answered)
        return queue(r);
    return MHD_YES; /* suspended until the mesh answers */
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    apireq_t *r = *con_cls;
    (void)cls;
    (void)conn;
    (void)toe;
    if (!r)
        return;
    loop_io_stop(&r->hup);
    if (r->call)
        call_detach(r->call);
    r->a->live--;
    free(r->query);
    sbuf_free(&r->body);
    sbuf_free(&r->out);
    free(r);
    *con_cls = NULL;
}

/* ---- the loop integration ---- */

/* MHD runs once per loop pass, after lws has handled the pass's events and the
 * finished calls have been delivered (sidecar/main.c), however many of its
 * connections were resumed or became ready: a pass with 64 answers costs one
 * MHD_run, not 64. Inside, the run repeats while MHD reports more work right
 * away (a timeout of 0: a connection moves one state per run, e.g. answer sent
 * -> ready for the next request), bounded so MHD cannot starve the mesh; then a
 * timer covers MHD's own timeouts. */
static void run_now(api_t *a)
{
    if (a->in_run)
        return;
    a->in_run = true;
    a->run_pending = false;
    MHD_UNSIGNED_LONG_LONG ms = 0;
    for (int pass = 0; pass < 4 && ms == 0; pass++) {
        MHD_run(a->d);
        if (MHD_get_timeout(a->d, &ms) != MHD_YES)
            ms = 1000;
    }
    a->in_run = false;
    if (ms > 1000)
        ms = 1000; /* a periodic pass keeps MHD's idle timeouts honest */
    loop_timer_schedule(a->s->ctx, &a->run_timer, run, (lws_usec_t)ms * LWS_US_PER_MS + 1);
}

static void run(loop_timer_t *t)
{
    run_soon(lws_container_of(t, api_t, run_timer));
}

static void run_soon(api_t *a)
{
    a->run_pending = true;
    sidecar_kick(a->s);
}

bool api_after_pass(api_t *a)
{
    if (!a || !a->run_pending || a->in_run)
        return false;
    run_now(a);
    return true;
}

int api_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    api_t *a = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    (void)user;
    (void)in;
    (void)len;
    if (a && reason == LWS_CALLBACK_RAW_RX_FILE)
        run_soon(a);
    return 0;
}

api_t *api_start(sidecar_t *s)
{
    api_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->s = s;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
    struct sockaddr_in6 sin6;
    struct sockaddr_in sin;
    const struct sockaddr *sa;
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (strchr(s->cfg.api_bind, ':')) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)s->cfg.api_port);
        if (inet_pton(AF_INET6, s->cfg.api_bind, &sin6.sin6_addr) != 1)
            goto fail;
        flags |= MHD_USE_IPv6;
        sa = (const struct sockaddr *)&sin6;
    } else {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)s->cfg.api_port);
        if (inet_pton(AF_INET, s->cfg.api_bind, &sin.sin_addr) != 1)
            goto fail;
        sa = (const struct sockaddr *)&sin;
    }
    a->d = MHD_start_daemon(flags, (uint16_t)s->cfg.api_port, NULL, NULL, handler, a,
                            MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            /* headers and the answer's head only: bodies live in our
                             * own bounded buffers (MHD's default is 32 KiB per connection) */
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, a,
                            MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
                            MHD_OPTION_URI_LOG_CALLBACK, uri_seen, a,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
                            MHD_OPTION_END);
    if (!a->d)
        goto fail;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di)
        goto fail;
    lws_sock_file_fd_type fd;
    fd.filefd = di->epoll_fd;
    a->wsi = lws_adopt_descriptor_vhost(s->net.vhost, LWS_ADOPT_RAW_FILE_DESC, fd, "micro-api", NULL);
    if (!a->wsi)
        goto fail;
    lws_set_opaque_user_data(a->wsi, a);
    run_now(a);
    return a;
fail:
    if (a->d)
        MHD_stop_daemon(a->d);
    free(a);
    return NULL;
}

/* Requests whose answer has not been sent yet: the drain waits for these, so a
 * 503 written at the end of the grace reaches its client before MHD stops. */
size_t api_inflight(api_t *a) { return a ? a->live : 0; }

void api_stop(api_t *a)
{
    if (!a)
        return;
    loop_timer_cancel(&a->run_timer);
    if (a->wsi) {
        lws_set_opaque_user_data(a->wsi, NULL);
        /* lws must not close MHD's epoll fd: MHD_stop_daemon does */
    }
    MHD_stop_daemon(a->d);
    free(a);
}
