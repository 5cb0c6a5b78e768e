#include "wsconn.h"
#include "log.h"
#include "util.h"
#include "wsframe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Per-session data lws allocates for every wsi of our protocol: only plain HTTP
 * uses it (the answer waiting for WRITEABLE). WebSocket state is the wsconn,
 * held as the wsi's opaque user data. */
typedef struct pss {
    char  *body;
    size_t len;
    int    status;
    const char *ctype;
} pss_t;

/* An outbound connection is an lws raw socket on which we speak RFC 6455 as the
 * client (wsframe.h says why): the handshake, then frames both ways. */
struct wsclient {
    char      key[25];   /* Sec-WebSocket-Key */
    char     *path;      /* handshake path and query */
    sbuf_t    hs;        /* the server's answer until its blank line */
    bool      open;      /* handshake done */
    wsf_rx_t  rx;
    /* What the socket did not take yet. We write to the socket ourselves rather
     * than hand lws a partial write: lws's raw role stops reading while it holds
     * unsent output, and a peer waiting for us to read would then never drain it. */
    sbuf_t    out;
    size_t    outoff;    /* bytes of `out` already sent */
    int       close_code;             /* wsconn_close_code's, for the close frame */
    char      close_reason[64];
};
#define WSCLIENT_HS_MAX 8192 /* a longer handshake answer is refused */

/* The modem's send hook: wsconn_send with the owner pointer the modem holds.
 * (Calling wsconn_send through a modem_send_t cast would be undefined behaviour:
 * the parameter types differ.) */
static int modem_send(void *owner, sbuf_t *frame)
{
    return wsconn_send(owner, frame);
}

static wsconn_t *conn_new(wsnet_t *n, void *user)
{
    wsconn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->net = n;
    c->user = user;
    c->ns = "";
    c->key = "";
    sbuf_init(&c->rx, 0, n->max_frame);
    modem_init(&c->modem, n->ctx, modem_send, c, n->max_pending);
    return c;
}

/* Gives the reassembly buffer back: its bytes leave the net's budget, and a
 * buffer grown past 64 KiB is freed rather than kept for the next message (an
 * idle connection would otherwise hold its largest message's size for good). */
static void rx_release(wsconn_t *c)
{
    wsnet_t *n = c->net;
    loop_timer_cancel(&c->rx_timer);
    n->rx_bytes -= c->rx_accounted < n->rx_bytes ? c->rx_accounted : n->rx_bytes;
    c->rx_accounted = 0;
    if (c->rx.cap > 65536) {
        size_t limit = c->rx.limit;
        sbuf_free(&c->rx);
        sbuf_init(&c->rx, 0, limit);
    } else {
        sbuf_reset(&c->rx);
    }
}

static void queue_account(wsconn_t *c, size_t add, size_t sub)
{
    wsnet_t *n = c->net;
    c->qbytes += add;
    n->queue_bytes += add;
    c->qbytes -= sub;
    n->queue_bytes -= sub < n->queue_bytes ? sub : n->queue_bytes;
}

/* Frees what conn_new and the set-up made; the connection was never anybody's
 * or conn_finish has told its owner. */
static void conn_free(wsconn_t *c)
{
    loop_timer_cancel(&c->stall_timer);
    loop_timer_cancel(&c->idle_timer);
    modem_close(&c->modem);
    rx_release(c);
    sbuf_free(&c->rx);
    if (*c->ns)
        free(c->ns);
    if (*c->key)
        free(c->key);
    if (c->cl) {
        free(c->cl->path);
        sbuf_free(&c->cl->hs);
        sbuf_free(&c->cl->out);
        free(c->cl);
    }
    free(c);
}

/* A registry holds one connection per instance: the key is allocated to size
 * rather than carried at its 264-byte maximum. */
static int set_key(wsconn_t *c, const char *host, unsigned port)
{
    char k[ADDR_KEY_MAX];
    addr_format_key(host, port, k, sizeof(k));
    char *d = strdup(k);
    if (!d)
        return -1;
    c->key = d;
    return 0;
}

static void queue_clear(wsconn_t *c)
{
    while (c->qhead) {
        wsmsg_t *m = c->qhead;
        c->qhead = m->next;
        free(m);
    }
    c->qtail = NULL;
    queue_account(c, 0, c->qbytes);
}

/* The one place a connection ends: fail what is pending, tell the owner, free. */
static void conn_finish(wsconn_t *c)
{
    wsnet_t *n = c->net;
    loop_timer_cancel(&c->dial_timer);
    if (c->resolving) {
        resolver_cancel(n->resolver, &c->rw);
        c->resolving = false;
    }
    if (c->wsi)
        lws_set_opaque_user_data(c->wsi, NULL);
    c->wsi = NULL;
    c->closing = true;
    if (c->established && n->nconns)
        n->nconns--;
    if (c->established && !c->outbound && n->naccepted)
        n->naccepted--;
    modem_close(&c->modem);
    if (n->ops->on_close)
        n->ops->on_close(c);
    queue_clear(c);
    conn_free(c);
}

/* Outbound connections frame and mask their messages themselves (wsframe.h):
 * the header and a fresh key go into the LWS_PRE bytes every frame is built with
 * in front of its text, and lws writes the finished frame as it is. Inbound
 * ones go through lws's WebSocket server. Returns what lws_write returns. */
_Static_assert(LWS_PRE >= WSF_HDR_MAX, "a client frame header goes in LWS_PRE");
/* Sends what the socket takes now; the rest waits in cl->out (behind anything
 * already waiting) for WRITEABLE. 0, or -1 when the socket is broken. */
