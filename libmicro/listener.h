/* listener: the accept loop of a wsnet's port, ours rather than lws's. lws 4.1
 * accepts internally and, when accept() fails with EMFILE, logs and returns with
 * the listening socket still readable: the loop spun at 100 % CPU for as long as
 * the process was out of fds. Here we accept, hand each socket to lws
 * (lws_adopt_socket_vhost), and while fds run short we keep a reserve: an accepted
 * fd in the top slice of RLIMIT_NOFILE first closes the oldest accepted socket
 * that is not a WebSocket yet (so idle sockets cannot lock out peers and probes),
 * then, nearer the limit, is closed itself; EMFILE is answered by giving up a
 * reserve fd to accept-and-close; both of the last pause accepting for a moment. Accepted sockets that have not become WebSocket connections within the
 * handshake timeout are closed (a TCP connection that sends nothing, a plain HTTP
 * request never finished or a keep-alive HTTP client gone quiet).
 * Loop thread only. */
#ifndef MICRO_LISTENER_H
#define MICRO_LISTENER_H

#include "hmap.h"
#include "loop.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct listen_pend listen_pend_t;

typedef struct listener {
    struct lws_context *ctx;
    struct lws_vhost   *vhost;
    int       fd;            /* the listening socket */
    int       reserve_fd;    /* /dev/null, given up to accept-and-close on EMFILE */
    int       fd_ceiling;    /* from this fd on, the oldest socket without a handshake makes room */
    int       fd_hard_ceiling; /* an accepted fd at or above this is closed at once */
    int64_t   handshake_timeout_ms;
    loop_io_t io;
    loop_timer_t resume_timer, hs_timer;
    bool      paused;
    uint64_t  refused;       /* connections closed for want of fds, ever */
    uint64_t  refused_now;   /* ... in the current shortage, for its log line */
    uint64_t  handshake_timeouts;
    uint64_t  evicted;       /* sockets without a handshake closed to make room */
    hmap_t    held;          /* wsi → listen_pend_t: every socket accepted, until destroyed */
    size_t    max_held;      /* what fits below fd_ceiling */
    listen_pend_t *head, *tail; /* those not a WebSocket yet, oldest first (= deadline order) */
} listener_t;

/* Binds bind:port ("0.0.0.0", "::" dual stack, or an address) and starts
 * accepting into vhost. 0, or -1 with errno. */
int  listener_start(listener_t *l, struct lws_context *ctx, struct lws_vhost *vhost,
                    const char *bind, int port, int64_t handshake_timeout_ms);
/* wsi completed its WebSocket handshake: no deadline any more. */
void listener_established(listener_t *l, struct lws *wsi);
/* wsi is being destroyed (any wsi of the vhost; others are ignored). */
void listener_done(listener_t *l, struct lws *wsi);
/* wsi answered a plain HTTP request: its deadline starts again. */
void listener_touch(listener_t *l, struct lws *wsi);
size_t listener_held(const listener_t *l);
void listener_stop(listener_t *l);

#endif
