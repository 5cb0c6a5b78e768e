/* wsconn: peer connections over libwebsockets, shared by registry and sidecar.
 * A wsnet is one listening port (WebSocket peers + plain HTTP GETs) plus the
 * connections it dials; a wsconn is one peer connection with its modem, a bounded
 * send queue and a bounded receive buffer. Everything here runs on the loop
 * thread; connections are freed by lws callbacks, never while the owner's
 * callback is on the stack (wsconn_close only schedules). */
#ifndef MICRO_WSCONN_H
#define MICRO_WSCONN_H

#include "addr.h"
#include "frame.h"
#include "listener.h"
#include "modem.h"
#include "resolve.h"
#include "sbuf.h"
#include "utf8.h"

#include <libwebsockets.h>
#include <stdbool.h>

typedef struct wsnet wsnet_t;
typedef struct wsconn wsconn_t;

/* A plain-HTTP answer built by the owner's http op. */
typedef struct http_reply {
    int         status;
    const char *ctype;   /* default application/json */
    sbuf_t      body;
} http_reply_t;

typedef struct wsnet_ops {
    /* A WebSocket handshake arrived with a well-formed path. Return 0 to accept. */
    int  (*accept)(wsnet_t *n, struct lws *wsi, const addr_t *caller, const char *ns);
    void (*on_open)(wsconn_t *c);                       /* handshake done, either side */
    void (*on_request)(wsconn_t *c, const frame_t *f);  /* REQUEST frame (twoway or push) */
    void (*on_abort)(wsconn_t *c, uint64_t target);     /* ABORT of a request it sent us */
    void (*on_close)(wsconn_t *c);                      /* pending requests already failed */
    /* The owner still has work on c (e.g. inbound requests at the app): the idle
     * timeout leaves it open. NULL: only our own pending requests count. */
    bool (*busy)(wsconn_t *c);
    /* GET on the listening port without Upgrade. Fill reply; status 0 = 404. */
    void (*http)(wsnet_t *n, const char *path, http_reply_t *reply);
} wsnet_ops_t;

typedef struct wsnet_stats {
    uint64_t conns_accepted, conns_dialed, conns_rejected, dial_failures;
    uint64_t frames_in, frames_out, bad_frames, oversized, queue_full;
    uint64_t http_requests;
    uint64_t assembly_refused, frame_timeouts, send_stalls, idle_closes;
} wsnet_stats_t;

struct wsnet {
    struct lws_context *ctx;
    struct lws_vhost   *vhost;      /* the listener (and dialer unless dial_vhost) */
    struct lws_vhost   *dial_vhost; /* outbound connections when the listener is
                                     * IPv4-only (an lws vhost without IPv6 cannot
                                     * dial an IPv6 peer); NULL: use vhost */
    const char         *bound;      /* the address really listened on */
    const wsnet_ops_t  *ops;
    const char         *proto_name;
    void   *user;
    size_t  max_frame;   /* largest message accepted or sent, bytes */
    size_t  max_queue;   /* bytes queued per connection before sends fail */
    size_t  max_conns;   /* accepted connections */
    size_t  max_pending; /* requests in flight per connection */
    size_t  nconns;      /* established connections, both directions */
    size_t  naccepted;
    resolver_t *resolver; /* host names of dials go through it; NULL: lws resolves
                           * them itself, blocking the loop (unit tests only) */
    int     last_dial_err; /* why the last wsconn_dial returned NULL: a
                            * RESOLVE_E_* code, or 0 for anything else */
    int64_t handshake_timeout_ms; /* accepted sockets must be WebSocket by then */
    /* Budgets over every connection of the net (0 = none), and the deadlines that
     * keep a slow peer from holding its share for good. */
    size_t  rx_budget;        /* bytes of messages in assembly */
    size_t  rx_bytes;
    size_t  queue_budget;     /* bytes waiting in send queues */
    size_t  queue_bytes;
    int64_t frame_timeout_ms; /* a message in assembly must be complete by then */
    int64_t stall_timeout_ms; /* a peer not reading for this long (queue past half) is closed */
    int64_t idle_timeout_ms;  /* no frame either way for this long: closed */
    listener_t listener; /* our accept loop on the port (listener.h says why) */
    bool    listening;
    wsnet_stats_t stats;
};

/* A queued frame: this header, LWS_PRE bytes, then the frame text, all in the
 * allocation of the sbuf the frame was built in (see WSMSG_HEADROOM). */
typedef struct wsmsg {
    struct wsmsg *next;
    size_t        len;
} wsmsg_t;
_Static_assert(sizeof(wsmsg_t) == 16, "WSMSG_HEADROOM assumes a 16-byte header");

