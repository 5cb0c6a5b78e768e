/* resolve: host names to numeric addresses without blocking the loop thread.
 * getaddrinfo() blocks (up to resolv.conf's timeout × attempts, 10 s by default)
 * and cannot be cancelled, so it runs on a small fixed pool of resolver threads
 * fed through one queue; answers come back to the loop through one wake-up (an
 * ev_async on the libev loop) and are handed out there. Each lookup has a
 * deadline, a loop timer: at the deadline it fails even if its thread is still
 * stuck, and the late answer is dropped. Concurrent lookups of one name share
 * one job; answers are cached briefly (positive and negative). Numeric hosts
 * (IPv4, IPv6, IPv6 in brackets) never reach a thread.
 *
 * Two lanes keep a flood of hanging peer-supplied names from starving the
 * names the process itself depends on: RESOLVE_LANE_RESERVED jobs (the
 * registry's address) run only on threads of their own, and each lane has its
 * own bound on queued jobs.
 *
 * Threading: a resolver_t and everything reached from it belongs to the loop
 * thread, except the job queue and the done list, which the loop and the
 * resolver threads share under one mutex. The threads never call back into the
 * loop's state. */
#ifndef MICRO_RESOLVE_H
#define MICRO_RESOLVE_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESOLVE_MAX_ADDRS 4   /* addresses kept per name, in getaddrinfo's order */
#define RESOLVE_ADDR_MAX  46  /* INET6_ADDRSTRLEN */
#define RESOLVE_HOST_MAX  256 /* longest name looked up (a DNS name is at most 253) */

typedef struct resolve_addrs {
    size_t n;
    char   addr[RESOLVE_MAX_ADDRS][RESOLVE_ADDR_MAX]; /* numeric, no brackets */
} resolve_addrs_t;

enum { RESOLVE_LANE_PEER = 0, RESOLVE_LANE_RESERVED = 1, RESOLVE_LANES = 2 };

enum {
    RESOLVE_OK = 0,
    RESOLVE_E_NOTFOUND = -1, /* the name has no address */
    RESOLVE_E_TIMEOUT = -2,  /* no answer by the deadline */
    RESOLVE_E_BUSY = -3,     /* the lane's queue is full */
    RESOLVE_E_FAIL = -4,     /* any other resolver failure (server failure, memory) */
    RESOLVE_E_CLOSED = -5,   /* the resolver is being freed */
    RESOLVE_E_NAME = -6,     /* empty or too long name */
};

/* Looks host up; runs on a resolver thread and may block. Returns RESOLVE_OK
 * with out->n >= 1, or a RESOLVE_E_* code. Tests inject their own. */
typedef int (*resolve_fn_t)(void *arg, const char *host, resolve_addrs_t *out);
/* The default: getaddrinfo(host, AF_UNSPEC, SOCK_STREAM). */
int resolve_getaddrinfo(void *arg, const char *host, resolve_addrs_t *out);

typedef struct resolver_opts {
    int         peer_threads;     /* threads for RESOLVE_LANE_PEER (>= 1) */
    int         reserved_threads; /* threads for RESOLVE_LANE_RESERVED (>= 1) */
    size_t      max_queue[RESOLVE_LANES]; /* jobs waiting for a thread, per lane */
    int64_t     timeout_ms;       /* per lookup */
    int64_t     cache_ms;         /* how long an answer is reused (0 = not cached) */
    int64_t     neg_cache_ms;     /* how long a failure is reused (0 = not cached) */
    size_t      max_cache;        /* names cached at once */
    resolve_fn_t fn;              /* NULL: resolve_getaddrinfo */
    void       *fn_arg;
} resolver_opts_t;

/* Fills the defaults: 4 peer threads, 2 reserved, queues 64 / 8, 2 s timeout,
 * 10 s positive and 2 s negative cache, 1,024 names. */
void resolver_opts_default(resolver_opts_t *o);

typedef struct resolver resolver_t;
typedef void (*resolve_cb_t)(void *arg, int err, const resolve_addrs_t *addrs);

/* A caller's place in the line for one name: caller memory (embed it in the
 * struct that waits), valid until its callback runs or resolver_cancel. */
typedef struct resolve_waiter {
    struct resolve_waiter *next;
    struct resolve_lookup *lk;  /* NULL when not waiting */
    resolve_cb_t cb;
    void        *arg;
} resolve_waiter_t;

typedef struct resolver_stats {
    uint64_t lookups;   /* resolver_lookup calls for non-numeric names */
    uint64_t numeric;   /* answered at once: the host was an address */
    uint64_t cache_hits, shared; /* answered from the cache; joined a lookup in flight */
    uint64_t jobs;      /* handed to a thread */
    uint64_t timeouts, failures, busy, late; /* late: answers after their deadline */
} resolver_stats_t;

/* A resolver for the loop of ctx (loop.c's libev loop when there is one; on
 * lws's own poll() loop finished jobs are collected by a 2 ms loop timer while
 * any are outstanding). Returns NULL when threads cannot be started. */
resolver_t *resolver_new(struct lws_context *ctx, const resolver_opts_t *o);
/* Looks host up on `lane`. Returns 1 with *out filled when the answer is known
 * now (a numeric host or a cached answer); a RESOLVE_E_* code (< 0) when it
 * failed now (a cached failure, a full queue, a bad name) — cb does not run;
 * 0 when the lookup is under way — cb runs exactly once, from the loop, never
 * from inside resolver_lookup (unless resolver_cancel comes first). */
int  resolver_lookup(resolver_t *r, const char *host, int lane, resolve_addrs_t *out,
                     resolve_waiter_t *w, resolve_cb_t cb, void *arg);
/* Stops waiting: cb will not run. The job itself goes on (it cannot be stopped)
 * while others wait for the same name. */
void resolver_cancel(resolver_t *r, resolve_waiter_t *w);
/* Fails every waiting lookup with RESOLVE_E_CLOSED (callbacks run from here),
 * then stops the threads: idle ones are joined; one stuck in getaddrinfo (which
 * cannot be interrupted) is left to finish on its own — it owns a reference to
 * the shared queue and frees it last, and exit() ends it. Never waits more than
 * ~100 ms. NULL is fine. */
void resolver_free(resolver_t *r);
const resolver_stats_t *resolver_stats(const resolver_t *r);
/* Lookups in flight (waiting for a thread or running). */
size_t resolver_pending(const resolver_t *r);

/* host is an IPv4 or IPv6 address (with or without [brackets]): writes it
 * without brackets into out and returns true. */
bool resolve_numeric(const char *host, char *out, size_t outlen);
const char *resolve_strerror(int err);

#endif
