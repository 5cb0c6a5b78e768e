#include "loop.h"

#include <ev.h>
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t got_signal;
static struct lws_context *sig_ctx;
static struct ev_loop *evloop; /* NULL: lws's own poll() loop */

static void on_signal(int sig)
{
    got_signal = sig;
    if (sig_ctx)
        lws_cancel_service(sig_ctx); /* writes to lws's event pipe: async-signal-safe */
}

struct lws_context *loop_create(bool epoll)
{
    struct lws_context_creation_info info;
    void *foreign[1];
    memset(&info, 0, sizeof(info));
    if (epoll) {
        evloop = ev_loop_new(EVBACKEND_EPOLL);
        if (!evloop)
            return NULL;
        foreign[0] = evloop;
        info.foreign_loops = foreign;
    }
    /* No TLS: the mesh runs inside the pod network; skipping OpenSSL and the CA
     * store keeps start-up to a few milliseconds. */
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
    if (epoll)
        info.options |= LWS_SERVER_OPTION_LIBEV;
    info.count_threads = 1;
    info.timeout_secs = 10;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx && evloop) {
        ev_loop_destroy(evloop);
        evloop = NULL;
    }
    return ctx;
}

static void timer_from_sul(lws_sorted_usec_list_t *sul)
{
    loop_timer_t *t = lws_container_of(sul, loop_timer_t, sul);
    t->cb(t);
}

static void timer_from_ev(struct ev_loop *l, ev_timer *w, int revents)
{
    loop_timer_t *t = lws_container_of(w, loop_timer_t, ev);
    (void)l;
    (void)revents;
    t->cb(t);
}

void loop_timer_schedule(struct lws_context *ctx, loop_timer_t *t, loop_timer_cb cb, int64_t us)
{
    t->cb = cb;
    if (us < 1)
        us = 1;
    if (evloop) {
        /* "As soon as possible" (1 us) is due at once: a timer a microsecond in
         * the future makes libev wait its minimum, a whole millisecond. */
        ev_timer_stop(evloop, &t->ev);
        ev_timer_init(&t->ev, timer_from_ev, us <= 1 ? 0. : (ev_tstamp)us / 1e6, 0.);
        ev_timer_start(evloop, &t->ev);
    } else {
        lws_sul_schedule(ctx, 0, &t->sul, timer_from_sul, us);
    }
}

void loop_timer_cancel(loop_timer_t *t)
{
    if (evloop)
        ev_timer_stop(evloop, &t->ev);
    else
        lws_sul_cancel(&t->sul);
}

static void io_from_ev(struct ev_loop *l, ev_io *w, int revents)
{
    loop_io_t *io = lws_container_of(w, loop_io_t, ev);
    (void)l;
    (void)revents;
    io->cb(io);
}

bool loop_is_ev(void) { return evloop != NULL; }

int loop_io_start(loop_io_t *w, int fd, loop_io_cb cb)
{
    if (!evloop || fd < 0)
        return -1;
    loop_io_stop(w);
    w->cb = cb;
    ev_io_init(&w->ev, io_from_ev, fd, EV_READ);
    ev_io_start(evloop, &w->ev);
    w->active = true;
    return 0;
}

void loop_io_stop(loop_io_t *w)
{
    if (w->active && evloop)
        ev_io_stop(evloop, &w->ev);
    w->active = false;
}

void loop_kill_async(struct lws *wsi)
{
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    lws_cancel_service(lws_get_context(wsi));
}

struct ev_loop *loop_ev(void) { return evloop; }

void loop_run_once(struct lws_context *ctx)
{
    if (evloop)
        ev_run(evloop, EVRUN_ONCE);
    else
        lws_service(ctx, 0);
}

void loop_install_signals(struct lws_context *ctx)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sig_ctx = ctx;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int loop_signal(void) { return got_signal; }

void loop_destroy(struct lws_context *ctx)
{
    sig_ctx = NULL;
    lws_context_destroy(ctx);
    if (evloop) {
        ev_loop_destroy(evloop);
        evloop = NULL;
    }
}