struct wsconn {
    wsnet_t     *net;
    struct lws  *wsi;            /* NULL once lws let go of it */
    bool         outbound;
    bool         established;
    bool         closing;
    bool         rx_paused;
    bool         dialing;        /* inside lws_client_connect_via_info */
    bool         dial_failed;    /* lws failed it synchronously */
    char        *key;            /* identity "host:port": handshake path (inbound) or
                                  * dial target; allocated to size ("" until known) */
    char        *ns;             /* inbound: the caller's namespace ("" outbound) */
    modem_t      modem;
    wsmsg_t     *qhead, *qtail;
    size_t       qbytes;
    sbuf_t       rx;
    utf8_stream_t rx_utf8;       /* inbound: the text message being received, checked */
    loop_timer_t dial_timer;
    bool         resolving;      /* outbound: waiting for the resolver */
    int          resolve_err;    /* outbound: the lookup failed (RESOLVE_E_*), 0 if not */
    unsigned     dial_port;
    int64_t      hs_timeout_ms;
    resolve_waiter_t rw;
    loop_timer_t rx_timer;       /* frame timeout, while a message is in assembly */
    loop_timer_t stall_timer;    /* send stall, while reading is paused */
    bool         stall_armed;
    int64_t      stall_since_ms; /* when the stall timer was armed */
    int64_t      last_drain_ms;  /* a queued frame last went out */
    loop_timer_t idle_timer;
    size_t       rx_accounted;   /* of rx's allocation, counted in net->rx_bytes */
    int64_t      last_active_ms; /* a frame in or out */
    struct wsclient *cl;         /* outbound: our RFC 6455 client state (wsframe.h) */
    void        *user;           /* the owner's per-connection state */
};

/* The lws protocol callback: put it in protocols[0] of the vhost and set that
 * protocol's `user` to the wsnet. */
int  wsconn_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                         void *in, size_t len);

/* Creates the vhost for a wsnet and, unless port is 0 (dial only), our listener
 * (listener.h) on bind:port ("0.0.0.0", "::", "127.0.0.1", "::1"), which hands
 * accepted sockets to that vhost. "::" (or NULL) is dual stack (IPV6_V6ONLY off,
 * whatever net.ipv6.bindv6only says), and falls back to 0.0.0.0 when the host has
 * no IPv6; n->bound says which. Dialing reaches IPv4 and IPv6 peers whatever the
 * bind. Set handshake_timeout_ms first. On lws's poll() loop (unit tests) lws
 * listens itself, without the fd reserve and the handshake deadline. Returns 0 or -1. */
int  wsnet_listen(wsnet_t *n, const char *name, const char *bind, int port,
                  const struct lws_protocols *protocols);
/* The vhost outbound connections of this wsnet (and its protocols) use. */
struct lws_vhost *wsnet_dial_vhost(const wsnet_t *n);
/* Stops accepting (the vhost and its connections stay until the context goes). */
void wsnet_stop_listening(wsnet_t *n);

/* Dials ws://target/path. A host name is resolved by n->resolver first (off
 * the loop thread, with its deadline); the Host header keeps the name. Returns
 * the connection (not yet open; on_open or on_close follows — on_close also
 * when the name does not resolve, with resolve_err set), or NULL on immediate
 * failure (n->last_dial_err says whether the name was the reason). */
wsconn_t *wsconn_dial(wsnet_t *n, const addr_t *target, const char *path,
                      int64_t handshake_timeout_ms, void *user);
/* The same on a resolver lane: RESOLVE_LANE_RESERVED for the registry's
 * address, so hanging peer-supplied names cannot hold it up. */
wsconn_t *wsconn_dial_lane(wsnet_t *n, const addr_t *target, const char *path,
                           int64_t handshake_timeout_ms, void *user, int lane);
/* Queues a frame built in an sbuf with LWS_PRE headroom (steals the buffer).
 * Returns 0, or -1 if the connection is closing or its queue is full. */
int  wsconn_send(wsconn_t *c, sbuf_t *frame);
/* True when the handshake's query string carries token=<want> (lws has already
 * URL-decoded it), compared in constant time. */
bool wsconn_token_ok(struct lws *wsi, const char *want);
/* Appends "token=<value>" URL-encoded, for a handshake query string. */
int  wsconn_token_query(const char *token, char *out, size_t outlen);

/* The address a connection comes from, in the form a handshake path names a host
 * ("10.0.0.7", "::1"; an IPv4-mapped IPv6 source reads as the IPv4 address). */
void wsconn_peer_address(struct lws *wsi, char *out, size_t outlen);

/* Closes asynchronously; on_close follows from the loop. */
void wsconn_close(wsconn_t *c);
/* Closes with a WebSocket status code (e.g. 1008 policy) asynchronously. */
void wsconn_close_code(wsconn_t *c, int code, const char *reason);

#endif