static int client_send(wsconn_t *c, const unsigned char *p, size_t n)
{
    struct wsclient *cl = c->cl;
    if (!cl->out.len) {
        ssize_t w = send(lws_get_socket_fd(c->wsi), p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return -1;
            w = 0;
        }
        if ((size_t)w == n)
            return 0;
        p += w;
        n -= (size_t)w;
    }
    if (sbuf_add(&cl->out, (const char *)p, n))
        return -1;
    lws_callback_on_writable(c->wsi);
    return 0;
}

/* WRITEABLE: sends what waits in cl->out. 1 while some is left, 0 when all went,
 * -1 when the socket is broken. */
static int client_drain(wsconn_t *c)
{
    struct wsclient *cl = c->cl;
    if (!cl->out.len)
        return 0;
    ssize_t w = send(lws_get_socket_fd(c->wsi), sbuf_data(&cl->out) + cl->outoff,
                     cl->out.len - cl->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        w = 0;
    }
    cl->outoff += (size_t)w;
    if (cl->outoff < cl->out.len) {
        lws_callback_on_writable(c->wsi);
        return 1;
    }
    sbuf_reset(&cl->out);
    cl->outoff = 0;
    return 0;
}

static int write_client_frame(wsconn_t *c, int op, unsigned char *payload, size_t len)
{
    unsigned char key[4], h[WSF_HDR_MAX];
    if (lws_get_random(c->net->ctx, key, sizeof(key)) != sizeof(key))
        return -1;
    size_t hl = wsf_header(h, op, len, key);
    memcpy(payload - hl, h, hl);
    wsf_mask(payload, len, key);
    return client_send(c, payload - hl, hl + len) ? -1 : (int)len;
}

static int write_text(wsconn_t *c, unsigned char *text, size_t len)
{
    if (c->cl)
        return write_client_frame(c, WSF_OP_TEXT, text, len);
    return lws_write(c->wsi, text, len, LWS_WRITE_TEXT);
}

/* A control frame to the server (close, pong): small, so built on the stack. */
static int write_client_control(wsconn_t *c, int op, const unsigned char *p, size_t n)
{
    unsigned char buf[LWS_PRE + 125];
    if (n > 125)
        n = 125;
    memcpy(buf + LWS_PRE, p, n);
    return write_client_frame(c, op, buf + LWS_PRE, n);
}

static void write_client_close(wsconn_t *c, int code, const char *reason)
{
    unsigned char b[2 + 64];
    size_t n = 0;
    if (code) {
        b[0] = (unsigned char)(code >> 8);
        b[1] = (unsigned char)code;
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > 64)
            rl = 64;
        memcpy(b + 2, reason, rl);
        n = 2 + rl;
    }
    write_client_control(c, WSF_OP_CLOSE, b, n);
}

static void kill_now_or_soon(wsconn_t *c)
{
    c->closing = true;
    if (c->wsi)
        loop_kill_async(c->wsi);
}

static void stall_expired(loop_timer_t *t)
{
    wsconn_t *c = lws_container_of(t, wsconn_t, stall_timer);
    c->stall_armed = false;
    if (c->closing || !c->wsi || !c->qbytes)
        return;
    if (c->last_drain_ms >= c->stall_since_ms) {
        /* it took some since: slow, not stalled; look again later */
        c->stall_since_ms = now_ms();
        c->stall_armed = true;
        loop_timer_schedule(c->net->ctx, &c->stall_timer, stall_expired, c->net->stall_timeout_ms * LWS_US_PER_MS);
        return;
    }
    c->net->stats.send_stalls++;
    LOG_WARN("peer does not read, closing", LF_STR("peer", c->key), LF_UINT("queued", c->qbytes),
             LF_INT("stall_timeout_ms", c->net->stall_timeout_ms));
    kill_now_or_soon(c); /* it would not read a close frame either */
}

/* Its queue is past half, or the net's budget refused it a send: a peer that
 * takes nothing from its queue until the deadline is closed. */
static void start_stall(wsconn_t *c)
{
    if (c->net->stall_timeout_ms <= 0 || c->stall_armed || c->closing)
        return;
    c->stall_armed = true;
    c->stall_since_ms = now_ms();
    loop_timer_schedule(c->net->ctx, &c->stall_timer, stall_expired, c->net->stall_timeout_ms * LWS_US_PER_MS);
}

int wsconn_send(wsconn_t *c, sbuf_t *frame)
{
    if (c->closing || !c->wsi || frame->err)
        return -1;
    if (frame->len > c->net->max_frame || c->qbytes + frame->len > c->net->max_queue) {
        c->net->stats.queue_full++;
        return -1;
    }
    c->last_active_ms = now_ms();
    /* The frame was built with WSMSG_HEADROOM in front: its allocation becomes the
     * queue entry as it is, no copy. */
    size_t len = frame->len;
    if (frame->head != WSMSG_HEADROOM || !frame->buf)
        return -1;
    /* Nothing queued and nothing half-sent: write now instead of waiting a loop
     * pass for WRITEABLE (on epoll that wait also costs two epoll_ctl). A short
     * write is kept by lws, which asks for WRITEABLE itself and finishes it before
     * anything else goes out; later frames queue behind it as usual. */
    if (c->established && !c->qhead &&
        (c->cl ? !c->cl->out.len : !lws_partial_buffered(c->wsi))) {
        int w = write_text(c, (unsigned char *)sbuf_data(frame), len);
        sbuf_free(frame);
        if (w < 0) { /* the socket is gone: close it, the close fails what it carried */
            c->closing = true;
            loop_kill_async(c->wsi);
            return -1;
        }
        c->net->stats.frames_out++;
        return 0;
    }
    /* What waits is counted against the net's budget too: a few peers that never
     * read must not fill the process with their answers. */
    if (c->net->queue_budget && c->net->queue_bytes + len > c->net->queue_budget) {
        c->net->stats.queue_full++;
        start_stall(c);
        return -1;
    }
    wsmsg_t *m = (wsmsg_t *)sbuf_steal(frame);
    m->next = NULL;
    m->len = len;
    if (c->qtail)
        c->qtail->next = m;
    else
        c->qhead = m;
    c->qtail = m;
    queue_account(c, len, 0);
    if (c->established)
        lws_callback_on_writable(c->wsi);
    /* Backpressure: a peer that does not read its answers stops being read, and
     * is closed if it still does not read by the stall deadline. */
    if (!c->rx_paused && c->qbytes > c->net->max_queue / 2) {
        c->rx_paused = true;
        lws_rx_flow_control(c->wsi, 0);
        start_stall(c);
    }
    return 0;
}

