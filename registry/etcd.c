#include "etcd.h"

#include "log.h"
#include "sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct etcd_call {
    etcd_client_t *c;
    CURL   *easy;
    struct curl_slist *headers;
    size_t  endpoint;
    sbuf_t  body;
    etcd_data_fn data;
    etcd_done_fn done;
    void   *arg;
    bool    aborted, too_large;
    char    errbuf[CURL_ERROR_SIZE];
    etcd_call_t *prev, *next;
};

/* One per socket curl asks us to watch. */
struct sockw {
    ev_io          io;
    etcd_client_t *c;
    curl_socket_t  fd;
    sockw_t       *prev, *next; /* every watcher, so that none outlives the client */
};

static void sockw_free(etcd_client_t *c, sockw_t *s)
{
    ev_io_stop(loop_ev(), &s->io);
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
}

static void check_done(etcd_client_t *c);

static void call_unlink(etcd_call_t *k)
{
    etcd_client_t *c = k->c;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->calls_head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    c->ncalls--;
}

static void call_free(etcd_call_t *k)
{
    curl_multi_remove_handle(k->c->multi, k->easy);
    curl_easy_cleanup(k->easy);
    curl_slist_free_all(k->headers);
    sbuf_free(&k->body);
    free(k);
}

static void on_io(struct ev_loop *l, ev_io *w, int revents)
{
    sockw_t *s = lws_container_of(w, sockw_t, io);
    etcd_client_t *c = s->c;
    int running, mask = 0;
    (void)l;
    if (revents & EV_READ)
        mask |= CURL_CSELECT_IN;
    if (revents & EV_WRITE)
        mask |= CURL_CSELECT_OUT;
    curl_multi_socket_action(c->multi, s->fd, mask, &running);
    check_done(c);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    etcd_client_t *c = userp;
    sockw_t *s = socketp;
    struct ev_loop *l = loop_ev();
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sockw_free(c, s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->c = c;
        s->fd = fd;
        s->next = c->socks;
        if (s->next)
            s->next->prev = s;
        c->socks = s;
        curl_multi_assign(c->multi, fd, s);
    } else {
        ev_io_stop(l, &s->io);
    }
    int ev = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_init(&s->io, on_io, fd, ev);
    ev_io_start(l, &s->io);
    return 0;
}

static void on_timer(loop_timer_t *t)
{
    etcd_client_t *c = lws_container_of(t, etcd_client_t, timer);
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int on_timer_change(CURLM *m, long timeout_ms, void *userp)
{
    etcd_client_t *c = userp;
    (void)m;
    if (timeout_ms < 0)
        loop_timer_cancel(&c->timer);
    else
        loop_timer_schedule(c->ctx, &c->timer, on_timer, timeout_ms * 1000);
    return 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *userp)
{
    etcd_call_t *k = userp;
    size_t n = size * nmemb;
    if (k->data) {
        if (k->data(k->arg, p, n)) {
            k->aborted = true;
            return 0; /* CURLE_WRITE_ERROR ends the transfer */
        }
        return n;
    }
    if (sbuf_add(&k->body, p, n)) {
        k->too_large = true;
        return 0;
    }
    return n;
}

/* Finished transfers: one message at a time, because a done callback may cancel
 * or start other calls (curl drops the message of a removed handle). */
static void check_done(etcd_client_t *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        etcd_call_t *k = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&k);
        CURLcode res = m->data.result;
        long status = 0;
        char err[CURL_ERROR_SIZE + 600];
        if (res == CURLE_OK) {
            curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &status);
            err[0] = 0;
        } else if (k->too_large) {
            snprintf(err, sizeof(err), "answer larger than %zu bytes", k->body.limit);
        } else if (k->aborted) {
            snprintf(err, sizeof(err), "stream aborted: bad data");
        } else {
            snprintf(err, sizeof(err), "%s: %s", c->cfg.endpoints[k->endpoint],
                     k->errbuf[0] ? k->errbuf : curl_easy_strerror(res));
        }
        call_unlink(k);
        if (status == 0 || status >= 500) {
            c->failures++;
            if (!k->aborted && !k->too_large)
                etcd_next_endpoint(c, k->endpoint);
        }
        sbuf_addc(&k->body, 0); /* NUL-terminate for the parser's convenience */
        size_t n = k->body.len ? k->body.len - 1 : 0;
        etcd_done_fn done = k->done;
        void *arg = k->arg;
        /* The callback gets the body before the call is freed. */
        done(arg, status, k->body.len ? sbuf_data(&k->body) : "", n, err);
        call_free(k);
    }
}

