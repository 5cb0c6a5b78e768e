/* modem: the request table of one connection direction (docs/PROTOCOL.md §3.2). It numbers
 * the frames this side creates, keeps the pending requests with a loop timer each,
 * matches RESPONSEs to them, sends ABORT on timeout or cancel, drops late answers,
 * and fails everything pending when the connection goes away.
 * Owned by the event-loop thread, like the connection that embeds it. */
#ifndef MICRO_MODEM_H
#define MICRO_MODEM_H

#include "frame.h"
#include "hmap.h"
#include "loop.h"

#include <libwebsockets.h>
#include <stdint.h>

/* Headroom every outgoing frame is built with: the send queue's entry header
 * (16 bytes) and what lws_write needs in front of the data. */
#define WSMSG_HEADROOM (16 + LWS_PRE)

/* Local outcomes, beside the peer's own numeric status (200 = success). */
enum {
    MODEM_E_TIMEOUT = -1, /* no answer in time: ABORT was sent ("Abort") */
    MODEM_E_CLOSED = -2,  /* the connection closed with the request pending */
    MODEM_E_SEND = -3,    /* could not be queued (closed, queue full, too big) */
    MODEM_E_FULL = -4,    /* too many requests pending on this connection */
    MODEM_E_BADFRAME = -5,/* the peer's RESPONSE was not a valid frame (id salvaged) */
};

/* Called exactly once per accepted request, from the loop thread. `resp` is the
 * RESPONSE frame when one arrived (its spans point into the receive buffer and
 * are valid only during the call), NULL for local outcomes. */
typedef void (*modem_cb_t)(void *arg, int status, const frame_t *resp);

/* Takes ownership of the frame's buffer (sbuf_steal) or leaves it to be freed;
 * returns 0 when queued. */
typedef int (*modem_send_t)(void *owner, sbuf_t *frame);

typedef struct modem {
    struct lws_context *ctx;
    modem_send_t send;
    void        *owner;
    uint64_t     next_id;
    hmap_t       pending;     /* id → modem_req_t */
    size_t       max_pending;
    uint64_t     late;        /* responses that matched nothing */
} modem_t;

void modem_init(modem_t *m, struct lws_context *ctx, modem_send_t send, void *owner,
                size_t max_pending);
/* Fails all pending requests with MODEM_E_CLOSED, then frees the table. */
void modem_close(modem_t *m);

/* Sends a REQUEST. On success returns 0, stores the id, and `cb` will run exactly
 * once; on failure returns a MODEM_E_* code and `cb` never runs. */
int  modem_request(modem_t *m, const char *url, size_t url_len, const char *payload,
                   size_t payload_len, int64_t timeout_ms, modem_cb_t cb, void *arg,
                   uint64_t *id_out);
/* Sends a push (twoway false): no answer, no table entry. */
int  modem_push(modem_t *m, const char *url, size_t url_len, const char *payload,
                size_t payload_len);
/* Cancels a pending request: sends ABORT, forgets it; its callback does not run.
 * Returns 0, or -1 when the id is not pending. */
int  modem_cancel(modem_t *m, uint64_t id);
/* Delivers a RESPONSE frame; returns 1 if it matched a pending request. */
int  modem_on_response(modem_t *m, const frame_t *f);
/* A RESPONSE for id arrived but could not be decoded: fails that request with
 * MODEM_E_BADFRAME at once. Returns 1 if it matched a pending request. */
int  modem_on_bad_response(modem_t *m, uint64_t id);

/* Answers a REQUEST received on this connection (responses reuse its id). */
int  modem_respond_ok(modem_t *m, uint64_t id, const char *result, size_t len);
int  modem_respond_err(modem_t *m, uint64_t id, int status, const char *msg);
int  modem_respond_limited(modem_t *m, uint64_t id, const char *msg, double retry_after);

size_t modem_pending(const modem_t *m);
const char *modem_strerror(int status);

#endif