static int flush_queue(wsconn_t *c)
{
    /* WRITEABLE means the socket takes at least one write; only further writes
     * ask lws_send_pipe_choked(), which costs a poll() syscall each. */
    bool first = true;
    while (c->qhead && (c->cl ? !c->cl->out.len : first || !lws_send_pipe_choked(c->wsi))) {
        wsmsg_t *m = c->qhead;
        int w = write_text(c, (unsigned char *)m + WSMSG_HEADROOM, m->len);
        first = false;
        c->qhead = m->next;
        if (!c->qhead)
            c->qtail = NULL;
        queue_account(c, 0, m->len);
        free(m);
        if (w < 0)
            return -1;
        c->last_drain_ms = now_ms();
        c->net->stats.frames_out++;
    }
    if (c->qhead)
        lws_callback_on_writable(c->wsi);
    if (c->rx_paused && c->qbytes <= c->net->max_queue / 4) {
        c->rx_paused = false;
        lws_rx_flow_control(c->wsi, 1);
    }
    if (!c->qhead && c->stall_armed) {
        c->stall_armed = false;
        loop_timer_cancel(&c->stall_timer); /* all sent */
    }
    return 0;
}

#define XSTR_(x) #x
#define XSTR(x)  XSTR_(x)

/* A frame refused for its depth, whose id and mode could be read: its sender is
 * told at once instead of waiting out its timeout. A REQUEST gets an error
 * RESPONSE; a RESPONSE fails the request it answers with 502. */
static void too_deep(wsconn_t *c, frame_t *f)
{
    static const char answer_msg[] =
        "\"the answer is nested deeper than " XSTR(JSCAN_MAX_DEPTH) " levels\"";
    LOG_DEBUG("frame nested too deeply", LF_STR("peer", c->key), LF_INT("mode", f->mode),
              LF_UINT("id", f->id), LF_INT("limit", FRAME_MAX_DEPTH));
    if (f->mode == FRAME_REQUEST && f->twoway) {
        modem_respond_err(&c->modem, f->id, 400,
                          "the payload is nested deeper than " XSTR(JSCAN_MAX_DEPTH) " levels");
    } else if (f->mode == FRAME_RESPONSE) {
        f->status = 502;
        f->status_raw = (jspan_t){"502", 3, JT_NUMBER};
        f->result = (jspan_t){NULL, 0, JT_NONE};
        f->message = (jspan_t){answer_msg, sizeof(answer_msg) - 1, JT_STRING};
        f->retry_after = 0;
        modem_on_response(&c->modem, f);
    }
}

static void dispatch(wsconn_t *c, const char *buf, size_t len)
{
    wsnet_t *n = c->net;
    frame_t f;
    int rc = frame_decode(buf, len, &f);
    n->stats.frames_in++;
    if (rc) {
        /* The reference ignores what it cannot parse; we count it and go on. */
        n->stats.bad_frames++;
        if (rc == FRAME_E_DEPTH && f.mode >= 0) {
            too_deep(c, &f);
            return;
        }
        LOG_DEBUG("bad frame dropped", LF_STR("peer", c->key), LF_STR("err", frame_strerror(rc)),
                  LF_UINT("len", len));
        /* a RESPONSE we cannot read still names the request it answers: fail
         * that call now rather than let it wait out its timeout */
        uint64_t id;
        int mode;
        if (frame_salvage_id(buf, len, &id, &mode) == 0 && mode == FRAME_RESPONSE)
            modem_on_bad_response(&c->modem, id);
        return;
    }
    switch (f.mode) {
    case FRAME_RESPONSE:
        modem_on_response(&c->modem, &f);
        break;
    case FRAME_REQUEST:
        n->ops->on_request(c, &f);
        break;
    case FRAME_ABORT:
        if (n->ops->on_abort)
            n->ops->on_abort(c, f.target);
        break;
    }
}

/* A piece of a message: first/final mark the message's ends, `more` is what is
 * left of the current frame. One whole frame is dispatched in place; anything in
 * pieces is reassembled, up to max_frame. Returns 0, or 1009 for too large. */
static void frame_expired(loop_timer_t *t)
{
    wsconn_t *c = lws_container_of(t, wsconn_t, rx_timer);
    if (c->closing || !c->wsi)
        return;
    c->net->stats.frame_timeouts++;
    LOG_WARN("message not completed in time, closing", LF_STR("peer", c->key),
             LF_UINT("received", c->rx.len), LF_INT("frame_timeout_ms", c->net->frame_timeout_ms));
    rx_release(c); /* its memory goes now, not when the peer lets the close through */
    wsconn_close_code(c, 1008, "message not completed in time");
}

