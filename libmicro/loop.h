/* loop: the event loop both binaries run — one lws context serviced by the main
 * thread — and the signal handling that ends it. Handlers only set a flag and
 * wake the loop (lws_cancel_service); the loop acts on the flag. */
#ifndef MICRO_LOOP_H
#define MICRO_LOOP_H

#include <libwebsockets.h>
#include <stdbool.h>

/* epoll: drive lws from a libev loop (epoll) instead of lws's own poll(), so a
 * pass costs the ready descriptors, not all open ones — the registry holds
 * thousands of idle connections. The sidecar keeps poll(): libmicrohttpd's
 * descriptor adopted into the loop needs lws's own timer servicing. */
struct lws_context *loop_create(bool epoll);
/* Runs one pass: waits for events or the next timer and handles them. */
void loop_run_once(struct lws_context *ctx);
/* SIGTERM/SIGINT request a stop; SIGPIPE is ignored. */
void loop_install_signals(struct lws_context *ctx);
/* 0 while running; the signal number once one arrived. */
int  loop_signal(void);
void loop_destroy(struct lws_context *ctx);

#endif