int etcd_client_init(etcd_client_t *c, struct lws_context *ctx, const etcd_client_cfg_t *cfg)
{
    memset(c, 0, sizeof(*c));
    if (!loop_ev() || !cfg->nendpoints)
        return -1;
    c->cfg = *cfg;
    c->ctx = ctx;
    c->multi = curl_multi_init();
    if (!c->multi)
        return -1;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    /* A stream, a keepalive and a write in flight at most, plus a spare. */
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 8L);
    return 0;
}

etcd_call_t *etcd_post(etcd_client_t *c, const char *path, const char *body, size_t n,
                       long timeout_ms, size_t max_body, etcd_data_fn data, etcd_done_fn done,
                       void *arg)
{
    etcd_call_t *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    char url[1024];
    k->c = c;
    k->endpoint = c->cur;
    k->data = data;
    k->done = done;
    k->arg = arg;
    sbuf_init(&k->body, 0, max_body ? max_body : 1);
    snprintf(url, sizeof(url), "%s%s", c->cfg.endpoints[c->cur], path);
    k->easy = curl_easy_init();
    k->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h2 = k->headers ? curl_slist_append(k->headers, "Expect:") : NULL;
    if (!k->easy || !h2) {
        curl_slist_free_all(k->headers);
        if (k->easy)
            curl_easy_cleanup(k->easy);
        sbuf_free(&k->body);
        free(k);
        return NULL;
    }
    k->headers = h2;
    CURL *e = k->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, k);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, k->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)n);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, k->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->cfg.dial_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    /* A member that vanishes without a reset (node loss, partition) ends a stream
     * in seconds, not at the kernel's two-hour default. */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 5L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 2L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (c->cfg.ca_file && *c->cfg.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->cfg.ca_file);
    if (c->cfg.cert_file && *c->cfg.cert_file)
        curl_easy_setopt(e, CURLOPT_SSLCERT, c->cfg.cert_file);
    if (c->cfg.key_file && *c->cfg.key_file)
        curl_easy_setopt(e, CURLOPT_SSLKEY, c->cfg.key_file);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(k->headers);
        sbuf_free(&k->body);
        free(k);
        return NULL;
    }
    k->next = c->calls_head;
    if (k->next)
        k->next->prev = k;
    c->calls_head = k;
    c->ncalls++;
    c->calls++;
    return k;
}

void etcd_cancel(etcd_client_t *c, etcd_call_t *k)
{
    (void)c;
    if (!k)
        return;
    call_unlink(k);
    call_free(k);
}

size_t etcd_call_endpoint(const etcd_call_t *k) { return k->endpoint; }

const char *etcd_endpoint(const etcd_client_t *c) { return c->cfg.endpoints[c->cur]; }

void etcd_next_endpoint(etcd_client_t *c, size_t failed)
{
    /* Several calls fail together when a member goes: move once, not per call. */
    if (failed != c->cur || c->cfg.nendpoints < 2)
        return;
    c->cur = (c->cur + 1) % c->cfg.nendpoints;
    c->switches++;
    LOG_INFO("etcd: switching endpoint", LF_STR("to", c->cfg.endpoints[c->cur]));
}

void etcd_client_free(etcd_client_t *c)
{
    while (c->calls_head)
        etcd_cancel(c, c->calls_head);
    loop_timer_cancel(&c->timer);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks)
        sockw_free(c, c->socks);
}