static int take_piece(wsconn_t *c, const char *in, size_t len, bool first, bool final,
                      uint64_t more)
{
    wsnet_t *n = c->net;
    c->last_active_ms = now_ms();
    if (first && c->rx.len)
        rx_release(c);
    if (c->rx.len + len + more > n->max_frame) {
        n->stats.oversized++;
        LOG_WARN("frame too large, closing", LF_STR("peer", c->key), LF_UINT("limit", n->max_frame));
        return WSF_CLOSE_TOO_BIG;
    }
    if (first && final && !more) {
        dispatch(c, in, len); /* the common case: no copy */
        return 0;
    }
    /* Reassembly: counted against the net's budget (by allocation, as the buffer
     * grows), and due by the frame timeout. */
    if (n->rx_budget && n->rx_bytes + len + (more < n->max_frame ? more : n->max_frame) > n->rx_budget) {
        n->stats.assembly_refused++;
        LOG_WARN("too many bytes of messages in assembly, closing", LF_STR("peer", c->key),
                 LF_UINT("budget", n->rx_budget));
        rx_release(c);
        return WSF_CLOSE_TRY_AGAIN;
    }
    if (!c->rx.len && n->frame_timeout_ms > 0)
        loop_timer_schedule(n->ctx, &c->rx_timer, frame_expired, n->frame_timeout_ms * LWS_US_PER_MS);
    int rc = sbuf_add(&c->rx, in, len);
    n->rx_bytes += c->rx.cap - c->rx_accounted;
    c->rx_accounted = c->rx.cap;
    if (rc)
        return WSF_CLOSE_TOO_BIG;
    if (final && !more) {
        dispatch(c, sbuf_data(&c->rx), c->rx.len);
        rx_release(c);
    }
    return 0;
}

static int on_receive(wsconn_t *c, struct lws *wsi, const char *in, size_t len)
{
    bool first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
    size_t more = lws_remaining_packet_payload(wsi);
    /* RFC 6455 §8.1: a text message that is not UTF-8 fails the connection (1007).
     * lws's own LWS_SERVER_OPTION_VALIDATE_UTF8 let such frames through. */
    if (!lws_frame_is_binary(wsi)) {
        if (first)
            utf8_stream_reset(&c->rx_utf8);
        if (!utf8_stream_feed(&c->rx_utf8, in, len) ||
            (final && !more && !utf8_stream_complete(&c->rx_utf8))) {
            c->net->stats.bad_frames++;
            LOG_DEBUG("text message is not UTF-8, closing", LF_STR("peer", c->key));
            lws_close_reason(wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, (unsigned char *)"invalid UTF-8", 13);
            return -1;
        }
    }
    int rc = take_piece(c, in, len, first, final, more);
    if (rc == WSF_CLOSE_TRY_AGAIN) {
        lws_close_reason(wsi, (enum lws_close_status)WSF_CLOSE_TRY_AGAIN, (unsigned char *)"try again later", 15);
        return -1;
    }
    if (rc) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)"message too large", 17);
        return -1;
    }
    return 0;
}

/* ---- the client side: our RFC 6455 on an lws raw socket ---- */

static int client_data(void *arg, const unsigned char *p, size_t n, bool first, bool final,
                       uint64_t more)
{
    wsconn_t *c = arg;
    if (c->closing)
        return -1;
    return take_piece(c, (const char *)p, n, first, final, more);
}

static int client_control(void *arg, int op, const unsigned char *p, size_t n)
{
    wsconn_t *c = arg;
    switch (op) {
    case WSF_OP_PING:
        write_client_control(c, WSF_OP_PONG, p, n);
        return 0;
    case WSF_OP_CLOSE:
        /* answer with the server's code, as RFC 6455 §5.5.1 asks, and go */
        LOG_DEBUG("server closed the connection", LF_STR("peer", c->key),
                  LF_INT("code", n >= 2 ? (p[0] << 8 | p[1]) : 1005));
        c->closing = true;
        write_client_control(c, WSF_OP_CLOSE, p, n >= 2 ? 2 : 0);
        return -1;
    default: /* a pong */
        return 0;
    }
}

static const wsf_rx_ops_t client_rx_ops = {client_data, client_control};

static void established(wsconn_t *c);

/* Bytes from the server: the handshake answer first, then frames. Returns -1
 * when the connection must close. */
static int client_rx(wsconn_t *c, const unsigned char *in, size_t len)
{
    struct wsclient *cl = c->cl;
    if (!cl->open) {
        if (sbuf_add(&cl->hs, (const char *)in, len) || cl->hs.len > WSCLIENT_HS_MAX) {
            LOG_DEBUG("dial failed", LF_STR("peer", c->key),
                      LF_STR("err", "handshake answer too long"));
            c->net->stats.dial_failures++;
            return -1;
        }
        const char *why = NULL;
        long hl = wsf_handshake_response(sbuf_data(&cl->hs), cl->hs.len, cl->key, &why);
        if (hl == 0)
            return 0;
        if (hl < 0) {
            LOG_DEBUG("dial failed", LF_STR("peer", c->key), LF_STR("err", why));
            c->net->stats.dial_failures++;
            return -1;
        }
        if (c->closing) /* closed by its owner while the handshake ran */
            return -1;
        cl->open = true;
        size_t rest = cl->hs.len - (size_t)hl;
        char *frames = rest ? malloc(rest) : NULL;
        if (rest && !frames)
            return -1;
        if (rest)
            memcpy(frames, sbuf_data(&cl->hs) + hl, rest);
        sbuf_free(&cl->hs);
        established(c);
        int rc = rest ? client_rx(c, (const unsigned char *)frames, rest) : 0;
        free(frames);
        return rc;
    }
    int rc = wsf_rx_feed(&cl->rx, in, len, &client_rx_ops, c);
    if (rc > 0) {
        if (rc == WSF_CLOSE_PROTOCOL) {
            c->net->stats.bad_frames++;
            LOG_WARN("protocol error from the server, closing", LF_STR("peer", c->key));
        }
        c->closing = true;
        write_client_close(c, rc, rc == WSF_CLOSE_TOO_BIG     ? "message too large"
                                  : rc == WSF_CLOSE_INVALID   ? "invalid UTF-8"
                                  : rc == WSF_CLOSE_TRY_AGAIN ? "try again later"
                                                              : "protocol error");
    }
    return rc ? -1 : 0;
}

