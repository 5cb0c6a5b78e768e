/* loop: the event loop both binaries run — one lws context serviced by the main
 * thread — its timers, and the signal handling that ends it. Handlers only set
 * a flag and wake the loop (lws_cancel_service); the loop acts on the flag. */
#ifndef MICRO_LOOP_H
#define MICRO_LOOP_H

#include <ev.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

/* epoll: drive lws from a libev loop (epoll) instead of lws's own poll(), so a
 * pass costs the ready descriptors, not all open ones: the registry holds
 * thousands of idle connections, a busy provider's sidecar hundreds of peers.
 * false: lws's own poll() loop (tests, and the fallback). */
struct lws_context *loop_create(bool epoll);

/* A one-shot timer on the loop. Our code uses these, never lws_sul_* directly:
 * lws 4.1's libev glue re-arms its single timer with ev_timer_set() while the
 * timer is running, so a sul scheduled earlier than the one already armed waits
 * for that one (up to its full delay). On the libev loop these are plain
 * ev_timers; on lws's poll() loop they are suls. A zeroed timer may be
 * cancelled; scheduling a scheduled timer moves it. */
typedef struct loop_timer loop_timer_t;
typedef void (*loop_timer_cb)(loop_timer_t *t);
struct loop_timer {
    lws_sorted_usec_list_t sul;
    ev_timer               ev;
    loop_timer_cb          cb;
};
void loop_timer_schedule(struct lws_context *ctx, loop_timer_t *t, loop_timer_cb cb, int64_t us);
void loop_timer_cancel(loop_timer_t *t);

/* Watches a descriptor someone else owns (libmicrohttpd's sockets) for
 * readability, on the libev loop. start returns -1 on lws's poll() loop, where
 * there is nothing to add it to. Stop it before the owner closes the fd. */
typedef struct loop_io loop_io_t;
typedef void (*loop_io_cb)(loop_io_t *w);
struct loop_io {
    ev_io      ev;
    loop_io_cb cb;
    bool       active;
};
int  loop_io_start(loop_io_t *w, int fd, loop_io_cb cb);
/* true when the loop is libev's (loop_create(true)); false on lws's poll() loop. */
bool loop_is_ev(void);
void loop_io_stop(loop_io_t *w);

/* Closes wsi from outside its own callbacks (a timer, the end of a pass):
 * lws_set_timeout(..., LWS_TO_KILL_ASYNC) plus a wake-up of lws's event pipe. On
 * the libev loop lws only looks at its timeouts after one of its own events or
 * when its single timer (armed for its next internal deadline, ~30 s) fires;
 * without the wake-up the close waited that long. */
void loop_kill_async(struct lws *wsi);
/* The libev loop under the context, or NULL on lws's own poll() loop. For
 * watchers other threads signal (ev_async: the resolver's wake-up), and for
 * descriptors watched on the loop thread (the registry's etcd client:
 * libcurl's multi interface). */
struct ev_loop *loop_ev(void);
/* Runs one pass: waits for events or the next timer and handles them. */
void loop_run_once(struct lws_context *ctx);
/* SIGTERM/SIGINT request a stop; SIGPIPE is ignored. */
void loop_install_signals(struct lws_context *ctx);
/* 0 while running; the signal number once one arrived. */
int  loop_signal(void);
void loop_destroy(struct lws_context *ctx);

#endif
