#include "modem.h"

#include <stdlib.h>
#include <string.h>

typedef struct modem_req {
    loop_timer_t sul; /* first: the timer callback gets this pointer */
    uint64_t   id;
    modem_t   *m;
    modem_cb_t cb;
    void      *arg;
} modem_req_t;

void modem_init(modem_t *m, struct lws_context *ctx, modem_send_t send, void *owner,
                size_t max_pending)
{
    memset(m, 0, sizeof(*m));
    m->ctx = ctx;
    m->send = send;
    m->owner = owner;
    m->max_pending = max_pending ? max_pending : 100000;
    hmap_init(&m->pending);
}

static uint64_t take_id(modem_t *m)
{
    uint64_t id = m->next_id;
    m->next_id = id >= FRAME_ID_MAX - 1 ? 0 : id + 1;
    return id;
}

static int send_frame(modem_t *m, sbuf_t *b)
{
    if (b->err) {
        sbuf_free(b);
        return MODEM_E_SEND;
    }
    int rc = m->send(m->owner, b);
    sbuf_free(b); /* no-op when the sender stole the buffer */
    return rc ? MODEM_E_SEND : 0;
}

static void req_free(modem_req_t *r)
{
    loop_timer_cancel(&r->sul);
    free(r);
}

static void on_timeout(loop_timer_t *t)
{
    modem_req_t *r = (modem_req_t *)t;
    modem_t *m = r->m;
    hmap_del(&m->pending, &r->id, sizeof(r->id));
    sbuf_t b;
    sbuf_init(&b, WSMSG_HEADROOM, 0);
    frame_put_abort(&b, take_id(m), r->id);
    send_frame(m, &b);
    modem_cb_t cb = r->cb;
    void *arg = r->arg;
    free(r);
    cb(arg, MODEM_E_TIMEOUT, NULL);
}

int modem_request(modem_t *m, const char *url, size_t url_len, const char *payload,
                  size_t payload_len, int64_t timeout_ms, modem_cb_t cb, void *arg,
                  uint64_t *id_out)
{
    if (hmap_len(&m->pending) >= m->max_pending)
        return MODEM_E_FULL;
    modem_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return MODEM_E_SEND;
    r->id = take_id(m);
    r->m = m;
    r->cb = cb;
    r->arg = arg;
    sbuf_t b;
    sbuf_init(&b, WSMSG_HEADROOM, 0);
    frame_put_request(&b, r->id, true, url, url_len, payload, payload_len);
    int rc = send_frame(m, &b);
    if (rc) {
        free(r);
        return rc;
    }
    int err;
    /* An id still pending after a full wrap of 2^53 ids would be a leak elsewhere;
     * replacing it keeps the table consistent. */
    modem_req_t *old = hmap_put(&m->pending, &r->id, sizeof(r->id), r, &err);
    if (err) {
        free(r);
        return MODEM_E_SEND;
    }
    if (old) {
        modem_cb_t ocb = old->cb;
        void *oarg = old->arg;
        req_free(old);
        ocb(oarg, MODEM_E_CLOSED, NULL);
    }
    if (timeout_ms > 0)
        loop_timer_schedule(m->ctx, &r->sul, on_timeout, timeout_ms * LWS_US_PER_MS);
    if (id_out)
        *id_out = r->id;
    return 0;
}

int modem_push(modem_t *m, const char *url, size_t url_len, const char *payload,
               size_t payload_len)
{
    sbuf_t b;
    sbuf_init(&b, WSMSG_HEADROOM, 0);
    frame_put_request(&b, take_id(m), false, url, url_len, payload, payload_len);
    return send_frame(m, &b);
}

int modem_cancel(modem_t *m, uint64_t id)
{
    modem_req_t *r = hmap_del(&m->pending, &id, sizeof(id));
    if (!r)
        return -1;
    req_free(r);
    sbuf_t b;
    sbuf_init(&b, WSMSG_HEADROOM, 0);
    frame_put_abort(&b, take_id(m), id);
    send_frame(m, &b);
    return 0;
}

int modem_on_response(modem_t *m, const frame_t *f)
{
    modem_req_t *r = hmap_del(&m->pending, &f->id, sizeof(f->id));
    if (!r) {
        m->late++;
        return 0;
    }
    modem_cb_t cb = r->cb;
    void *arg = r->arg;
    req_free(r);
    cb(arg, f->status == 200 ? 200 : (f->status ? f->status : 500), f);
    return 1;
}

int modem_on_bad_response(modem_t *m, uint64_t id)
{
    modem_req_t *r = hmap_del(&m->pending, &id, sizeof(id));
    if (!r)
        return 0;
    modem_cb_t cb = r->cb;
    void *arg = r->arg;
    req_free(r);
    cb(arg, MODEM_E_BADFRAME, NULL);
    return 1;
}

void modem_close(modem_t *m)
{
    /* Callbacks may start new requests elsewhere; detach the table first. */
    hmap_t pending = m->pending;
    hmap_init(&m->pending);
    void *v;
    for (size_t it = 0; (it = hmap_next(&pending, it, &v)) != 0;) {
        modem_req_t *r = v;
        loop_timer_cancel(&r->sul);
    }
    for (size_t it = 0; (it = hmap_next(&pending, it, &v)) != 0;) {
        modem_req_t *r = v;
        r->cb(r->arg, MODEM_E_CLOSED, NULL);
        free(r);
    }
    hmap_free(&pending);
}

int modem_respond_ok(modem_t *m, uint64_t id, const char *result, size_t len)
{
    sbuf_t b;
    sbuf_init(&b, WSMSG_HEADROOM, 0);
    frame_put_response_ok(&b, id, result, len);
    return send_frame(m, &b);
}

int modem_respond_err(modem_t *m, uint64_t id, int status, const char *msg)
{
    sbuf_t b;
    sbuf_init(&b, WSMSG_HEADROOM, 0);
    frame_put_response_err(&b, id, status, msg, msg ? strlen(msg) : 0);
    return send_frame(m, &b);
}

int modem_respond_limited(modem_t *m, uint64_t id, const char *msg, double retry_after)
{
    sbuf_t b;
    sbuf_init(&b, WSMSG_HEADROOM, 0);
    frame_put_response_limited(&b, id, msg, msg ? strlen(msg) : 0, retry_after);
    return send_frame(m, &b);
}

size_t modem_pending(const modem_t *m) { return hmap_len(&m->pending); }

const char *modem_strerror(int status)
{
    switch (status) {
    case MODEM_E_TIMEOUT: return "Abort";
    case MODEM_E_CLOSED: return "Abort: connection closed";
    case MODEM_E_SEND: return "could not send: connection closed or its queue is full";
    case MODEM_E_FULL: return "too many requests in flight on this connection";
    case MODEM_E_BADFRAME: return "the peer answered with a RESPONSE that is not a valid frame (e.g. not UTF-8)";
    }
    return "peer error";
}