static int client_connected(wsconn_t *c)
{
    struct wsclient *cl = c->cl;
    unsigned char rnd[16];
    char req[LWS_PRE + 2048];
    if (lws_get_random(c->net->ctx, rnd, sizeof(rnd)) != sizeof(rnd))
        return -1;
    wsf_handshake_key(cl->key, rnd);
    size_t n = wsf_handshake_request(req + LWS_PRE, sizeof(req) - LWS_PRE, cl->path, c->key, cl->key);
    if (!n)
        return -1;
    return lws_write(c->wsi, (unsigned char *)req + LWS_PRE, n, LWS_WRITE_RAW) < 0 ? -1 : 0;
}

static void idle_check(loop_timer_t *t)
{
    wsconn_t *c = lws_container_of(t, wsconn_t, idle_timer);
    wsnet_t *n = c->net;
    if (c->closing || !c->wsi)
        return;
    int64_t idle = now_ms() - c->last_active_ms;
    if (idle < n->idle_timeout_ms || modem_pending(&c->modem) || (n->ops->busy && n->ops->busy(c))) {
        /* active since, or waiting for answers: look again when it could be idle */
        int64_t wait = idle < n->idle_timeout_ms ? n->idle_timeout_ms - idle : n->idle_timeout_ms;
        loop_timer_schedule(n->ctx, t, idle_check, wait * LWS_US_PER_MS);
        return;
    }
    n->stats.idle_closes++;
    LOG_DEBUG("idle peer connection, closing", LF_STR("peer", c->key), LF_INT("idle_ms", idle));
    wsconn_close(c);
}

static void established(wsconn_t *c)
{
    c->established = true;
    c->net->nconns++;
    c->last_active_ms = now_ms();
    if (c->net->idle_timeout_ms > 0)
        loop_timer_schedule(c->net->ctx, &c->idle_timer, idle_check, c->net->idle_timeout_ms * LWS_US_PER_MS);
    loop_timer_cancel(&c->dial_timer);
    if (c->net->ops->on_open)
        c->net->ops->on_open(c);
    if (c->qhead && c->wsi)
        lws_callback_on_writable(c->wsi);
}

/* ---- plain HTTP on the listening port ---- */

