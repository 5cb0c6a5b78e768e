/* delay.h — parks suspended libmicrohttpd connections until a deadline passes or
 * the client hangs up, then resumes them. Used by micro-echo's POST /slow/<ms>:
 * one thread and one epoll set serve every parked request, so a thousand slow
 * requests cost a thousand heap entries, not a thousand sleeping threads. */
#ifndef MICRO_ECHO_DELAY_H
#define MICRO_ECHO_DELAY_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

enum delay_outcome {
  DELAY_PENDING = 0, /* still parked */
  DELAY_DUE,         /* the deadline passed */
  DELAY_HANGUP,      /* the client closed its side while we waited */
  DELAY_SHUTDOWN,    /* delay_stop() released it early */
};

/* Embedded in the caller's per-connection state. Between delay_park() and the
 * resume, only the delay thread touches it; once MHD calls the handler again,
 * `outcome` says why. */
struct delay_item {
  uint64_t due_ms;
  size_t heap_idx;
  int fd;
  struct MHD_Connection *conn;
  enum delay_outcome outcome;
};

struct delay;

/* Starts the delay thread. NULL + errno on failure. */
struct delay *delay_new(void);

/* From an MHD access handler: suspends `conn` and resumes it after `ms`
 * milliseconds, or earlier if the peer on `fd` hangs up. Returns 0, or -1 with
 * errno = ECANCELED once delay_stop() has begun (the connection is then not
 * suspended and the caller must answer it itself), or ENOMEM. */
int delay_park(struct delay *d, struct delay_item *it,
               struct MHD_Connection *conn, int fd, unsigned ms);

/* Resumes everything still parked with DELAY_SHUTDOWN, refuses new parks and
 * joins the thread. Call before MHD_stop_daemon(). */
void delay_stop(struct delay *d);

/* Frees a stopped delay. */
void delay_free(struct delay *d);

#endif