static int http_request(wsnet_t *n, struct lws *wsi, pss_t *pss, const char *path)
{
    http_reply_t r = {.status = 0, .ctype = "application/json"};
    sbuf_init(&r.body, 0, 0);
    n->stats.http_requests++;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        r.status = 405;
        sbuf_adds(&r.body, "{\"error\":\"method not allowed\"}");
    } else if (n->ops->http) {
        n->ops->http(n, path, &r);
    }
    if (!r.status) {
        r.status = 404;
        sbuf_reset(&r.body);
        sbuf_adds(&r.body, "{\"error\":\"not found\"}");
    }
    pss->status = r.status;
    pss->ctype = r.ctype;
    pss->len = r.body.len;
    pss->body = r.body.len ? strdup(sbuf_data(&r.body)) : NULL;
    sbuf_free(&r.body);
    if (n->listening) /* a keep-alive client that keeps asking keeps its connection */
        listener_touch(&n->listener, wsi);
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_writeable(struct lws *wsi, pss_t *pss)
{
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
    if (!pss->status)
        return 0;
    if (lws_add_http_common_headers(wsi, (unsigned)pss->status, pss->ctype, pss->len, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    int rc = 0;
    if (pss->len) {
        unsigned char *buf = malloc(LWS_PRE + pss->len);
        if (!buf)
            return -1;
        memcpy(buf + LWS_PRE, pss->body, pss->len);
        rc = lws_write(wsi, buf + LWS_PRE, pss->len, LWS_WRITE_HTTP_FINAL) < 0;
        free(buf);
    }
    free(pss->body);
    pss->body = NULL;
    pss->status = 0;
    if (rc)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- the protocol callback ---- */

int wsconn_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                        void *in, size_t len)
{
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    wsnet_t *n = proto ? proto->user : NULL;
    wsconn_t *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    pss_t *pss = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return n ? http_request(n, wsi, pss, in ? in : "/") : -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_writeable(wsi, pss);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss) {
            free(pss->body);
            pss->body = NULL;
            pss->status = 0;
        }
        break;

    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char path[1024];
        addr_t caller;
        const char *ns;
        size_t nslen;
        if (!n || lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0)
            return -1;
        int rc = addr_parse_handshake(path, strlen(path), &caller, &ns, &nslen);
        if (rc) {
            n->stats.conns_rejected++;
            LOG_INFO("handshake refused", LF_STRN("path", path, 64),
                     LF_STR("err", addr_strerror(rc)));
            return -1;
        }
        if (n->naccepted >= n->max_conns) {
            n->stats.conns_rejected++;
            LOG_WARN("connection limit reached, refusing peer", LF_UINT("limit", n->max_conns));
            return -1;
        }
        char nsbuf[ADDR_NS_MAX];
        memcpy(nsbuf, ns, nslen);
        nsbuf[nslen] = '\0';
        if (n->ops->accept && n->ops->accept(n, wsi, &caller, nsbuf)) {
            n->stats.conns_rejected++;
            return -1;
        }
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED: {
        char path[1024];
        const char *ns;
        size_t nslen;
        if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0)
            return -1;
        c = conn_new(n, NULL);
        if (!c)
            return -1;
        addr_t peer;
        if (addr_parse_handshake(path, strlen(path), &peer, &ns, &nslen) || !nslen) {
            conn_free(c); /* FILTER let it through, so this does not happen */
            return -1;
        }
        c->ns = strndup(ns, nslen);
        if (!c->ns)
            c->ns = "";
        if (!*c->ns || set_key(c, peer.host, peer.port)) {
            conn_free(c);
            return -1;
        }
        c->wsi = wsi;
        lws_set_opaque_user_data(wsi, c);
        listener_established(n->listening ? &n->listener : NULL, wsi);
        n->stats.conns_accepted++;
        n->naccepted++;
        established(c);
        break;
    }
    case LWS_CALLBACK_RAW_CONNECTED: /* outbound: send the handshake */
        return c && c->cl ? client_connected(c) : 0;
    case LWS_CALLBACK_RAW_RX:
        if (!c || !c->cl)
            return -1;
        return client_rx(c, in, len);
    case LWS_CALLBACK_RAW_WRITEABLE:
        if (!c || !c->cl || !c->cl->open)
            return 0;
        switch (client_drain(c)) {
        case -1: return -1;
        case 1: return 0; /* the rest at the next WRITEABLE */
        }
        if (c->closing) {
            /* empty unless wsconn_close_code gave one, as the reference sends */
            write_client_close(c, c->cl->close_code, c->cl->close_reason);
            client_drain(c);
            return -1;
        }
        return flush_queue(c);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c && c->dialing) { /* inside wsconn_dial: it cleans up */
            c->dial_failed = true;
            lws_set_opaque_user_data(wsi, NULL);
        } else if (c) {
            n->stats.dial_failures++;
            LOG_DEBUG("dial failed", LF_STR("peer", c->key),
                      LF_STR("err", in ? (const char *)in : "?"));
            conn_finish(c);
        }
        break;
    case LWS_CALLBACK_RECEIVE:
        if (!c || c->closing)
            return c ? -1 : 0;
        return on_receive(c, wsi, in, len);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* lws echoes the peer's close payload as it is; a reason that is not UTF-8
         * is answered with 1007 instead, a 1-byte payload or a code that may not
         * be sent with 1002 (RFC 6455 §5.5.1, §7.4). */
        if (len == 1 || (len >= 2 && !wsf_close_code_ok((unsigned)((unsigned char *)in)[0] << 8 |
                                                        ((unsigned char *)in)[1]))) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"protocol error", 14);
            return -1;
        }
        if (len > 2 && !utf8_valid((const char *)in + 2, len - 2)) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, (unsigned char *)"invalid UTF-8", 13);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c)
            return 0;
        if (c->closing) {
            /* An empty close frame, as the reference sends: the peer sees 1005.
             * (lws_close_reason with NOSTATUS would put an invalid code 0 on the
             * wire.) */
            unsigned char cb[LWS_PRE + 2];
            lws_write(wsi, cb + LWS_PRE, 0, (enum lws_write_protocol)4 /* LWS_WRITE_CLOSE, internal */);
            return -1;
        }
        return flush_queue(c);
    case LWS_CALLBACK_CLOSED:
        if (c)
            conn_finish(c);
        break;
    case LWS_CALLBACK_WSI_DESTROY: {
        /* lws may deliver this through protocols[0] whatever the wsi is bound
         * to: find our net through the vhost, never through proto->user */
        struct lws_vhost *vh = lws_get_vhost(wsi);
        wsnet_t *vn = vh ? lws_vhost_user(vh) : NULL;
        if (vn && vn->listening)
            listener_done(&vn->listener, wsi);
        if (!proto || proto->callback != wsconn_lws_callback)
            break; /* not one of our connections: its opaque data is not a wsconn */
    }
        /* fall through */
    case LWS_CALLBACK_RAW_CLOSE:   /* outbound: the socket is gone */
        /* WSI_DESTROY: one that never reached CONNECTION_ERROR/CLOSED ends here */
        if (c && c->dialing) {
            c->dial_failed = true;
            lws_set_opaque_user_data(wsi, NULL);
        } else if (c) {
            conn_finish(c);
        }
        break;
    default:
        break;
    }
    return 0;
}

/* ---- dialing ---- */

static void dial_timeout(loop_timer_t *t)
{
    wsconn_t *c = lws_container_of(t, wsconn_t, dial_timer);
    if (c->established || !c->wsi)
        return;
    LOG_DEBUG("handshake timeout", LF_STR("peer", c->key));
    loop_kill_async(c->wsi);
}

static void close_deadline(loop_timer_t *t)
{
    wsconn_t *c = lws_container_of(t, wsconn_t, dial_timer);
    if (c->wsi)
        loop_kill_async(c->wsi);
}

/* Hands the numeric address to lws (which still calls getaddrinfo, but on a
 * literal that never leaves the process). The Host header keeps the name we
 * were given (c->key). Returns 0, or -1 when lws failed it at once. */
static int connect_to(wsconn_t *c, const char *address, unsigned port)
{
    wsnet_t *n = c->net;
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof(i));
    i.context = n->ctx;
    i.vhost = wsnet_dial_vhost(n); /* reaches IPv6 peers whatever the bind */
    i.address = address; /* lws keeps its own copies of these */
    i.port = (int)port;
    i.method = "RAW"; /* the WebSocket handshake and frames are ours (wsframe.h) */
    i.host = c->key;
    i.local_protocol_name = n->proto_name;
    i.opaque_user_data = c;
    i.pwsi = &c->wsi;
    c->dialing = true;
    struct lws *wsi = lws_client_connect_via_info(&i);
    c->dialing = false;
    if (!wsi || c->dial_failed) {
        /* the callback, if lws made one, only flagged it */
        c->wsi = NULL;
        return -1;
    }
    if (c->hs_timeout_ms > 0)
        loop_timer_schedule(n->ctx, &c->dial_timer, dial_timeout, c->hs_timeout_ms * LWS_US_PER_MS);
    return 0;
}

/* The resolver's answer, on the loop (never inside wsconn_dial): dial the first
 * address, or end the connection as any failed dial ends. */
static void resolved(void *arg, int err, const resolve_addrs_t *a)
{
    wsconn_t *c = arg;
    wsnet_t *n = c->net;
    c->resolving = false;
    if (!err) {
        if (!connect_to(c, a->addr[0], c->dial_port))
            return;
        LOG_DEBUG("dial failed", LF_STR("peer", c->key), LF_STR("address", a->addr[0]));
    } else {
        c->resolve_err = err;
        LOG_WARN("cannot resolve the host name", LF_STR("peer", c->key),
                 LF_STR("err", resolve_strerror(err)));
    }
    n->stats.dial_failures++;
    conn_finish(c);
}

wsconn_t *wsconn_dial(wsnet_t *n, const addr_t *target, const char *path,
                      int64_t handshake_timeout_ms, void *user)
{
    return wsconn_dial_lane(n, target, path, handshake_timeout_ms, user, RESOLVE_LANE_PEER);
}

wsconn_t *wsconn_dial_lane(wsnet_t *n, const addr_t *target, const char *path,
                           int64_t handshake_timeout_ms, void *user, int lane)
{
    n->last_dial_err = 0;
    wsconn_t *c = conn_new(n, user);
    if (!c)
        return NULL;
    c->outbound = true;
    c->cl = calloc(1, sizeof(*c->cl));
    if (!c->cl || !(c->cl->path = strdup(path)) || set_key(c, target->host, target->port)) {
        conn_free(c);
        return NULL;
    }
    sbuf_init(&c->cl->hs, 0, 0);
    sbuf_init(&c->cl->out, 0, 0);
    wsf_rx_init(&c->cl->rx);
    c->cl->rx.max_msg = n->max_frame;
    c->dial_port = target->port;
    c->hs_timeout_ms = handshake_timeout_ms;
    n->stats.conns_dialed++;

    const char *address = target->host; /* no resolver: lws resolves (tests) */
    resolve_addrs_t addrs;
    if (n->resolver) {
        int rc = resolver_lookup(n->resolver, target->host, lane, &addrs, &c->rw, resolved, c);
        if (rc == 0) { /* under way: resolved() dials, or ends c */
            c->resolving = true;
            return c;
        }
        if (rc < 0) {
            LOG_WARN("cannot resolve the host name", LF_STR("peer", c->key),
                     LF_STR("err", resolve_strerror(rc)));
            n->last_dial_err = rc;
            n->stats.dial_failures++;
            conn_free(c);
            return NULL;
        }
        /* Numeric or cached: dial now. Of several addresses the first is taken,
         * in getaddrinfo's (RFC 6724) order. */
        address = addrs.addr[0];
    }
    if (connect_to(c, address, target->port)) {
        /* failed at once (e.g. a name lws could not resolve): nothing else
         * refers to c */
        n->stats.dial_failures++;
        conn_free(c);
        return NULL;
    }
    return c;
}

static void finish_now(loop_timer_t *t)
{
    conn_finish(lws_container_of(t, wsconn_t, dial_timer));
}

void wsconn_close(wsconn_t *c)
{
    if (c->resolving) {
        /* still waiting for its address: stop waiting and end it from the loop
         * (on_close must not run inside the owner's call) */
        resolver_cancel(c->net->resolver, &c->rw);
        c->resolving = false;
        c->closing = true;
        loop_timer_schedule(c->net->ctx, &c->dial_timer, finish_now, 1);
        return;
    }
    if (c->closing || !c->wsi)
        return;
    c->closing = true;
    if (c->established) {
        /* say goodbye with a close frame from WRITEABLE, like the reference */
        lws_callback_on_writable(c->wsi);
        /* a peer that never lets the close frame out is dropped after 2 s (our
         * timer: lws's own would only be looked at after ~30 s on libev) */
        loop_timer_schedule(c->net->ctx, &c->dial_timer, close_deadline, 2 * LWS_US_PER_SEC);
    } else {
        loop_kill_async(c->wsi);
    }
}

void wsconn_close_code(wsconn_t *c, int code, const char *reason)
{
    if (c->cl) { /* ours: the close frame is written from WRITEABLE */
        c->cl->close_code = code;
        snprintf(c->cl->close_reason, sizeof(c->cl->close_reason), "%s", reason ? reason : "");
    } else if (c->wsi && c->established) {
        lws_close_reason(c->wsi, (enum lws_close_status)code, (unsigned char *)reason,
                         reason ? strlen(reason) : 0);
    }
    wsconn_close(c);
}

/* Whether this host can make IPv6 sockets at all (a kernel booted with
 * ipv6.disable=1, or built without it, cannot). */
static bool ipv6_available(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static struct lws_vhost *vhost_new(wsnet_t *n, const char *name, const char *iface, int port,
                                   uint64_t options, const struct lws_protocols *protocols)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.vhost_name = name;
    info.port = port;
    info.iface = iface;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | options;
    info.user = n; /* WSI_DESTROY finds the net (and its listener) through this */
    info.keepalive_timeout = 60;
    info.timeout_secs = 10;
    /* No lws idle policy (validity pings): a connection stuck inside a frame
     * whose header announced more than will ever come is closed by our own
     * timers instead — the registry's heartbeat eviction, the sidecar's
     * --idle-timeout-ms. lws pings every quiet connection every 20 s, and
     * connections opened together (sidecars reconnecting after a registry
     * restart) come due together: 10,000 at once stalled the registry 0.8 s. */
    return lws_create_vhost(n->ctx, &info);
}

/* lws's own poll() loop (unit tests): lws listens itself, without our accept
 * loop's fd reserve and handshake deadline, which need the libev loop. lws binds
 * an AF_INET6 socket unless LWS_SERVER_OPTION_DISABLE_IPV6, to info.iface when
 * set (an address or an interface name), else to the wildcard; IPV6_V6ONLY is
 * left to the system unless _V6ONLY_MODIFY. */
static int lws_listens(wsnet_t *n, const char *name, const char *bind, int port,
                       const struct lws_protocols *protocols)
{
    const char *iface = NULL;
    uint64_t opts = 0;
    bool dual = false;
    if (!bind || !strcmp(bind, "::")) {
        dual = true; /* IPV6_V6ONLY off: IPv4 peers arrive as ::ffff:a.b.c.d */
        opts = LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY;
        n->bound = "::";
    } else if (!strcmp(bind, "0.0.0.0")) {
        opts = LWS_SERVER_OPTION_DISABLE_IPV6;
    } else {
        iface = bind;
        if (!strchr(bind, ':'))
            opts = LWS_SERVER_OPTION_DISABLE_IPV6;
        else if (!ipv6_available()) {
            /* lws would log that it cannot open the socket and carry on without
             * a listener */
            LOG_ERROR("no IPv6 on this host", LF_STR("bind", bind));
            return -1;
        }
    }
    if (dual && !ipv6_available()) {
        LOG_WARN("no IPv6 on this host: listening on IPv4 only", LF_STR("bind", "::"), LF_INT("port", port));
        opts = LWS_SERVER_OPTION_DISABLE_IPV6;
        n->bound = "0.0.0.0";
    }
    n->vhost = vhost_new(n, name, iface, port, opts, protocols);
    if (!n->vhost)
        return -1;
    if ((opts & LWS_SERVER_OPTION_DISABLE_IPV6) && ipv6_available()) {
        char dname[64];
        snprintf(dname, sizeof(dname), "%s-dial", name);
        n->dial_vhost = vhost_new(n, dname, NULL, CONTEXT_PORT_NO_LISTEN, 0, protocols);
        if (!n->dial_vhost)
            return -1;
    }
    return 0;
}

int wsnet_listen(wsnet_t *n, const char *name, const char *bind, int port,
                 const struct lws_protocols *protocols)
{
    n->bound = bind;
    n->proto_name = protocols[0].name;
    if (port && !loop_is_ev())
        return lws_listens(n, name, bind, port, protocols);
    /* On the libev loop lws never listens itself: our listener (listener.h) accepts
     * and hands sockets to this vhost, which (IPv6 on) also dials both families
     * whatever the bind. */
    n->vhost = vhost_new(n, name, NULL, CONTEXT_PORT_NO_LISTEN, 0, protocols);
    if (!n->vhost)
        return -1;
    if (!port)
        return 0;
    const char *where = bind;
    if (!where || !strcmp(where, "::")) {
        where = "::"; /* IPV6_V6ONLY off: IPv4 peers arrive as ::ffff:a.b.c.d */
        n->bound = "::";
        if (!ipv6_available()) {
            LOG_WARN("no IPv6 on this host: listening on IPv4 only", LF_STR("bind", "::"), LF_INT("port", port));
            where = "0.0.0.0";
            n->bound = "0.0.0.0";
        }
    }
    if (listener_start(&n->listener, n->ctx, n->vhost, where, port, n->handshake_timeout_ms)) {
        LOG_ERROR("cannot listen", LF_STR("bind", where), LF_INT("port", port), LF_STR("err", strerror(errno)));
        return -1;
    }
    n->listening = true;
    return 0;
}

struct lws_vhost *wsnet_dial_vhost(const wsnet_t *n)
{
    return n->dial_vhost ? n->dial_vhost : n->vhost;
}

void wsnet_stop_listening(wsnet_t *n)
{
    if (!n->listening)
        return;
    n->listening = false;
    listener_stop(&n->listener);
}

bool wsconn_token_ok(struct lws *wsi, const char *want)
{
    char buf[512];
    /* lws copies "token=<value>" into buf and returns a pointer to the value */
    const char *got = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof(buf));
    if (!got)
        return false;
    size_t wl = strlen(want), gl = strlen(got);
    unsigned char diff = (unsigned char)(wl != gl);
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)(want[i] ^ (i < gl ? got[i] : 0));
    return diff == 0;
}

int wsconn_token_query(const char *token, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    const char *pre = "token=";
    for (const char *p = pre; *p; p++) {
        if (o + 1 >= outlen)
            return -1;
        out[o++] = *p;
    }
    for (const unsigned char *p = (const unsigned char *)token; *p; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                     *p == '-' || *p == '_' || *p == '.' || *p == '~';
        if (o + (plain ? 1 : 3) >= outlen)
            return -1;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return (int)o;
}

void wsconn_peer_address(struct lws *wsi, char *out, size_t outlen)
{
    char ip[64] = "";
    if (wsi)
        lws_get_peer_simple(wsi, ip, sizeof(ip));
    snprintf(out, outlen, "%s", strncmp(ip, "::ffff:", 7) ? ip : ip + 7);
}
